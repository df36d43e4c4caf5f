#include "text/detokenizer.h"

namespace hearth {

namespace {

const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// For a lead byte: how many continuation bytes follow, and the range the
// first of them must be in (which rules out overlong forms, surrogates and
// code points above U+10FFFF); 0 continuation bytes for ASCII, -1 invalid.
struct Lead {
    int n;
    unsigned char lo, hi;
};
Lead lead_of(unsigned char b) {
    if (b < 0x80) return {0, 0, 0};
    if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
    if (b == 0xE0) return {2, 0xA0, 0xBF};
    if (b == 0xED) return {2, 0x80, 0x9F};
    if (b >= 0xE1 && b <= 0xEF) return {2, 0x80, 0xBF};
    if (b == 0xF0) return {3, 0x90, 0xBF};
    if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
    if (b == 0xF4) return {3, 0x80, 0x8F};
    return {-1, 0, 0};
}

}  // namespace

size_t utf8_decode_replace(std::string_view s, bool final, std::string& out) {
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char b = (unsigned char)s[i];
        const Lead lead = lead_of(b);
        if (lead.n == 0) {
            out.push_back((char)b);
            i++;
            continue;
        }
        if (lead.n < 0) {
            out += kReplacement;
            i++;
            continue;
        }
        int j = 1;  // bytes of the sequence seen so far
        for (; j <= lead.n; j++) {
            if (i + j >= s.size()) {
                if (!final) return i;  // incomplete: wait for more
                out += kReplacement;
                return s.size();
            }
            const unsigned char c = (unsigned char)s[i + j];
            const unsigned char lo = j == 1 ? lead.lo : 0x80, hi = j == 1 ? lead.hi : 0xBF;
            if (c < lo || c > hi) break;
        }
        if (j > lead.n) {
            out.append(s.substr(i, lead.n + 1));
        } else {
            out += kReplacement;  // the maximal subpart; the byte that broke it starts afresh
        }
        i += j > lead.n ? lead.n + 1 : j;
    }
    return i;
}

std::string StreamDecoder::push(int32_t id) {
    tokens_.append(id, pending_);
    std::string out;
    pending_.erase(0, utf8_decode_replace(pending_, false, out));
    return out;
}

std::string StreamDecoder::finish() {
    std::string out;
    utf8_decode_replace(pending_, true, out);
    pending_.clear();
    return out;
}

}  // namespace hearth
