// fuzz_detokenizer: the streaming detokenizer (StreamDecoder) on arbitrary
// id sequences, checking what csrc/text/detokenizer.h promises:
// - every piece push() and finish() return is valid UTF-8;
// - the pieces concatenate to exactly the one-shot decode() with invalid
//   bytes replaced as Python's bytes.decode(errors="replace") does;
// - an id out of range is refused with hearth::Error, by push() and decode().
//
// HEARTH_FUZZ_VOCAB names the vocabularies (GGUF files, separated by ':'),
// e.g. SmolLM2's byte-level BPE and Llama 2's SentencePiece.
// Input: byte 0 picks the vocabulary (bits 1..7) and special (bit 0); then
// 3 bytes per id: id = value % n_tokens, or when the third byte is 0xFF an
// id out of range (negative or >= n_tokens).
//
// Run (tests/fuzz/run.sh does all of it):
//   HEARTH_FUZZ_VOCAB=a.gguf:b.gguf build-fuzz/fuzz_detokenizer build-fuzz/corpus/fuzz_detokenizer \
//       build-fuzz/seeds/fuzz_detokenizer -max_total_time=60
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "text/detokenizer.h"
#include "text/tokenizer.h"

using namespace hearth;

namespace {

std::vector<std::unique_ptr<Tokenizer>>* vocabularies = nullptr;

bool is_valid_utf8(const std::string& s) {
    std::string decoded;
    return utf8_decode_replace(s, true, decoded) == s.size() && decoded == s;
}

// An id this input asks for: mostly in range, sometimes deliberately not.
int32_t id_from_bytes(const uint8_t* p, int32_t n_tokens) {
    const uint32_t value = p[0] | (uint32_t)p[1] << 8;
    if (p[2] != 0xFF) return (int32_t)((value | (uint32_t)p[2] << 16) % (uint32_t)n_tokens);
    switch (value % 4) {
        case 0: return -1;
        case 1: return INT32_MIN;
        case 2: return n_tokens;
        default: return n_tokens + (int32_t)(value >> 2);
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    static auto loaded = hearth_fuzz::load_vocabularies_from_env("fuzz_detokenizer");
    vocabularies = &loaded;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const Tokenizer& t = *(*vocabularies)[(data[0] >> 1) % vocabularies->size()];
    const bool special = data[0] & 1;

    std::vector<int32_t> ids;
    bool has_bad_id = false;
    for (size_t i = 1; i + 3 <= size; i += 3) {
        ids.push_back(id_from_bytes(data + i, t.n_tokens()));
        has_bad_id = has_bad_id || ids.back() < 0 || ids.back() >= t.n_tokens();
    }

    std::string decoded;
    bool decode_refused = false;
    try {
        decoded = t.decode(ids.data(), ids.size(), special);
    } catch (const Error&) {
        decode_refused = true;
    }
    FUZZ_EXPECT(decode_refused == has_bad_id, "decode() must refuse exactly the sequences with an id out of range");

    StreamDecoder stream(t, special);
    std::string streamed;
    for (int32_t id : ids) {
        const bool bad = id < 0 || id >= t.n_tokens();
        std::string piece;
        try {
            piece = stream.push(id);
        } catch (const Error&) {
            FUZZ_EXPECT(bad, "push() refused id " + std::to_string(id));
            return 0;  // the sequence ends at the refused id
        }
        FUZZ_EXPECT(!bad, "push() accepted id " + std::to_string(id));
        FUZZ_EXPECT(is_valid_utf8(piece), "a streamed piece is not valid UTF-8");
        streamed += piece;
    }
    const std::string tail = stream.finish();
    FUZZ_EXPECT(is_valid_utf8(tail), "finish() is not valid UTF-8");
    streamed += tail;

    std::string want;
    utf8_decode_replace(decoded, true, want);
    FUZZ_EXPECT(streamed == want, "the streamed pieces differ from decode()");
    return 0;
}
