"""Chat templates: hearthlm.chat_template renders the real templates of
tests/data/chat_templates/ exactly as transformers' apply_chat_template does
(raising where it raises), and the C++ families the `hearth` executable uses
(_core.testing.detect_chat_format / _core.testing.format_chat) write the same text as the
real template of each family.
"""
from __future__ import annotations

import datetime
import functools
import pathlib

import pytest
from hypothesis import given, settings, strategies as st

from conftest import SMOLLM2_DIR
from hearthlm import HearthError, _core
from hearthlm.chat_template import (ChatTemplateError, _compile, render_chat_template, special_tokens_for,
                                    template_from_metadata)

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TEMPLATES = pathlib.Path(__file__).resolve().parent / "data" / "chat_templates"

# file -> (the C++ family, or None where hearth must refuse it; bos; eos):
# each template with its model's own special tokens (None: the model has none).
REAL_TEMPLATES = {
    "smollm2-135m-instruct.jinja": ("smollm2", "<|im_start|>", "<|im_end|>"),
    "openhermes-2.5-mistral-7b.jinja": ("chatml", "<s>", "<|im_end|>"),
    "qwen2-7b-instruct.jinja": ("qwen2", None, "<|im_end|>"),
    "qwen2.5-7b-instruct.jinja": ("qwen2.5", None, "<|im_end|>"),
    "qwen2.5-math-7b-instruct.jinja": (None, None, "<|im_end|>"),
    "llama-2-13b-chat.jinja": ("llama2", "<s>", "</s>"),
    "meta-llama-3-8b-instruct.jinja": ("llama3", "<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.3-70b-instruct.jinja": ("llama3.1", "<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.2-3b-instruct.jinja": ("llama3.2", "<|begin_of_text|>", "<|eot_id|>"),
    "mixtral-8x7b-instruct-v0.1.jinja": ("mistral-v1", "<s>", "</s>"),
    "mistral-7b-instruct-v0.2-original.jinja": ("mistral-legacy", "<s>", "</s>"),
    "mistral-7b-instruct-v0.1-original.jinja": (None, "<s>", "</s>"),
    "qwen3-0.6b.jinja": ("qwen3", None, "<|im_end|>"),
    "glm-4-9b-chat.jinja": ("glm4", None, "<|endoftext|>"),
}
FAMILY_TEMPLATES = [name for name, (family, _, _) in REAL_TEMPLATES.items() if family]

# Python's str.isspace() characters (what strip() and Jinja's trim remove),
# U+001C..U+001F included, which are not Unicode White_Space.
PY_SPACES = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def system(text):
    return {"role": "system", "content": text}


CONVERSATIONS = {
    "one_user_turn": [user("What is the capital of France?")],
    "system_and_user": [system("You are terse."), user("Name a prime number.")],
    "several_turns": [user("Hi!"), assistant("Hello. How can I help?"), user("Tell me a joke."),
                      assistant("Why did the chicken cross the road?"), user("Why?")],
    "system_and_several_turns": [system("Answer in French."), user("Good morning"), assistant("Bonjour"),
                                 user("Thank you")],
    "chinese_and_emoji_with_edge_whitespace": [
        system("  你是一个乐于助人的助手。\n"), user("浙江的省会在哪里？🙂  "), assistant("\n 杭州 🏯。\u3000"),
        user("\u00a0谢谢！👍🏽\x1c")],
    "ends_with_assistant": [user("Count to three."), assistant("1, 2, 3")],
    "system_alone": [system("You are a calculator.")],
    "empty_contents": [system(""), user(""), assistant(""), user("")],
    "system_in_the_middle": [user("Hi"), system("Be formal from now on."), user("Hello again")],
    "starts_with_assistant": [assistant("Welcome!"), user("Thanks")],
    "two_users_in_a_row": [user("First"), user("Second")],
    # Qwen3's reasoning: kept after the last user turn, dropped before it
    "thinking_turns": [user("2+2?"), assistant("<think>\nadd them\n</think>\n\n4"), user("and 3+3?"),
                       assistant("<think>six</think>6")],
    "thinking_in_history": [system("Be brief."), user("Hi"), assistant("<think>greet</think>Hello!"), user("Bye")],
    "odd_think_markup": [user("x"), assistant("a</think>b</think>\nc"), assistant("<think>\n\n</think>"),
                         assistant("no reasoning")],
    "tool_response_looking_user": [user("q"), assistant("<think>r</think>a"),
                                   user("<tool_response>\n42\n</tool_response>"), assistant("done")],
}


def template_text(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def reference_tokenizer(bos, eos):
    """A transformers tokenizer whose special tokens are bos / eos (None: unset),
    built offline: the vocabulary plays no part in rendering."""
    model = tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")
    kwargs = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizers.Tokenizer(model), **kwargs)


def reference_render(template, messages, add_generation_prompt, bos, eos, **kwargs):
    """transformers' text, or the exception it raised."""
    tok = reference_tokenizer(bos, eos)
    try:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                       chat_template=template, **kwargs)
    except Exception as e:  # noqa: BLE001 (the test compares whether both raise)
        return e


def our_render(template, messages, add_generation_prompt, bos, eos, **kwargs):
    try:
        return render_chat_template(template, messages, add_generation_prompt=add_generation_prompt,
                                    bos_token=bos, eos_token=eos, **kwargs)
    except ChatTemplateError as e:
        return e


def cpp_format(family, messages, add_generation_prompt, bos, eos):
    try:
        return _core.testing.format_chat(family, messages, add_generation_prompt, bos or "", eos or "")
    except HearthError as e:
        return e


def assert_same_outcome(ours, reference, what):
    """Equal text, or both raised (ours with a message)."""
    if isinstance(reference, Exception):
        assert isinstance(ours, Exception), f"{what}: the reference raised {reference!r}, we rendered {ours!r}"
        assert str(ours), f"{what}: an error without a message"
    else:
        assert not isinstance(ours, Exception), f"{what}: we raised {ours!r}, the reference rendered {reference!r}"
        assert ours == reference, f"{what}:\nours      {ours!r}\nreference {reference!r}"


# --- the Python renderer against transformers ---------------------------------

@pytest.mark.parametrize("add_generation_prompt", [True, False], ids=["with_generation_prompt", "without"])
@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
@pytest.mark.parametrize("name", list(REAL_TEMPLATES))
def test_render_equals_transformers_on_real_templates(name, conversation, add_generation_prompt):
    _, bos, eos = REAL_TEMPLATES[name]
    template, messages = template_text(name), CONVERSATIONS[conversation]
    assert_same_outcome(our_render(template, messages, add_generation_prompt, bos, eos),
                        reference_render(template, messages, add_generation_prompt, bos, eos),
                        f"{name} on {conversation}")


def test_templates_that_refuse_a_system_message_raise_in_both():
    """The first Mistral templates take no system message: transformers and
    we both raise, with the template's own words."""
    for name in ("mistral-7b-instruct-v0.2-original.jinja", "mistral-7b-instruct-v0.1-original.jinja"):
        _, bos, eos = REAL_TEMPLATES[name]
        messages = CONVERSATIONS["system_and_user"]
        reference = reference_render(template_text(name), messages, True, bos, eos)
        assert isinstance(reference, Exception)
        with pytest.raises(ChatTemplateError, match="Conversation roles must alternate"):
            render_chat_template(template_text(name), messages, bos_token=bos, eos_token=eos)


def test_templates_that_refuse_a_role_order_raise_in_both():
    for name in ("llama-2-13b-chat.jinja", "mixtral-8x7b-instruct-v0.1.jinja",
                 "mistral-7b-instruct-v0.2-original.jinja"):
        _, bos, eos = REAL_TEMPLATES[name]
        messages = CONVERSATIONS["two_users_in_a_row"]
        assert isinstance(reference_render(template_text(name), messages, True, bos, eos), Exception)
        with pytest.raises(ChatTemplateError, match="roles must alternate"):
            render_chat_template(template_text(name), messages, bos_token=bos, eos_token=eos)


def test_mistral_v1_takes_a_system_message_into_the_first_turn():
    text = render_chat_template(template_text("mixtral-8x7b-instruct-v0.1.jinja"), CONVERSATIONS["system_and_user"],
                                bos_token="<s>", eos_token="</s>")
    assert text == "<s> [INST] You are terse.\n\nName a prime number. [/INST]"


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "天气 <today> & \"tomorrow\"",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
TOOL_CONVERSATION = [
    user("北京天气如何？"),
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "北京"}}}]},
    {"role": "tool", "content": "晴 ☀️"},
]


