// hearth: the command-line face of the engine. It inspects a GGUF file
// (--info), times prefill and decode (--bench), and completes a prompt given
// as text (-p), printing the answer as it is generated (greedy for now; the
// samplers and the chat mode come with generation).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common.h"
#include "gguf.h"
#include "kernels/kernels.h"
#include "detokenizer.h"
#include "model.h"

using namespace hearth;

namespace {

const char* kUsage =
    "usage: hearth --info FILE\n"
    "       hearth -m FILE -p TEXT [options]\n"
    "       hearth -m FILE --bench [options]\n"
    "\n"
    "Run Llama- and Qwen-family GGUF models on the CPU.\n"
    "\n"
    "  --info FILE            print the file's metadata and tensor table\n"
    "  -m, --model FILE       the GGUF model file\n"
    "  -p, --prompt TEXT      complete TEXT (tokenized as raw text: special-token strings such\n"
    "                         as <|im_start|> become those tokens) and print the answer as it\n"
    "                         is generated, greedily; stops at the end-of-text token\n"
    "  -n, --max-tokens N     at most N new tokens (default -1: until the end or the context is full)\n"
    "  --no-chat              raw completion (the only mode for now; chat comes later)\n"
    "  --bench                time prefill and decode (tokens/s)\n"
    "  --prompt-tokens N      prefill length for --bench (default 128)\n"
    "  --gen-tokens N         decode steps for --bench (default 128)\n"
    "  --tokens IDS           comma-separated token ids to prefill instead of random ones\n"
    "  --reps N               repetitions; the median is reported (default 3)\n"
    "  -t, --threads N        worker threads (default: all available CPUs)\n"
    "  -c, --ctx N            context length (default: the model's, at most 4096)\n"
    "  --kv-type f16|f32      KV cache element type (default f16)\n"
    "  -h, --help             this help\n"
    "\n"
    "HEARTH_KERNELS=scalar|avx2|avx512 forces a kernel set.\n";

struct UsageError {
    std::string msg;
};

struct Args {
    std::string info_file;
    std::string model;
    bool bench = false;
    std::string prompt;
    bool has_prompt = false;
    int64_t max_tokens = -1;
    int64_t prompt_tokens = 128;
    int64_t gen_tokens = 128;
    int reps = 3;
    std::vector<int32_t> tokens;
    ModelOptions opts;
};

int64_t parse_int(const std::string& flag, const char* v, int64_t min) {
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(v, &end, 10);
    if (errno || end == v || *end || x < min) {
        throw UsageError{flag + " needs an integer >= " + std::to_string(min) + ", got '" + v + "'"};
    }
    return x;
}

Args parse_args(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; i++) {
        const std::string f = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) throw UsageError{f + " needs a value"};
            return argv[++i];
        };
        if (f == "-h" || f == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        } else if (f == "--info") {
            a.info_file = value();
        } else if (f == "-m" || f == "--model") {
            a.model = value();
        } else if (f == "--bench") {
            a.bench = true;
        } else if (f == "-p" || f == "--prompt") {
            a.prompt = value();
            a.has_prompt = true;
        } else if (f == "-n" || f == "--max-tokens" || f == "--n-predict") {
            a.max_tokens = parse_int(f, value(), -1);
        } else if (f == "--no-chat") {
            // raw completion is all -p does at this stage
        } else if (f == "--prompt-tokens") {
            a.prompt_tokens = parse_int(f, value(), 1);
        } else if (f == "--gen-tokens") {
            a.gen_tokens = parse_int(f, value(), 0);
        } else if (f == "--reps") {
            a.reps = (int)parse_int(f, value(), 1);
        } else if (f == "-t" || f == "--threads") {
            a.opts.n_threads = (int)parse_int(f, value(), 1);
        } else if (f == "-c" || f == "--ctx") {
            a.opts.n_ctx = parse_int(f, value(), 1);
        } else if (f == "--kv-type") {
            const std::string v = value();
            if (v != "f16" && v != "f32") throw UsageError{"--kv-type must be f16 or f32, got '" + v + "'"};
            a.opts.kv_type = parse_kv_type(v);
        } else if (f == "--tokens") {
            std::string s = value();
            size_t p = 0;
            while (p <= s.size()) {
                const size_t q = std::min(s.find(',', p), s.size());
                a.tokens.push_back((int32_t)parse_int("--tokens", s.substr(p, q - p).c_str(), 0));
                p = q + 1;
            }
        } else {
            throw UsageError{"unknown argument '" + f + "'"};
        }
    }
    if (a.info_file.empty() && a.model.empty()) throw UsageError{"nothing to do: give --info FILE, or -m FILE with -p TEXT or --bench"};
    if (!a.model.empty() && !a.bench && !a.has_prompt) throw UsageError{"-m FILE needs -p TEXT or --bench (the interactive chat comes later)"};
    if (a.bench && a.has_prompt) throw UsageError{"give either -p TEXT or --bench, not both"};
    return a;
}

