// hearthlm._core.Engine: the engine loop (add_request / step /
// abort_request), its outputs and counters, and the low-level eval on a
// sequence of its own. step() and eval() release the GIL while the model
// computes. The Python LLMEngine and LLM wrap it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "base/cache_aligned.h"
#include "base/error.h"
#include "engine/engine.h"
#include "python/py_text.h"

namespace py = pybind11;
using namespace hearth;

namespace {

std::vector<int32_t> to_ids(const py::array& arr) {
    py::array_t<int64_t, py::array::c_style | py::array::forcecast> a(arr);
    if (a.ndim() != 1) throw Error("token ids must be a 1-D sequence of integers");
    std::vector<int32_t> ids((size_t)a.size());
    for (py::ssize_t i = 0; i < a.size(); i++) {
        const int64_t v = a.at(i);
        if (v < INT32_MIN || v > INT32_MAX) throw Error("token id " + std::to_string(v) + " is out of range");
        ids[(size_t)i] = (int32_t)v;
    }
    return ids;
}

// A float32 array whose data starts on a cache line: the output matmul
// writes logits a line at a time, and numpy's big arrays start 16 bytes into
// one (every store would straddle two lines; see base/cache_aligned.h).
py::array_t<float> cache_aligned_array(py::ssize_t rows, py::ssize_t cols) {
    float* data = CacheAlignedAllocator<float>().allocate((size_t)rows * (size_t)cols);
    py::capsule owner(data, [](void* p) { CacheAlignedAllocator<float>().deallocate(static_cast<float*>(p), 0); });
    return py::array_t<float>({rows, cols}, data, owner);
}

py::object optional_time(double t) { return t < 0 ? py::none() : py::object(py::float_(t)); }

// per token: [(id, logprob, rank)], the token itself first
py::list logprob_lists(const std::vector<std::vector<TokenLogprob>>& tokens) {
    py::list out;
    for (const auto& tok : tokens) {
        py::list alts;
        for (const TokenLogprob& t : tok) alts.append(py::make_tuple(t.id, t.logprob, t.rank));
        out.append(alts);
    }
    return out;
}

}  // namespace