@pytest.mark.parametrize("name", ["qwen2.5-7b-instruct.jinja", "llama-3.3-70b-instruct.jinja",
                                  "llama-3.2-3b-instruct.jinja"])
def test_tools_and_tool_calls_render_as_in_transformers(name):
    _, bos, eos = REAL_TEMPLATES[name]
    template = template_text(name)
    ours = render_chat_template(template, TOOL_CONVERSATION, bos_token=bos, eos_token=eos, tools=TOOLS)
    assert ours == reference_render(template, TOOL_CONVERSATION, True, bos, eos, tools=TOOLS)
    assert "天气 <today> &" in ours  # tojson keeps non-ASCII and HTML characters as they are


def test_extra_variables_reach_the_template_as_in_transformers():
    template = template_text("llama-3.3-70b-instruct.jinja")
    messages = CONVERSATIONS["system_and_user"]
    ours = render_chat_template(template, messages, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                date_string="01 Jan 2030")
    assert "Today Date: 01 Jan 2030" in ours
    assert ours == reference_render(template, messages, True, "<|begin_of_text|>", "<|eot_id|>",
                                    date_string="01 Jan 2030")


def test_documents_reach_the_template_as_in_transformers():
    template = "{% for d in documents %}[{{ d.title }}: {{ d.text }}]{% endfor %}{{ messages[0].content }}"
    documents = [{"title": "Hangzhou", "text": "浙江省会"}, {"title": "Paris", "text": "capitale"}]
    ours = render_chat_template(template, [user("q")], documents=documents)
    assert ours == "[Hangzhou: 浙江省会][Paris: capitale]q"
    assert ours == reference_render(template, [user("q")], True, None, None, documents=documents)


