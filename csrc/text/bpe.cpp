#include "text/bpe.h"

#include <queue>

#include "base/error.h"

namespace hearth {

namespace {

struct Symbol {
    int32_t id;    // -1 once merged into its left neighbour
    int prev, next;
};

// A merge that may apply to the symbols at left and right, as long as they
// still hold left_id and right_id (either may have merged since).
struct Candidate {
    int32_t rank;
    int left, right;
    int32_t left_id, right_id, result;
};

struct LowerPriority {
    bool operator()(const Candidate& a, const Candidate& b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

int32_t byte_id(const Vocab& v, unsigned char b) {
    if (v.byte_token[b] >= 0) return v.byte_token[b];
    if (v.unk >= 0) return v.unk;
    throw Error("cannot encode byte " + std::to_string(b) + ": the vocabulary has neither a token for it nor <unk>");
}

}  // namespace

void bpe_encode_word(const Vocab& v, std::string_view word, bool ignore_merges, std::vector<int32_t>& out) {
    if (word.empty()) return;
    if (word.size() == 1) {
        out.push_back(byte_id(v, (unsigned char)word[0]));
        return;
    }
    if (ignore_merges) {
        const int32_t whole = v.find(word);
        if (whole >= 0) {
            out.push_back(whole);
            return;
        }
    }
    const int n = (int)word.size();
    std::vector<Symbol> sym(n);
    for (int i = 0; i < n; i++) sym[i] = Symbol{byte_id(v, (unsigned char)word[i]), i - 1, i + 1 < n ? i + 1 : -1};

    std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority> agenda;
    auto consider = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        const Vocab::Merge* m = v.find_merge(sym[left].id, sym[right].id);
        if (m) agenda.push(Candidate{m->rank, left, right, sym[left].id, sym[right].id, m->result});
    };
    for (int i = 0; i + 1 < n; i++) consider(i, i + 1);

    while (!agenda.empty()) {
        const Candidate c = agenda.top();
        agenda.pop();
        Symbol& l = sym[c.left];
        if (l.id != c.left_id || l.next != c.right || sym[c.right].id != c.right_id) continue;  // stale
        Symbol& r = sym[c.right];
        l.id = c.result;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = c.left;
        r.id = -1;
        consider(l.prev, c.left);
        consider(c.left, l.next);
    }
    for (int i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace hearth
