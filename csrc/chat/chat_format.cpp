// Chat template families in C++. Each format_* function writes what the
// family's real Jinja template renders (transformers' apply_chat_template),
// quirks included: which contents are stripped, where the spaces go, which
// conversations the template refuses and with what message. The templates
// themselves are in tests/data/chat_templates/, and the tests compare the
// two on many conversations.
#include "chat/chat_format.h"

#include <cstdio>
#include <ctime>
#include <string_view>

#include "base/error.h"
#include "text/unicode.h"

namespace hearth {

namespace {

struct FormatInfo {
    ChatFormat format;
    const char* name;
};

constexpr FormatInfo kFormats[] = {
    {ChatFormat::ChatML, "chatml"},         {ChatFormat::Llama2, "llama2"},
    {ChatFormat::Llama3, "llama3"},         {ChatFormat::Mistral, "mistral-v1"},
    {ChatFormat::SmolLM2, "smollm2"},       {ChatFormat::Qwen2, "qwen2"},
    {ChatFormat::Qwen25, "qwen2.5"},        {ChatFormat::Llama31, "llama3.1"},
    {ChatFormat::Llama32, "llama3.2"},      {ChatFormat::MistralLegacy, "mistral-legacy"},
    {ChatFormat::Qwen3, "qwen3"},           {ChatFormat::Glm4, "glm4"},
};

std::string format_names() {
    std::string names;
    for (const FormatInfo& f : kFormats) {
        if (!names.empty()) names += ", ";
        names += f.name;
    }
    return names;
}

[[noreturn]] void unrecognised(const std::string& why) {
    throw Error("hearth does not recognise this chat template (" + why +
                "); the formats it writes itself are " + format_names() +
                ". Name the format the model was trained with (--chat-format NAME), run with --no-chat for "
                "raw completion, or use the Python API (hearthlm), which renders any chat template");
}

bool contains(const std::string& text, std::string_view marker) {
    return text.find(marker) != std::string::npos;
}

// Either spelling of a newline inside a Jinja string literal: the character
// itself or the escape \n.
bool contains_with_newline(const std::string& text, std::string_view before, std::string_view after) {
    return contains(text, std::string(before) + "\n" + std::string(after)) ||
           contains(text, std::string(before) + "\\n" + std::string(after));
}

// The default system messages of the ChatML templates hearth knows.
constexpr const char* kSmolLM2System = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
constexpr const char* kQwen2System = "You are a helpful assistant.";
constexpr const char* kQwen25System = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

// Whether a ChatML template writes a system turn of its own text: a string
// literal that goes on after "<|im_start|>system\n" instead of ending there.
bool has_literal_system_turn(const std::string& t) {
    const std::string_view marker = "<|im_start|>system";
    for (size_t at = t.find(marker); at != std::string::npos; at = t.find(marker, at + 1)) {
        size_t p = at + marker.size();
        if (t.compare(p, 1, "\n") == 0) {
            p += 1;
        } else if (t.compare(p, 2, "\\n") == 0) {
            p += 2;
        } else {
            continue;
        }
        if (p < t.size() && t[p] != '\'' && t[p] != '"') return true;
    }
    return false;
}

ChatFormat detect_chatml(const std::string& t) {
    if (contains(t, "<|im_sep|>")) unrecognised("ChatML with <|im_sep|>, as Phi-4's");
    if (contains(t, "<end_of_utterance>")) unrecognised("SmolVLM's image-chat template");
    if (contains(t, "<think>")) {
        // Qwen3's own (its markers: the last user turn, the reasoning split,
        // the enable_thinking switch); other <think> templates differ
        if (contains(t, "last_query_index") && contains(t, "reasoning_content") && contains(t, "enable_thinking")) {
            return ChatFormat::Qwen3;
        }
        unrecognised("a ChatML template that rewrites <think> reasoning in a way hearth does not know");
    }
    if (contains(t, kSmolLM2System)) return ChatFormat::SmolLM2;
    if (contains(t, kQwen25System)) return ChatFormat::Qwen25;
    if (contains_with_newline(t, "<|im_start|>system", std::string(kQwen2System) + "<|im_end|>")) {
        return ChatFormat::Qwen2;
    }
    if (has_literal_system_turn(t)) unrecognised("ChatML with a default system message hearth does not know");
    return ChatFormat::ChatML;
}

// Python's str.strip / lstrip / rstrip with '\n' as the only character.
std::string lstrip_newlines(const std::string& s) {
    const size_t b = s.find_first_not_of('\n');
    return b == std::string::npos ? std::string() : s.substr(b);
}
std::string rstrip_newlines(const std::string& s) {
    const size_t e = s.find_last_not_of('\n');
    return e == std::string::npos ? std::string() : s.substr(0, e + 1);
}

// Qwen3: ChatML; an assistant turn written as "<think>...</think>answer"
// keeps its reasoning only after the last user query (earlier turns keep the
// answer alone), and the last turn always shows a <think> block; with
// enable_thinking false the generation prompt closes an empty one.
std::string format_qwen3(const std::vector<ChatMessage>& messages, bool add_generation_prompt, bool enable_thinking) {
    const int64_t n = (int64_t)messages.size();
    auto starts_with = [](const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; };
    auto ends_with = [](const std::string& s, std::string_view p) {
        return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
    };
    int64_t last_query = n - 1;
    for (int64_t i = n - 1; i >= 0; i--) {
        const ChatMessage& m = messages[i];
        if (m.role == "user" && !(starts_with(m.content, "<tool_response>") && ends_with(m.content, "</tool_response>"))) {
            last_query = i;
            break;
        }
    }
    std::string out;
    if (messages[0].role == "system") out += "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";
    for (int64_t i = 0; i < n; i++) {
        const ChatMessage& m = messages[i];
        if (m.role == "user" || (m.role == "system" && i > 0)) {
            out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
        } else if (m.role == "assistant") {
            std::string content = m.content, reasoning;
            const size_t close = content.find("</think>");
            if (close != std::string::npos) {
                const std::string before = rstrip_newlines(content.substr(0, close));
                const size_t open = before.rfind("<think>");
                reasoning = lstrip_newlines(open == std::string::npos ? before : before.substr(open + 7));
                content = lstrip_newlines(content.substr(content.rfind("</think>") + 8));
            }
            if (i > last_query && (i == n - 1 || !reasoning.empty())) {
                out += "<|im_start|>assistant\n<think>\n" + rstrip_newlines(lstrip_newlines(reasoning)) +
                       "\n</think>\n\n" + lstrip_newlines(content);
            } else {
                out += "<|im_start|>assistant\n" + content;
            }
            out += "<|im_end|>\n";
        }
    }
    if (add_generation_prompt) {
        out += "<|im_start|>assistant\n";
        if (!enable_thinking) out += "<think>\n\n</think>\n\n";
    }
    return out;
}

// GLM-4-9B-chat's template (chatglm.cpp's GLM-4; llama.cpp's chatglm
// architecture) writes each message with its metadata field, which hearth's
// messages never have. GLM-4-0414's moves the system messages first and
// handles <think>: a different layout, refused rather than guessed.
ChatFormat detect_glm(const std::string& t) {
    if (contains(t, "<|{{ item['role'] }}|>{{ item['metadata'] }}")) return ChatFormat::Glm4;
    unrecognised("a GLM template other than GLM-4-9B-chat's (GLM-4-0414 and later order the messages differently)");
}

// GLM-4-9B-chat: "[gMASK]<sop>" written by the template itself, then each
// message that has content as "<|role|>\ncontent" with no closing marker;
// the model ends its turn with <|user|> (the file's end-of-turn token).
std::string format_glm4(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
    std::string out = "[gMASK]<sop>";
    for (const ChatMessage& m : messages) {
        if (!m.content.empty()) out += "<|" + m.role + "|>\n" + m.content;
    }
    if (add_generation_prompt) out += "<|assistant|>";
    return out;
}

ChatFormat detect_llama3(const std::string& t) {
    if (!contains(t, "Cutting Knowledge Date")) return ChatFormat::Llama3;
    if (contains(t, "strftime_now")) return ChatFormat::Llama32;
    if (contains(t, "\"26 Jul 2024\"")) return ChatFormat::Llama31;
    unrecognised("a Llama 3.1-style template with a date hearth does not know");
}

ChatFormat detect_inst(const std::string& t) {
    if (contains(t, "[SYSTEM_PROMPT]") || contains(t, "[AVAILABLE_TOOLS]")) {
        unrecognised("Mistral's v3 / v7 [INST] template with tools");
    }
    if (contains(t, "<<SYS>>")) {
        // Llama 2 chat strips every turn; variants that do not, or that carry
        // a default system message of their own, render differently.
        if (contains(t, "system_message = '")) unrecognised("Llama 2 style with a default system message");
        if (!contains(t, "content.strip()") && !contains(t, "content | trim")) {
            unrecognised("Llama 2 style that does not strip the messages");
        }
        return ChatFormat::Llama2;
    }
    if (contains(t, "' [INST] ' + system_message")) return ChatFormat::Mistral;
    if (contains(t, "Only user and assistant roles are supported!")) {
        if (contains(t, "eos_token + ' '")) unrecognised("Mistral-7B-Instruct-v0.1's first template");
        return ChatFormat::MistralLegacy;
    }
    unrecognised("an [INST] template of an unknown kind");
}

// --- what the templates do to text ------------------------------------------

// Python's str.isspace() for one code point: what str.strip() and Jinja's
// trim remove (White_Space, plus the separators U+001C..U+001F).
bool is_python_space(uint32_t cp) {
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F)) return true;
    if (cp < 0x85) return false;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// str.strip(): the text without the whitespace at either end. Bytes that are
// not valid UTF-8 are kept (they cannot be whitespace).
std::string strip(const std::string& s) {
    size_t begin = s.size(), end = 0;
    for (size_t pos = 0; pos < s.size();) {
        const Utf8Char c = next_utf8(s, pos);
        if (!is_python_space(c.cp)) {
            if (begin == s.size()) begin = pos;
            end = pos + c.len;
        }
        pos += c.len;
    }
    return begin < end ? s.substr(begin, end - begin) : std::string();
}

[[noreturn]] void refused(ChatFormat f, const std::string& template_message) {
    throw Error(std::string("the ") + chat_format_name(f) +
                " chat template refuses the conversation: " + template_message);
}

// "26 Jul 2024": Python's strftime("%d %b %Y") in the C locale, for today.
std::string today_as_llama_date() {
    static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const std::time_t now = std::time(nullptr);
    std::tm local{};
#ifdef _WIN32
    localtime_s(&local, &now);
#else
    localtime_r(&now, &local);
#endif
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02d %s %d", local.tm_mday, kMonths[local.tm_mon], local.tm_year + 1900);
    return buf;
}

// --- the families -------------------------------------------------------------

const char* default_system_message(ChatFormat f) {
    switch (f) {
        case ChatFormat::SmolLM2: return kSmolLM2System;
        case ChatFormat::Qwen2: return kQwen2System;
        case ChatFormat::Qwen25: return kQwen25System;
        default: return nullptr;
    }
}

std::string format_chatml(ChatFormat f, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
    std::string out;
    const char* default_system = default_system_message(f);
    if (default_system && messages.front().role != "system") {
        out += "<|im_start|>system\n";
        out += default_system;
        out += "<|im_end|>\n";
    }
    for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
}

std::string format_llama2(const std::vector<ChatMessage>& messages, const std::string& bos,
                          const std::string& eos) {
    const bool has_system = messages.front().role == "system";
    std::string out;
    for (size_t i = has_system ? 1 : 0, turn = 0; i < messages.size(); i++, turn++) {
        const ChatMessage& m = messages[i];
        if ((m.role == "user") != (turn % 2 == 0)) {
            refused(ChatFormat::Llama2, "Conversation roles must alternate user/assistant/user/assistant/...");
        }
        std::string content = m.content;
        if (turn == 0 && has_system) {
            content = "<<SYS>>\n" + messages.front().content + "\n<</SYS>>\n\n" + content;
        }
        // Any other role (a later system message) passes the check at an odd
        // turn and is left out, as the template leaves it out.
        if (m.role == "user") {
            out += bos + "[INST] " + strip(content) + " [/INST]";
        } else if (m.role == "assistant") {
            out += " " + strip(content) + " " + eos;
        }
    }
    return out;
}

void append_llama3_turn(std::string& out, const ChatMessage& m) {
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + strip(m.content) + "<|eot_id|>";
}

std::string format_llama3(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                          const std::string& bos) {
    std::string out = bos;
    for (const ChatMessage& m : messages) append_llama3_turn(out, m);
    if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
}

// Llama 3.1 / 3.2: the system turn is always there, with the model's
// knowledge cutoff and a date, and the caller's system message after them.
std::string format_llama31(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                           const std::string& bos, const std::string& date) {
    const bool has_system = messages.front().role == "system";
    std::string out = bos + "<|start_header_id|>system<|end_header_id|>\n\n";
    out += "Cutting Knowledge Date: December 2023\nToday Date: " + date + "\n\n";
    if (has_system) out += strip(messages.front().content);
    out += "<|eot_id|>";
    for (size_t i = has_system ? 1 : 0; i < messages.size(); i++) append_llama3_turn(out, messages[i]);
    if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
}

std::string format_mistral_v1(const std::vector<ChatMessage>& messages, const std::string& bos,
                              const std::string& eos) {
    const bool has_system = messages.front().role == "system";
    std::string out = bos;
    for (size_t i = has_system ? 1 : 0, turn = 0; i < messages.size(); i++, turn++) {
        const ChatMessage& m = messages[i];
        if ((m.role == "user") != (turn % 2 == 0)) {
            refused(ChatFormat::Mistral, "After the optional system message, conversation roles must alternate "
                                         "user/assistant/user/assistant/...");
        }
        if (m.role == "user") {
            out += turn == 0 && has_system
                       ? " [INST] " + messages.front().content + "\n\n" + m.content + " [/INST]"
                       : " [INST] " + m.content + " [/INST]";
        } else if (m.role == "assistant") {
            out += " " + m.content + eos;
        } else {
            refused(ChatFormat::Mistral, "Only user and assistant roles are supported, with the exception of an "
                                         "initial optional system message!");
        }
    }
    return out;
}

std::string format_mistral_legacy(const std::vector<ChatMessage>& messages, const std::string& bos,
                                  const std::string& eos) {
    std::string out = bos;
    for (size_t i = 0; i < messages.size(); i++) {
        const ChatMessage& m = messages[i];
        // A system message fails this check first when it opens the conversation.
        if ((m.role == "user") != (i % 2 == 0)) {
            refused(ChatFormat::MistralLegacy, "Conversation roles must alternate user/assistant/user/assistant/...");
        }
        if (m.role == "user") {
            out += "[INST] " + m.content + " [/INST]";
        } else if (m.role == "assistant") {
            out += m.content + eos;
        } else {
            refused(ChatFormat::MistralLegacy, "Only user and assistant roles are supported!");
        }
    }
    return out;
}

}  // namespace

