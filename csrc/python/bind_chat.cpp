// hearthlm._core chat formats: the C++ families the `hearth` executable uses,
// bound so that the tests can hold them against the real Jinja templates.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "chat/chat_format.h"
#include "base/error.h"

namespace py = pybind11;
using namespace hearth;

namespace {

// A message is a dict with str "role" and "content", as in the Python API.
std::vector<ChatMessage> messages_from_python(const py::list& messages) {
    std::vector<ChatMessage> out;
    out.reserve(messages.size());
    for (const py::handle& item : messages) {
        if (!py::isinstance<py::dict>(item)) throw py::type_error("each message must be a dict");
        const py::dict d = py::reinterpret_borrow<py::dict>(item);
        if (!d.contains("role") || !d.contains("content")) {
            throw py::value_error("each message needs 'role' and 'content'");
        }
        out.push_back({d["role"].cast<std::string>(), d["content"].cast<std::string>()});
    }
    return out;
}

}  // namespace

void bind_chat(py::module_& m) {  // into _core.testing
    m.def(
        "detect_chat_format", [](const std::string& tmpl) { return std::string(chat_format_name(detect_chat_format(tmpl))); },
        py::arg("template"),
        "The name of the chat format family of a tokenizer.chat_template; raises HearthError when "
        "hearth does not know it.");

    m.def(
        "format_chat",
        [](const std::string& format_name, const py::list& messages, bool add_generation_prompt,
           const std::string& bos_token, const std::string& eos_token, bool enable_thinking) {
            const ChatFormat f = chat_format_from_name(format_name);
            return format_chat(f, messages_from_python(messages), add_generation_prompt, bos_token, eos_token,
                               enable_thinking);
        },
        py::arg("format_name"), py::arg("messages"), py::arg("add_generation_prompt") = true,
        py::arg("bos_token") = "", py::arg("eos_token") = "", py::arg("enable_thinking") = true,
        "The prompt text the named format makes of the conversation (as the `hearth` executable writes it).");
}
