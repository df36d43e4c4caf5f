// std::vector storage that starts on a 64-byte cache line. Matmul outputs
// and activations are written and read a line (16 floats) at a time: from
// malloc, big blocks start 16 bytes into a line, and every 64-byte store or
// load then straddles two lines (two fetches, a split store).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace hearth {

template <class T>
struct CacheAlignedAllocator {
    using value_type = T;
    static constexpr std::align_val_t kAlign{64};

    CacheAlignedAllocator() = default;
    template <class U>
    CacheAlignedAllocator(const CacheAlignedAllocator<U>&) noexcept {}

    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
    // (unsized: clang declares the sized form only with -fsized-deallocation)
    void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, kAlign); }

    template <class U>
    bool operator==(const CacheAlignedAllocator<U>&) const { return true; }
    template <class U>
    bool operator!=(const CacheAlignedAllocator<U>&) const { return false; }
};

template <class T>
using CacheAlignedVector = std::vector<T, CacheAlignedAllocator<T>>;

}  // namespace hearth
