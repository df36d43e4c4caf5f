// Finds whole tokens written out in text (chat markers such as <|im_start|>,
// user-defined pieces): at each position, the longest one that starts there,
// which is how Hugging Face tokenizers matches its added tokens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hearth {

class TokenMatcher {
public:
    void add(std::string text, int32_t id);
    bool empty() const { return n_ == 0; }
    // The longest token that starts at text[pos], as {id, length}; {-1, 0} when none.
    std::pair<int32_t, size_t> match(std::string_view text, size_t pos) const;
    // Whether some token starts with this byte (a quick skip for scanning).
    bool may_start(unsigned char b) const { return !by_first_[b].empty(); }

private:
    std::vector<std::pair<std::string, int32_t>> by_first_[256];  // per first byte, longest first
    size_t n_ = 0;
};

}  // namespace hearth
