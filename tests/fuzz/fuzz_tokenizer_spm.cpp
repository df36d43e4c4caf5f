// fuzz_tokenizer_spm: arbitrary bytes encoded with a real SentencePiece
// vocabulary, checking the invariants of tokenizer_fuzz.h (ids in range,
// add_special, decode(encode(text)) == text).
//
// The vocabulary is the GGUF file named by HEARTH_FUZZ_VOCAB: Llama 2's
// tokenizer.model (../shared/models/llama2-tokenizer) as a vocab-only GGUF,
// which make_seeds.py writes into build-fuzz/seeds/vocab/llama2-vocab.gguf.
//
// Run (tests/fuzz/run.sh does all of it):
//   HEARTH_FUZZ_VOCAB=... build-fuzz/fuzz_tokenizer_spm build-fuzz/corpus/fuzz_tokenizer_spm \
//       build-fuzz/seeds/fuzz_tokenizer -max_total_time=60
#include <cstdio>
#include <cstdlib>

#include "tokenizer_fuzz.h"

namespace {
const hearth::Tokenizer* tokenizer = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    static auto vocabularies = hearth_fuzz::load_vocabularies_from_env("fuzz_tokenizer_spm");
    if (vocabularies.size() != 1 || vocabularies[0]->vocab().type != hearth::VocabType::SPM) {
        std::fprintf(stderr, "fuzz_tokenizer_spm: HEARTH_FUZZ_VOCAB must name one SentencePiece vocabulary\n");
        std::exit(2);
    }
    tokenizer = vocabularies[0].get();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    hearth_fuzz::fuzz_encode(*tokenizer, data, size);
    return 0;
}
