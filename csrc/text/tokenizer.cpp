#include "text/tokenizer.h"

#include "text/bpe.h"
#include "base/error.h"
#include "text/spm.h"
#include "text/unicode.h"

namespace hearth {

namespace {

const char kSpaceSymbol[] = "\xE2\x96\x81";  // U+2581, SentencePiece's space
const char kUnknownSurface[] = " \xE2\x81\x87 ";  // " ⁇ ", what sentencepiece shows for <unk>

// sentencepiece reads each byte that does not start a valid UTF-8 character
// as U+FFFD, and so do we for SentencePiece vocabularies.
std::string replace_invalid_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const Utf8Char c = next_utf8(s, i);
        if (c.cp == kInvalidCodepoint) out += "\xEF\xBF\xBD";
        else out.append(s.substr(i, c.len));
        i += c.len;
    }
    return out;
}

// Byte-level BPE keeps every byte of the text, valid UTF-8 or not (as
// tiktoken does), except a byte the vocabulary has no token for (SmolLM2's
// has none for 0xC0, 0xC1, 0xF5-0xFF, which no valid UTF-8 holds): that one
// is read as U+FFFD, as llama.cpp reads invalid bytes.
std::string replace_bytes_without_token(std::string_view s, const Vocab& v) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char b : s) {
        if (v.byte_token[b] >= 0) out.push_back((char)b);
        else out += "\xEF\xBF\xBD";
    }
    return out;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    for (size_t j; (j = s.find(from, i)) != std::string_view::npos; i = j + from.size()) {
        out.append(s.substr(i, j - i)).append(to);
    }
    return out.append(s.substr(i));
}

}  // namespace

Tokenizer::Tokenizer(Vocab v) : v_(std::move(v)) {
    const bool spm = v_.type == VocabType::SPM;
    if (!spm) {
        pre_ = pre_tokenizer_from_name(v_.pre_name);
        // llama.cpp's LLAMA3 pre types take a word that is a token as that
        // token (tokenizer.json's ignore_merges); the other names that share
        // Llama 3's split (dbrx, smaug-bpe, glm4, chatglm-bpe) do not
        static const char* const kIgnoreMerges[] = {"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1",
                                                    "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"};
        for (const char* name : kIgnoreMerges) ignore_merges_ = ignore_merges_ || v_.pre_name == name;
    }
    for (int32_t id : v_.specials) {
        const TokenType k = v_.kind[id];
        if (k == TokenType::UserDefined) {
            // sentencepiece matches user-defined pieces in the escaped text
            user_defined_.add(spm ? replace_all(v_.text(id), " ", kSpaceSymbol) : std::string(v_.text(id)), id);
        } else {
            control_.add(std::string(v_.text(id)), id);
        }
        if (!spm) all_specials_.add(std::string(v_.text(id)), id);
    }

    all_bytes_ = true;
    for (int b = 0; b < 256; b++) all_bytes_ = all_bytes_ && v_.byte_token[b] >= 0;

    // SentencePiece shows a token otherwise than it spells it (▁ as a space,
    // <0x0A> as the byte); byte-level BPE shows its text as it is
    if (spm) {
        display_.resize(v_.n_tokens());
        for (int32_t id = 0; id < v_.n_tokens(); id++) {
            const std::string_view t = v_.text(id);
            switch (v_.kind[id]) {
                case TokenType::Byte: break;  // below
                case TokenType::Unknown: display_[id] = kUnknownSurface; break;
                default: display_[id] = replace_all(t, kSpaceSymbol, " "); break;
            }
        }
        for (int b = 0; b < 256; b++)
            if (v_.byte_token[b] >= 0) display_[v_.byte_token[b]] = std::string(1, (char)b);
    }
}

std::unique_ptr<Tokenizer> Tokenizer::load(const GGUFFile& f) {
    if (!has_vocab(f)) return nullptr;
    try {
        return std::make_unique<Tokenizer>(load_vocab(f));
    } catch (const Error& e) {
        const std::string what = e.what();
        if (what.rfind("file '", 0) == 0) throw;  // already names the file
        throw Error(f.err(what));
    }
}

void Tokenizer::check_id(int32_t id) const {
    if (id < 0 || id >= v_.n_tokens()) {
        throw Error("token id " + std::to_string(id) + " is out of range [0, " + std::to_string(v_.n_tokens()) + ")");
    }
}

void Tokenizer::encode_fragment(std::string_view text, bool after_control, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    if (v_.type == VocabType::SPM) {
        // the dummy prefix goes before the text and after every control
        // token written out in it, as llama.cpp does
        std::string escaped = v_.add_space_prefix && after_control ? kSpaceSymbol : "";
        escaped += replace_all(replace_invalid_utf8(text), " ", kSpaceSymbol);
        spm_encode(v_, user_defined_, escaped, out);
        return;
    }
    std::string replaced;
    if (!all_bytes_) {
        replaced = replace_bytes_without_token(text, v_);
        text = replaced;
    }
    for (std::string_view word : pre_tokenize(pre_, text)) bpe_encode_word(v_, word, ignore_merges_, out);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
    std::vector<int32_t> out;
    if (add_special && v_.add_bos && v_.bos >= 0) out.push_back(v_.bos);

    // split at the special tokens written out in the text (leftmost, longest)
    const bool spm = v_.type == VocabType::SPM;
    const TokenMatcher* m = spm ? (parse_special ? &control_ : nullptr) : (parse_special ? &all_specials_ : &user_defined_);
    bool after_control = true;
    size_t start = 0;
    if (m && !m->empty()) {
        for (size_t i = 0; i < text.size(); i++) {
            if (!m->may_start((unsigned char)text[i])) continue;
            const auto [id, len] = m->match(text, i);
            if (id < 0) continue;
            encode_fragment(text.substr(start, i - start), after_control, out);
            out.push_back(id);
            after_control = v_.kind[id] != TokenType::UserDefined;
            start = i + len;
            i = start - 1;
        }
    }
    encode_fragment(text.substr(start), after_control, out);

    if (add_special && v_.add_eos && v_.eos >= 0) out.push_back(v_.eos);
    return out;
}

std::string Tokenizer::decode(const int32_t* ids, size_t n, bool special) const {
    std::string out;
    TokenDecoder d(*this, special);
    for (size_t i = 0; i < n; i++) d.append(ids[i], out);
    return out;
}

void TokenDecoder::append(int32_t id, std::string& out) {
    t_.check_id(id);
    const Vocab& v = t_.v_;
    const TokenType k = v.kind[id];
    const std::string_view shown = t_.display(id);
    if (v.type == VocabType::BPE) {
        if ((k != TokenType::Control && k != TokenType::Unused) || special_) out += shown;
        return;
    }
    // SentencePiece: sentencepiece's Decode, one piece at a time
    if (k == TokenType::Byte) {
        out += shown;
        emitted_ = true;
        return;
    }
    if (bos_ws_seen_ || emitted_) is_bos_ws_ = false;
    bos_ws_seen_ = false;
    std::string_view piece = shown;
    if ((k == TokenType::Control || k == TokenType::Unused) && !special_) {
        piece = {};
    } else if (k == TokenType::Control || k == TokenType::Unknown || k == TokenType::Unused) {
        piece = special_ ? v.text(id) : piece;
    } else if (is_bos_ws_ && v.add_space_prefix && !piece.empty() && piece[0] == ' ') {
        piece.remove_prefix(1);
        bos_ws_seen_ = true;
    }
    out.append(piece);
    if (!piece.empty()) emitted_ = true;
}

}  // namespace hearth
