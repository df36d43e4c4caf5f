#include "text/token_matcher.h"

#include <algorithm>

namespace hearth {

void TokenMatcher::add(std::string text, int32_t id) {
    if (text.empty()) return;
    auto& list = by_first_[(unsigned char)text[0]];
    list.emplace_back(std::move(text), id);
    // longest first; among equal texts the first added (the lowest id) wins
    std::stable_sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    n_++;
}

std::pair<int32_t, size_t> TokenMatcher::match(std::string_view text, size_t pos) const {
    for (const auto& [t, id] : by_first_[(unsigned char)text[pos]]) {
        if (text.size() - pos >= t.size() && text.compare(pos, t.size(), t) == 0) return {id, t.size()};
    }
    return {-1, 0};
}

}  // namespace hearth
