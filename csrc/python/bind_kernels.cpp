// Test hooks for the kernels (placeholder).
#include <pybind11/pybind11.h>
namespace py = pybind11;
void bind_kernels(py::module_& m) {}
