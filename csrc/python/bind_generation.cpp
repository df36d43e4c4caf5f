// hearthlm._core's request parameters (SamplingParams, GenerationParams,
// BeamSearchParams, RequestParams): plain structs the Python SamplingParams
// fills and C++ checks, naming a bad parameter. The sampler and its
// processors, one by one, are in _core.testing for the tests against
// Hugging Face's processors.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "base/error.h"
#include "generate/request_params.h"
#include "generate/sampler.h"

namespace py = pybind11;
using namespace hearth;

namespace {

using FloatRow = py::array_t<float, py::array::c_style | py::array::forcecast>;

// A processor applied to a copy of a row of logits.
py::array_t<float> processed(const FloatRow& row, const std::function<void(float*, int64_t)>& f) {
    py::array_t<float> out(row.size());
    std::copy(row.data(), row.data() + row.size(), out.mutable_data());
    f(out.mutable_data(), (int64_t)row.size());
    return out;
}

const char* early_stopping_name(EarlyStopping e) {
    switch (e) {
        case EarlyStopping::Done: return "true";
        case EarlyStopping::Never: return "never";
        default: return "false";
    }
}

}  // namespace

void bind_generation(py::module_& m, py::module_& testing) {
    py::class_<SamplingParams>(m, "SamplingParams", "How a token is chosen (the sampler's chain).")
        .def(py::init<>())
        .def_readwrite("temperature", &SamplingParams::temperature)
        .def_readwrite("top_k", &SamplingParams::top_k)
        .def_readwrite("top_p", &SamplingParams::top_p)
        .def_readwrite("min_p", &SamplingParams::min_p)
        .def_readwrite("repetition_penalty", &SamplingParams::repetition_penalty)
        .def_readwrite("presence_penalty", &SamplingParams::presence_penalty)
        .def_readwrite("frequency_penalty", &SamplingParams::frequency_penalty)
        .def_readwrite("seed", &SamplingParams::seed)
        .def_readwrite("allowed_token_ids", &SamplingParams::allowed_token_ids)
        .def_readwrite("logit_bias", &SamplingParams::logit_bias);
    py::class_<GenerationParams>(m, "GenerationParams", "When a completion stops and what it reports.")
        .def(py::init<>())
        .def_readwrite("n", &GenerationParams::n)
        .def_readwrite("max_tokens", &GenerationParams::max_tokens)
        .def_readwrite("min_tokens", &GenerationParams::min_tokens)
        .def_readwrite("stop", &GenerationParams::stop)
        .def_readwrite("include_stop_str_in_output", &GenerationParams::include_stop_str_in_output)
        .def_readwrite("stop_token_ids", &GenerationParams::stop_token_ids)
        .def_readwrite("bad_words_ids", &GenerationParams::bad_words_ids)
        .def_readwrite("ignore_eos", &GenerationParams::ignore_eos)
        .def_readwrite("logprobs", &GenerationParams::logprobs)
        .def_readwrite("prompt_logprobs", &GenerationParams::prompt_logprobs)
        .def_readwrite("skip_special_tokens", &GenerationParams::skip_special_tokens)
        .def_readwrite("constrained", &GenerationParams::constrained);
    py::class_<BeamSearchParams>(m, "BeamSearchParams", "Beam search (num_beams > 1).")
        .def(py::init<>())
        .def_readwrite("num_beams", &BeamSearchParams::num_beams)
        .def_readwrite("length_penalty", &BeamSearchParams::length_penalty)
        .def_property(
            "early_stopping", [](const BeamSearchParams& p) { return std::string(early_stopping_name(p.early_stopping)); },
            [](BeamSearchParams& p, const std::string& s) { p.early_stopping = parse_early_stopping(s); },
            "'false', 'true' or 'never', as Hugging Face's early_stopping");
    py::class_<RequestParams>(m, "RequestParams", "A request's parameters: sampling, generation and beam search.")
        .def(py::init<>())
        .def_readwrite("sampling", &RequestParams::sampling)
        .def_readwrite("generation", &RequestParams::generation)
        .def_readwrite("beam", &RequestParams::beam)
        .def_readwrite("has_seed", &RequestParams::has_seed)
        .def("check", &check_request_params, "Raises HearthError naming the first bad parameter.");

    testing.def("apply_allowed_tokens", [](const FloatRow& row, const std::vector<int32_t>& allowed) {
        return processed(row, [&](float* x, int64_t n) { apply_allowed_tokens(x, n, allowed); });
    });
    testing.def("apply_logit_bias", [](const FloatRow& row, const std::map<int32_t, float>& bias) {
        return processed(row, [&](float* x, int64_t n) { apply_logit_bias(x, n, bias); });
    });
    testing.def("apply_repetition_penalty", [](const FloatRow& row, const std::vector<int32_t>& tokens, float penalty) {
        return processed(row, [&](float* x, int64_t n) { apply_repetition_penalty(x, n, tokens.data(), tokens.size(), penalty); });
    });
    testing.def("apply_presence_frequency", [](const FloatRow& row, const std::vector<int32_t>& output, float presence, float frequency) {
        return processed(row, [&](float* x, int64_t n) { apply_presence_frequency(x, n, output.data(), output.size(), presence, frequency); });
    });
    testing.def("apply_temperature", [](const FloatRow& row, float t) {
        return processed(row, [&](float* x, int64_t n) { apply_temperature(x, n, t); });
    });
    testing.def("apply_top_k", [](const FloatRow& row, int32_t k) {
        return processed(row, [&](float* x, int64_t n) { apply_top_k(x, n, k); });
    });
    testing.def("apply_top_p", [](const FloatRow& row, float p) {
        return processed(row, [&](float* x, int64_t n) { apply_top_p(x, n, p); });
    });
    testing.def("apply_min_p", [](const FloatRow& row, float p) {
        return processed(row, [&](float* x, int64_t n) { apply_min_p(x, n, p); });
    });

    py::class_<Sampler>(testing, "Sampler")
        .def(py::init<const SamplingParams&>(), py::arg("params"))
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
}
