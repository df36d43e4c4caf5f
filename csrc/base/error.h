// Errors shared by the whole core. Every failure a user can cause (a bad
// file, a bad parameter) throws hearth::Error with a message that names what
// is wrong; the Python binding turns it into hearthlm.HearthError.
#pragma once

#include <stdexcept>
#include <string>

namespace hearth {

struct Error : std::runtime_error {
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace hearth

#define HEARTH_CHECK(cond, msg)                     \
    do {                                            \
        if (!(cond)) throw ::hearth::Error(msg);    \
    } while (0)
