// How much memory this process may use: the machine's RAM, or less where a
// cgroup (a container, a systemd slice) caps it. Big buffers are checked
// against it before they are allocated, because anonymous pages are only
// committed when touched: an oversized KV cache would map fine and then get
// the process killed halfway through a long prompt.
#pragma once

#include <cstdint>
#include <string>

namespace hearth {

// Bytes of memory available to this process in all (not what is free now).
uint64_t usable_memory_bytes();

// "2304000000000 bytes (2145.8 GiB)": a size as a user can act on it.
std::string describe_bytes(uint64_t bytes);

}  // namespace hearth