# --- the environment transformers builds ---------------------------------------

ENVIRONMENT_CASES = {
    "trim_and_lstrip_blocks": "{% for m in messages %}\n    {% if true %}\n{{ m.content }}\n    {% endif %}\n{% endfor %}\n",
    "loop_controls": "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}"
                     "{% for m in messages %}{% if loop.first %}{% continue %}{% endif %}{{ m.role }}{% endfor %}",
    "generation_block": "{% for m in messages %}{% generation %}{% set x = 'inner' %}<{{ m.content }}>"
                        "{% endgeneration %}{{ x is defined }}{% endfor %}",
    "tojson_options": "{{ messages | tojson }}|{{ messages[0] | tojson(indent=2, sort_keys=true) }}|"
                      "{{ {'b': 1, 'a': [1, 2]} | tojson(separators=(',', ':')) }}",
    "dict_global": "{{ dict(a=1, b='é') | tojson }}{{ dict.fromkeys(['x', 'y'], 0) | tojson }}",
    "namespace_global": "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}"
                        "{{ ns.n }}",
    "strftime_now_global": "{{ strftime_now('%Y-%m-%d') }}",
    "variables_given": "{{ add_generation_prompt }}|{{ tools }}|{{ documents }}|{{ bos_token }}|{{ eos_token }}",
    "undefined_is_empty": "[{{ nothing }}][{{ messages[0].nothing }}][{{ nothing is defined }}]",
    "string_methods": "{{ messages[0].content.strip().upper() }}|{{ messages[0].content.split(' ') | length }}"
                      "|{{ messages[0].content | trim }}|{{ messages[0].content.startswith(' ') }}",
    "keep_no_trailing_newline": "{{ messages[0].role }}\n",
}


@pytest.mark.parametrize("case", list(ENVIRONMENT_CASES))
def test_environment_behaves_as_transformers(case):
    template = ENVIRONMENT_CASES[case]
    messages = [user(" a b "), assistant("c"), user("d")]
    ours = our_render(template, messages, False, "<s>", "</s>")
    assert not isinstance(ours, Exception), ours
    assert ours == reference_render(template, messages, False, "<s>", "</s>")


def test_strftime_now_gives_today():
    assert render_chat_template("{{ strftime_now('%d %b %Y') }}", [user("x")]) in {
        d.strftime("%d %b %Y") for d in (datetime.datetime.now(), datetime.datetime.now() - datetime.timedelta(1))}


def test_raise_exception_becomes_chat_template_error_with_the_template_message():
    template = "{{ raise_exception('Only user and assistant roles are supported!') }}"
    assert isinstance(reference_render(template, [user("x")], True, None, None),
                      transformers.utils.chat_template_utils.jinja2.exceptions.TemplateError)
    with pytest.raises(ChatTemplateError, match="refused the conversation: Only user and assistant roles"):
        render_chat_template(template, [user("x")])
    assert issubclass(ChatTemplateError, ValueError)


