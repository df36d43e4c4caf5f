// placeholder until the avx2 kernels land: the scalar reference under another name
#include "kernels/kernels.h"
namespace hearth {
const KernelTable& avx2_kernels() {
    static KernelTable t = [] { KernelTable k = scalar_kernels(); k.name = "avx2"; return k; }();
    return t;
}
}  // namespace hearth
