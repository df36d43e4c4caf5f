#include "chat/chat_session.h"

#include <algorithm>

#include "base/error.h"

namespace hearth {

namespace {

const Tokenizer& need_tokenizer(const Engine& e, const Tokenizer* tok) {
    if (!tok) {
        throw Error(e.model().file().err("it carries no tokenizer (no 'tokenizer.ggml.model'), so it cannot read text"));
    }
    return *tok;
}

std::string token_text(const Vocab& v, int32_t id) { return id >= 0 && id < v.n_tokens() ? std::string(v.text(id)) : ""; }

}  // namespace

ChatSession::ChatSession(Engine& e, const Tokenizer* tok, const ChatOptions& o)
    : e_(e), tok_(need_tokenizer(e, tok)), o_(o) {
    check_request_params(o.params);
    if (o_.chat) {
        const GGUFFile& f = e_.model().file();
        const std::string tmpl = f.get_string_or("tokenizer.chat_template", "");
        if (!o_.format.empty()) {
            format_ = chat_format_from_name(o_.format);
        } else if (tmpl.empty()) {
            throw Error(f.err("it has no chat template (tokenizer.chat_template); use --chat-format NAME to "
                              "choose one, or --no-chat for a raw completion"));
        } else {
            format_ = detect_chat_format(tmpl);
        }
        bos_ = token_text(tok_.vocab(), tok_.vocab().bos);
        eos_ = token_text(tok_.vocab(), tok_.vocab().eos);
        if (!o_.system.empty()) messages_.push_back(ChatMessage{"system", o_.system});
    }
}

const char* ChatSession::format_name() const { return o_.chat ? chat_format_name(format_) : "raw"; }

// Room the answer needs: its -n when smaller, else a quarter of the context.
int64_t answer_room(const RequestParams& p, int64_t n_ctx) {
    const int64_t quarter = std::max<int64_t>(1, n_ctx / 4);
    return p.generation.max_tokens > 0 ? std::min(p.generation.max_tokens, quarter) : quarter;
}

std::vector<int32_t> ChatSession::prompt_for(const std::string& user_text, int64_t* dropped_turns) {
    if (!o_.chat) return tok_.encode(user_text, true, true);
    messages_.push_back(ChatMessage{"user", user_text});
    // A conversation that no longer fits with room for an answer drops its
    // oldest turns, a user message and the answer to it at a time, keeping
    // the system message (llama-cli shifts its context the same way); the
    // new message alone may still be too long, which the engine then says.
    const int64_t limit = e_.n_ctx() - answer_room(o_.params, e_.n_ctx());
    for (;;) {
        const std::string text = format_chat(format_, messages_, true, bos_, eos_, o_.enable_thinking);
        std::vector<int32_t> ids = tok_.encode(text, false, true);  // the template writes BOS where the model wants it
        const size_t first = messages_[0].role == "system" ? 1 : 0;
        if ((int64_t)ids.size() <= limit || messages_.size() - first <= 1) return ids;
        const bool pair = messages_.size() - first >= 3 && messages_[first + 1].role == "assistant";
        messages_.erase(messages_.begin() + first, messages_.begin() + first + (pair ? 2 : 1));
        (*dropped_turns)++;
    }
}

TurnStats ChatSession::answer(const std::string& user_text, const std::function<void(const std::string&)>& on_text,
                              const std::atomic<bool>& stop) {
    const std::vector<ChatMessage> before = messages_;
    try {
        return answer_impl(user_text, on_text, stop);
    } catch (...) {
        messages_ = before;  // a refused turn (a template's error, a full context) leaves it as it was
        throw;
    }
}

TurnStats ChatSession::answer_impl(const std::string& user_text, const std::function<void(const std::string&)>& on_text,
                                   const std::atomic<bool>& stop) {
    TurnStats st;
    const std::vector<int32_t> prompt = prompt_for(user_text, &st.dropped_turns);
    st.prompt_tokens = (int64_t)prompt.size();
    RequestParams p = o_.params;
    if (p.has_seed && turn_ > 0) {
        // each turn its own stream, the same for the same seed
        p.sampling.seed = p.sampling.seed * 0x9E3779B97F4A7C15ull + (uint64_t)turn_;
    }
    const std::string id = "chat-" + std::to_string(turn_++);
    e_.add_request(id, prompt, p);

    std::string reply;
    bool done = false;
    while (!done) {
        if (stop.load()) {
            e_.abort_request(id);  // its blocks go back; the full ones stay cached for the next turn
            st.interrupted = true;
            break;
        }
        for (const RequestOutput& o : e_.step()) {
            if (o.request_id != id || o.outputs.empty()) continue;
            const CompletionDelta& d = o.outputs[0];
            st.generated_tokens += (int64_t)d.token_ids.size();
            if (!d.text.empty()) {
                on_text(d.text);
                reply += d.text;
            }
            st.reused_tokens = o.num_cached_tokens;
            if (o.first_token_time >= 0) {
                st.prefill_seconds = o.first_token_time - o.first_scheduled_time;
                st.decode_seconds = o.last_token_time - o.first_token_time;
            }
            if (o.finished) {
                done = true;
                st.finish = d.finish_reason;
                st.context_full = d.finish_reason == FinishReason::Length &&
                                  st.prompt_tokens + st.generated_tokens >= e_.n_ctx();
            }
        }
    }
    if (o_.chat) messages_.push_back(ChatMessage{"assistant", reply});
    return st;
}

void ChatSession::reset() {
    messages_.clear();
    if (o_.chat && !o_.system.empty()) messages_.push_back(ChatMessage{"system", o_.system});
}

}  // namespace hearth
