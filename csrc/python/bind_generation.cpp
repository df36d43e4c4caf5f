// hearthlm._core generation: the sampler and its processors, Generation
// (token-by-token, with stop rules) and beam_search. The Python package
// wraps them in SamplingParams / LLM.generate; each step releases the GIL
// while the model computes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "generate/beam_search.h"
#include "base/error.h"
#include "generate/generation.h"
#include "model/model.h"
#include "python/py_text.h"
#include "generate/sampler.h"

namespace py = pybind11;
using namespace hearth;

namespace {

using FloatRow = py::array_t<float, py::array::c_style | py::array::forcecast>;

SamplingParams sampling_params(const py::dict& d) {
    SamplingParams p;
    for (auto item : d) {
        const std::string k = py::str(item.first);
        const py::handle v = item.second;
        if (k == "temperature") p.temperature = v.cast<float>();
        else if (k == "top_k") p.top_k = v.cast<int32_t>();
        else if (k == "top_p") p.top_p = v.cast<float>();
        else if (k == "min_p") p.min_p = v.cast<float>();
        else if (k == "repetition_penalty") p.repetition_penalty = v.cast<float>();
        else if (k == "presence_penalty") p.presence_penalty = v.cast<float>();
        else if (k == "frequency_penalty") p.frequency_penalty = v.cast<float>();
        else if (k == "seed") p.seed = v.cast<uint64_t>();
        else throw Error("unknown sampling parameter '" + k + "'");
    }
    check_sampling_params(p);
    return p;
}

// A processor applied to a copy of a row of logits (for the tests against
// Hugging Face's processors).
py::array_t<float> processed(const FloatRow& row, const std::function<void(float*, int64_t)>& f) {
    py::array_t<float> out(row.size());
    std::copy(row.data(), row.data() + row.size(), out.mutable_data());
    f(out.mutable_data(), (int64_t)row.size());
    return out;
}

}  // namespace