std::string value_str(const GGUFValue& v) {
    switch (v.type) {
        case GGUFType::STRING: {
            std::string s(v.s.substr(0, 80));
            for (char& c : s) if (c == '\n') c = ' ';
            return "\"" + s + (v.s.size() > 80 ? "...\"" : "\"");
        }
        case GGUFType::FLOAT32: case GGUFType::FLOAT64: {
            char buf[64];
            std::snprintf(buf, sizeof buf, "%g", v.f);
            return buf;
        }
        case GGUFType::BOOL: return v.i ? "true" : "false";
        case GGUFType::ARRAY: {
            std::string s = std::string("[") + gguf_type_name(v.elem_type) + " × " + std::to_string(v.n) + "]";
            if (v.n > 0) {
                s += " ";
                for (uint64_t i = 0; i < std::min<uint64_t>(v.n, 3); i++) {
                    if (v.elem_type == GGUFType::STRING) s += "\"" + std::string(v.strings[i].substr(0, 20)) + "\" ";
                    else s += std::to_string(v.array_f(i)) + " ";
                }
                if (v.n > 3) s += "...";
            }
            return s;
        }
        default: return std::to_string(v.i);
    }
}

int print_info(const std::string& path) {
    std::unique_ptr<GGUFFile> f = GGUFFile::open(path);
    std::printf("file: %s\nGGUF version %u, %zu bytes, alignment %u\n\n", path.c_str(), f->version(), f->file_size(),
                f->alignment());
    std::printf("metadata (%zu keys):\n", f->metadata().size());
    for (const auto& kv : f->metadata()) {
        std::printf("  %-42s %-5s %s\n", kv.first.c_str(), gguf_type_name(kv.second.type), value_str(kv.second).c_str());
    }
    std::printf("\ntensors (%zu):\n", f->tensors().size());
    std::printf("  %-32s %-6s %-18s %12s\n", "name", "type", "shape", "bytes");
    size_t total = 0;
    for (const GGUFTensor& t : f->tensors()) {
        std::printf("  %-32s %-6s %-18s %12zu\n", t.name.c_str(), type_name(t.type).c_str(), t.shape_str().c_str(),
                    t.n_bytes);
        total += t.n_bytes;
    }
    std::printf("\ntotal tensor data: %.1f MiB\n", total / 1048576.0);
    // a model hearth cannot run should say so here too
    try {
        const HParams hp = read_hparams(*f);
        load_weights(*f, hp);
        std::printf("runs in hearth: yes (%s, %lld layers, %lld heads / %lld KV heads, head size %lld)\n",
                    hp.arch_name.c_str(), (long long)hp.n_layer, (long long)hp.n_head, (long long)hp.n_head_kv,
                    (long long)hp.head_dim);
    } catch (const Error& e) {
        std::printf("runs in hearth: no\n");
        std::fflush(stdout);
        std::fprintf(stderr, "hearth: error: %s\n", e.what());
        return 1;
    }
    return 0;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int run_bench(const Args& a) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    std::unique_ptr<Model> m = Model::load(a.model, a.opts);
    const double load_s = std::chrono::duration<double>(clock::now() - t0).count();

    std::vector<int32_t> prompt = a.tokens;
    if (prompt.empty()) {
        std::mt19937 rng(1234);
        std::uniform_int_distribution<int32_t> dist(0, (int32_t)m->n_vocab() - 1);
        for (int64_t i = 0; i < a.prompt_tokens; i++) prompt.push_back(dist(rng));
    }
    if ((int64_t)prompt.size() + a.gen_tokens > m->n_ctx()) {
        throw Error("prompt (" + std::to_string(prompt.size()) + ") + generated tokens (" + std::to_string(a.gen_tokens) +
                    ") exceed the context " + std::to_string(m->n_ctx()) + " (raise -c)");
    }
    std::printf("model: %s (%s), threads %d, kernels %s, kv %s, n_ctx %lld, load %.3f s\n", a.model.c_str(),
                m->hparams().arch_name.c_str(), m->n_threads(), kernels().name, kv_type_name(m->kv_type()),
                (long long)m->n_ctx(), load_s);

    std::vector<float> logits(m->n_vocab());
    std::vector<double> pp, tg;
    for (int rep = 0; rep <= a.reps; rep++) {  // rep 0 warms up
        m->reset();
        auto t1 = clock::now();
        m->eval(prompt.data(), (int64_t)prompt.size(), logits.data(), false);
        auto t2 = clock::now();
        for (int64_t i = 0; i < a.gen_tokens; i++) {
            const int32_t next = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
            m->eval(&next, 1, logits.data(), false);
        }
        auto t3 = clock::now();
        if (rep == 0) continue;
        pp.push_back(prompt.size() / std::chrono::duration<double>(t2 - t1).count());
        if (a.gen_tokens > 0) tg.push_back(a.gen_tokens / std::chrono::duration<double>(t3 - t2).count());
    }
    std::printf("prefill pp%zu: %.2f tokens/s (median of %d)\n", prompt.size(), median(pp), a.reps);
    if (!tg.empty()) std::printf("decode  tg%lld: %.2f tokens/s (median of %d)\n", (long long)a.gen_tokens, median(tg), a.reps);
    return 0;
}

