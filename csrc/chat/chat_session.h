// A conversation with the model, as the hearth executable holds it: the
// messages so far in the model's chat format (or raw text), one answer at a
// time streamed through a callback, and what each answer cost. Each turn is
// a request to the engine; the prefix cache keeps the conversation's KV
// blocks, so a turn computes little more than its new tokens.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "chat/chat_format.h"
#include "engine/engine.h"
#include "text/tokenizer.h"

namespace hearth {

struct ChatOptions {
    bool chat = true;    // false: raw completion of the text
    std::string system;  // a system message, when not empty
    bool enable_thinking = true;  // the template switch of the formats that have one (Qwen3)
    std::string format;           // a chat_format_name; empty: the one the file's template names
    RequestParams params;  // sampling, stop rules, beams (num_beams > 1: the answer comes at once)
};

struct TurnStats {
    int64_t prompt_tokens = 0, reused_tokens = 0, generated_tokens = 0;
    double prefill_seconds = 0, decode_seconds = 0;
    FinishReason finish = FinishReason::None;
    bool interrupted = false;
    bool context_full = false;  // the answer stopped at the end of the context
    int64_t dropped_turns = 0;  // oldest turns dropped so that this one fits (the context shift)
};

class ChatSession {
public:
    // Throws hearth::Error when the model has no tokenizer, or (chat mode)
    // no chat template in a format hearth knows.
    ChatSession(Engine& e, const Tokenizer* tok, const ChatOptions& o);
    const char* format_name() const;

    // Answers the user's text (chat) or continues it (raw); the answer's text
    // goes to on_text as it becomes whole. `stop` set from elsewhere (a
    // Ctrl-C) ends the answer early; it still becomes part of the history.
    TurnStats answer(const std::string& user_text, const std::function<void(const std::string&)>& on_text,
                     const std::atomic<bool>& stop);
    // Forgets the conversation.
    void reset();

private:
    TurnStats answer_impl(const std::string& user_text, const std::function<void(const std::string&)>& on_text,
                          const std::atomic<bool>& stop);
    std::vector<int32_t> prompt_for(const std::string& user_text, int64_t* dropped_turns);

    Engine& e_;
    const Tokenizer& tok_;
    ChatOptions o_;
    ChatFormat format_ = ChatFormat::ChatML;
    std::string bos_, eos_;
    std::vector<ChatMessage> messages_;
    int64_t turn_ = 0;
};

}  // namespace hearth
