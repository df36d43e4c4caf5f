// Byte-level BPE (GPT-2's, as Hugging Face tokenizers and tiktoken run it)
// for one word, i.e. one piece of the pre-tokenizer's split.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "text/vocab.h"

namespace hearth {

// Starts from the word's bytes and merges adjacent symbols, always the pair
// with the lowest merge rank (the leftmost on ties), until no merge applies.
// With ignore_merges (Llama 3), a word that is a token as a whole is that
// token. Appends the ids to out.
void bpe_encode_word(const Vocab& v, std::string_view word, bool ignore_merges, std::vector<int32_t>& out);

}  // namespace hearth
