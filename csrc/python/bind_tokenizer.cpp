// hearthlm._core.Tokenizer and StreamDecoder: the C++ tokenizer, bytes in
// and out (the Python package turns them into str). The GIL is released
// while a long text is encoded.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "base/error.h"
#include "text/detokenizer.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "python/py_text.h"
#include "text/tokenizer.h"

namespace py = pybind11;
using namespace hearth;

namespace {

std::string_view bytes_view(const py::bytes& b) {
    char* data = nullptr;
    Py_ssize_t n = 0;
    if (PyBytes_AsStringAndSize(b.ptr(), &data, &n) != 0) throw py::error_already_set();
    return {data, (size_t)n};
}

py::str utf8_str(const std::string& s) { return py_text(s, "strict"); }  // valid UTF-8 by construction

}  // namespace

void bind_tokenizer(py::module_& m, py::module_& testing) {
    py::class_<Tokenizer>(m, "Tokenizer")
        .def_static(
            "load",
            [](const std::string& path) {
                py::gil_scoped_release release;
                std::unique_ptr<GGUFFile> f = GGUFFile::open(path);
                std::unique_ptr<Tokenizer> t = Tokenizer::load(*f);
                if (!t) throw Error(f->err("it carries no tokenizer (no 'tokenizer.ggml.model')"));
                return t;
            },
            py::arg("path"), "The tokenizer of a GGUF file, without loading its weights.")
        .def_static(
            "from_model",
            [](const Model& model) -> py::object {
                std::unique_ptr<Tokenizer> t = Tokenizer::load(model.file());
                if (!t) return py::none();
                return py::cast(std::move(t));
            },
            py::arg("model"), "The tokenizer of a loaded model's file, or None when it carries none.")
        .def(
            "encode",
            [](const Tokenizer& t, const py::bytes& text, bool add_special, bool parse_special) {
                const std::string_view s = bytes_view(text);
                py::gil_scoped_release release;
                return t.encode(s, add_special, parse_special);
            },
            py::arg("text"), py::arg("add_special") = true, py::arg("parse_special") = true)
        .def(
            "decode",
            [](const Tokenizer& t, const std::vector<int32_t>& ids, bool special) {
                return py::bytes(t.decode(ids.data(), ids.size(), special));
            },
            py::arg("ids"), py::arg("special") = false, "The bytes of the ids (not always valid UTF-8).")
        .def("token_text", [](const Tokenizer& t, int32_t id) {
            if (id < 0 || id >= t.n_tokens()) throw Error("token id " + std::to_string(id) + " is out of range");
            const std::string_view s = t.vocab().text(id);
            return py::bytes(s.data(), s.size());
        })
        .def_property_readonly("n_tokens", &Tokenizer::n_tokens)
        .def_property_readonly("model", [](const Tokenizer& t) { return t.vocab().model_name; })
        .def_property_readonly("pre", [](const Tokenizer& t) { return t.vocab().pre_name; })
        .def_property_readonly("bos_token_id", [](const Tokenizer& t) { return t.vocab().bos; })
        .def_property_readonly("eos_token_id", [](const Tokenizer& t) { return t.vocab().eos; })
        .def_property_readonly("add_bos", [](const Tokenizer& t) { return t.vocab().add_bos; })
        .def_property_readonly("end_of_generation", [](const Tokenizer& t) { return t.vocab().end_of_generation; },
                               "The tokens that end a generation (eos, eot, <|im_end|>, ...).");

    py::class_<StreamDecoder>(m, "StreamDecoder")
        .def(py::init<const Tokenizer&, bool>(), py::arg("tokenizer"), py::arg("special") = false,
             py::keep_alive<1, 2>())
        .def("push", [](StreamDecoder& d, int32_t id) { return utf8_str(d.push(id)); }, py::arg("id"),
             "Feeds one token; returns the text it completes (valid UTF-8, maybe empty).")
        .def("finish", [](StreamDecoder& d) { return utf8_str(d.finish()); },
             "What is still held back, an incomplete character as U+FFFD.");

    testing.def("utf8_decode_replace", [](const py::bytes& b, bool final) {
        std::string out;
        const size_t used = utf8_decode_replace(bytes_view(b), final, out);
        return py::make_tuple(utf8_str(out), used);
    }, py::arg("data"), py::arg("final") = true);
}