def test_template_that_does_not_compile_raises_with_the_line():
    with pytest.raises(ChatTemplateError, match=r"does not compile: .*line 2"):
        render_chat_template("{% for m in messages %}\n{{ m.content }\n{% endfor %}", [user("x")])


def test_template_that_fails_in_python_raises_chat_template_error():
    with pytest.raises(ChatTemplateError, match="failed to render: TypeError"):
        render_chat_template("{{ messages[0].content + 1 }}", [user("x")])


def test_special_token_given_as_none_is_undefined_as_an_unset_one():
    template = "{{ bos_token is defined }}{{ eos_token is defined }}"
    assert render_chat_template(template, [user("x")], bos_token=None, eos_token="</s>") == "FalseTrue"
    assert reference_render(template, [user("x")], True, None, "</s>") == "FalseTrue"


def test_message_keys_set_to_none_are_dropped_as_in_transformers():
    template = "{{ messages[0].tool_calls is defined }}{{ messages[0].content is defined }}"
    messages = [{"role": "assistant", "content": None, "tool_calls": None}]
    assert render_chat_template(template, messages) == "FalseFalse"
    assert reference_render(template, messages, True, None, None) == "FalseFalse"


def test_reasoning_is_aliased_as_in_transformers():
    template = "{{ messages[0].reasoning_content }}|{{ messages[0].thinking }}|{{ messages[0].reasoning }}"
    messages = [{"role": "assistant", "content": "4", "reasoning": "2+2"}]
    assert render_chat_template(template, messages) == "2+2|2+2|2+2"
    assert reference_render(template, messages, True, None, None) == "2+2|2+2|2+2"


def test_objects_reach_the_template_as_inert_placeholders():
    """A value that is not plain JSON data (a file, a function) must not give
    the template its methods: transformers shows "<TypeName>" instead."""
    import io

    template = "{{ messages[0].content }}|{{ messages[0].extra }}|{{ messages[0].extra.read }}"
    messages = [{"role": "user", "content": "hi", "extra": io.StringIO("secret")}]
    assert render_chat_template(template, messages) == "hi|<StringIO>|"
    assert reference_render(template, messages, True, None, None) == "hi|<StringIO>|"


def test_empty_conversation_is_refused_as_in_transformers():
    assert isinstance(reference_render(template_text("smollm2-135m-instruct.jinja"), [], True, None, None),
                      ValueError)
    with pytest.raises(ValueError, match="empty conversation"):
        render_chat_template(template_text("smollm2-135m-instruct.jinja"), [])


def test_tools_must_be_schemas_and_documents_dicts():
    with pytest.raises(ValueError, match="tools must be JSON schemas"):
        render_chat_template("{{ tools }}", [user("x")], tools=[len])
    assert isinstance(reference_render("{{ tools }}", [user("x")], True, None, None, tools=[len]), ValueError)
    with pytest.raises(TypeError, match="documents must be dicts"):
        render_chat_template("{{ documents }}", [user("x")], documents=["plain text"])
    assert isinstance(reference_render("{{ documents }}", [user("x")], True, None, None, documents=["plain text"]),
                      TypeError)


def test_missing_template_is_a_chat_template_error():
    for template in ("", None):
        with pytest.raises(ChatTemplateError, match="no chat template"):
            render_chat_template(template, [user("x")])


def test_each_template_compiles_once():
    template = "{{ messages[0].content }} compiled once"
    before = _compile.cache_info()
    for _ in range(3):
        assert render_chat_template(template, [user("x")]) == "x compiled once"
    after = _compile.cache_info()
    assert after.misses == before.misses + 1 and after.hits == before.hits + 2


# --- the sandbox -----------------------------------------------------------------

ESCAPES = {
    "str_class_mro": "{{ ''.__class__.__mro__ }}",
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler_globals": "{{ cycler.__init__.__globals__ }}",
    "cycler_globals_os": "{{ cycler.__init__.__globals__.os.system('echo pwned') }}",
    "namespace_globals": "{{ namespace.__init__.__globals__ }}",
    "joiner_globals": "{{ joiner.__init__.__globals__['__builtins__'] }}",
    "dict_type_mro": "{{ dict.mro() }}",
    "message_dict_mutation": "{{ messages[0].update({'role': 'system'}) }}",
    "message_list_mutation": "{{ messages.append(1) }}",
    "namespace_underscore_constructor": "{% set ns = namespace(__init__=1) %}",
    "namespace_underscore_assignment": "{% set ns = namespace() %}{% set ns._secret = 1 %}",
    "format_string_attribute": "{{ '{0.__class__.__mro__}'.format(messages) }}",
    "huge_range": "{{ range(10**9) | list | length }}",
}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_sandbox_refuses_templates_that_reach_python_internals(case):
    with pytest.raises(ChatTemplateError):
        render_chat_template(ESCAPES[case], [user("x")])


