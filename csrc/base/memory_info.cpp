#include "base/memory_info.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

namespace hearth {

namespace {

// A cgroup limit file holds a number of bytes, or "max" when there is none.
uint64_t cgroup_limit(const char* path) {
    std::ifstream in(path);
    std::string text;
    if (!(in >> text) || text.empty() || text == "max") return UINT64_MAX;
    try {
        return std::stoull(text);
    } catch (...) {
        return UINT64_MAX;
    }
}

}  // namespace

uint64_t usable_memory_bytes() {
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page_size = sysconf(_SC_PAGESIZE);
    uint64_t bytes = (pages > 0 && page_size > 0) ? (uint64_t)pages * (uint64_t)page_size : UINT64_MAX;
    bytes = std::min(bytes, cgroup_limit("/sys/fs/cgroup/memory.max"));                   // cgroup v2
    bytes = std::min(bytes, cgroup_limit("/sys/fs/cgroup/memory/memory.limit_in_bytes"));  // cgroup v1
    return bytes;
}

std::string describe_bytes(uint64_t bytes) {
    char gib[32];
    std::snprintf(gib, sizeof gib, "%.1f", (double)bytes / (1024.0 * 1024.0 * 1024.0));
    return std::to_string(bytes) + " bytes (" + gib + " GiB)";
}

}  // namespace hearth
