// Scalar conversions between f32 and the 16-bit float formats (IEEE half,
// bfloat16). Everything here is `static inline` on purpose: this header is
// included by the per-ISA kernel files, and a non-static inline function
// compiled there with AVX-512 could be picked by the linker for the portable
// code too.
#pragma once

#include <cstdint>
#include <cstring>

namespace hearth {

static inline float bits_to_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline uint32_t f32_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

// IEEE half -> f32, exact (subnormals, inf and nan included).
static inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    const uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));  // inf / nan
    if (exp == 0) {
        // zero or subnormal: man * 2^-24
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

// f32 -> IEEE half, round to nearest even (as numpy's astype(float16)).
static inline uint16_t f32_to_f16(float f) {
    const uint32_t x = f32_to_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  // rounds to >= 65520: inf
    if (absx < 0x38800000u) {
        // result is subnormal (or zero): round absx to a multiple of 2^-24
        const float a = bits_to_f32(absx);
        // adding 0.5 (2^-1) aligns 2^-24 to the last mantissa bit; RNE by the FPU
        const float t = a + 0.5f;
        return (uint16_t)(sign | ((f32_to_bits(t) - 0x3f000000u) & 0x7ff));
    }
    // normal: rebias the exponent and round the 13 dropped bits to nearest even
    uint32_t m = absx + 0xc8000fffu + ((absx >> 13) & 1);  // -(112 << 23) + 0xfff + odd
    return (uint16_t)(sign | (m >> 13));
}

static inline float bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

// f32 -> bfloat16, round to nearest even; nan stays nan.
static inline uint16_t f32_to_bf16(float f) {
    uint32_t x = f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

}  // namespace hearth
