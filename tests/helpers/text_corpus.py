"""A deterministic text corpus for the tokenizer tests: no downloads, built
from the fragments below with a seeded random generator, so every run (and
every machine) sees the same text.

    lines()         ~6,000 varied lines (a line may hold \\n, \\r\\n, ...)
    as_one_text()   the lines joined with "\\n"
    invalid_utf8()  byte strings that are not valid UTF-8, alone and mixed in

The fragments aim at what splits differently between tokenizers: scripts
without spaces, emoji sequences, runs of spaces and newlines, Unicode spaces
and numerals, combining marks, contractions in every case, apostrophe look-
alikes, and special-token strings inside ordinary text. All characters are
old enough (Unicode <= 15) that every reference library knows them.
"""
from __future__ import annotations

import functools
import random

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times.",
    "A journey of a thousand miles begins with a single step.",
    "She sells sea shells by the sea shore; the shells she sells are surely seashells.",
    "Hello, world! How are you today?",
    "In 1969, Apollo 11 landed on the Moon (July 20th, 20:17 UTC).",
    "Prices rose 3.5% in Q2 -- more than the expected 2.9%.",
    "\"Quoted text,\" he said, 'and single quotes too.'",
    "Email me at someone@example.com or visit https://example.org/path?q=1&x=2.",
    "Well... that's that. Or is it?!",
    "The committee's decision -- unanimous, surprisingly -- was final.",
    "co-operate, re-enter, well-known, state-of-the-art",
    "Mr. Smith went to Washington; Mrs. Jones stayed in St. Louis.",
    "ALL CAPS SENTENCE WITH SHOUTING AND NUMBERS 123",
    "mIxEd CaSe WoRdS aNd ThInGs",
    "Naïve café owners in Zürich serve crème brûlée à la carte.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "#hashtag @mention $100 50% a+b=c x^2 ~tilde `backtick` |pipe|",
]

CHINESE_SIMPLIFIED = [
    "我爱自然语言处理。",
    "今天天气很好，我们去公园散步吧！",
    "机器学习是人工智能的一个分支。",
    "这是一个测试句子，包含标点符号：逗号、句号。",
    "中文里没有空格分词",
]
CHINESE_TRADITIONAL = [
    "我愛自然語言處理。",
    "今天天氣很好，我們去公園散步吧！",
    "臺灣的繁體中文與簡體中文不同。",
    "資訊科技與電腦軟體",
]
JAPANESE = [
    "日本語の文章です。",
    "ひらがなとカタカナと漢字を混ぜて書きます。",
    "東京は日本の首都です｡ ｶﾀｶﾅ",
    "コンピューターはとても便利ですね！",
]
KOREAN = [
    "안녕하세요, 만나서 반갑습니다.",
    "한국어는 띄어쓰기를 합니다.",
    "서울은 대한민국의 수도입니다!",
]
ARABIC = [
    "مرحبا بالعالم",
    "اللغة العربية جميلة جدا.",
    "الرقم ٣٤٥ مكتوب بالأرقام العربية",
]
HINDI = [
    "नमस्ते दुनिया",
    "हिन्दी भाषा देवनागरी लिपि में लिखी जाती है।",
    "संख्या १२३ और क्षत्रिय",
]
RUSSIAN = [
    "Привет, мир!",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "МОСКВА — столица России.",
]
OTHER_SCRIPTS = [
    "Γειά σου Κόσμε! ΑΒΓ αβγ",
    "שלום עולם",
    "สวัสดีชาวโลก",
    "Xin chào thế giới, tiếng Việt có dấu.",
    "Ελληνικά: ΣΊΣΥΦΟΣ σίσυφος",
    "Türkçe: İstanbul, ılık, IŞIK",
]
EMOJI = [
    "😀", "😂🤣", "👍", "👍🏽", "✋🏻✋🏿", "❤️", "❤", "🔥🔥🔥",
    "👨‍👩‍👧‍👦", "🧑🏿‍💻", "👩‍❤️‍💋‍👨", "🏳️‍🌈", "🏴‍☠️",
    "🇺🇸", "🇯🇵🇫🇷", "🇺", "1️⃣", "#️⃣", "☺︎", "🙂 ok 🙃",
]
CODE = [
    "def f(x):\n\treturn x  +  1",
    "    if (a && b) {\n        return -1;\n    }",
    "for i in range(10):\n    print(i)\r\n",
    "int main(void) { printf(\"%d\\n\", 42); }",
    "x = [1, 2, 3]  # comment\n\n\ny = {'a': 1}",
    "SELECT * FROM users WHERE id = 7;",
    "<div class=\"box\">\n  <p>Hi</p>\n</div>",
    "\t\tindented\twith\ttabs\t\t",
    "a==b!=c<=d>=e->f::g",
    "#include <vector>\r\nstd::vector<int> v{1,2,3};",
    "            deeply indented line",
    "path/to/file.txt:12:34: error: expected ';'",
    "  \t  mixed \t indentation  \t",
    "lambda x: x**2 if x>0 else -x",
]
NUMBERS = [
    "3.14159", "1,234,567.89", "2024-01-31", "12:34:56", "0x1F600", "1e-9",
    "123456789012345", "007", "½ ¼ ¾", "x² + y³", "①②③", "٣٤٥٦", "۱۲۳",
    "一二三四", "Ⅻ Ⅳ ⅻ", "１２３４", "१२३", "๑๒๓", "𝟙𝟚𝟛", "⑩⑳", "10¹⁰", "½1½",
]
WHITESPACE = [
    " ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n",
    "\r\n\r\n", "\r", " \n ", "  \n\n  ", "\u00a0", "\u3000", "\u2028",
    "\u2029", "\u200b", "\u0085", "\u1680", "\u2003", "\u202f", "\u205f",
    "\x0b", "\x0c", " \u00a0 ", "\t \n", "\u3000\u3000",
]
COMBINING = [
    "e\u0301", "n\u0303o", "a\u0308\u0304", "Z\u0324\u0354\u0367\u0311\u0313",
    "\u0301 leading mark", "q\u0307\u0323", "क्षि", "ạ̀", "\u20dd",
]
CONTRACTIONS = [
    "I'm", "I'M", "i'M", "we'll", "we'Ll", "WE'LL", "We'lL", "they're",
    "THEY'RE", "they'Re", "you've", "YOU'VE", "you'vE", "it's", "IT'S",
    "don't", "DON'T", "he'd", "HE'D", "'s", "'S", "'ſ", "'ſt", "It'ſ",
    "'t", "'re", "'ll", "'l", "'ve", "'m", "'d", "'x", "'K", "'\u212a",
    "'ss", "'st", "''s", "'''", "' s", "rock'n'roll", "O'Neil's",
    "it’s", "it‘s", "itʼs", "it`s", "it´s", "‘quoted’", "“double”", "'s'",
    "'1", "' ", "'\n", "x'y'z",
]
SPECIAL = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>",
    "[INST]", "[/INST]", "<|im_start|>user\nHi<|im_end|>\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    "<s>[INST] Hello [/INST]", "text<|endoftext|>more", "< s >", "<|im_start",
]

