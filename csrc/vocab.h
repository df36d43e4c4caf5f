// The vocabulary a GGUF file carries (tokenizer.ggml.*), in the form the
// tokenizers work on: every token as raw bytes, its type and score, the
// special ids and flags, and for byte-level BPE the merge table.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gguf.h"

namespace hearth {

// tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte-level BPE).
enum class VocabType { SPM, BPE };

// tokenizer.ggml.token_type, numbered as in the file (llama.cpp's).
enum class TokenType : int32_t {
    Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

struct Vocab {
    VocabType type = VocabType::SPM;
    std::string model_name;  // as in the file
    std::string pre_name;    // tokenizer.ggml.pre (BPE)

    // Per token id. text is what the token stands for, as bytes: for BPE the
    // byte-level mapping (Ġ = space, ...) is undone; SPM pieces keep their
    // U+2581 (▁) for a space, as the model spells them.
    std::vector<std::string> text;
    std::vector<TokenType> kind;
    std::vector<float> score;  // SPM merge priority (higher first); 0 when absent

    // text -> id for the tokens the tokenizers may produce from text
    // (normal, user-defined, unknown; byte tokens via byte_token).
    std::unordered_map<std::string, int32_t> id_of;
    int32_t byte_token[256];  // the token for one raw byte (SPM <0xNN>, BPE single byte), or -1

    // Control and user-defined tokens, which encode() matches as whole
    // tokens in text (control ones only with parse_special).
    std::vector<int32_t> specials;

    // BPE merges: (left id, right id) -> rank (lower merges first) and result.
    struct Merge {
        int32_t rank;
        int32_t result;
    };
    std::unordered_map<uint64_t, Merge> merges;

    int32_t bos = -1, eos = -1, eot = -1, unk = -1, pad = -1;
    // Tokens that end a generation: eos, eot and the control tokens that
    // chat models end a turn with (<|im_end|>, <|eot_id|>, ...), as llama.cpp
    // gathers them.
    std::vector<int32_t> end_of_generation;
    bool ends_generation(int32_t id) const {
        for (int32_t e : end_of_generation)
            if (e == id) return true;
        return false;
    }
    bool add_bos = false, add_eos = false;
    bool add_space_prefix = true;  // SPM: the dummy "▁" before the text (sentencepiece's add_dummy_prefix)

    int32_t n_tokens() const { return (int32_t)text.size(); }
    // id_of[s], or -1 (no allocation per call: the tokenizers' hot path).
    int32_t find(std::string_view s) const;
    const Merge* find_merge(int32_t left, int32_t right) const {
        auto it = merges.find(((uint64_t)(uint32_t)left << 32) | (uint32_t)right);
        return it == merges.end() ? nullptr : &it->second;
    }
};

// True when the file carries a tokenizer (tokenizer.ggml.model).
bool has_vocab(const GGUFFile& f);
// Reads and checks it; throws hearth::Error naming the file and what is
// wrong (an unknown model or pre-tokenizer, a malformed token list, ...).
Vocab load_vocab(const GGUFFile& f);

}  // namespace hearth