void bind_generation(py::module_& m) {
    m.def("check_sampling_params", [](const py::dict& d) { sampling_params(d); });
    m.def("apply_repetition_penalty", [](const FloatRow& row, const std::vector<int32_t>& tokens, float penalty) {
        return processed(row, [&](float* x, int64_t n) { apply_repetition_penalty(x, n, tokens.data(), tokens.size(), penalty); });
    });
    m.def("apply_presence_frequency", [](const FloatRow& row, const std::vector<int32_t>& output, float presence, float frequency) {
        return processed(row, [&](float* x, int64_t n) { apply_presence_frequency(x, n, output.data(), output.size(), presence, frequency); });
    });
    m.def("apply_temperature", [](const FloatRow& row, float t) {
        return processed(row, [&](float* x, int64_t n) { apply_temperature(x, n, t); });
    });
    m.def("apply_top_k", [](const FloatRow& row, int32_t k) {
        return processed(row, [&](float* x, int64_t n) { apply_top_k(x, n, k); });
    });
    m.def("apply_top_p", [](const FloatRow& row, float p) {
        return processed(row, [&](float* x, int64_t n) { apply_top_p(x, n, p); });
    });
    m.def("apply_min_p", [](const FloatRow& row, float p) {
        return processed(row, [&](float* x, int64_t n) { apply_min_p(x, n, p); });
    });

    py::class_<Sampler>(m, "Sampler")
        .def(py::init([](const py::dict& params) { return std::make_unique<Sampler>(sampling_params(params)); }))
        .def("sample",
             [](Sampler& s, const FloatRow& row, const std::vector<int32_t>& prompt, const std::vector<int32_t>& output) {
                 std::vector<float> x(row.data(), row.data() + row.size());
                 return s.sample(x.data(), (int64_t)x.size(), prompt, output);
             },
             py::arg("logits"), py::arg("prompt") = std::vector<int32_t>{}, py::arg("output") = std::vector<int32_t>{})
        .def("sample_many",
             [](Sampler& s, const FloatRow& row, int64_t n) {
                 std::vector<int32_t> out((size_t)n);
                 py::gil_scoped_release release;
                 std::vector<float> x;
                 for (int64_t i = 0; i < n; i++) {
                     x.assign(row.data(), row.data() + row.size());
                     out[i] = s.sample(x.data(), (int64_t)x.size(), {}, {});
                 }
                 return out;
             },
             "n draws from the same row (the chi-square test of the draw)");

    py::class_<Generation>(m, "Generation")
        .def(py::init([](Model& model, int seq, std::vector<int32_t> prompt, Sampler& sampler, int64_t max_tokens,
                         std::vector<std::string> stop, std::vector<int32_t> stop_token_ids, bool ignore_eos,
                         int32_t logprobs, bool special) {
                 GenerationParams p;
                 p.max_tokens = max_tokens;
                 p.stop = std::move(stop);
                 p.stop_token_ids = std::move(stop_token_ids);
                 p.ignore_eos = ignore_eos;
                 p.logprobs = logprobs;
                 p.special = special;
                 return std::make_unique<Generation>(model, seq, std::move(prompt), p, sampler);
             }),
             py::arg("model"), py::arg("seq"), py::arg("prompt"), py::arg("sampler"), py::arg("max_tokens") = 16,
             py::arg("stop") = std::vector<std::string>{}, py::arg("stop_token_ids") = std::vector<int32_t>{},
             py::arg("ignore_eos") = false, py::arg("logprobs") = -1, py::arg("special") = false,
             py::keep_alive<1, 2>(), py::keep_alive<1, 5>())
        .def("step",
             [](Generation& g) -> py::object {
                 GeneratedToken t;
                 bool more;
                 {
                     py::gil_scoped_release release;
                     more = g.step(t);
                 }
                 if (!more) return py::none();
                 return py::make_tuple(t.id, py_text(t.text, "strict"), t.logprob, t.top);
             },
             "One token: (id, text, logprob, top alternatives), or None once finished.")
        .def_property_readonly("finished", &Generation::finished)
        .def_property_readonly("finish_reason", [](const Generation& g) { return std::string(finish_reason_name(g.finish_reason())); })
        .def_property_readonly("stop_string", &Generation::stop_string)
        .def_property_readonly("stop_token", &Generation::stop_token)
        .def_property_readonly("output", &Generation::output)
        .def_property_readonly("reused_tokens", &Generation::reused_tokens)
        .def_property_readonly("prefill_seconds", &Generation::prefill_seconds)
        .def_property_readonly("decode_seconds", &Generation::decode_seconds);

    m.def("beam_search",
          [](Model& model, int seq, const std::vector<int32_t>& prompt, int num_beams, int64_t max_new_tokens,
             float length_penalty, const std::string& early_stopping, float repetition_penalty,
             const std::vector<int32_t>& eos) {
              BeamSearchParams p;
              p.num_beams = num_beams;
              p.max_new_tokens = max_new_tokens;
              p.length_penalty = length_penalty;
              if (early_stopping == "false") p.early_stopping = EarlyStopping::Heuristic;
              else if (early_stopping == "true") p.early_stopping = EarlyStopping::Done;
              else if (early_stopping == "never") p.early_stopping = EarlyStopping::Never;
              else throw Error("early_stopping must be True, False or 'never', got '" + early_stopping + "'");
              p.repetition_penalty = repetition_penalty;
              p.eos = eos;
              BeamSearchResult r;
              {
                  py::gil_scoped_release release;
                  r = beam_search(model, seq, prompt, p);
              }
              py::list hyps;
              for (const Hypothesis& h : r.hypotheses) hyps.append(py::make_tuple(h.tokens, h.score));
              return py::make_tuple(hyps, r.steps, r.peak_kv_blocks);
          },
          py::arg("model"), py::arg("seq"), py::arg("prompt"), py::arg("num_beams"), py::arg("max_new_tokens"),
          py::arg("length_penalty") = 1.0f, py::arg("early_stopping") = "false", py::arg("repetition_penalty") = 1.0f,
          py::arg("eos") = std::vector<int32_t>{});
}
