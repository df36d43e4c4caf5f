#include "base/prefetch.h"

namespace hearth {

void prefetch_l2(const void* p, size_t bytes) {
    const char* at = (const char*)p;
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(at + off, 0, 2);
}

}  // namespace hearth
