#include "text/vocab.h"

#include <cstring>

#include "base/error.h"
#include "text/unicode.h"

namespace hearth {

namespace {

// GPT-2's byte-level alphabet: the printable bytes stand for themselves, the
// other 68 for U+0100, U+0101, ... in byte order. The byte a code point of a
// token stands for, or -1.
int byte_of_codepoint(uint32_t cp) {
    static const auto table = [] {
        std::vector<int16_t> t(256 + 68, -1);
        int next = 256;
        for (int b = 0; b < 256; b++) {
            const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            t[printable ? b : next++] = (int16_t)b;
        }
        return t;
    }();
    return cp < table.size() ? table[cp] : -1;
}

// A byte-level token's text as the bytes it stands for; false when some
// character is outside the alphabet.
bool undo_byte_level(std::string_view s, std::string& out) {
    out.clear();
    for (size_t i = 0; i < s.size();) {
        const Utf8Char c = next_utf8(s, i);
        const int b = c.cp == kInvalidCodepoint ? -1 : byte_of_codepoint(c.cp);
        if (b < 0) return false;
        out.push_back((char)b);
        i += c.len;
    }
    return true;
}

// "<0x0A>" -> 10, or -1.
int spm_byte_piece(std::string_view s) {
    if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        const char c = s[i];
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

const GGUFValue& array_of(const GGUFFile& f, const std::string& key, int64_t n, bool strings) {
    const GGUFValue* v = f.find(key);
    if (!v || v->type != GGUFType::ARRAY || strings != (v->elem_type == GGUFType::STRING) ||
        v->elem_type == GGUFType::ARRAY) {
        throw Error(f.err("metadata '" + key + "' must be an array of " + (strings ? "strings" : "numbers")));
    }
    if (n >= 0 && (int64_t)v->n != n) {
        throw Error(f.err("metadata '" + key + "' has " + std::to_string(v->n) + " entries for " + std::to_string(n) +
                          " tokens"));
    }
    return *v;
}

int32_t token_id_or(const GGUFFile& f, const std::string& key, int32_t dflt, int32_t n) {
    const int64_t id = f.get_int_or(key, dflt);
    if (id != -1 && (id < 0 || id >= n)) {
        throw Error(f.err("metadata '" + key + "' = " + std::to_string(id) + " is not a token id (the vocabulary has " +
                          std::to_string(n) + ")"));
    }
    return (int32_t)id;
}

bool bool_or(const GGUFFile& f, const std::string& key, bool dflt) {
    const GGUFValue* v = f.find(key);
    return v && v->is_integer() ? v->i != 0 : dflt;
}

// The token a merge names, by its byte-level spelling in the file.
int32_t merge_part(const Vocab& v, std::string_view spelled, std::string& raw) {
    if (!undo_byte_level(spelled, raw)) raw.assign(spelled);
    return v.find(raw);
}

void load_merges(const GGUFFile& f, Vocab& v) {
    const GGUFValue* m = f.find("tokenizer.ggml.merges");
    if (!m) throw Error(f.err("byte-level BPE vocabulary without 'tokenizer.ggml.merges'"));
    const GGUFValue& merges = array_of(f, "tokenizer.ggml.merges", -1, true);
    std::string a, b;
    v.reserve_merges(merges.n);
    for (uint64_t r = 0; r < merges.n; r++) {
        const std::string_view s = merges.strings[r];
        const size_t sp = s.find(' ', 1);
        if (sp == std::string_view::npos) throw Error(f.err("merge " + std::to_string(r) + " '" + std::string(s) + "' has no space"));
        const int32_t left = merge_part(v, s.substr(0, sp), a);
        const int32_t right = merge_part(v, s.substr(sp + 1), b);
        const int32_t result = v.find(a + b);
        // a merge whose parts or result are not tokens can never apply
        if (left >= 0 && right >= 0 && result >= 0) v.add_merge(left, right, (int32_t)r, result);
    }
}

// Which tokens the tokenizers may produce from text (Vocab::find).
bool from_text(VocabType type, TokenType k) {
    return type == VocabType::BPE ? k == TokenType::Normal : (k == TokenType::Normal || k == TokenType::UserDefined);
}

}  // namespace

namespace {

// FNV-1a: short token texts, no need for more
uint64_t hash_bytes(std::string_view s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

uint64_t mix(uint64_t k) {  // splitmix64's finaliser: spreads id pairs over the table
    k = (k ^ (k >> 30)) * 0xbf58476d1ce4e5b9ull;
    k = (k ^ (k >> 27)) * 0x94d049bb133111ebull;
    return k ^ (k >> 31);
}

size_t table_size(size_t n) {  // a power of two, at most three quarters full
    size_t size = 16;
    while (size * 3 < n * 4) size *= 2;
    return size;
}

}  // namespace

void Vocab::add_token(std::string_view t, TokenType k, float sc) {
    blob_.append(t);
    offset_.push_back((uint32_t)blob_.size());
    kind.push_back(k);
    score.push_back(sc);
}

void Vocab::index_texts(bool (*from_text)(VocabType, TokenType)) {
    text_index_.assign(table_size(kind.size()), -1);
    const size_t mask = text_index_.size() - 1;
    for (int32_t id = 0; id < n_tokens(); id++) {
        if (!from_text(type, kind[id]) || text(id).empty()) continue;
        size_t i = hash_bytes(text(id)) & mask;
        for (; text_index_[i] >= 0; i = (i + 1) & mask)
            if (text(text_index_[i]) == text(id)) break;  // the first id of a text wins
        if (text_index_[i] < 0) text_index_[i] = id;
    }
}

int32_t Vocab::find(std::string_view s) const {
    if (text_index_.empty()) return -1;
    const size_t mask = text_index_.size() - 1;
    for (size_t i = hash_bytes(s) & mask; text_index_[i] >= 0; i = (i + 1) & mask)
        if (text(text_index_[i]) == s) return text_index_[i];
    return -1;
}

void Vocab::reserve_merges(size_t n) { merge_slots_.assign(table_size(n), MergeSlot{}); }

void Vocab::add_merge(int32_t left, int32_t right, int32_t rank, int32_t result) {
    const uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    const size_t mask = merge_slots_.size() - 1;
    size_t i = mix(key) & mask;
    for (; merge_slots_[i].key != ~0ull; i = (i + 1) & mask)
        if (merge_slots_[i].key == key) return;  // the first (lowest) rank wins
    merge_slots_[i] = MergeSlot{key, Merge{rank, result}};
}

const Vocab::Merge* Vocab::find_merge(int32_t left, int32_t right) const {
    if (merge_slots_.empty()) return nullptr;
    const uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    const size_t mask = merge_slots_.size() - 1;
    for (size_t i = mix(key) & mask; merge_slots_[i].key != ~0ull; i = (i + 1) & mask)
        if (merge_slots_[i].key == key) return &merge_slots_[i].merge;
    return nullptr;
}

bool has_vocab(const GGUFFile& f) { return f.find("tokenizer.ggml.model") != nullptr; }

Vocab load_vocab(const GGUFFile& f) {
    Vocab v;
    v.model_name = f.get_string("tokenizer.ggml.model");
    if (v.model_name == "llama") {
        v.type = VocabType::SPM;
    } else if (v.model_name == "gpt2") {
        v.type = VocabType::BPE;
    } else {
        throw Error(f.err("tokenizer.ggml.model '" + v.model_name +
                          "' is not supported (hearth reads 'llama' = SentencePiece and 'gpt2' = byte-level BPE)"));
    }
    v.pre_name = f.get_string_or("tokenizer.ggml.pre", "default");

    const GGUFValue& tokens = array_of(f, "tokenizer.ggml.tokens", -1, true);
    const int32_t n = (int32_t)tokens.n;
    if (n <= 0) throw Error(f.err("the token list 'tokenizer.ggml.tokens' is empty"));
    const GGUFValue* types = f.find("tokenizer.ggml.token_type") ? &array_of(f, "tokenizer.ggml.token_type", n, false) : nullptr;
    const GGUFValue* scores = f.find("tokenizer.ggml.scores") ? &array_of(f, "tokenizer.ggml.scores", n, false) : nullptr;
    // types are integers: a float one (1.5, 1e20) has no type to mean
    if (types && (types->elem_type == GGUFType::FLOAT32 || types->elem_type == GGUFType::FLOAT64)) {
        throw Error(f.err("metadata 'tokenizer.ggml.token_type' must be an array of integers, not of " +
                          std::string(gguf_type_name(types->elem_type))));
    }

    v.kind.reserve(n);
    v.score.reserve(n);
    std::memset(v.byte_token, 0xff, sizeof(v.byte_token));
    std::string raw;
    for (int32_t id = 0; id < n; id++) {
        const std::string_view s = tokens.strings[id];
        const int64_t t = types ? types->array_i(id) : (int64_t)TokenType::Normal;
        if (t < 0 || t > (int64_t)TokenType::Byte) {
            throw Error(f.err("token " + std::to_string(id) + " has an unknown type " + std::to_string(t)));
        }
        const TokenType k = (TokenType)t;
        if (!(v.type == VocabType::BPE && (k == TokenType::Normal || k == TokenType::Byte) && undo_byte_level(s, raw))) {
            raw.assign(s);  // SentencePiece, special tokens, or not byte-level: as written
        }
        v.add_token(raw, k, scores ? (float)scores->array_f(id) : 0.0f);

        if (v.type == VocabType::SPM && k == TokenType::Byte) {
            const int b = spm_byte_piece(s);
            if (b < 0) throw Error(f.err("byte token " + std::to_string(id) + " '" + std::string(s) + "' is not <0xNN>"));
            if (v.byte_token[b] < 0) v.byte_token[b] = id;
        }
        if (v.type == VocabType::BPE && (k == TokenType::Normal || k == TokenType::Byte) && raw.size() == 1) {
            const unsigned char b = (unsigned char)raw[0];
            if (v.byte_token[b] < 0) v.byte_token[b] = id;
        }
        const bool special = k == TokenType::Control || k == TokenType::UserDefined || k == TokenType::Unknown;
        if (special && !raw.empty()) v.specials.push_back(id);
    }
    v.index_texts(from_text);
    if (v.type == VocabType::BPE) load_merges(f, v);

    // llama.cpp's defaults where the file says nothing
    const bool spm = v.type == VocabType::SPM;
    v.bos = token_id_or(f, "tokenizer.ggml.bos_token_id", spm && n > 1 ? 1 : -1, n);
    v.eos = token_id_or(f, "tokenizer.ggml.eos_token_id", spm && n > 2 ? 2 : -1, n);
    v.unk = token_id_or(f, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, n);
    v.eot = token_id_or(f, "tokenizer.ggml.eot_token_id", -1, n);
    // end of message (GLM-4's <|observation|>: the model hands over to a tool)
    const int32_t eom = token_id_or(f, "tokenizer.ggml.eom_token_id", -1, n);
    v.pad = token_id_or(f, "tokenizer.ggml.padding_token_id", -1, n);
    v.add_bos = bool_or(f, "tokenizer.ggml.add_bos_token", spm);
    v.add_eos = bool_or(f, "tokenizer.ggml.add_eos_token", false);
    v.add_space_prefix = bool_or(f, "tokenizer.ggml.add_space_prefix", spm);

    static const char* const kTurnEnds[] = {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>",
                                            "<|end|>", "<end_of_turn>", "<|EOT|>", "</s>"};
    for (int32_t id : {v.eos, v.eot, eom})
        if (id >= 0 && !v.ends_generation(id)) v.end_of_generation.push_back(id);
    for (int32_t id = 0; id < n; id++) {
        if (v.kind[id] != TokenType::Control || v.ends_generation(id)) continue;
        for (const char* t : kTurnEnds)
            if (v.text(id) == t) v.end_of_generation.push_back(id);
    }
    return v;
}

}  // namespace hearth
