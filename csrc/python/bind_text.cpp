// hearthlm._core text helpers: the pre-tokenizer splits, and small hooks that
// let the tests compare the UTF-8 decoder and the Unicode tables with Python's.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "text/pretokenize.h"
#include "text/unicode.h"

namespace py = pybind11;
using namespace hearth;

namespace {

// str is taken as its UTF-8; bytes as they are (they may be invalid UTF-8).
std::string text_bytes(const py::object& text) {
    if (py::isinstance<py::bytes>(text)) return text.cast<std::string>();
    if (py::isinstance<py::str>(text)) return text.cast<std::string>();
    throw py::type_error("text must be str or bytes");
}

}  // namespace

void bind_text(py::module_& m) {  // into _core.testing
    m.def(
        "pre_tokenize",
        [](const std::string& name, const py::object& text) {
            const PreTokenizer p = pre_tokenizer_from_name(name);
            const std::string bytes = text_bytes(text);
            std::vector<std::string_view> pieces;
            {
                py::gil_scoped_release release;
                pieces = pre_tokenize(p, bytes);
            }
            py::list out(pieces.size());
            for (size_t i = 0; i < pieces.size(); i++) out[i] = py::bytes(pieces[i].data(), pieces[i].size());
            return out;
        },
        py::arg("name"), py::arg("text"),
        "Splits text as the byte-level BPE pre-tokenizer named by tokenizer.ggml.pre does; "
        "the pieces (bytes) concatenate to the UTF-8 of text.");

    m.def(
        "pre_tokenizer_family", [](const std::string& name) { return pre_tokenizer_name(pre_tokenizer_from_name(name)); },
        py::arg("name"), "The canonical name of the split that tokenizer.ggml.pre name selects.");

    m.def("unicode_version", &unicode_version, "The Unicode version of the code point tables.");

    // One byte per code point of [first, last]: bit 0 is_letter, bit 1
    // is_number, bit 2 is_whitespace, so a test can cover all 0x110000 at once.
    m.def(
        "unicode_flags",
        [](uint32_t first, uint32_t last) {
            HEARTH_CHECK(first <= last && last <= 0x10FFFF, "unicode_flags: need first <= last <= 0x10FFFF");
            std::string flags(last - first + 1, '\0');
            for (uint32_t cp = first; cp <= last; cp++) {
                flags[cp - first] = static_cast<char>(is_letter(cp) | is_number(cp) << 1 | is_whitespace(cp) << 2);
            }
            return py::bytes(flags);
        },
        py::arg("first"), py::arg("last"));

    // The characters next_utf8 reads, as (code point, length); -1 for an invalid byte.
    m.def(
        "utf8_characters",
        [](const py::bytes& data) {
            const std::string s = data;
            std::vector<std::pair<int64_t, int>> chars;
            for (size_t pos = 0; pos < s.size();) {
                const Utf8Char c = next_utf8(s, pos);
                chars.emplace_back(c.cp == kInvalidCodepoint ? -1 : (int64_t)c.cp, c.len);
                pos += c.len;
            }
            return chars;
        },
        py::arg("data"));

    m.def(
        "utf8_encode",
        [](const std::vector<uint32_t>& cps) {
            std::string out;
            for (uint32_t cp : cps) append_utf8(cp, out);
            return py::bytes(out);
        },
        py::arg("codepoints"), "append_utf8 of each code point in turn.");
}
