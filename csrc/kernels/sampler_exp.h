// The sampler's exponential, e^(x - shift) in float, defined by its
// operations: Cody-Waite reduction by ln 2 and Cephes' degree-6 polynomial
// (within 2 ulp of e^t), each step a plain multiply, add or subtract in
// float. Every kernel set computes exactly these operations, in this order,
// with no fused multiply-adds (the kernel files build with
// -ffp-contract=off), so a seeded draw is the same on every CPU. Like
// float_tiling.h it lives in an anonymous namespace: each kernel file gets
// its own copy (the SIMD files use it for their tails).
#pragma once

#include <cstdint>
#include <cstring>

namespace hearth {
namespace {

namespace sampler_exp {
constexpr float kLowest = -87.0f;  // below: 0 (e^-87 is near float's smallest normal)
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer (ties to even)
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f, kP3 = 4.1665795894e-2f,
                kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
}  // namespace sampler_exp

inline float sampler_exp_one(float x, float shift) {
    using namespace sampler_exp;
    const float t = x - shift;
    if (!(t >= kLowest)) return 0.0f;  // also -inf (a removed token)
    const float n = (t * kLog2e + kRound) - kRound;
    const float r = (t - n * kLn2Hi) - n * kLn2Lo;
    const float z = r * r;
    float p = kP0 * r + kP1;
    p = p * r + kP2;
    p = p * r + kP3;
    p = p * r + kP4;
    p = p * r + kP5;
    const float y = (p * z + r) + 1.0f;
    int32_t bits;
    std::memcpy(&bits, &y, 4);
    bits += (int32_t)n * (1 << 23);  // times 2^n
    float out;
    std::memcpy(&out, &bits, 4);
    return out;
}

}  // namespace
}  // namespace hearth
