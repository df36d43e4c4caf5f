#include "chat/chat_session.h"

#include <chrono>

#include "base/error.h"

namespace hearth {

namespace {

const Tokenizer& need_tokenizer(const Model& m) {
    if (!m.tokenizer()) throw Error(m.file().err("it carries no tokenizer (no 'tokenizer.ggml.model'), so it cannot read text"));
    return *m.tokenizer();
}

std::string token_text(const Vocab& v, int32_t id) { return id >= 0 && id < v.n_tokens() ? std::string(v.text(id)) : ""; }

}  // namespace

ChatSession::ChatSession(Model& m, const ChatOptions& o)
    : m_(m), tok_(need_tokenizer(m)), o_(o), sampler_(o.sampling) {
    check_generation_params(o.generation);
    if (o_.chat) {
        const std::string tmpl = m_.file().get_string_or("tokenizer.chat_template", "");
        if (tmpl.empty()) {
            throw Error(m_.file().err("it has no chat template (tokenizer.chat_template); use --no-chat for a raw completion"));
        }
        format_ = detect_chat_format(tmpl);
        bos_ = token_text(tok_.vocab(), tok_.vocab().bos);
        eos_ = token_text(tok_.vocab(), tok_.vocab().eos);
        if (!o_.system.empty()) messages_.push_back(ChatMessage{"system", o_.system});
    }
}

const char* ChatSession::format_name() const { return o_.chat ? chat_format_name(format_) : "raw"; }

std::vector<int32_t> ChatSession::prompt_for(const std::string& user_text) {
    if (!o_.chat) return tok_.encode(user_text, true, true);
    messages_.push_back(ChatMessage{"user", user_text});
    const std::string text = format_chat(format_, messages_, true, bos_, eos_);
    return tok_.encode(text, false, true);  // the template writes BOS where the model wants it
}

TurnStats ChatSession::answer(const std::string& user_text, const std::function<void(const std::string&)>& on_text,
                              const std::atomic<bool>& stop) {
    const size_t n_messages = messages_.size();
    try {
        return answer_impl(user_text, on_text, stop);
    } catch (...) {
        messages_.resize(n_messages);  // a refused turn (a template's error, a full context) leaves it as it was
        throw;
    }
}

TurnStats ChatSession::answer_impl(const std::string& user_text, const std::function<void(const std::string&)>& on_text,
                                   const std::atomic<bool>& stop) {
    TurnStats st;
    const std::vector<int32_t> prompt = prompt_for(user_text);
    st.prompt_tokens = (int64_t)prompt.size();
    const int seq = m_.default_sequence();
    std::string reply;
    if (o_.num_beams > 1) {
        BeamSearchParams bp;
        bp.num_beams = o_.num_beams;
        bp.max_new_tokens = o_.generation.max_tokens > 0 ? o_.generation.max_tokens : m_.n_ctx() - (int64_t)prompt.size();
        bp.repetition_penalty = o_.sampling.repetition_penalty;
        const auto t0 = std::chrono::steady_clock::now();
        BeamSearchResult r = beam_search(m_, seq, prompt, bp);
        st.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::vector<int32_t> tokens = r.hypotheses[0].tokens;
        const bool ended = !tokens.empty() && tok_.vocab().ends_generation(tokens.back());
        if (ended) tokens.pop_back();
        reply = tok_.decode(tokens.data(), tokens.size(), false);
        st.generated_tokens = (int64_t)r.hypotheses[0].tokens.size();
        st.finish = ended ? FinishReason::Stop : FinishReason::Length;
        on_text(reply);
    } else {
        Generation g(m_, seq, prompt, o_.generation, sampler_);
        GeneratedToken t;
        while (!stop.load() && g.step(t)) {
            if (!t.text.empty()) {
                on_text(t.text);
                reply += t.text;
            }
        }
        st.interrupted = !g.finished();
        st.reused_tokens = g.reused_tokens();
        st.generated_tokens = (int64_t)g.output().size();
        st.prefill_seconds = g.prefill_seconds();
        st.decode_seconds = g.decode_seconds();
        st.finish = g.finish_reason();
    }
    if (o_.chat) messages_.push_back(ChatMessage{"assistant", reply});
    return st;
}

void ChatSession::reset() {
    messages_.clear();
    if (o_.chat && !o_.system.empty()) messages_.push_back(ChatMessage{"system", o_.system});
    m_.reset();
}

}  // namespace hearth
