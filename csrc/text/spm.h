// SentencePiece's BPE encoding (what llama.cpp calls the SPM tokenizer), for
// one fragment of text that is already escaped: spaces written as U+2581 (▁)
// and the dummy prefix added by the caller.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "text/token_matcher.h"
#include "text/vocab.h"

namespace hearth {

// Starts from the text's characters (a user-defined piece written out in
// the text is one symbol, as sentencepiece matches them) and merges adjacent
// symbols, always the pair whose merged piece has the highest score (the
// leftmost on ties), while the merged piece is in the vocabulary; then every
// symbol that is not a piece falls back to its bytes (<0xNN>), or to <unk>
// when the vocabulary has no byte tokens. Appends the ids to out.
void spm_encode(const Vocab& v, const TokenMatcher& user_defined, std::string_view text, std::vector<int32_t>& out);

}  // namespace hearth
