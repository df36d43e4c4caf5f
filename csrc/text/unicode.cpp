#include "text/unicode.h"

#include <string_view>
#include <unordered_map>
#include <vector>

namespace hearth {

namespace {

constexpr uint32_t kMaxCodepoint = 0x10FFFF;

bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// The class of every code point as a two-level table: 256-code-point blocks,
// identical blocks stored once (about 135 distinct ones, ~44 KB in all). It
// is built from the range tables on first use rather than generated, so that
// the committed file stays a short list of ranges.
class ClassTable {
public:
    ClassTable() {
        std::vector<uint8_t> flat(kMaxCodepoint + 1, 0);
        auto paint = [&](const unicode_tables::CodepointRange* ranges, size_t n, uint8_t cls) {
            for (size_t i = 0; i < n; i++) {
                for (uint32_t cp = ranges[i].first; cp <= ranges[i].last; cp++) flat[cp] = cls;
            }
        };
        paint(unicode_tables::kLetters, unicode_tables::kLettersCount, kLetterClass);
        paint(unicode_tables::kNumbers, unicode_tables::kNumbersCount, kNumberClass);
        paint(unicode_tables::kWhitespace, unicode_tables::kWhitespaceCount, kWhitespaceClass);

        std::unordered_map<std::string_view, uint16_t> seen;
        const std::string_view all(reinterpret_cast<const char*>(flat.data()), flat.size());
        for (size_t b = 0; b < kBlockCount; b++) {
            const std::string_view block = all.substr(b * kBlockSize, kBlockSize);
            auto [it, added] = seen.try_emplace(block, static_cast<uint16_t>(seen.size()));
            if (added) classes_.insert(classes_.end(), block.begin(), block.end());
            block_index_[b] = it->second;
        }
    }

    uint8_t get(uint32_t cp) const {
        return classes_[(size_t)block_index_[cp >> kBlockBits] << kBlockBits | (cp & (kBlockSize - 1))];
    }

private:
    static constexpr uint32_t kBlockBits = 8;
    static constexpr uint32_t kBlockSize = 1u << kBlockBits;
    static constexpr size_t kBlockCount = (kMaxCodepoint + 1) >> kBlockBits;

    uint16_t block_index_[kBlockCount];
    std::vector<uint8_t> classes_;
};

const ClassTable& class_table() {
    static const ClassTable table;
    return table;
}

}  // namespace

Utf8Char next_utf8(std::string_view s, size_t pos) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + pos;
    const size_t left = s.size() - pos;
    const unsigned char b0 = p[0];
    constexpr Utf8Char invalid{kInvalidCodepoint, 1};
    if (b0 < 0x80) return {b0, 1};
    // Lead bytes C0, C1 (always overlong) and F5..FF (above U+10FFFF) never
    // start a character; the second byte's range rules out the other
    // overlongs (E0, F0), the surrogates (ED) and the rest above U+10FFFF (F4).
    if (b0 < 0xC2) return invalid;
    if (b0 < 0xE0) {
        if (left < 2 || !is_continuation(p[1])) return invalid;
        return {(uint32_t)(b0 & 0x1F) << 6 | (p[1] & 0x3F), 2};
    }
    if (b0 < 0xF0) {
        if (left < 3) return invalid;
        const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
        const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
        if (p[1] < lo || p[1] > hi || !is_continuation(p[2])) return invalid;
        return {(uint32_t)(b0 & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F), 3};
    }
    if (b0 < 0xF5) {
        if (left < 4) return invalid;
        const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
        const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
        if (p[1] < lo || p[1] > hi || !is_continuation(p[2]) || !is_continuation(p[3])) return invalid;
        return {(uint32_t)(b0 & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 |
                    (p[3] & 0x3F),
                4};
    }
    return invalid;
}

void append_utf8(uint32_t cp, std::string& out) {
    if (cp > kMaxCodepoint || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | cp >> 6);
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | cp >> 12);
        out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | cp >> 18);
        out += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
        out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

uint8_t unicode_class(uint32_t cp) {
    if (cp < 0x80) return detail::kAsciiClasses[cp];
    if (cp > kMaxCodepoint) return 0;
    return class_table().get(cp);
}

bool is_letter(uint32_t cp) { return unicode_class(cp) == kLetterClass; }
bool is_number(uint32_t cp) { return unicode_class(cp) == kNumberClass; }
bool is_whitespace(uint32_t cp) { return unicode_class(cp) == kWhitespaceClass; }

bool in_ranges(const unicode_tables::CodepointRange* ranges, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;  // the first range with last >= cp
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (ranges[mid].last < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && ranges[lo].first <= cp;
}

bool is_punctuation(uint32_t cp) {
    return in_ranges(unicode_tables::kPunctuation, unicode_tables::kPunctuationCount, cp);
}

bool is_mark(uint32_t cp) { return in_ranges(unicode_tables::kMarks, unicode_tables::kMarksCount, cp); }

const char* unicode_version() { return unicode_tables::kUnicodeVersion; }

}  // namespace hearth
