// Text to token ids and back, for both kinds of vocabulary a GGUF file
// carries (SentencePiece and byte-level BPE), in C++ only: the hearth
// executable and the server need no Python to talk to a model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "text/pretokenize.h"
#include "text/token_matcher.h"
#include "text/vocab.h"

namespace hearth {

class Tokenizer {
public:
    // Throws hearth::Error for a vocabulary hearth cannot tokenize exactly
    // (an unknown tokenizer.ggml.pre, ...).
    explicit Tokenizer(Vocab v);
    // The file's tokenizer, or null when it carries none (a weights-only file).
    static std::unique_ptr<Tokenizer> load(const GGUFFile& f);

    const Vocab& vocab() const { return v_; }
    int32_t n_tokens() const { return v_.n_tokens(); }

    // add_special: the BOS / EOS tokens the vocabulary asks for.
    // parse_special: control tokens written out in the text (<|im_start|>,
    // <s>) become those tokens, as in Hugging Face; otherwise they are text.
    // User-defined tokens are always matched, as both references do.
    std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

    // The bytes of a token sequence, which need not be valid UTF-8 (a
    // character may span tokens). special: control tokens show their text;
    // otherwise they are invisible.
    std::string decode(const int32_t* ids, size_t n, bool special) const;

    // What one token shows in the middle of a text (no dummy-prefix rule).
    std::string_view display(int32_t id) const { return display_.empty() ? v_.text(id) : std::string_view(display_[id]); }

private:
    void encode_fragment(std::string_view text, bool after_control, std::vector<int32_t>& out) const;
    void check_id(int32_t id) const;
    friend class TokenDecoder;

    Vocab v_;
    PreTokenizer pre_ = PreTokenizer::Gpt2;
    bool ignore_merges_ = false;   // Llama 3: a word that is a token is that token
    bool all_bytes_ = true;        // every byte has a token of its own
    TokenMatcher user_defined_;    // always matched (SPM: in escaped form, inside spm_encode)
    TokenMatcher control_;         // matched with parse_special
    TokenMatcher all_specials_;    // BPE: user-defined and control together
    std::vector<std::string> display_;  // SentencePiece only (see display())
};

// Decodes token by token with the state SentencePiece's decoding keeps: the
// space of the dummy prefix ("▁Hello" at the start) is dropped once, as
// sentencepiece does. The same rules serve decode() and streaming.
class TokenDecoder {
public:
    TokenDecoder(const Tokenizer& t, bool special) : t_(t), special_(special) {}
    // Appends the token's bytes to out.
    void append(int32_t id, std::string& out);

private:
    const Tokenizer& t_;
    bool special_;
    bool is_bos_ws_ = true;    // the next piece may still carry the dummy prefix
    bool bos_ws_seen_ = false;
    bool emitted_ = false;     // something non-empty was appended
};

}  // namespace hearth
