// hearthlm._core.Model: load a GGUF file, evaluate token ids into logits,
// generate greedily. The GIL is released while the C++ core computes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "base/error.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "python/py_text.h"

namespace py = pybind11;
using namespace hearth;

namespace {

// tokens of a byte-level vocabulary need not be valid UTF-8
py::object decode_str(std::string_view s) { return py_text(s, "replace"); }

py::object value_to_python(const GGUFValue& v) {
    switch (v.type) {
        case GGUFType::STRING: return decode_str(v.s);
        case GGUFType::BOOL: return py::bool_(v.i != 0);
        case GGUFType::FLOAT32: case GGUFType::FLOAT64: return py::float_(v.f);
        case GGUFType::ARRAY: {
            py::list out;
            if (v.elem_type == GGUFType::STRING) {
                for (std::string_view s : v.strings) out.append(decode_str(s));
            } else if (v.elem_type == GGUFType::FLOAT32 || v.elem_type == GGUFType::FLOAT64) {
                for (uint64_t i = 0; i < v.n; i++) out.append(py::float_(v.array_f(i)));
            } else if (v.elem_type == GGUFType::BOOL) {
                for (uint64_t i = 0; i < v.n; i++) out.append(py::bool_(v.array_i(i) != 0));
            } else {
                for (uint64_t i = 0; i < v.n; i++) out.append(py::int_(v.array_i(i)));
            }
            return std::move(out);
        }
        default: return py::int_(v.i);
    }
}

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

}  // namespace

static py::dict metadata_dict(const GGUFFile& f) {
    py::dict d;
    for (const auto& kv : f.metadata()) d[py::str(kv.first)] = value_to_python(kv.second);
    return d;
}

void bind_model(py::module_& m) {
    m.def("read_metadata", [](const std::string& path) { return metadata_dict(*GGUFFile::open(path)); }, py::arg("path"),
          "The metadata of a GGUF file, key -> value.");
    py::class_<Model>(m, "Model")
        .def(py::init([](const std::string& path, int n_threads, int64_t n_ctx, const std::string& kv_type) {
                 ModelOptions o;
                 o.n_threads = n_threads;
                 o.n_ctx = n_ctx;
                 o.kv_type = parse_kv_type(kv_type);
                 py::gil_scoped_release release;
                 return Model::load(path, o);
             }),
             py::arg("path"), py::arg("n_threads") = 0, py::arg("n_ctx") = 0, py::arg("kv_type") = "f16")
        .def("eval",
             [](Model& self, const py::array& tokens, bool all_logits) {
                 const std::vector<int32_t> ids = to_ids(tokens);
                 if (ids.empty()) throw Error("eval needs at least one token");
                 const py::ssize_t rows = all_logits ? (py::ssize_t)ids.size() : 1;
                 py::array_t<float> out({rows, (py::ssize_t)self.n_vocab()});
                 float* dst = out.mutable_data();
                 {
                     py::gil_scoped_release release;
                     self.eval(ids.data(), (int64_t)ids.size(), dst, all_logits);
                 }
                 return out;
             },
             py::arg("tokens"), py::arg("all_logits") = true)
        .def("reset", &Model::reset)
        .def("generate_greedy",
             [](Model& self, const py::array& prompt, int64_t max_tokens, bool stop_at_eos) {
                 const std::vector<int32_t> ids = to_ids(prompt);
                 py::gil_scoped_release release;
                 return self.generate_greedy(ids, max_tokens, stop_at_eos);
             },
             py::arg("prompt"), py::arg("max_tokens"), py::arg("stop_at_eos") = true)
        .def("metadata",
             [](const Model& self) { return metadata_dict(self.file()); })
        .def("tensors",
             [](const Model& self) {
                 py::list out;
                 for (const GGUFTensor& t : self.file().tensors()) {
                     py::list shape;
                     for (int d = 0; d < t.n_dims; d++) shape.append(t.ne[d]);
                     out.append(py::make_tuple(t.name, type_name(t.type), py::tuple(shape)));
                 }
                 return out;
             })
        .def("tokenizer", [](const Model& self) { return self.tokenizer(); }, py::return_value_policy::reference_internal,
             "The file's tokenizer, or None for a weights-only file.")
        .def_property_readonly("default_sequence", &Model::default_sequence)
        .def("new_sequence", &Model::new_sequence)
        .def("fork_sequence", &Model::fork_sequence)
        .def("free_sequence", &Model::free_sequence)
        .def("seq_tokens", &Model::seq_tokens)
        .def("truncate", &Model::truncate)
        .def_property_readonly("kv_blocks_in_use", &Model::kv_blocks_in_use)
        .def_property_readonly("kv_block_bytes", &Model::kv_block_bytes)
        .def_property_readonly("n_vocab", &Model::n_vocab)
        .def_property_readonly("n_ctx", &Model::n_ctx)
        .def_property_readonly("n_past", &Model::n_past)
        .def_property_readonly("n_threads", &Model::n_threads)
        .def_property_readonly("kv_type", [](const Model& self) { return std::string(kv_type_name(self.kv_type())); })
        .def_property_readonly("kv_cache_bytes", &Model::kv_cache_bytes)
        .def_property_readonly("path", [](const Model& self) { return self.file().path(); })
        .def_property_readonly("architecture", [](const Model& self) { return self.hparams().arch_name; });
}
