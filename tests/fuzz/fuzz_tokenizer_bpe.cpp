// fuzz_tokenizer_bpe: arbitrary bytes encoded with a real byte-level BPE
// vocabulary, checking the invariants of tokenizer_fuzz.h (ids in range,
// add_special, decode(encode(text)) == text), under each pre-tokenizer split
// (the vocabulary's own and the other families of csrc/text/pretokenize.h,
// whose pieces must cover the text exactly).
//
// The vocabulary is the GGUF file named by HEARTH_FUZZ_VOCAB: SmolLM2's
// (../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf).
// Input: byte 0 = flags (bit 0 parse_special, bits 1..3 the split: 0 the
// vocabulary's own, then kOtherSplits); the rest is the text.
//
// Run (tests/fuzz/run.sh does all of it):
//   HEARTH_FUZZ_VOCAB=... build-fuzz/fuzz_tokenizer_bpe build-fuzz/corpus/fuzz_tokenizer_bpe \
//       build-fuzz/seeds/fuzz_tokenizer -max_total_time=60
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include "text/pretokenize.h"
#include "tokenizer_fuzz.h"

namespace {

// One name of each family of splits (the vocabulary's own comes first).
const char* const kOtherSplits[] = {"gpt2", "llama-bpe", "qwen2", "qwen35", "deepseek-coder", "deepseek-llm", "falcon"};
std::vector<std::unique_ptr<hearth::Tokenizer>> tokenizers;  // the vocabulary under each split

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    static auto vocabularies = hearth_fuzz::load_vocabularies_from_env("fuzz_tokenizer_bpe");
    if (vocabularies.size() != 1 || vocabularies[0]->vocab().type != hearth::VocabType::BPE) {
        std::fprintf(stderr, "fuzz_tokenizer_bpe: HEARTH_FUZZ_VOCAB must name one byte-level BPE vocabulary\n");
        std::exit(2);
    }
    for (const char* split : kOtherSplits) {
        hearth::Vocab v = vocabularies[0]->vocab();
        v.pre_name = split;
        tokenizers.push_back(std::make_unique<hearth::Tokenizer>(std::move(v)));
    }
    tokenizers.insert(tokenizers.begin(), std::move(vocabularies[0]));
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const size_t split = (data[0] >> 1) & 7;
    if (split >= tokenizers.size()) return 0;
    const hearth::Tokenizer& t = *tokenizers[split];

    // the split's pieces are consecutive views that cover the text exactly
    const std::string_view text((const char*)data + 1, size - 1);
    size_t covered = 0;
    for (std::string_view piece : hearth::pre_tokenize(hearth::pre_tokenizer_from_name(t.vocab().pre_name), text)) {
        FUZZ_EXPECT(piece.data() == text.data() + covered, "a piece does not start where the one before ended");
        covered += piece.size();
    }
    FUZZ_EXPECT(covered == text.size(), "the pieces do not cover the text");

    hearth_fuzz::fuzz_encode(t, data, size);
    return 0;
}
