// fuzz_gguf: arbitrary bytes opened as a GGUF file, through everything that
// loading a model does before its first forward pass: the GGUF reader
// (GGUFFile::open), the metadata as the Python binding reads it, the
// tokenizer (Tokenizer::load, then a short encode and decode), and
// Model::load (hparams, architecture table, weights and their shapes, the
// kernels' repacking of quantized weights).
//
// A hearth::Error is the expected outcome for a bad file. A crash, a
// sanitizer report, another exception or a huge allocation is a bug.
//
// Run (tests/fuzz/run.sh does all of it):
//   python tests/fuzz/make_seeds.py build-fuzz/seeds
//   build-fuzz/fuzz_gguf build-fuzz/corpus/fuzz_gguf build-fuzz/seeds/fuzz_gguf -max_total_time=60
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "fuzz_support.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "text/tokenizer.h"

using namespace hearth;

namespace {

// What the Python binding does with the metadata (every array element read).
void read_all_metadata(const GGUFFile& f) {
    volatile double sink = 0;
    for (const auto& [key, v] : f.metadata()) {
        if (v.type != GGUFType::ARRAY || v.elem_type == GGUFType::STRING) continue;
        for (uint64_t i = 0; i < v.n; i++) sink = sink + v.array_f(i);
    }
}

// A loaded tokenizer must work on any text and any of its ids. The text:
// a fixed one, and the file's last bytes (in a vocab-only file, the token
// strings: a mutated vocabulary meets text made of its own pieces).
void use_tokenizer(const Tokenizer& t, std::string_view file_tail) {
    const std::string fixed = "Hello world, \xE4\xBD\xA0\xE5\xA5\xBD <s><|im_start|> \xF0\x9F\x98\x80\xFF";
    for (std::string_view text : {std::string_view(fixed), file_tail}) {
        for (bool parse_special : {false, true}) {
            std::vector<int32_t> ids;
            try {
                ids = t.encode(text, true, parse_special);
            } catch (const Error&) {
                continue;  // a vocabulary without some byte's token and without <unk> says so
            }
            for (int32_t id : ids) FUZZ_EXPECT(id >= 0 && id < t.n_tokens(), "id " + std::to_string(id));
            t.decode(ids.data(), ids.size(), true);
        }
    }
    std::vector<int32_t> all;
    for (int32_t id = 0; id < t.n_tokens() && id < 512; id++) all.push_back(id);
    t.decode(all.data(), all.size(), false);
    t.decode(all.data(), all.size(), true);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static hearth_fuzz::MemFile file;
    const std::string& path = file.write(data, size);

    try {
        std::unique_ptr<GGUFFile> f = GGUFFile::open(path);
        read_all_metadata(*f);
        if (std::unique_ptr<Tokenizer> t = Tokenizer::load(*f)) {
            const size_t tail = size < 64 ? size : 64;
            use_tokenizer(*t, std::string_view((const char*)data + size - tail, tail));
        }
    } catch (const Error&) {
    }

    try {
        ModelOptions opts;
        opts.n_threads = 1;
        std::unique_ptr<Model> m = Model::load(path, opts);
        FUZZ_EXPECT(m->n_vocab() > 0);
    } catch (const Error&) {
    }
    return 0;
}
