#include "generate/stop_strings.h"

#include <algorithm>
#include <utility>

namespace hearth {

StopStrings::StopStrings(std::vector<std::string> stops) {
    for (std::string& s : stops)
        if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopStrings::feed(std::string_view text) {
    if (found_) return {};
    held_.append(text);
    if (stops_.empty()) return std::exchange(held_, {});

    // the earliest stop string in what is held (nothing shown before can be
    // part of one: see the hold-back below); the longer one on a tie
    size_t at = std::string::npos;
    for (const std::string& s : stops_) {
        const size_t p = held_.find(s);
        if (p != std::string::npos && (p < at || (p == at && s.size() > which_.size()))) {
            at = p;
            which_ = s;
        }
    }
    if (at != std::string::npos) {
        found_ = true;
        std::string shown = held_.substr(0, at);
        held_.clear();
        return shown;
    }
    // hold back the longest end of the text that begins some stop string
    size_t keep = 0;
    for (const std::string& s : stops_) {
        for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; n--) {
            if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
                keep = n;
                break;
            }
        }
    }
    std::string shown = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return shown;
}

std::string StopStrings::flush() {
    if (found_) return {};
    return std::exchange(held_, {});
}

}  // namespace hearth
