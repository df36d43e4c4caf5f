// The pre-tokenizer splits of byte-level BPE: text is cut into pieces (words,
// number groups, punctuation runs, whitespace) before the merges run inside
// each piece. GGUF names the split in tokenizer.ggml.pre; each family here is
// the regex of the tokenizers' own tokenizer.json / tiktoken, reproduced by a
// hand-written scanner (leftmost-first alternation, greedy, with the (?!\S)
// lookahead), not by a regex engine.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hearth {

enum class PreTokenizer {
    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    Gpt2,
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    Llama3,
    // Llama3's with \p{N} for \p{N}{1,3}: every digit on its own.
    Qwen2,
    // Qwen3.5: Qwen2's with the marks (\p{M}) joined to letters:
    // ...|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|...
    Qwen35,
    // Every \p{N} character on its own, then Gpt2 on the text between them.
    SmolLM,
    // A regex list, each splitting the pieces of the one before (llama.cpp's
    // unicode_regex_split, Hugging Face's Sequence of isolated Splits):
    // [\r\n] | \s?\p{L}+ | \s?\p{P}+ | [一-龥ࠀ-一가-퟿]+ | \p{N}
    DeepseekCoder,
    // [\p{P}\$\+<=>\^~\|`]+ | Gpt2 | [0-9][0-9][0-9]
    Falcon,
    // [\r\n] | \s?[cased letters]+ | \s?[!-/:-~！-／：-～‘-‟　-。]+ | \s+$ |
    // [一-龥ࠀ-一가-퟿]+ | \p{N}+
    DeepseekLlm,
};

// The split named by GGUF's tokenizer.ggml.pre. Throws hearth::Error naming
// the unknown name and listing the supported ones.
PreTokenizer pre_tokenizer_from_name(const std::string& name);
const char* pre_tokenizer_name(PreTokenizer p);

// Splits text into consecutive pieces that cover it exactly, as the family's
// regex does. Pieces are views into text. Bytes that are not valid UTF-8 are
// one character each, neither letter, number nor whitespace (like
// punctuation).
std::vector<std::string_view> pre_tokenize(PreTokenizer p, std::string_view text);

}  // namespace hearth
