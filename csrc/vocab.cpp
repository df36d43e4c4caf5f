#include "vocab.h"

#include <cstring>

#include "common.h"
#include "unicode.h"

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
// character is outside the alphabet (then the text is left as it is).
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

void load_merges(const GGUFFile& f, Vocab& v, const std::unordered_map<std::string_view, int32_t>& by_file_text) {
    const GGUFValue* m = f.find("tokenizer.ggml.merges");
    if (!m) throw Error(f.err("byte-level BPE vocabulary without 'tokenizer.ggml.merges'"));
    const GGUFValue& merges = array_of(f, "tokenizer.ggml.merges", -1, true);
    std::string joined;
    v.merges.reserve(merges.n);
    for (uint64_t r = 0; r < merges.n; r++) {
        const std::string_view s = merges.strings[r];
        const size_t sp = s.find(' ', 1);
        if (sp == std::string_view::npos) throw Error(f.err("merge " + std::to_string(r) + " '" + std::string(s) + "' has no space"));
        const auto l = by_file_text.find(s.substr(0, sp));
        const auto rr = by_file_text.find(s.substr(sp + 1));
        joined.assign(s.substr(0, sp)).append(s.substr(sp + 1));
        const auto res = by_file_text.find(joined);
        // a merge whose parts or result are not tokens can never apply
        if (l == by_file_text.end() || rr == by_file_text.end() || res == by_file_text.end()) continue;
        const uint64_t key = ((uint64_t)(uint32_t)l->second << 32) | (uint32_t)rr->second;
        v.merges.emplace(key, Vocab::Merge{(int32_t)r, res->second});  // the first (lowest) rank wins
    }
}

}  // namespace

int32_t Vocab::find(std::string_view s) const {
    thread_local std::string key;  // std::unordered_map<std::string> has no string_view lookup in C++17
    key.assign(s.data(), s.size());
    const auto it = id_of.find(key);
    return it == id_of.end() ? -1 : it->second;
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

    v.text.resize(n);
    v.kind.resize(n);
    v.score.assign(n, 0.0f);
    std::memset(v.byte_token, 0xff, sizeof(v.byte_token));
    std::unordered_map<std::string_view, int32_t> by_file_text;  // the file's spelling -> id (BPE merges)
    by_file_text.reserve(n);
    for (int32_t id = 0; id < n; id++) {
        const std::string_view s = tokens.strings[id];
        const int64_t t = types ? types->array_i(id) : (int64_t)TokenType::Normal;
        if (t < 0 || t > (int64_t)TokenType::Byte) {
            throw Error(f.err("token " + std::to_string(id) + " has an unknown type " + std::to_string(t)));
        }
        v.kind[id] = (TokenType)t;
        if (scores) v.score[id] = (float)scores->array_f(id);
        by_file_text.emplace(s, id);

        const TokenType k = v.kind[id];
        if (v.type == VocabType::BPE && (k == TokenType::Normal || k == TokenType::Byte)) {
            if (!undo_byte_level(s, v.text[id])) v.text[id].assign(s);  // not byte-level: as written
        } else {
            v.text[id].assign(s);
        }

        if (v.type == VocabType::SPM && k == TokenType::Byte) {
            const int b = spm_byte_piece(s);
            if (b < 0) throw Error(f.err("byte token " + std::to_string(id) + " '" + std::string(s) + "' is not <0xNN>"));
            if (v.byte_token[b] < 0) v.byte_token[b] = id;
        }
        if (v.type == VocabType::BPE && (k == TokenType::Normal || k == TokenType::Byte) && v.text[id].size() == 1) {
            const unsigned char b = (unsigned char)v.text[id][0];
            if (v.byte_token[b] < 0) v.byte_token[b] = id;
        }
        const bool from_text = v.type == VocabType::BPE ? k == TokenType::Normal
                                                        : (k == TokenType::Normal || k == TokenType::UserDefined);
        if (from_text && !v.text[id].empty()) v.id_of.emplace(v.text[id], id);  // the first id wins
        const bool special = k == TokenType::Control || k == TokenType::UserDefined || k == TokenType::Unknown;
        if (special && !v.text[id].empty()) v.specials.push_back(id);
    }
    if (v.type == VocabType::BPE) load_merges(f, v, by_file_text);

    // llama.cpp's defaults where the file says nothing
    const bool spm = v.type == VocabType::SPM;
    v.bos = token_id_or(f, "tokenizer.ggml.bos_token_id", spm && n > 1 ? 1 : -1, n);
    v.eos = token_id_or(f, "tokenizer.ggml.eos_token_id", spm && n > 2 ? 2 : -1, n);
    v.unk = token_id_or(f, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, n);
    v.eot = token_id_or(f, "tokenizer.ggml.eot_token_id", -1, n);
    v.pad = token_id_or(f, "tokenizer.ggml.padding_token_id", -1, n);
    v.add_bos = bool_or(f, "tokenizer.ggml.add_bos_token", spm);
    v.add_eos = bool_or(f, "tokenizer.ggml.add_eos_token", false);
    v.add_space_prefix = bool_or(f, "tokenizer.ggml.add_space_prefix", spm);

    static const char* const kTurnEnds[] = {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>",
                                            "<|end|>", "<end_of_turn>", "<|EOT|>", "</s>"};
    for (int32_t id : {v.eos, v.eot})
        if (id >= 0) v.end_of_generation.push_back(id);
    for (int32_t id = 0; id < n; id++) {
        if (v.kind[id] != TokenType::Control || v.ends_generation(id)) continue;
        for (const char* t : kTurnEnds)
            if (v.text[id] == t) v.end_of_generation.push_back(id);
    }
    return v;
}

}  // namespace hearth
