// hearth: the command-line face of the engine, as llama.cpp's main: an
// interactive multi-turn chat in the model's own chat format (-m FILE), one
// answer (-p TEXT), a raw completion (--no-chat), the file's metadata
// (--info) and a speed test (--bench).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "app/line_editor.h"
#include "base/error.h"
#include "chat/chat_session.h"
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "text/tokenizer.h"

using namespace hearth;

namespace {

const char* kUsage =
    "usage: hearth [-m] FILE [options]            chat in the terminal\n"
    "       hearth [-m] FILE -p TEXT [options]    answer one prompt and exit\n"
    "       hearth --info FILE                    the file's metadata and tensor table\n"
    "       hearth [-m] FILE --bench [options]    prefill and decode speed\n"
    "       hearth --version\n"
    "(the hearth launcher on PATH fills in the default model when no FILE is given)\n"
    "\n"
    "Run Llama- and Qwen-family GGUF models on the CPU. In the chat, /reset\n"
    "starts over, /exit or Ctrl-D quits, Ctrl-C stops the current answer.\n"
    "\n"
    "  -m, --model FILE       the GGUF model file (or FILE alone, without -m)\n"
    "  -hf REPO[:QUANT]       a GGUF file of a Hugging Face repo (Q4_K_M unless QUANT says), fetched once\n"
    "                         into the cache; -hff FILE names the file (HEARTH_USE_MODELSCOPE=True: ModelScope)\n"
    "  --version              the version, then exit\n"
    "  -p, --prompt TEXT      answer TEXT (in the chat format; with --no-chat, complete it as raw text,\n"
    "                         where special-token strings such as <|im_start|> become those tokens)\n"
    "  --no-chat              raw completion instead of the chat format\n"
    "  --system TEXT          a system message for the chat\n"
    "  --no-think             a thinking model (Qwen3) answers without its <think> reasoning\n"
    "                         (the chat template's enable_thinking = false)\n"
    "  --chat-format NAME     write the chat in this format instead of the one the file's template\n"
    "                         names (also for a file without a template): chatml, llama2, llama3,\n"
    "                         mistral-v1, smollm2, qwen2, qwen2.5, llama3.1, llama3.2,\n"
    "                         mistral-legacy, qwen3, glm4\n"
    "  -n, --max-tokens N     at most N new tokens per answer (default -1: until the end of the\n"
    "                         answer or a full context)\n"
    "  --temp T               temperature (default 0.8; 0 is greedy)\n"
    "  --top-k K              keep the K most likely tokens (default 40; 0 is off)\n"
    "  --top-p P              keep the most likely tokens holding P of the probability (default 0.95)\n"
    "  --min-p P              drop tokens below P times the most likely's probability (default 0.05)\n"
    "  --repeat-penalty R     Hugging Face's repetition penalty (default 1.0: off)\n"
    "  --presence-penalty X   OpenAI's presence penalty (default 0)\n"
    "  --frequency-penalty X  OpenAI's frequency penalty (default 0)\n"
    "  -l, --logit-bias ID+B  add B to token ID's logit before sampling (ID-B subtracts it; llama.cpp's\n"
    "                         form, e.g. -l 2+1.5 or -l 2-100, which all but bans token 2); may be\n"
    "                         given several times, and biases of one token add up\n"
    "  --stop TEXT            stop the answer at TEXT (may be given several times)\n"
    "  --ignore-eos           do not stop at the end-of-generation token (only -n or the context ends it)\n"
    "  --beams N              beam search with N beams (deterministic; the answer comes at once)\n"
    "  --seed N               seed of the sampler (default: random); the same seed gives the same text\n"
    "  --stats                after each answer, the prefill and decode speed (and at exit, the load time)\n"
    "  -t, --threads N        worker threads (default: all available CPUs)\n"
    "  -c, --ctx N            context length (default: the model's, at most 4096)\n"
    "  --kv-type f16|f32|q8_0 KV cache element type (default f16; q8_0: 17/32 of f16's memory,\n"
    "                         as llama.cpp's --cache-type-k/v q8_0)\n"
    "  --activations q8|q16   activations of the quantized matmuls: q8 (default, fast, as llama.cpp)\n"
    "                         or q16 (exact: nearly no rounding of the activations)\n"
    "  --info FILE            print the file's metadata and tensor table\n"
    "  --bench                time prefill and decode (tokens/s)\n"
    "  --prompt-tokens N      prefill length for --bench (default 128)\n"
    "  --gen-tokens N         decode steps for --bench (default 128)\n"
    "  --tokens IDS           comma-separated token ids to prefill instead of random ones (--bench)\n"
    "  --reps N               --bench repetitions; the median is reported (default 3)\n"
    "  -h, --help             this help\n"
    "\n"
    "With no -m, the hearth command chats with SmolLM2-135M-Instruct, fetched once into\n"
    "~/.cache/hearthlm (HEARTH_CACHE sets the folder); hearth --list-models says what is there.\n"
    "HEARTH_KERNELS=scalar|avx2|avx512|amx forces a kernel set.\n";

struct UsageError {
    std::string msg;
};

struct Args {
    std::string info_file;
    std::string model;
    bool bench = false;
    std::string prompt;
    bool has_prompt = false;
    bool chat = true;
    std::string system;
    bool no_think = false;
    std::string chat_format;  // --chat-format NAME: instead of the one the template names
    bool stats = false;
    RequestParams params;  // sampling, stop rules, beams
    int64_t prompt_tokens = 128;
    int64_t gen_tokens = 128;
    int reps = 3;
    std::vector<int32_t> tokens;
    ModelOptions opts;
    EngineConfig engine;

