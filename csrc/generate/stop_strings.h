// Stop strings over streamed text. Text that could be the start of a stop
// string is held back until it is known not to be one, so a stop string is
// never shown, not even when it spans several tokens.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hearth {

class StopStrings {
public:
    explicit StopStrings(std::vector<std::string> stops);
    // Adds generated text; returns what can be shown now. Once a stop string
    // appears, returns the text before it and found() is true.
    std::string feed(std::string_view text);
    // At the end of generation: what is still held back.
    std::string flush();
    bool found() const { return found_; }
    const std::string& which() const { return which_; }  // the stop string found

private:
    std::vector<std::string> stops_;
    std::string held_;
    bool found_ = false;
    std::string which_;
};

}  // namespace hearth
