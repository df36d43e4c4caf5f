// hearthlm._core: a thin pybind11 layer over the C++ core. Each concept binds
// itself in its own file; what only the tests need lives in _core.testing.
// hearth::Error becomes hearthlm.errors.HearthError (a ValueError), its param with it.
#include <pybind11/pybind11.h>

#include "base/error.h"

namespace py = pybind11;

void bind_chat(py::module_& testing);
void bind_kernels(py::module_& m, py::module_& testing);
void bind_model(py::module_& m);
void bind_block_pool(py::module_& testing);
void bind_attention(py::module_& testing);
void bind_text(py::module_& testing);
void bind_tokenizer(py::module_& m, py::module_& testing);
void bind_generation(py::module_& m, py::module_& testing);
void bind_engine(py::module_& m);
void bind_quantize(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "hearthlm C++ core";
    // the one exception class of the package, defined in Python
    static py::object hearth_error = py::module_::import("hearthlm.errors").attr("HearthError");
    m.attr("HearthError") = hearth_error;
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const hearth::Error& e) {
            py::object param = e.param.empty() ? py::none() : py::object(py::str(e.param));
            py::object err = hearth_error(py::str(e.what()), py::arg("param") = param);
            PyErr_SetObject(hearth_error.ptr(), err.ptr());
        }
    });
    py::module_ testing = m.def_submodule("testing", "Hooks for the tests: kernels, processors, pools, splits.");
    bind_tokenizer(m, testing);
    bind_model(m);
    bind_generation(m, testing);
    bind_engine(m);
    bind_quantize(m);
    bind_block_pool(testing);
    bind_attention(testing);
    bind_kernels(m, testing);
    bind_text(testing);
    bind_chat(testing);
}
