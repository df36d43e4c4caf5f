// Chooses the kernel table once, from HEARTH_KERNELS or the CPU's features.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/error.h"
#include "kernels/k_packing.h"
#include "kernels/kernels.h"

#if HEARTH_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif
#if HEARTH_AMX_KERNELS && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace hearth {
namespace {

#if HEARTH_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
// F16C from CPUID leaf 1 (ECX bit 29): clang before 16 does not take "f16c"
// in __builtin_cpu_supports, and the fuzz build uses clang.
bool cpu_has_f16c() {
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
}
#endif

bool cpu_has_avx2() {
#if HEARTH_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
#else
    return false;
#endif
}

bool cpu_has_avx512() {
#if HEARTH_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

// AMX-TILE and AMX-INT8 (CPUID leaf 7, EDX bits 24 and 25), the OS saving
// the tile state (XCR0 bits 17 and 18), and Linux's permission for this
// process to use the tile data (asked once; refused on kernels before 5.16).
bool cpu_has_amx() {
#if HEARTH_AMX_KERNELS && defined(__linux__)
    static const bool ok = [] {
        if (!cpu_has_avx512()) return false;
        unsigned eax, ebx, ecx, edx;
        if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !(edx & (1u << 24)) || !(edx & (1u << 25)))
            return false;
        unsigned xcr0_lo, xcr0_hi;
        __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
        if ((xcr0_lo & (3u << 17)) != (3u << 17)) return false;
        constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
        return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
    }();
    return ok;
#else
    return false;
#endif
}

const KernelTable& choose() {
    const char* forced = std::getenv("HEARTH_KERNELS");
    if (forced && *forced) {
        const KernelTable* t = kernels_by_name(forced);
        if (!t) {
            throw Error(std::string("HEARTH_KERNELS=") + forced +
                        ": unknown kernel set or not supported by this CPU/build (choose scalar, avx2, avx512 or amx)");
        }
        return *t;
    }
    if (const KernelTable* t = kernels_by_name("amx")) return *t;
    if (const KernelTable* t = kernels_by_name("avx512")) return *t;
    if (const KernelTable* t = kernels_by_name("avx2")) return *t;
    return scalar_kernels();
}

}  // namespace

const KernelTable* kernels_by_name(const char* name) {
    if (std::strcmp(name, "scalar") == 0) return &scalar_kernels();
#if HEARTH_X86_KERNELS
    if (std::strcmp(name, "avx2") == 0) return cpu_has_avx2() ? &avx2_kernels() : nullptr;
    if (std::strcmp(name, "avx512") == 0) return cpu_has_avx512() ? &avx512_kernels() : nullptr;
#endif
#if HEARTH_AMX_KERNELS
    if (std::strcmp(name, "amx") == 0) return cpu_has_amx() ? &amx_kernels() : nullptr;
#endif
    return nullptr;
}

namespace {
std::atomic<const KernelTable*> g_table{nullptr};
}

const KernelTable& kernels() {
    const KernelTable* t = g_table.load(std::memory_order_acquire);
    if (!t) {
        t = &choose();
        g_table.store(t, std::memory_order_release);
    }
    return *t;
}

size_t q8a_packed_weight_row_bytes(GgmlType t, int64_t k) {
    return is_k_quant(t) ? k_packed_row_bytes(t, k) : row_bytes(t, k);
}

bool reads_activation_groups(GgmlType t) {
    return is_quantized(t) && t != GgmlType::Q4_0 && t != GgmlType::Q4_1 && t != GgmlType::Q8_0;
}

const char* activations_name(Activations a) { return a == Activations::Q8 ? "q8" : "q16"; }

bool parse_activations(const char* name, Activations* out) {
    if (std::strcmp(name, "q8") == 0) *out = Activations::Q8;
    else if (std::strcmp(name, "q16") == 0) *out = Activations::Q16;
    else return false;
    return true;
}

void use_kernels(const char* name) {
    const KernelTable* t = kernels_by_name(name);
    if (!t) throw Error(std::string("kernel set '") + name + "' is unknown or not supported by this CPU/build");
    g_table.store(t, std::memory_order_release);
}

}  // namespace hearth
