#include "text/pretokenize.h"

#include <cstdint>
#include <iterator>

#include "base/error.h"
#include "text/unicode.h"

namespace hearth {

namespace {

// --- names -------------------------------------------------------------------

struct NamedPreTokenizer {
    const char* name;
    PreTokenizer family;
};

// The first name of each family is its canonical one (pre_tokenizer_name).
// The aliases are llama.cpp's tokenizer.ggml.pre names for which its
// llama-vocab.cpp splits with the same regex list as for that family's
// canonical name.
constexpr NamedPreTokenizer kNames[] = {
    {"gpt2", PreTokenizer::Gpt2},
    {"gpt-2", PreTokenizer::Gpt2},
    {"default", PreTokenizer::Gpt2},
    {"phi-2", PreTokenizer::Gpt2},
    {"mpt", PreTokenizer::Gpt2},
    {"olmo", PreTokenizer::Gpt2},
    {"jais", PreTokenizer::Gpt2},
    {"trillion", PreTokenizer::Gpt2},
    {"granite-docling", PreTokenizer::Gpt2},
    {"exaone4", PreTokenizer::Gpt2},
    {"gigachat", PreTokenizer::Gpt2},
    {"a.x-4.0", PreTokenizer::Gpt2},
    {"mellum", PreTokenizer::Gpt2},
    {"modern-bert", PreTokenizer::Gpt2},
    {"roberta-bpe", PreTokenizer::Gpt2},
    {"jina-es", PreTokenizer::Gpt2},
    {"jina-de", PreTokenizer::Gpt2},
    {"jina-v1-en", PreTokenizer::Gpt2},
    {"jina-v2-es", PreTokenizer::Gpt2},
    {"jina-v2-de", PreTokenizer::Gpt2},
    {"jina-v2-code", PreTokenizer::Gpt2},

    {"llama-bpe", PreTokenizer::Llama3},
    {"llama3", PreTokenizer::Llama3},
    {"llama-v3", PreTokenizer::Llama3},
    {"falcon3", PreTokenizer::Llama3},
    {"falcon-h1", PreTokenizer::Llama3},
    {"pixtral", PreTokenizer::Llama3},
    {"midm-2.0", PreTokenizer::Llama3},
    {"lfm2", PreTokenizer::Llama3},
    {"jina-v5-nano", PreTokenizer::Llama3},
    {"dbrx", PreTokenizer::Llama3},
    {"smaug-bpe", PreTokenizer::Llama3},
    {"glm4", PreTokenizer::Llama3},
    {"chatglm-bpe", PreTokenizer::Llama3},

    {"qwen2", PreTokenizer::Qwen2},
    {"deepseek-r1-qwen", PreTokenizer::Qwen2},
    {"megrez", PreTokenizer::Qwen2},
    {"kormo", PreTokenizer::Qwen2},
    {"f2llmv2", PreTokenizer::Qwen2},
    {"stablelm2", PreTokenizer::Qwen2},
    {"hunyuan", PreTokenizer::Qwen2},
    {"solar-open", PreTokenizer::Qwen2},
    {"grok-2", PreTokenizer::Qwen2},

    {"smollm", PreTokenizer::SmolLM},
    {"starcoder", PreTokenizer::SmolLM},
    {"refact", PreTokenizer::SmolLM},
    {"codeshell", PreTokenizer::SmolLM},
    {"exaone", PreTokenizer::SmolLM},
    {"minerva-7b", PreTokenizer::SmolLM},
    {"mellum2", PreTokenizer::SmolLM},

    {"qwen35", PreTokenizer::Qwen35},

    {"deepseek-coder", PreTokenizer::DeepseekCoder},

    {"deepseek-llm", PreTokenizer::DeepseekLlm},

    {"falcon", PreTokenizer::Falcon},
};

// --- characters --------------------------------------------------------------

// What the scanners need of a character: where it ends and its class.
// Invalid UTF-8 bytes have class 0, like punctuation.
struct Char {
    uint32_t cp;
    uint32_t len;
    uint8_t cls;
};

inline Char char_at(std::string_view s, size_t pos) {
    const unsigned char b = static_cast<unsigned char>(s[pos]);
    if (b < 0x80) return {b, 1, detail::kAsciiClasses[b]};
    const Utf8Char u = next_utf8(s, pos);
    return {u.cp, static_cast<uint32_t>(u.len), unicode_class(u.cp)};
}

// A class no character has: what "the next character" is at the end.
constexpr uint8_t kEndOfText = 0x80;
constexpr uint8_t kOtherClass = 0;  // [^\s\p{L}\p{N}]

inline Char char_at_or_end(std::string_view s, size_t pos) {
    return pos < s.size() ? char_at(s, pos) : Char{kInvalidCodepoint, 0, kEndOfText};
}

inline bool is_line_break(uint32_t cp) { return cp == '\r' || cp == '\n'; }

// The end of the run of characters that `in_run` accepts from pos on.
template <class InRun>
size_t run_end_if(std::string_view s, size_t pos, InRun in_run) {
    while (pos < s.size()) {
        const Char c = char_at(s, pos);
        if (!in_run(c)) break;
        pos += c.len;
    }
    return pos;
}

// The end of the run of characters of class cls from pos on.
size_t run_end(std::string_view s, size_t pos, uint8_t cls) {
    return run_end_if(s, pos, [cls](const Char& c) { return c.cls == cls; });
}

// The letter of a contraction that the character at pos stands for, or 0.
// With ignore_case it is what Oniguruma's (?i:...) matches, i.e. simple case
// folding: ASCII case, and U+017F LATIN SMALL LETTER LONG S folds to 's'.
// (The Kelvin sign folds to 'k', in no contraction; no character folds to a
// two-letter tail such as "ll".)
char contraction_letter(std::string_view s, size_t pos, bool ignore_case, uint32_t& len) {
    if (pos >= s.size()) return 0;
    const Char c = char_at(s, pos);
    len = c.len;
    if (c.cp >= 'a' && c.cp <= 'z') return static_cast<char>(c.cp);
    if (!ignore_case) return 0;
    if (c.cp >= 'A' && c.cp <= 'Z') return static_cast<char>(c.cp - 'A' + 'a');
    if (c.cp == 0x17F) return 's';
    return 0;
}

// The length of 's|'t|'re|'ve|'m|'ll|'d at pos (which holds an apostrophe),
// 0 if none matches. Their first letters differ, so order does not matter.
size_t contraction_length(std::string_view s, size_t pos, bool ignore_case) {
    uint32_t len1 = 0, len2 = 0;
    switch (contraction_letter(s, pos + 1, ignore_case, len1)) {
        case 's':
        case 't':
        case 'm':
        case 'd':
            return 1 + len1;
        case 'r':
        case 'v':
            return contraction_letter(s, pos + 1 + len1, ignore_case, len2) == 'e' ? 1 + len1 + len2 : 0;
        case 'l':
            return contraction_letter(s, pos + 1 + len1, ignore_case, len2) == 'l' ? 1 + len1 + len2 : 0;
        default:
            return 0;
    }
}

// `\s+(?!\S)|\s+` at pos, which holds whitespace. The whole run at the end of
// the text; before anything else the run gives its last character up to the
// next piece (so " word" stays together), unless it is the only one.
// With line_breaks, `\s*[\r\n]+` comes first: a run holding a line break ends
// right after its last one.
size_t whitespace_piece_end(std::string_view s, size_t pos, bool line_breaks) {
    size_t last = pos, end = pos, after_break = 0;
    while (end < s.size()) {
        const Char c = char_at(s, end);
        if (c.cls != kWhitespaceClass) break;
        last = end;
        end += c.len;
        if (is_line_break(c.cp)) after_break = end;
    }
    if (line_breaks && after_break) return after_break;
    if (end == s.size()) return end;
    return last > pos ? last : end;
}

// --- the families ------------------------------------------------------------

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t gpt2_piece_end(std::string_view s, size_t pos) {
    const Char c = char_at(s, pos);
    if (c.cp == '\'') {
        if (size_t n = contraction_length(s, pos, /*ignore_case=*/false)) return pos + n;
    }
    // ` ?X+` for X letters, numbers or other: a space joins the run after it.
    size_t start = pos;
    Char first = c;
    if (c.cp == ' ') {
        const Char next = char_at_or_end(s, pos + 1);
        if (next.cls != kWhitespaceClass && next.cls != kEndOfText) {
            start = pos + 1;
            first = next;
        }
    }
    if (first.cls != kWhitespaceClass) return run_end(s, start + first.len, first.cls);
    return whitespace_piece_end(s, pos, /*line_breaks=*/false);
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t llama3_piece_end(std::string_view s, size_t pos, int max_digits) {
    const Char c = char_at(s, pos);
    if (c.cp == '\'') {
        if (size_t n = contraction_length(s, pos, /*ignore_case=*/true)) return pos + n;
    }
    if (c.cls == kLetterClass) return run_end(s, pos + c.len, kLetterClass);
    const size_t after = pos + c.len;
    const Char next = char_at_or_end(s, after);
    // One character that is neither a line break nor a number (so whitespace
    // or other) joins the letters after it.
    if (next.cls == kLetterClass && c.cls != kNumberClass && !is_line_break(c.cp)) {
        return run_end(s, after + next.len, kLetterClass);
    }
    if (c.cls == kNumberClass) {
        size_t end = after;
        for (int n = 1; n < max_digits && end < s.size(); n++) {
            const Char d = char_at(s, end);
            if (d.cls != kNumberClass) break;
            end += d.len;
        }
        return end;
    }
    size_t end = pos;
    if (c.cls == kOtherClass) end = run_end(s, after, kOtherClass);
    else if (c.cp == ' ' && next.cls == kOtherClass) end = run_end(s, after + next.len, kOtherClass);
    if (end != pos) {
        while (end < s.size() && (s[end] == '\r' || s[end] == '\n')) end++;
        return end;
    }
    return whitespace_piece_end(s, pos, /*line_breaks=*/true);
}

// Qwen3.5's regex at pos: Qwen2's (llama3_piece_end with single digits)
// where a combining mark counts as a letter in the word alternatives and not
// as "other" in the symbol run.
bool is_word_char(const Char& c) { return c.cls == kLetterClass || (c.cls == kOtherClass && is_mark(c.cp)); }
bool is_symbol_char(const Char& c) { return c.cls == kOtherClass && !is_mark(c.cp); }

size_t word_run_end(std::string_view s, size_t pos) { return run_end_if(s, pos, is_word_char); }
size_t symbol_run_end(std::string_view s, size_t pos) { return run_end_if(s, pos, is_symbol_char); }

size_t qwen35_piece_end(std::string_view s, size_t pos) {
    const Char c = char_at(s, pos);
    if (c.cp == '\'') {
        if (size_t n = contraction_length(s, pos, /*ignore_case=*/true)) return pos + n;
    }
    if (is_word_char(c)) return word_run_end(s, pos + c.len);
    const size_t after = pos + c.len;
    const Char next = char_at_or_end(s, after);
    // one character that is neither a line break, a letter nor a number
    // joins the letters and marks after it
    if (next.cls != kEndOfText && is_word_char(next) && c.cls != kNumberClass && !is_line_break(c.cp)) {
        return word_run_end(s, after + next.len);
    }
    if (c.cls == kNumberClass) return after;
    size_t end = pos;
    if (is_symbol_char(c)) end = symbol_run_end(s, after);
    else if (c.cp == ' ' && next.cls != kEndOfText && is_symbol_char(next)) end = symbol_run_end(s, after + next.len);
    if (end != pos) {
        while (end < s.size() && (s[end] == '\r' || s[end] == '\n')) end++;
        return end;
    }
    return whitespace_piece_end(s, pos, /*line_breaks=*/true);
}

void split_qwen35(std::string_view s, std::vector<std::string_view>& out) {
    for (size_t pos = 0; pos < s.size();) {
        const size_t end = qwen35_piece_end(s, pos);
        out.push_back(s.substr(pos, end - pos));
        pos = end;
    }
}

void split_gpt2(std::string_view s, std::vector<std::string_view>& out) {
    for (size_t pos = 0; pos < s.size();) {
        const size_t end = gpt2_piece_end(s, pos);
        out.push_back(s.substr(pos, end - pos));
        pos = end;
    }
}

void split_llama3(std::string_view s, int max_digits, std::vector<std::string_view>& out) {
    for (size_t pos = 0; pos < s.size();) {
        const size_t end = llama3_piece_end(s, pos, max_digits);
        out.push_back(s.substr(pos, end - pos));
        pos = end;
    }
}

// Hugging Face's Sequence([Digits(individual_digits=True), ByteLevel]): the
// regex never sees across a number, so its lookahead stops there too.
void split_smollm(std::string_view s, std::vector<std::string_view>& out) {
    size_t segment = 0;
    for (size_t pos = 0; pos < s.size();) {
        const Char c = char_at(s, pos);
        if (c.cls == kNumberClass) {
            split_gpt2(s.substr(segment, pos - segment), out);
            out.push_back(s.substr(pos, c.len));
            segment = pos + c.len;
        }
        pos += c.len;
    }
    split_gpt2(s.substr(segment), out);
}

// --- regex lists applied in turn ---------------------------------------------
//
// The families below split with a list of regexes, each applied to every
// piece the one before made ("isolated": a match is a piece, and so is the
// text between two matches). A stage is a matcher: the length of the
// regex's match that starts at pos, or 0; the leftmost match wins, as in a
// regex search.

using Matcher = size_t (*)(std::string_view s, size_t pos);

void split_isolated(std::string_view s, Matcher match, std::vector<std::string_view>& out) {
    size_t gap = 0;
    for (size_t pos = 0; pos < s.size();) {
        const size_t n = match(s, pos);
        if (n == 0) {
            pos += char_at(s, pos).len;
            continue;
        }
        if (pos > gap) out.push_back(s.substr(gap, pos - gap));
        out.push_back(s.substr(pos, n));
        pos += n;
        gap = pos;
    }
    if (gap < s.size()) out.push_back(s.substr(gap));
}

// A stage is a matcher or a whole splitter (such as split_gpt2).
struct Stage {
    Matcher match = nullptr;
    void (*split)(std::string_view, std::vector<std::string_view>&) = nullptr;
};

void split_stages(std::string_view text, std::initializer_list<Stage> stages, std::vector<std::string_view>& out) {
    std::vector<std::string_view> pieces{text}, next;
    for (const Stage& st : stages) {
        next.clear();
        for (std::string_view piece : pieces) {
            if (st.match) split_isolated(piece, st.match, next);
            else st.split(piece, next);
        }
        pieces.swap(next);
    }
    for (std::string_view piece : pieces)
        if (!piece.empty()) out.push_back(piece);
}

bool is_letter_cp(uint32_t cp) { return unicode_class(cp) == kLetterClass; }
bool is_number_cp(uint32_t cp) { return unicode_class(cp) == kNumberClass; }
bool is_space_cp(uint32_t cp) { return unicode_class(cp) == kWhitespaceClass; }
// DeepSeek's [一-龥ࠀ-一가-퟿]: CJK, a wide span of scripts from U+0800, Hangul
bool is_deepseek_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0x0800 && cp <= 0x4E00) || (cp >= 0xAC00 && cp <= 0xD7FF);
}
// Falcon's [\p{P}\$\+<=>\^~\|`]
bool is_falcon_symbol(uint32_t cp) {
    return is_punctuation(cp) || cp == '$' || cp == '+' || cp == '<' || cp == '=' || cp == '>' || cp == '^' ||
           cp == '~' || cp == '|' || cp == '`';
}

// X+: the run of X from pos.
template <bool (*X)(uint32_t)>
size_t match_run(std::string_view s, size_t pos) {
    size_t end = pos;
    while (end < s.size()) {
        const Char c = char_at(s, end);
        if (!X(c.cp)) break;
        end += c.len;
    }
    return end - pos;
}

// \s?X+: one whitespace character may lead the run.
template <bool (*X)(uint32_t)>
size_t match_space_run(std::string_view s, size_t pos) {
    const Char c = char_at(s, pos);
    if (is_space_cp(c.cp) && pos + c.len < s.size()) {
        const size_t n = match_run<X>(s, pos + c.len);
        if (n > 0) return c.len + n;
    }
    return match_run<X>(s, pos);
}

// X: one character.
template <bool (*X)(uint32_t)>
size_t match_one(std::string_view s, size_t pos) {
    const Char c = char_at(s, pos);
    return X(c.cp) ? c.len : 0;
}

size_t match_line_break(std::string_view s, size_t pos) { return s[pos] == '\r' || s[pos] == '\n' ? 1 : 0; }

size_t match_three_digits(std::string_view s, size_t pos) {
    if (pos + 3 > s.size()) return 0;
    for (size_t i = pos; i < pos + 3; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 3;
}

// DeepSeek LLM's letters: the explicit ranges of its regex (llama.cpp's
// llama-vocab.cpp; the cased letters of some Unicode version).
constexpr unicode_tables::CodepointRange kDeepseekLetters[] = {
    {0x0041, 0x005A}, {0x0061, 0x007A}, {0x00B5, 0x00B5}, {0x00C0, 0x00D6},
    {0x00D8, 0x00F6}, {0x00F8, 0x01BA}, {0x01BC, 0x01BF}, {0x01C4, 0x0293},
    {0x0295, 0x02AF}, {0x0370, 0x0373}, {0x0376, 0x0376}, {0x0377, 0x0377},
    {0x037B, 0x037D}, {0x037F, 0x037F}, {0x0386, 0x0386}, {0x0388, 0x038A},
    {0x038C, 0x038C}, {0x038E, 0x03A1}, {0x03A3, 0x03F5}, {0x03F7, 0x0481},
    {0x048A, 0x052F}, {0x0531, 0x0556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5},
    {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B},
    {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4},
    {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC},
    {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4},
    {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
    {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139},
    {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2183},
    {0x2184, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF2}, {0x2CF3, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B},
    {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF},
    {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A},
    {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2},
    {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

bool is_deepseek_letter(uint32_t cp) {
    return in_ranges(kDeepseekLetters, std::size(kDeepseekLetters), cp);
}

// [!-/:-~！-／：-～‘-‟　-。]: ASCII punctuation and letters, their fullwidth
// forms, curly quotes, the ideographic space, comma and full stop
bool is_deepseek_symbol(uint32_t cp) {
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x7E) || (cp >= 0xFF01 && cp <= 0xFF0F) ||
           (cp >= 0xFF1A && cp <= 0xFF5E) || (cp >= 0x2018 && cp <= 0x201F) || (cp >= 0x3000 && cp <= 0x3002);
}

// \s+$: the whitespace that ends the piece.
size_t match_trailing_space(std::string_view s, size_t pos) {
    for (size_t p = pos; p < s.size();) {
        const Char c = char_at(s, p);
        if (!is_space_cp(c.cp)) return 0;
        p += c.len;
    }
    return s.size() - pos;
}

void split_deepseek_llm(std::string_view s, std::vector<std::string_view>& out) {
    split_stages(s, {{match_line_break}, {match_space_run<is_deepseek_letter>}, {match_space_run<is_deepseek_symbol>},
                     {match_trailing_space}, {match_run<is_deepseek_cjk>}, {match_run<is_number_cp>}}, out);
}

void split_deepseek_coder(std::string_view s, std::vector<std::string_view>& out) {
    split_stages(s, {{match_line_break}, {match_space_run<is_letter_cp>}, {match_space_run<is_punctuation>},
                     {match_run<is_deepseek_cjk>}, {match_one<is_number_cp>}}, out);
}

void split_falcon(std::string_view s, std::vector<std::string_view>& out) {
    split_stages(s, {{match_run<is_falcon_symbol>}, {nullptr, split_gpt2}, {match_three_digits}}, out);
}

}  // namespace

// Names hearth knows but refuses until it tokenizes them as `tokenizers`
// does, and why.
struct Refused {
    const char* name;
    const char* why;
};
constexpr Refused kRefused[] = {
    {"command-r", "its ids differ from Hugging Face tokenizers' on emoji sequences joined with U+200D"},
};

PreTokenizer pre_tokenizer_from_name(const std::string& name) {
    for (const auto& n : kNames) {
        if (name == n.name) return n.family;
    }
    for (const auto& r : kRefused) {
        if (name == r.name)
            throw Error("pre-tokenizer '" + name + "' (tokenizer.ggml.pre) is refused until it is right: " + r.why);
    }
    std::string supported;
    for (const auto& n : kNames) {
        if (!supported.empty()) supported += ", ";
        supported += n.name;
    }
    throw Error("unknown pre-tokenizer '" + name + "' (tokenizer.ggml.pre); supported: " + supported);
}

const char* pre_tokenizer_name(PreTokenizer p) {
    for (const auto& n : kNames) {
        if (n.family == p) return n.name;
    }
    return "?";
}

std::vector<std::string_view> pre_tokenize(PreTokenizer p, std::string_view text) {
    std::vector<std::string_view> pieces;
    pieces.reserve(text.size() / 4 + 1);
    switch (p) {
        case PreTokenizer::Gpt2: split_gpt2(text, pieces); break;
        case PreTokenizer::Llama3: split_llama3(text, 3, pieces); break;
        case PreTokenizer::Qwen2: split_llama3(text, 1, pieces); break;
        case PreTokenizer::Qwen35: split_qwen35(text, pieces); break;
        case PreTokenizer::SmolLM: split_smollm(text, pieces); break;
        case PreTokenizer::DeepseekCoder: split_deepseek_coder(text, pieces); break;
        case PreTokenizer::Falcon: split_falcon(text, pieces); break;
        case PreTokenizer::DeepseekLlm: split_deepseek_llm(text, pieces); break;
    }
    return pieces;
}

}  // namespace hearth
