// The vocabulary a GGUF file carries (tokenizer.ggml.*), in the form the
// tokenizers work on: every token as raw bytes, its type and score, the
// special ids and flags, and for byte-level BPE the merge table.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

namespace hearth {

// tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte-level BPE).
enum class VocabType { SPM, BPE };

// tokenizer.ggml.token_type, numbered as in the file (llama.cpp's).
enum class TokenType : uint8_t {
    Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

// Compact on purpose: Qwen2's 151,936 tokens and 151,387 merges take a few
// MB here (one blob of texts, open-addressing indexes), where node-based maps
// of strings took ten times that in resident memory.
struct Vocab {
    VocabType type = VocabType::SPM;
    std::string model_name;  // as in the file
    std::string pre_name;    // tokenizer.ggml.pre (BPE)

    std::vector<TokenType> kind;  // per token id
    std::vector<float> score;     // SPM merge priority (higher first); 0 when absent
    int32_t byte_token[256];      // the token for one raw byte (SPM <0xNN>, BPE single byte), or -1

    // Control and user-defined tokens, which encode() matches as whole
    // tokens in text (control ones only with parse_special).
    std::vector<int32_t> specials;

    struct Merge {
        int32_t rank;    // lower merges first
        int32_t result;  // the merged token
    };

    int32_t bos = -1, eos = -1, eot = -1, unk = -1, pad = -1;
    // Tokens that end a generation: eos, eot and the control tokens that
    // chat models end a turn with (<|im_end|>, <|eot_id|>, ...), as llama.cpp
    // gathers them.
    std::vector<int32_t> end_of_generation;
    bool add_bos = false, add_eos = false;
    bool add_space_prefix = true;  // SPM: the dummy "▁" before the text (sentencepiece's add_dummy_prefix)

    int32_t n_tokens() const { return (int32_t)kind.size(); }
    // What the token stands for, as bytes: for BPE the byte-level mapping
    // (Ġ = space, ...) is undone; SPM pieces keep their U+2581 (▁) for a space.
    std::string_view text(int32_t id) const { return std::string_view(blob_).substr(offset_[id], offset_[id + 1] - offset_[id]); }
    // The token the tokenizers may produce for this text (normal and
    // user-defined tokens; byte tokens through byte_token), or -1.
    int32_t find(std::string_view s) const;
    // BPE: the merge of (left, right), or null.
    const Merge* find_merge(int32_t left, int32_t right) const;
    bool ends_generation(int32_t id) const {
        for (int32_t e : end_of_generation)
            if (e == id) return true;
        return false;
    }

    // building (load_vocab)
    void add_token(std::string_view text, TokenType k, float score);
    void index_texts(bool (*from_text)(VocabType, TokenType));  // after every add_token
    void add_merge(int32_t left, int32_t right, int32_t rank, int32_t result);  // the first of a pair wins
    void reserve_merges(size_t n);

private:
    std::string blob_;               // every token's text, one after the other
    std::vector<uint32_t> offset_{0};  // token i is blob_[offset_[i], offset_[i + 1])
    std::vector<int32_t> text_index_;  // open addressing by text hash: token ids, -1 empty
    struct MergeSlot {
        uint64_t key = ~0ull;  // (left << 32) | right; all ones: empty
        Merge merge{};
    };
    std::vector<MergeSlot> merge_slots_;
};

// True when the file carries a tokenizer (tokenizer.ggml.model).
bool has_vocab(const GGUFFile& f);
// Reads and checks it; throws hearth::Error naming the file and what is
// wrong (an unknown model or pre-tokenizer, a malformed token list, ...).
Vocab load_vocab(const GGUFFile& f);

}  // namespace hearth