    Args() {  // llama.cpp's sampling defaults
        params.sampling.temperature = 0.8f;
        params.sampling.top_k = 40;
        params.sampling.top_p = 0.95f;
        params.sampling.min_p = 0.05f;
        params.generation.max_tokens = -1;
        engine.max_num_seqs = 1;  // one conversation
    }
};

double parse_float(const std::string& flag, const char* v) {
    char* end = nullptr;
    errno = 0;
    const double x = std::strtod(v, &end);
    if (errno || end == v || *end) throw UsageError{flag + " needs a number, got '" + v + "'"};
    return x;
}

int64_t parse_int(const std::string& flag, const char* v, int64_t min) {
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(v, &end, 10);
    if (errno || end == v || *end || x < min) {
        throw UsageError{flag + " needs an integer >= " + std::to_string(min) + ", got '" + v + "'"};
    }
    return x;
}

// llama.cpp's TOKEN_ID(+|-)BIAS: "15043+1", "15043-0.5".
std::pair<int32_t, float> parse_logit_bias(const std::string& flag, const char* v) {
    const std::string text = v;
    const size_t sign = text.find_first_of("+-", 1);
    auto bad = [&]() {
        return UsageError{flag + " needs TOKEN_ID+BIAS or TOKEN_ID-BIAS (e.g. 15043+1), got '" + text + "'"};
    };
    if (text.empty() || sign == std::string::npos || sign + 1 == text.size()) throw bad();
    const std::string id_text = text.substr(0, sign);
    char* end = nullptr;
    errno = 0;
    const long long id = std::strtoll(id_text.c_str(), &end, 10);
    if (errno || end == id_text.c_str() || *end || id < 0 || id > INT32_MAX) throw bad();
    const std::string bias_text = text.substr(sign + 1);
    errno = 0;
    const double bias = std::strtod(bias_text.c_str(), &end);
    if (errno || end == bias_text.c_str() || *end || bias_text[0] == '+' || bias_text[0] == '-') throw bad();
    if (!std::isfinite(bias)) throw UsageError{flag + " needs a finite bias (-100 all but bans a token), got '" + text + "'"};
    return {(int32_t)id, (float)(text[sign] == '-' ? -bias : bias)};
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
        } else if (f == "-hf" || f == "--hf-repo" || f == "-hff" || f == "--hf-file") {
            throw UsageError{f + " is the hearth launcher's (the `hearth` that pip installs): it fetches the GGUF "
                                 "file from the hub, then runs this program with -m FILE"};
        } else if (f == "--version") {
            std::printf("hearth %s\n", HEARTH_VERSION);
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
            a.params.generation.max_tokens = parse_int(f, value(), -1);
            if (a.params.generation.max_tokens == 0) throw UsageError{f + " needs an integer >= 1 (or -1: no limit), got '0'"};
        } else if (f == "--no-chat") {
            a.chat = false;
        } else if (f == "--system") {
            a.system = value();
        } else if (f == "--no-think") {
            a.no_think = true;
        } else if (f == "--chat-format") {
            a.chat_format = value();
            try {
                chat_format_from_name(a.chat_format);
            } catch (const Error& e) {
                throw UsageError{std::string("--chat-format: ") + e.what()};
            }
        } else if (f == "--temp") {
            a.params.sampling.temperature = (float)parse_float(f, value());
        } else if (f == "--top-k") {
            a.params.sampling.top_k = (int32_t)parse_int(f, value(), -1);
            if (a.params.sampling.top_k < 0) a.params.sampling.top_k = 0;  // -1 is off too
        } else if (f == "--top-p") {
            a.params.sampling.top_p = (float)parse_float(f, value());
        } else if (f == "--min-p") {
            a.params.sampling.min_p = (float)parse_float(f, value());
        } else if (f == "--repeat-penalty") {
            a.params.sampling.repetition_penalty = (float)parse_float(f, value());
        } else if (f == "--presence-penalty") {
            a.params.sampling.presence_penalty = (float)parse_float(f, value());
        } else if (f == "--frequency-penalty") {
            a.params.sampling.frequency_penalty = (float)parse_float(f, value());
        } else if (f == "-l" || f == "--logit-bias") {
            const auto [token, bias] = parse_logit_bias(f, value());
            a.params.sampling.logit_bias[token] += bias;
        } else if (f == "--stop") {
            a.params.generation.stop.push_back(value());
        } else if (f == "--ignore-eos") {
            a.params.generation.ignore_eos = true;
        } else if (f == "--beams") {
            a.params.beam.num_beams = (int32_t)parse_int(f, value(), 1);
        } else if (f == "--seed") {
            a.params.sampling.seed = (uint64_t)parse_int(f, value(), 0);
            a.params.has_seed = true;
        } else if (f == "--stats") {
            a.stats = true;
        } else if (f == "--prompt-tokens") {
            a.prompt_tokens = parse_int(f, value(), 1);
        } else if (f == "--gen-tokens") {
            a.gen_tokens = parse_int(f, value(), 0);
        } else if (f == "--reps") {
            a.reps = (int)parse_int(f, value(), 1);
        } else if (f == "-t" || f == "--threads") {
            a.opts.n_threads = (int)std::min<int64_t>(parse_int(f, value(), 1), INT32_MAX);  // the model says how many at most
        } else if (f == "-c" || f == "--ctx") {
            a.engine.n_ctx = parse_int(f, value(), 1);
        } else if (f == "--kv-type") {
            const std::string v = value();
            if (v != "f16" && v != "f32" && v != "q8_0") throw UsageError{"--kv-type must be f16, f32 or q8_0, got '" + v + "'"};
            a.engine.kv_type = parse_kv_type(v);
        } else if (f == "--activations") {
            const std::string v = value();
            if (!parse_activations(v.c_str(), &a.opts.activations))
                throw UsageError{"--activations must be q8 or q16, got '" + v + "'"};
        } else if (f == "--tokens") {
            std::string s = value();
            size_t p = 0;
            while (p <= s.size()) {
                const size_t q = std::min(s.find(',', p), s.size());
                a.tokens.push_back((int32_t)parse_int("--tokens", s.substr(p, q - p).c_str(), 0));
                p = q + 1;
            }
        } else if (!f.empty() && f[0] != '-' && a.model.empty()) {
            a.model = f;  // hearth FILE.gguf, as hearth -m FILE.gguf
        } else if (!f.empty() && f[0] != '-') {
            throw UsageError{"one model file at a time: '" + a.model + "' and '" + f + "'"};
        } else {
            throw UsageError{"unknown argument '" + f + "'"};
        }
    }
    if (a.info_file.empty() && a.model.empty()) throw UsageError{"nothing to do: give a model FILE (or --info FILE)"};
    if (a.bench && a.has_prompt) throw UsageError{"give either -p TEXT or --bench, not both"};
    if (!a.chat && !a.has_prompt && !a.bench) throw UsageError{"--no-chat needs -p TEXT (the text to complete)"};
    if (!a.chat && !a.chat_format.empty()) throw UsageError{"give either --chat-format NAME or --no-chat, not both"};
    try {
        check_request_params(a.params);
    } catch (const Error& e) {
        throw UsageError{e.what()};  // names the parameter and its range
    }
    if (!a.params.has_seed) a.params.sampling.seed = std::random_device{}() ^ ((uint64_t)std::random_device{}() << 32);
    a.params.has_seed = true;  // one seed for the session; each turn derives its own
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
                    if (v.elem_type == GGUFType::STRING) {
                        s += "\"" + std::string(v.strings[i].substr(0, 20)) + "\" ";
                    } else if (v.elem_type == GGUFType::FLOAT32 || v.elem_type == GGUFType::FLOAT64) {
                        char buf[64];
                        std::snprintf(buf, sizeof buf, "%g ", v.array_f(i));
                        s += buf;
                    } else if (v.elem_type == GGUFType::BOOL) {
                        s += v.array_i(i) ? "true " : "false ";
                    } else {
                        s += std::to_string(v.array_i(i)) + " ";  // token types, ids: integers
                    }
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
    Engine e(*m, nullptr, a.engine);
    const double load_s = std::chrono::duration<double>(clock::now() - t0).count();

    std::vector<int32_t> prompt = a.tokens;
    if (prompt.empty()) {
        std::mt19937 rng(1234);
        std::uniform_int_distribution<int32_t> dist(0, (int32_t)m->n_vocab() - 1);
        for (int64_t i = 0; i < a.prompt_tokens; i++) prompt.push_back(dist(rng));
    }
    if ((int64_t)prompt.size() + a.gen_tokens > e.n_ctx()) {
        throw Error("prompt (" + std::to_string(prompt.size()) + ") + generated tokens (" + std::to_string(a.gen_tokens) +
                    ") exceed the context " + std::to_string(e.n_ctx()) + " (raise -c)");
    }
    std::printf("model: %s (%s), threads %d, kernels %s, activations %s, kv %s, n_ctx %lld, load %.3f s\n",
                a.model.c_str(), m->hparams().arch_name.c_str(), m->n_threads(), kernels().name,
                activations_name(m->activations()), kv_type_name(e.config().kv_type), (long long)e.n_ctx(), load_s);

    std::vector<float> logits(m->n_vocab());
    std::vector<double> pp, tg;
    for (int rep = 0; rep <= a.reps; rep++) {  // rep 0 warms up
        e.reset();
        auto t1 = clock::now();
        e.eval(prompt.data(), (int64_t)prompt.size(), logits.data(), false);
        auto t2 = clock::now();
        for (int64_t i = 0; i < a.gen_tokens; i++) {
            const int32_t next = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
            e.eval(&next, 1, logits.data(), false);
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

// Ctrl-C during an answer stops the answer, not the program.
std::atomic<bool> g_stop{false};
extern "C" void on_sigint(int) { g_stop.store(true); }

void install_sigint() {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a Ctrl-C at the prompt interrupts the read
    sigaction(SIGINT, &sa, nullptr);
}

void print_stats(const TurnStats& st) {
    const int64_t fed = st.prompt_tokens - st.reused_tokens;
    std::fprintf(stderr, "[prefill %lld tokens (%lld reused) in %.2f s, %.1f tokens/s; decode %lld tokens in %.2f s, %.1f tokens/s]\n",
                 (long long)fed, (long long)st.reused_tokens, st.prefill_seconds,
                 st.prefill_seconds > 0 ? fed / st.prefill_seconds : 0.0, (long long)st.generated_tokens,
                 st.decode_seconds, st.decode_seconds > 0 ? (st.generated_tokens - 1) / st.decode_seconds : 0.0);
}

ChatOptions chat_options(const Args& a) {
    ChatOptions o;
    o.chat = a.chat;
    o.system = a.system;
    o.enable_thinking = !a.no_think;
    o.format = a.chat_format;
    o.params = a.params;
    return o;
}

// The model, its tokenizer and the engine the conversation runs on: one
// request at a time, with KV room for every beam of a full context.
struct Loaded {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<Engine> engine;
    double load_seconds = 0;
};

Loaded load(const Args& a) {
    const auto t0 = std::chrono::steady_clock::now();
    Loaded l;
    l.model = Model::load(a.model, a.opts);
    l.tokenizer = Tokenizer::load(l.model->file());
    EngineConfig c = a.engine;
    const int64_t n_ctx = c.n_ctx > 0 ? c.n_ctx : default_n_ctx(l.model->hparams());
    if (c.n_ctx > l.model->hparams().n_ctx_train) {
        std::fprintf(stderr, "hearth: warning: -c %lld is above the model's training context %lld; "
                     "answers past it may degrade\n", (long long)c.n_ctx, (long long)l.model->hparams().n_ctx_train);
    }
    c.kv_cache_tokens = n_ctx * std::max<int64_t>(1, a.params.beam.num_beams);
    l.engine = std::make_unique<Engine>(*l.model, l.tokenizer.get(), c);
    for (const auto& [token, bias] : a.params.sampling.logit_bias) {  // said before any turn
        if (token >= l.model->n_vocab()) {
            throw Error("--logit-bias: token id " + std::to_string(token) + " is outside the vocabulary [0, " +
                        std::to_string(l.model->n_vocab()) + ")");
        }
    }
    l.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return l;
}

// The answer goes out as it comes; a stdout that cannot take it (a full
// disk, a closed pipe) ends the program with an error, not silently.
void write_out(const std::string& text) {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
        throw Error(std::string("cannot write the output: ") + std::strerror(errno));
    }
}

// -p TEXT: one answer (or raw completion), streamed to stdout.
int run_prompt(const Args& a) {
    Loaded l = load(a);
    ChatSession chat(*l.engine, l.tokenizer.get(), chat_options(a));
    const double load_s = l.load_seconds;
    install_sigint();
    const TurnStats st = chat.answer(a.prompt, write_out, g_stop);
    write_out("\n");
    if (a.stats) {
        std::fprintf(stderr, "[load %.2f s] ", load_s);
        print_stats(st);
    }
    return st.interrupted ? 130 : 0;  // as a shell reports a Ctrl-C
}

// The interactive chat: a line in, an answer out, until /exit or Ctrl-D.
int run_chat(const Args& a) {
    Loaded l = load(a);
    ChatSession chat(*l.engine, l.tokenizer.get(), chat_options(a));
    const double load_s = l.load_seconds;
    std::fprintf(stderr, "hearth: %s (%s chat format, %d threads, n_ctx %lld), loaded in %.2f s.\n"
                 "/reset starts over, /exit or Ctrl-D quits, Ctrl-C stops an answer.\n",
                 a.model.c_str(), chat.format_name(), l.model->n_threads(), (long long)l.engine->n_ctx(), load_s);
    install_sigint();
    LineEditor editor(default_history_path(), g_stop);
    TurnStats total;
    for (;;) {
        std::fflush(stdout);
        g_stop.store(false);
        std::string line;
        const LineRead r = editor.read("> ", line);
        if (r == LineRead::End) break;  // Ctrl-D
        if (r == LineRead::Interrupted) {  // Ctrl-C at the prompt: a fresh prompt
            write_out("\n");
            continue;
        }
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line == "/exit" || line == "/quit") break;
        if (line == "/reset") {
            chat.reset();
            write_out("(the conversation starts over)\n");
            continue;
        }
        if (line.empty()) continue;
        try {
            const TurnStats st = chat.answer(line, write_out, g_stop);
            if (st.dropped_turns > 0) {
                std::fprintf(stderr, "[the context was full: the %lld oldest turn%s left the conversation]\n",
                             (long long)st.dropped_turns, st.dropped_turns == 1 ? "" : "s");
            }
            write_out(st.interrupted ? " [stopped]\n" : "\n");
            if (a.stats) print_stats(st);
            total.prompt_tokens += st.prompt_tokens - st.reused_tokens;
            total.generated_tokens += st.generated_tokens;
            total.prefill_seconds += st.prefill_seconds;
            total.decode_seconds += st.decode_seconds;
            if (st.context_full) {
                write_out("(the answer filled the context; the next turn drops the oldest ones)\n");
            }
        } catch (const Error& e) {
            std::fprintf(stderr, "hearth: error: %s\n", e.what());
        }
    }
    write_out("\n");
    if (a.stats) {
        std::fprintf(stderr, "[load %.2f s; in all: prefill %lld tokens in %.2f s, decode %lld tokens in %.2f s]\n", load_s,
                     (long long)total.prompt_tokens, total.prefill_seconds, (long long)total.generated_tokens,
                     total.decode_seconds);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args a = parse_args(argc, argv);
        const unsigned cores = std::thread::hardware_concurrency();
        if (cores > 0 && a.opts.n_threads > (int)cores) {
            std::fprintf(stderr, "hearth: warning: -t %d is more threads than this machine's %u cores; "
                         "they will share them and run slower\n", a.opts.n_threads, cores);
        }
        if (!a.info_file.empty()) return print_info(a.info_file);
        if (a.bench) return run_bench(a);
        if (a.has_prompt) return run_prompt(a);
        return run_chat(a);
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
