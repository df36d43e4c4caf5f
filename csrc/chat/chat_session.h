// A conversation with the model, as the hearth executable holds it: the
// messages so far in the model's chat format (or raw text), one answer at a
// time streamed through a callback, and what each answer cost. The cache
// keeps the conversation, so each turn computes only its new tokens.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "generate/beam_search.h"
#include "chat/chat_format.h"
#include "generate/generation.h"
#include "model/model.h"
#include "generate/sampler.h"

namespace hearth {

struct ChatOptions {
    bool chat = true;        // false: raw completion of the text
    std::string system;      // a system message, when not empty
    SamplingParams sampling;
    GenerationParams generation;
    int num_beams = 1;       // > 1: beam search (the answer comes at once)
};

struct TurnStats {
    int64_t prompt_tokens = 0, reused_tokens = 0, generated_tokens = 0;
    double prefill_seconds = 0, decode_seconds = 0;
    FinishReason finish = FinishReason::None;
    bool interrupted = false;
};

class ChatSession {
public:
    // Throws hearth::Error when the model has no tokenizer, or (chat mode)
    // no chat template in a format hearth knows.
    ChatSession(Model& m, const ChatOptions& o);
    const char* format_name() const;

    // Answers the user's text (chat) or continues it (raw); the answer's text
    // goes to on_text as it becomes whole. `stop` set from elsewhere (a
    // Ctrl-C) ends the answer early; it still becomes part of the history.
    TurnStats answer(const std::string& user_text, const std::function<void(const std::string&)>& on_text,
                     const std::atomic<bool>& stop);
    // Forgets the conversation (and the cache).
    void reset();

private:
    TurnStats answer_impl(const std::string& user_text, const std::function<void(const std::string&)>& on_text,
                          const std::atomic<bool>& stop);
    std::vector<int32_t> prompt_for(const std::string& user_text);

    Model& m_;
    const Tokenizer& tok_;
    ChatOptions o_;
    ChatFormat format_ = ChatFormat::ChatML;
    std::string bos_, eos_;
    std::vector<ChatMessage> messages_;
    Sampler sampler_;
};

}  // namespace hearth