def test_one_unsafe_attribute_renders_as_undefined_as_in_transformers():
    """jinja2's sandbox answers a single unsafe attribute with an undefined
    value (printed empty, raising on any further use): nothing leaks."""
    template = "[{{ ''.__class__ }}][{{ messages.__class__ }}][{{ raise_exception.__globals__ }}]"
    assert render_chat_template(template, [user("x")]) == "[][][]"
    assert reference_render(template, [user("x")], True, None, None) == "[][][]"


def test_jinja2_with_known_sandbox_escapes_is_refused(monkeypatch):
    from hearthlm import chat_template

    monkeypatch.setattr(chat_template.jinja2, "__version__", "3.1.5")
    chat_template._environment.cache_clear()
    try:
        with pytest.raises(ImportError, match="jinja2 >= 3.1.6"):
            chat_template._environment()
    finally:
        monkeypatch.undo()
        chat_template._environment.cache_clear()
    assert render_chat_template("{{ messages[0].content }}", [user("ok")]) == "ok"


def test_sandbox_escapes_also_fail_in_transformers():
    """The same templates are refused by the reference: the sandbox is the one
    transformers uses, not a stricter one that would render less."""
    for case, template in ESCAPES.items():
        assert isinstance(reference_render(template, [user("x")], True, None, None), Exception), case


# --- GGUF metadata ------------------------------------------------------------------

