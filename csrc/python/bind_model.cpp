// hearthlm._core.Model: a GGUF file's weights and the forward pass (the
// engine runs it), and the file's metadata.
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

py::dict metadata_dict(const GGUFFile& f) {
    py::dict d;
    for (const auto& kv : f.metadata()) d[py::str(kv.first)] = value_to_python(kv.second);
    return d;
}

}  // namespace

void bind_model(py::module_& m) {
    m.def("read_metadata", [](const std::string& path) { return metadata_dict(*GGUFFile::open(path)); }, py::arg("path"),
          "The metadata of a GGUF file, key -> value.");
    py::class_<Model>(m, "Model")
        .def(py::init([](const std::string& path, int n_threads, const std::string& activations) {
                 ModelOptions o;
                 o.n_threads = n_threads;
                 if (!parse_activations(activations.c_str(), &o.activations))
                     throw Error("activations must be 'q8' or 'q16', got '" + activations + "'");
                 py::gil_scoped_release release;
                 return Model::load(path, o);
             }),
             py::arg("path"), py::arg("n_threads") = 0, py::arg("activations") = "q8")
        .def("metadata", [](const Model& self) { return metadata_dict(self.file()); })
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
        .def_property_readonly("n_vocab", &Model::n_vocab)
        .def_property_readonly("n_ctx_train", [](const Model& self) { return self.hparams().n_ctx_train; })
        .def_property_readonly("n_threads", &Model::n_threads)
        .def_property_readonly("activations", [](const Model& self) { return std::string(activations_name(self.activations())); })
        .def_property_readonly("path", [](const Model& self) { return self.file().path(); })
        .def_property_readonly("architecture", [](const Model& self) { return self.hparams().arch_name; });
}
