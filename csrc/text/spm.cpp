#include "text/spm.h"

#include <queue>

#include "base/error.h"
#include "text/unicode.h"

namespace hearth {

namespace {

struct Symbol {
    int prev, next;     // neighbours in the list, -1 at the ends
    uint32_t start, len;  // bytes of the text; len 0 once merged into its left neighbour
};

// A pair that may merge: the symbols at left and right, as long as they
// still span len bytes (a pair is stale once either side has merged since).
struct Candidate {
    float score;
    int left, right;
    uint32_t len;
};

struct LowerPriority {
    bool operator()(const Candidate& a, const Candidate& b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

}  // namespace

void spm_encode(const Vocab& v, const TokenMatcher& user_defined, std::string_view text, std::vector<int32_t>& out) {
    if (text.empty()) return;
    std::vector<Symbol> sym;
    sym.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        size_t len = user_defined.may_start((unsigned char)text[i]) ? user_defined.match(text, i).second : 0;
        if (len == 0) len = next_utf8(text, i).len;  // an invalid byte is a symbol of its own
        const int idx = (int)sym.size();
        sym.push_back(Symbol{idx - 1, idx + 1, (uint32_t)i, (uint32_t)len});
        i += len;
    }
    sym.back().next = -1;

    std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority> agenda;
    auto consider = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        const uint32_t len = sym[left].len + sym[right].len;
        const int32_t id = v.find(text.substr(sym[left].start, len));
        if (id < 0) return;
        agenda.push(Candidate{v.score[id], left, right, len});
    };
    for (size_t i = 1; i < sym.size(); i++) consider((int)i - 1, (int)i);

    while (!agenda.empty()) {
        const Candidate c = agenda.top();
        agenda.pop();
        Symbol& l = sym[c.left];
        Symbol& r = sym[c.right];
        if (l.len == 0 || r.len == 0 || l.len + r.len != c.len || l.next != c.right) continue;  // stale
        l.len += r.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = c.left;
        consider(l.prev, c.left);
        consider(c.left, l.next);
    }

    for (int i = 0; i >= 0; i = sym[i].next) {
        const std::string_view piece = text.substr(sym[i].start, sym[i].len);
        const int32_t id = v.find(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        for (unsigned char b : piece) {
            if (v.byte_token[b] >= 0) {
                out.push_back(v.byte_token[b]);
            } else if (v.unk >= 0) {
                out.push_back(v.unk);
                break;  // one <unk> for the character
            } else {
                throw Error("cannot encode byte " + std::to_string(b) + ": the vocabulary has neither a byte token nor <unk>");
            }
        }
    }
}

}  // namespace hearth
