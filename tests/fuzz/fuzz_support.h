// What the libFuzzer harnesses in tests/fuzz/ share: an in-memory file to
// hand fuzz bytes to code that opens a path, the vocabularies named by
// HEARTH_FUZZ_VOCAB, and a check that aborts (a crash libFuzzer records) when
// an invariant the project promises does not hold.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "text/tokenizer.h"

namespace hearth_fuzz {

// A file that lives in memory (memfd): rewritten for every input, opened by
// path (/proc/self/fd/N) as a real file would be, with no disk traffic.
class MemFile {
public:
    MemFile() {
        fd_ = memfd_create("hearth-fuzz-input", 0);
        if (fd_ < 0) {
            std::perror("memfd_create");
            std::abort();
        }
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    // Replaces the contents with data; returns the path to open.
    const std::string& write(const uint8_t* data, size_t size) {
        if (ftruncate(fd_, 0) != 0 || (size && pwrite(fd_, data, size, 0) != (ssize_t)size)) {
            std::perror("writing the memfd");
            std::abort();
        }
        return path_;
    }

private:
    int fd_ = -1;
    std::string path_;
};

// An invariant broke: say which, then abort so that libFuzzer keeps the input.
[[noreturn]] inline void invariant_failed(const char* what, const std::string& detail = "") {
    std::fprintf(stderr, "\nINVARIANT FAILED: %s\n%s\n", what, detail.c_str());
    std::abort();
}
#define FUZZ_EXPECT(cond, ...) \
    do {                       \
        if (!(cond)) ::hearth_fuzz::invariant_failed(#cond, ##__VA_ARGS__); \
    } while (0)

// The GGUF files named in HEARTH_FUZZ_VOCAB (one, or several separated by
// ':'), each loaded as a tokenizer. Exits with a clear message when the
// variable is unset or a file has no tokenizer.
inline std::vector<std::unique_ptr<hearth::Tokenizer>> load_vocabularies_from_env(const char* harness) {
    const char* env = std::getenv("HEARTH_FUZZ_VOCAB");
    if (!env || !*env) {
        std::fprintf(stderr,
                     "%s: set HEARTH_FUZZ_VOCAB to a GGUF file that carries a tokenizer (several separated by ':'),\n"
                     "e.g. SmolLM2's GGUF, or build-fuzz/seeds/vocab/llama2-vocab.gguf that tests/fuzz/make_seeds.py\n"
                     "writes (tests/fuzz/run.sh sets it)\n",
                     harness);
        std::exit(2);
    }
    std::vector<std::unique_ptr<hearth::Tokenizer>> out;
    std::string list = env;
    for (size_t start = 0; start <= list.size();) {
        size_t end = list.find(':', start);
        if (end == std::string::npos) end = list.size();
        const std::string path = list.substr(start, end - start);
        start = end + 1;
        if (path.empty()) continue;
        try {
            std::unique_ptr<hearth::GGUFFile> f = hearth::GGUFFile::open(path);
            std::unique_ptr<hearth::Tokenizer> t = hearth::Tokenizer::load(*f);
            if (!t) throw hearth::Error(f->err("it carries no tokenizer"));
            out.push_back(std::move(t));
        } catch (const hearth::Error& e) {
            std::fprintf(stderr, "%s: HEARTH_FUZZ_VOCAB: %s\n", harness, e.what());
            std::exit(2);
        }
    }
    return out;
}

}  // namespace hearth_fuzz
