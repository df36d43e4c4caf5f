// fuzz_chat_format: the C++ chat-format matcher (csrc/chat/chat_format.*) on
// arbitrary templates and conversations. The family of the template is
// detected and, when recognised, the conversation rendered with it; the
// conversation is also rendered with a family the input names, so that every
// family's writer sees every conversation. hearth::Error (an unknown
// template, a conversation the family's template refuses, a role other than
// system / user / assistant) is the expected outcome; anything else is a bug.
//
// Input: byte 0 = flags (bit 0 add_generation_prompt, bit 1 enable_thinking,
// bits 2..7 a family, by ChatFormat's number); the rest split at NUL bytes:
// the template, then role, content, role, content, ...
//
// Run (tests/fuzz/run.sh does all of it):
//   build-fuzz/fuzz_chat_format build-fuzz/corpus/fuzz_chat_format build-fuzz/seeds/fuzz_chat_format \
//       -max_total_time=60
#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "chat/chat_format.h"

using namespace hearth;

namespace {

constexpr int kFamilies = (int)ChatFormat::Glm4 + 1;

std::vector<std::string> split_at_nul(const uint8_t* data, size_t size) {
    std::vector<std::string> parts(1);
    for (size_t i = 0; i < size; i++) {
        if (data[i] == 0) parts.emplace_back();
        else parts.back().push_back((char)data[i]);
    }
    return parts;
}

void render(ChatFormat f, const std::vector<ChatMessage>& messages, bool add_generation_prompt, bool thinking) {
    try {
        format_chat(f, messages, add_generation_prompt, "<s>", "</s>", thinking);
    } catch (const Error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const bool add_generation_prompt = data[0] & 1, thinking = data[0] & 2;
    const int named_family = (data[0] >> 2) % kFamilies;

    const std::vector<std::string> parts = split_at_nul(data + 1, size - 1);
    std::vector<ChatMessage> messages;
    for (size_t i = 1; i < parts.size(); i += 2) {
        messages.push_back({parts[i], i + 1 < parts.size() ? parts[i + 1] : std::string()});
    }

    try {
        const ChatFormat f = detect_chat_format(parts[0]);
        render(f, messages, add_generation_prompt, thinking);
    } catch (const Error&) {
    }
    render((ChatFormat)named_family, messages, add_generation_prompt, thinking);
    return 0;
}