ChatFormat detect_chat_format(const std::string& t) {
    if (t.empty()) {
        throw Error("the model has no chat template (tokenizer.chat_template is missing or empty); "
                    "run with --no-chat for raw completion");
    }
    if (contains(t, "<|im_start|>")) return detect_chatml(t);
    if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>")) return detect_llama3(t);
    if (contains(t, "[INST]")) return detect_inst(t);
    if (contains(t, "[gMASK]<sop>")) return detect_glm(t);
    unrecognised("none of the markers of a known family");
}

const char* chat_format_name(ChatFormat f) {
    for (const FormatInfo& info : kFormats) {
        if (info.format == f) return info.name;
    }
    return "unknown";
}

ChatFormat chat_format_from_name(const std::string& name) {
    for (const FormatInfo& info : kFormats) {
        if (name == info.name) return info.format;
    }
    throw Error("unknown chat format '" + name + "'; the formats are " + format_names());
}

std::string format_chat(ChatFormat f, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        const std::string& bos_token, const std::string& eos_token, bool enable_thinking) {
    HEARTH_CHECK(!messages.empty(), "cannot format an empty conversation: give at least one message");
    for (const ChatMessage& m : messages) {
        if (m.role != "system" && m.role != "user" && m.role != "assistant") {
            throw Error("chat message role '" + m.role + "' is not one of system, user, assistant");
        }
    }
    switch (f) {
        case ChatFormat::ChatML:
        case ChatFormat::SmolLM2:
        case ChatFormat::Qwen2:
        case ChatFormat::Qwen25: return format_chatml(f, messages, add_generation_prompt);
        case ChatFormat::Llama2: return format_llama2(messages, bos_token, eos_token);
        case ChatFormat::Llama3: return format_llama3(messages, add_generation_prompt, bos_token);
        case ChatFormat::Llama31: return format_llama31(messages, add_generation_prompt, bos_token, "26 Jul 2024");
        case ChatFormat::Llama32:
            return format_llama31(messages, add_generation_prompt, bos_token, today_as_llama_date());
        case ChatFormat::Mistral: return format_mistral_v1(messages, bos_token, eos_token);
        case ChatFormat::MistralLegacy: return format_mistral_legacy(messages, bos_token, eos_token);
        case ChatFormat::Qwen3: return format_qwen3(messages, add_generation_prompt, enable_thinking);
        case ChatFormat::Glm4: return format_glm4(messages, add_generation_prompt);
    }
    throw Error("format_chat: unknown chat format");
}

}  // namespace hearth