def test_template_and_special_tokens_from_metadata():
    metadata = {"tokenizer.chat_template": "{{ bos_token }}", "tokenizer.chat_template.tool_use": "T",
                "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "a"],
                "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
                "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.padding_token_id": 99}
    assert template_from_metadata(metadata) == "{{ bos_token }}"
    assert template_from_metadata(metadata, name="tool_use") == "T"
    assert template_from_metadata({"tokenizer.chat_template": ""}) is None
    assert template_from_metadata({}) is None
    # an id outside the vocabulary names no token
    assert special_tokens_for(metadata) == {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    assert special_tokens_for({}) == {}


def test_smollm2_gguf_template_renders_and_is_recognised(smollm2_gguf, models_dir):
    import json

    metadata = _core.read_metadata(str(smollm2_gguf))
    template = template_from_metadata(metadata)
    hf_config = json.loads((models_dir / SMOLLM2_DIR / "hf" / "tokenizer_config.json").read_text())
    assert template == hf_config["chat_template"] == template_text("smollm2-135m-instruct.jinja")
    specials = special_tokens_for(metadata)
    assert (specials["bos_token"], specials["eos_token"]) == (hf_config["bos_token"], hf_config["eos_token"])
    assert _core.testing.detect_chat_format(template) == "smollm2"
    for messages in CONVERSATIONS.values():
        text = render_chat_template(template, messages, bos_token=specials["bos_token"],
                                    eos_token=specials["eos_token"])
        assert text == reference_render(template, messages, True, hf_config["bos_token"], hf_config["eos_token"])
        assert _core.testing.format_chat("smollm2", messages, True, specials["bos_token"], specials["eos_token"]) == text


# --- the C++ families ---------------------------------------------------------------

@pytest.mark.parametrize("name", list(REAL_TEMPLATES))
def test_detect_chat_format_recognises_each_family_from_its_real_template(name):
    family = REAL_TEMPLATES[name][0]
    if family is None:
        with pytest.raises(HearthError, match=r"does not recognise this chat template.*--no-chat"):
            _core.testing.detect_chat_format(template_text(name))
    else:
        assert _core.testing.detect_chat_format(template_text(name)) == family


@pytest.mark.parametrize("add_generation_prompt", [True, False], ids=["with_generation_prompt", "without"])
@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
@pytest.mark.parametrize("name", FAMILY_TEMPLATES)
def test_format_chat_equals_the_real_template(name, conversation, add_generation_prompt):
    family, bos, eos = REAL_TEMPLATES[name]
    messages = CONVERSATIONS[conversation]
    assert_same_outcome(cpp_format(family, messages, add_generation_prompt, bos, eos),
                        our_render(template_text(name), messages, add_generation_prompt, bos, eos),
                        f"C++ {family} against {name} on {conversation}")


@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
def test_qwen3_without_thinking_equals_the_real_template(conversation):
    messages = CONVERSATIONS[conversation]
    want = reference_render(template_text("qwen3-0.6b.jinja"), messages, True, None, "<|im_end|>",
                            enable_thinking=False)
    got = _core.testing.format_chat("qwen3", messages, True, "", "<|im_end|>", enable_thinking=False)
    assert_same_outcome(got, want, conversation)
    if not isinstance(want, Exception):
        assert got.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_format_chat_refuses_with_the_template_message():
    with pytest.raises(HearthError, match="mistral-legacy chat template refuses the conversation: "
                                          "Conversation roles must alternate"):
        _core.testing.format_chat("mistral-legacy", CONVERSATIONS["system_and_user"], True, "<s>", "</s>")
    with pytest.raises(HearthError, match="Only user and assistant roles are supported, with the exception"):
        _core.testing.format_chat("mistral-v1", CONVERSATIONS["system_in_the_middle"], True, "<s>", "</s>")


@pytest.mark.parametrize("name", ["llama-2-13b-chat.jinja", "meta-llama-3-8b-instruct.jinja",
                                  "llama-3.3-70b-instruct.jinja"])
def test_format_chat_strips_what_python_strip_strips(name):
    family, bos, eos = REAL_TEMPLATES[name]
    # U+200B and U+FEFF are not whitespace to Python: they stay
    messages = [system(PY_SPACES + "sys\u200b" + PY_SPACES), user(PY_SPACES + "\ufeffquestion" + PY_SPACES),
                assistant(PY_SPACES + "answer" + PY_SPACES), user(PY_SPACES)]
    reference = render_chat_template(template_text(name), messages, bos_token=bos, eos_token=eos)
    assert "\ufeffquestion" in reference and "\ufeffquestion" + PY_SPACES[0] not in reference  # it did strip
    assert _core.testing.format_chat(family, messages, True, bos, eos) == reference


def test_detect_chat_format_rejects_unknown_and_empty_templates_with_the_way_out():
    gemma = ("{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\n' + "
             "message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}")
    with pytest.raises(HearthError, match=r"does not recognise this chat template.*--no-chat"):
        _core.testing.detect_chat_format(gemma)
    with pytest.raises(HearthError, match=r"no chat template.*--no-chat"):
        _core.testing.detect_chat_format("")


def test_format_chat_refuses_unknown_roles_and_empty_conversations():
    with pytest.raises(HearthError, match="role 'tool' is not one of system, user, assistant"):
        _core.testing.format_chat("chatml", [user("x"), {"role": "tool", "content": "{}"}], True, "", "")
    with pytest.raises(HearthError, match="empty conversation"):
        _core.testing.format_chat("llama3", [], True, "", "")
    with pytest.raises(HearthError, match="unknown chat format 'vicuna'"):
        _core.testing.format_chat("vicuna", [user("x")], True, "", "")


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@st.composite
def alternating_conversations(draw):
    """A conversation every family accepts: an optional system message, then
    user and assistant turns in order, ending with the user."""
    turns = draw(st.integers(0, 3))
    messages = [system(draw(TEXT))] if draw(st.booleans()) else []
    for _ in range(turns):
        messages += [user(draw(TEXT)), assistant(draw(TEXT))]
    return messages + [user(draw(TEXT))]


@settings(max_examples=40, deadline=None)
@given(messages=alternating_conversations(), add_generation_prompt=st.booleans())
def test_render_equals_transformers_on_random_conversations(messages, add_generation_prompt):
    for name, (_, bos, eos) in REAL_TEMPLATES.items():
        template = template_text(name)
        assert_same_outcome(our_render(template, messages, add_generation_prompt, bos, eos),
                            reference_render(template, messages, add_generation_prompt, bos, eos), name)


@settings(max_examples=60, deadline=None)
@given(messages=alternating_conversations(), add_generation_prompt=st.booleans())
def test_format_chat_equals_every_real_template_on_random_conversations(messages, add_generation_prompt):
    for name in FAMILY_TEMPLATES:
        family, bos, eos = REAL_TEMPLATES[name]
        if family == "mistral-legacy" and messages[0]["role"] == "system":
            continue  # refused by both, checked above
        assert_same_outcome(cpp_format(family, messages, add_generation_prompt, bos, eos),
                            our_render(template_text(name), messages, add_generation_prompt, bos, eos),
                            f"C++ {family} against {name}")