// Greedy completion of the prompt, streamed to stdout as whole characters.
int run_completion(const Args& a) {
    std::unique_ptr<Model> m = Model::load(a.model, a.opts);
    const Tokenizer* tok = m->tokenizer();
    if (!tok) throw Error(m->file().err("it carries no tokenizer (no 'tokenizer.ggml.model'), so it cannot read text"));
    const std::vector<int32_t> prompt = tok->encode(a.prompt, true, true);
    if (prompt.empty()) throw Error("the prompt is empty");
    if ((int64_t)prompt.size() >= m->n_ctx()) {
        throw Error("the prompt is " + std::to_string(prompt.size()) + " tokens, which leaves no room in the context of " +
                    std::to_string(m->n_ctx()) + " (raise -c or shorten the prompt)");
    }
    const Vocab& v = tok->vocab();
    StreamDecoder out(*tok, false);
    std::vector<float> logits(m->n_vocab());
    std::vector<int32_t> feed = prompt;
    for (int64_t n = 0; a.max_tokens < 0 || n < a.max_tokens; n++) {
        if (m->n_past() + (int64_t)feed.size() > m->n_ctx()) break;  // the context is full
        m->eval(feed.data(), (int64_t)feed.size(), logits.data(), false);
        const int32_t next = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
        if (next == v.eos || next == v.eot) break;
        std::fputs(out.push(next).c_str(), stdout);
        std::fflush(stdout);
        feed.assign(1, next);
    }
    std::fputs(out.finish().c_str(), stdout);
    std::fputs("\n", stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args a = parse_args(argc, argv);
        if (!a.info_file.empty()) return print_info(a.info_file);
        if (a.has_prompt) return run_completion(a);
        return run_bench(a);
    } catch (const UsageError& e) {
        std::fprintf(stderr, "hearth: %s\n(see hearth --help)\n", e.msg.c_str());
        return 2;
    } catch (const Error& e) {
        std::fprintf(stderr, "hearth: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hearth: internal error: %s\n", e.what());
        return 1;
    }
}