void bind_engine(py::module_& m) {
    py::class_<CompletionDelta>(m, "CompletionDelta", "One completion's news since the last step.")
        .def_readonly("index", &CompletionDelta::index)
        .def_readonly("token_ids", &CompletionDelta::token_ids)
        .def_property_readonly("text", [](const CompletionDelta& d) { return py_text(d.text, "strict"); })
        .def_property_readonly("logprobs", [](const CompletionDelta& d) { return logprob_lists(d.logprobs); },
                               "per new token: [(id, logprob, rank)], the chosen token first")
        .def_property_readonly("logits",
                               [](const CompletionDelta& d) {
                                   const py::ssize_t rows = (py::ssize_t)d.token_ids.size();
                                   const py::ssize_t cols = rows ? (py::ssize_t)(d.logits.size() / rows) : 0;
                                   py::array_t<float> out({rows, cols});
                                   std::copy(d.logits.begin(), d.logits.end(), out.mutable_data());
                                   return out;
                               },
                               "with set_keep_logits(True): the rows of logits the new tokens came from")
        .def_readonly("finished", &CompletionDelta::finished)
        .def_property_readonly("finish_reason",
                               [](const CompletionDelta& d) -> py::object {
                                   if (d.finish_reason == FinishReason::None) return py::none();
                                   return py::str(finish_reason_name(d.finish_reason));
                               })
        .def_property_readonly("stop_reason",
                               [](const CompletionDelta& d) -> py::object {
                                   if (!d.stop_string.empty()) return py_text(d.stop_string, "replace");
                                   if (d.stop_token >= 0) return py::int_(d.stop_token);
                                   return py::none();
                               })
        .def_readonly("beam_search", &CompletionDelta::beam_search)
        .def_readonly("cumulative_logprob", &CompletionDelta::cumulative_logprob)
        .def_property_readonly("beam_score", [](const CompletionDelta& d) -> py::object {
            return d.beam_search ? py::object(py::float_(d.beam_score)) : py::none();
        });
    py::class_<RequestOutput>(m, "EngineOutput", "A request's news from one step.")
        .def_readonly("request_id", &RequestOutput::request_id)
        .def_readonly("outputs", &RequestOutput::outputs)
        .def_readonly("finished", &RequestOutput::finished)
        .def_readonly("num_prompt_tokens", &RequestOutput::num_prompt_tokens)
        .def_readonly("num_cached_tokens", &RequestOutput::num_cached_tokens)
        .def_readonly("num_preemptions", &RequestOutput::num_preemptions)
        .def_readonly("peak_kv_blocks", &RequestOutput::peak_kv_blocks)
        .def_property_readonly("prompt_logprobs",
                               [](const RequestOutput& o) -> py::object {
                                   if (!o.has_prompt_logprobs) return py::none();
                                   return logprob_lists(o.prompt_logprobs);
                               },
                               "once, with prompt_logprobs: per prompt token after the first, [(id, logprob, rank)]")
        .def_readonly("arrival_time", &RequestOutput::arrival_time)
        .def_property_readonly("first_scheduled_time", [](const RequestOutput& o) { return optional_time(o.first_scheduled_time); })
        .def_property_readonly("first_token_time", [](const RequestOutput& o) { return optional_time(o.first_token_time); })
        .def_property_readonly("last_token_time", [](const RequestOutput& o) { return optional_time(o.last_token_time); })
        .def_property_readonly("finished_time", [](const RequestOutput& o) { return optional_time(o.finished_time); });

    py::class_<Engine>(m, "Engine")
        .def(py::init([](Model& model, py::object tokenizer, int64_t n_ctx, const std::string& kv_type,
                         int64_t kv_cache_tokens, int32_t max_num_seqs, int64_t max_num_batched_tokens,
                         bool enable_prefix_caching) {
                 EngineConfig c;
                 c.n_ctx = n_ctx;
                 c.kv_type = parse_kv_type(kv_type);
                 c.kv_cache_tokens = kv_cache_tokens;
                 c.max_num_seqs = max_num_seqs;
                 c.max_num_batched_tokens = max_num_batched_tokens;
                 c.enable_prefix_caching = enable_prefix_caching;
                 const Tokenizer* tok = tokenizer.is_none() ? nullptr : tokenizer.cast<const Tokenizer*>();
                 return std::make_unique<Engine>(model, tok, c);
             }),
             py::arg("model"), py::arg("tokenizer"), py::arg("n_ctx") = 0, py::arg("kv_type") = "f16",
             py::arg("kv_cache_tokens") = 0, py::arg("max_num_seqs") = 16, py::arg("max_num_batched_tokens") = 512,
             py::arg("enable_prefix_caching") = true, py::keep_alive<1, 2>(), py::keep_alive<1, 3>())
        .def("add_request",
             [](Engine& e, const std::string& id, const py::array& prompt, const RequestParams& p) {
                 e.add_request(id, to_ids(prompt), p);
             },
             py::arg("request_id"), py::arg("prompt_token_ids"), py::arg("params"))
        .def("step", &Engine::step, py::call_guard<py::gil_scoped_release>(),
             "One forward pass; the news of every request that has some.")
        .def("allow_tokens",
             [](Engine& e, const std::string& id, int index,
                const py::array_t<uint32_t, py::array::c_style | py::array::forcecast>& mask) {
                 e.allow_tokens(id, index, std::vector<uint32_t>(mask.data(), mask.data() + mask.size()));
             },
             py::arg("request_id"), py::arg("index"), py::arg("mask"),
             "Structured output: the tokens completion `index` may take next (uint32 words, bit t % 32 of word t / 32).")
        .def("abort_request", &Engine::abort_request, py::arg("request_id"))
        .def("has_unfinished_requests", &Engine::has_unfinished_requests)
        .def("stats",
             [](const Engine& e) {
                 const EngineStats s = e.stats();
                 py::dict d;
                 d["num_requests_running"] = s.num_requests_running;
                 d["num_requests_waiting"] = s.num_requests_waiting;
                 d["kv_blocks_used"] = s.kv_blocks_used;
                 d["kv_blocks_total"] = s.kv_blocks_total;
                 d["prefix_cache_queries"] = s.prefix_cache_queries;
                 d["prefix_cache_hits"] = s.prefix_cache_hits;
                 d["prompt_tokens"] = s.prompt_tokens;
                 d["generation_tokens"] = s.generation_tokens;
                 d["num_preemptions"] = s.num_preemptions;
                 return d;
             })
        .def("eval",
             [](Engine& e, const py::array& tokens, bool all_logits) {
                 const std::vector<int32_t> ids = to_ids(tokens);
                 if (ids.empty()) throw Error("eval needs at least one token");
                 const py::ssize_t rows = all_logits ? (py::ssize_t)ids.size() : 1;
                 py::array_t<float> out = cache_aligned_array(rows, (py::ssize_t)e.model().n_vocab());
                 float* dst = out.mutable_data();
                 {
                     py::gil_scoped_release release;
                     e.eval(ids.data(), (int64_t)ids.size(), dst, all_logits);
                 }
                 return out;
             },
             py::arg("tokens"), py::arg("all_logits") = true)
        .def("reset", &Engine::reset)
        .def("set_keep_logits", &Engine::set_keep_logits, py::arg("on"),
             "Tests: each output carries the logits its new tokens came from.")
        .def_property_readonly("n_past", &Engine::n_past)
        .def_property_readonly("n_ctx", &Engine::n_ctx)
        .def_property_readonly("kv_type", [](const Engine& e) { return std::string(kv_type_name(e.config().kv_type)); })
        .def_property_readonly("kv_cache_tokens", [](const Engine& e) { return e.config().kv_cache_tokens; })
        .def_property_readonly("max_num_seqs", [](const Engine& e) { return e.config().max_num_seqs; })
        .def_property_readonly("max_num_batched_tokens", [](const Engine& e) { return e.config().max_num_batched_tokens; })
        .def_property_readonly("enable_prefix_caching", [](const Engine& e) { return e.config().enable_prefix_caching; })
        .def_property_readonly("kv_cache_bytes", &Engine::kv_cache_bytes)
        .def_property_readonly("kv_block_bytes", &Engine::kv_block_bytes);
}
