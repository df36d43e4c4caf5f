// Errors shared by the whole core. Every failure a user can cause (a bad
// file, a bad parameter) throws hearth::Error with a message that names what
// is wrong; the Python binding turns it into hearthlm.HearthError. param,
// when one request parameter is at fault, names it (HearthError.param: the
// server's 400 reports it).
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace hearth {

struct Error : std::runtime_error {
    explicit Error(const std::string& what, std::string param = "") : std::runtime_error(what), param(std::move(param)) {}
    std::string param;  // empty when no single parameter is at fault
};

}  // namespace hearth

#define HEARTH_CHECK(cond, msg)                     \
    do {                                            \
        if (!(cond)) throw ::hearth::Error(msg);    \
    } while (0)
