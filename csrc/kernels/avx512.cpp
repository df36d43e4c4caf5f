// placeholder until the avx512 kernels land: the scalar reference under another name
#include "kernels/kernels.h"
namespace hearth {
const KernelTable& avx512_kernels() {
    static KernelTable t = [] { KernelTable k = scalar_kernels(); k.name = "avx512"; return k; }();
    return t;
}
}  // namespace hearth
