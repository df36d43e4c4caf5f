// Asking the CPU to bring memory into its caches ahead of use.
#pragma once

#include <cstddef>

namespace hearth {

// Every cache line of [p, p + bytes) into L2, without waiting for them.
// Out of line on purpose: GCC 12 deletes a loop nest that does nothing but
// prefetch once it is inlined into its caller (a prefetch is no side effect
// to it), which silently undid earlier attempts at this in attention.
void prefetch_l2(const void* p, size_t bytes);

}  // namespace hearth
