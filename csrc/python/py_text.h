// C++ bytes to a Python str. errors "strict" where the text is valid UTF-8
// by construction (a streamed piece: a slip raises instead of hiding),
// "replace" where it need not be (a byte-level token's text).
#pragma once

#include <pybind11/pybind11.h>

#include <string_view>

inline pybind11::str py_text(std::string_view s, const char* errors) {
    PyObject* o = PyUnicode_DecodeUTF8(s.data(), (Py_ssize_t)s.size(), errors);
    if (!o) throw pybind11::error_already_set();
    return pybind11::reinterpret_steal<pybind11::str>(o);
}
