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

// The same in double, for the sums whose rounding the sampler's margins
// assume is a double's (top-p's, min-p's, the log-probabilities): Taylor's
// series to degree 13 after the same reduction (its truncation is below
// 1e-17 of e^t); within 2 ulp of e^t. 0 below e^-708 (and for x = -inf).
namespace sampler_exp64 {
constexpr double kLowest = -708.0;
constexpr double kLog2e = 1.44269504088896338700e+00;
constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52
// ln 2 in two parts: n * kLn2Hi is exact for |n| < 2^20
constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
// 1 / k! for k = 13 down to 2
constexpr double kC[12] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                           1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,      1.0 / 720.0,
                           1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,         1.0 / 2.0};
}  // namespace sampler_exp64

inline double sampler_exp64_one(float x, float shift) {
    using namespace sampler_exp64;
    const double t = (double)x - (double)shift;
    if (!(t >= kLowest)) return 0.0;
    const double n = (t * kLog2e + kRound) - kRound;
    const double r = (t - n * kLn2Hi) - n * kLn2Lo;
    double p = kC[0];
    for (int k = 1; k < 12; k++) p = p * r + kC[k];
    p = p * r + 1.0;
    const double y = p * r + 1.0;
    int64_t bits;
    std::memcpy(&bits, &y, 8);
    bits += (int64_t)n * ((int64_t)1 << 52);  // times 2^n
    double out;
    std::memcpy(&out, &bits, 8);
    return out;
}

}  // namespace
}  // namespace hearth