CATEGORIES = [
    PROSE, CHINESE_SIMPLIFIED, CHINESE_TRADITIONAL, JAPANESE, KOREAN, ARABIC,
    HINDI, RUSSIAN, OTHER_SCRIPTS, EMOJI, CODE, NUMBERS, WHITESPACE, COMBINING,
    CONTRACTIONS, SPECIAL,
]
ALL_FRAGMENTS = [f for category in CATEGORIES for f in category]

SEPARATORS = ["", " ", " ", " ", "  ", ", ", "\t", "\n", "\r\n", "\n\n", "-", "'", "\u00a0", "\u3000"]


def _mangle_case(rng: random.Random, s: str) -> str:
    choice = rng.random()
    if choice < 0.08:
        return s.upper()
    if choice < 0.12:
        return s.lower()
    if choice < 0.16:
        return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in s)
    return s


def _random_line(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.choice([1, 2, 2, 3, 3, 4, 5, 6])):
        parts.append(_mangle_case(rng, rng.choice(rng.choice(CATEGORIES))))
        parts.append(rng.choice(SEPARATORS))
    line = "".join(parts[:-1])
    if rng.random() < 0.15:
        line = rng.choice(WHITESPACE) + line
    if rng.random() < 0.15:
        line = line + rng.choice(WHITESPACE)
    if rng.random() < 0.05:
        # a fragment cut at a random character: unusual boundaries
        cut = rng.randrange(len(line) + 1)
        line = line[:cut]
    return line


@functools.lru_cache(maxsize=1)
def _lines() -> tuple[str, ...]:
    rng = random.Random(20240531)
    out = list(ALL_FRAGMENTS)  # every fragment alone first
    out += [a + b for a in CONTRACTIONS for b in ("", " ", "s", "x", "\n")]
    out += [ws + word for ws in WHITESPACE for word in ("word", "1", "!", "中", "")]
    while len(out) < 6000:
        out.append(_random_line(rng))
    return tuple(out)


def lines() -> list[str]:
    return list(_lines())


def as_one_text() -> str:
    return "\n".join(_lines())


INVALID_PIECES = [
    b"\x80", b"\xbf", b"\x80\x80", b"\xc0", b"\xc1\xbf", b"\xc0\xaf",  # lone continuations, C0/C1
    b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xe0\x9f\xbf",  # overlongs
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\xbd\xed\xb8\x80",  # surrogates (CESU-8 emoji)
    b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80",  # above U+10FFFF
    b"\xff", b"\xfe", b"\xfe\xff",
    b"\xe4\xb8", b"\xe4", b"\xf0\x9f\x98", b"\xf0\x9f", b"\xc3",  # truncated sequences
    b"\xe4\xb8\x41", b"\xc3\x28", b"\xf0\x9f\x98\x20",  # a valid byte where a continuation should be
]


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@functools.lru_cache(maxsize=1)
def _invalid_utf8() -> tuple[bytes, ...]:
    rng = random.Random(7)
    valid = [f.encode() for f in ALL_FRAGMENTS]
    out = list(INVALID_PIECES)
    out += [
        b"hello \xff world", b"'\xffs", b"\xff's", b"don'\x80t", b" \xff\xfe 123",
        b"\xff\n\n", b"  \xe4\xb8\xad\xe4", b"\xe4\xb8\xad\xe4\xb8", b"abc\xf0\x9f\x98",
        b"\x80abc", b" \x80", b"\xc3\xa9\xa9", b"12\xff34", b"\xff 1", b"x  \xff",
    ]
    while len(out) < 400:
        parts = [rng.choice(INVALID_PIECES if rng.random() < 0.4 else valid) for _ in range(rng.randint(1, 5))]
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(INVALID_PIECES))
        joined = b"".join(parts)
        if not _is_utf8(joined):  # two invalid pieces can make a valid character
            out.append(joined)
    return tuple(out)


def invalid_utf8() -> list[bytes]:
    return list(_invalid_utf8())
