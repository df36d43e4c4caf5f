#include "base/page_buffer.h"

#include <sys/mman.h>

#include <string>
#include <utility>

#include "base/error.h"

namespace hearth {

PageBuffer::PageBuffer(size_t bytes, const char* what, bool huge_pages) : size_(bytes) {
    if (bytes == 0) return;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw Error(std::string(what) + " could not get " + std::to_string(bytes) + " bytes");
#ifdef MADV_HUGEPAGE
    if (huge_pages) madvise(p, bytes, MADV_HUGEPAGE);  // advice: without it, plain pages
#endif
    data_ = (uint8_t*)p;
}

PageBuffer::~PageBuffer() {
    if (data_) munmap(data_, size_);
}

PageBuffer::PageBuffer(PageBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

PageBuffer& PageBuffer::operator=(PageBuffer&& o) noexcept {
    if (this != &o) {
        if (data_) munmap(data_, size_);
        data_ = std::exchange(o.data_, nullptr);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

}  // namespace hearth
