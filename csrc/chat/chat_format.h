// Chat prompts for the `hearth` executable, which has no Python to run a
// model's Jinja chat template: the common template families, recognised by
// markers in tokenizer.chat_template (as llama.cpp does) and written out in
// C++ exactly as each family's real template renders them. The Python API
// renders any template itself (hearthlm.chat_template).
#pragma once

#include <string>
#include <vector>

namespace hearth {

enum class ChatFormat {
    ChatML,         // <|im_start|>role\n...<|im_end|>\n (OpenHermes, Qwen2 tokenizers, ...)
    Llama2,         // Llama 2 chat: [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST]
    Llama3,         // Llama 3 Instruct: <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
    Mistral,        // mistralai's "v1" template: a system message joins the first [INST]
    SmolLM2,        // ChatML with SmolLM2's default system message
    Qwen2,          // ChatML with Qwen2-Instruct's default system message
    Qwen25,         // ChatML with Qwen2.5-Instruct's default system message
    Llama31,        // Llama 3.1 / 3.3: a system header always, dated 26 Jul 2024
    Llama32,        // Llama 3.2: as 3.1, dated today
    MistralLegacy,  // Mistral-7B-Instruct-v0.2 as first released: no system message
    Qwen3,          // Qwen3's ChatML: <think> reasoning kept only after the last user turn
    Glm4,           // GLM-4-9B-chat: [gMASK]<sop><|role|>\ncontent..., empty messages left out
};

struct ChatMessage {
    std::string role, content;
};

// The family of a tokenizer.chat_template. Throws hearth::Error when the
// template is empty or none of the families hearth writes exactly; the
// message says so and suggests --no-chat (raw completion).
ChatFormat detect_chat_format(const std::string& template_text);

// "chatml", "llama2", "llama3", "mistral-v1", "smollm2", "qwen2", "qwen2.5",
// "llama3.1", "llama3.2", "mistral-legacy", "qwen3", "glm4"; chat_format_from_name is the
// inverse (throws hearth::Error for another name).
const char* chat_format_name(ChatFormat f);
ChatFormat chat_format_from_name(const std::string& name);

// The prompt for the conversation, with the assistant's header when
// add_generation_prompt (families whose template has no such header ignore
// it, as the template does), exactly as the family's real template renders
// it; bos_token / eos_token are the model's strings, written where the
// template writes them. Roles: system, user, assistant. A conversation the
// template refuses (a system message where it takes none, roles that do not
// alternate) throws hearth::Error with the template's message.
// enable_thinking: the template variable of the families that take it
// (Qwen3: false closes an empty <think> block after the generation prompt).
std::string format_chat(ChatFormat f, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        const std::string& bos_token, const std::string& eos_token, bool enable_thinking = true);

}  // namespace hearth
