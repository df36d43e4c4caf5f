// Big buffers straight from the kernel: anonymous memory in whole pages,
// zero-filled and touched only when used, optionally in huge pages where the
// kernel gives them (transparent huge pages in madvise mode): for memory swept
// on every token and touched once at load (the repacked weights), where 4 KiB
// pages cost a TLB miss every few cache lines. The KV pool takes plain pages:
// it is touched bit by bit while serving, where a fresh huge page can cost
// milliseconds (kv_cache.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace hearth {

class PageBuffer {
public:
    PageBuffer() = default;
    // Throws hearth::Error naming `what` when the memory is not there.
    PageBuffer(size_t bytes, const char* what, bool huge_pages);
    ~PageBuffer();
    PageBuffer(PageBuffer&& o) noexcept;
    PageBuffer& operator=(PageBuffer&& o) noexcept;
    PageBuffer(const PageBuffer&) = delete;
    PageBuffer& operator=(const PageBuffer&) = delete;

    uint8_t* data() const { return data_; }
    size_t size() const { return size_; }

private:
    uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace hearth
