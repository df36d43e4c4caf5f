// hearthlm._core: a thin pybind11 layer over the C++ core. Each concept binds
// itself in its own file; hearth::Error becomes hearthlm.HearthError.
#include <pybind11/pybind11.h>

#include "base/error.h"

namespace py = pybind11;

void bind_chat(py::module_& m);
void bind_kernels(py::module_& m);
void bind_model(py::module_& m);
void bind_kv_cache(py::module_& m);
void bind_text(py::module_& m);
void bind_tokenizer(py::module_& m);
void bind_generation(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "hearthlm C++ core";
    py::register_exception<hearth::Error>(m, "HearthError", PyExc_ValueError);
    bind_tokenizer(m);
    bind_model(m);
    bind_kv_cache(m);
    bind_kernels(m);
    bind_text(m);
    bind_generation(m);
    bind_chat(m);
}
