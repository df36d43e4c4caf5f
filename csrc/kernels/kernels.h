// The kernel table: every hot loop of the engine, implemented once per
// instruction set (scalar.cpp is the reference, avx2.cpp, avx512.cpp and
// amx.cpp the fast paths) and chosen at run time from the CPU's features.
// HEARTH_KERNELS=scalar|avx2|avx512|amx forces a path.
//
// Contract for every implementation:
// - results equal the scalar reference within float rounding;
// - in matmul, the value of output (row r, token t) depends only on r, t and
//   the data, never on the tile it was computed in (r0, r1, n_tokens): this is
//   what makes logits bit-identical for any thread count and for prefill vs
//   decode.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gguf/ggml_type.h"
#include "gguf/quant_blocks.h"

namespace hearth {

// How the activations of a quantized matmul are quantized: Q8 (block_q8a,
// the fast path: twice the products per instruction) or Q16 (block_q16a, the
// exact path: nearly no rounding of the activations). A model uses one for its
// whole life, so a row's result never depends on what it was batched with.
enum class Activations : uint8_t { Q8, Q16 };
// "q8" / "q16"; parse returns false for any other name.
const char* activations_name(Activations a);
bool parse_activations(const char* name, Activations* out);

// One matrix product Y = X · Wᵀ restricted to weight rows [r0, r1):
//   y[t * y_stride + r] = sum_k W[r, k] * X[t, k]   for t < n_tokens, r0 <= r < r1
// W is a GGUF tensor (ne0 = k contiguous, ne1 = rows), or on the Q8 path of
// a set with pack_q8a_weights, that tensor repacked by it (the same row
// bytes). X holds n_tokens rows: f32 (k floats each) when W is
// f32/f16/bf16, block_q8a or block_q16a (k/32 blocks each, as x_type says)
// when W is quantized.
struct MatmulArgs {
    GgmlType w_type;
    const void* w;
    size_t w_row_bytes;
    const void* x;
    size_t x_row_bytes;
    float* y;
    int64_t y_stride;  // in floats, between tokens
    int64_t k;         // inner dimension (multiple of 32 for quantized W)
    int64_t r0, r1;
    int64_t w_rows = 0;  // W's rows (0: r1); row tiles of 16 (row_tiles.h) need the last one's size
    int64_t n_tokens;
    Activations x_type = Activations::Q16;  // quantized W only
};

// Positions per KV-cache block, as the attention kernels lay a block out
// (one AVX-512 register of f32 per key dimension).
constexpr int kBlockKeys = 16;
// The most queries (heads) the attention kernels' group forms take at once.
constexpr int kGroupQueries = 4;

// A block of the q8_0 KV cache (one head's keys or values of kBlockKeys
// positions; head_dim a multiple of kKVQuantGroup): int8 quants, then one
// f16 scale per position and kKVQuantGroup dimensions, as GGUF's q8_0
// keeps its d (34 bytes per 32 values, llama.cpp's q8_0 cache too), so
// quant × scale is exact in f32.
//   keys: quant of dimension d of key j at (d / 4) * 64 + j * 4 + d % 4 (a
//     dword per key holds 4 dimensions: the integer dot products' order),
//     scale at (d / 32) * kBlockKeys + j;
//   values: position-major, quant at j * hd + i, scale at j * (hd / 32) + i / 32.
// (544 bytes per 32 dimensions: a block starts on a cache line when head_dim
// is a multiple of 64, as it is in the models hearth runs.)
constexpr int kKVQuantGroup = 32;
// The most groups of 32 a q8_0 head may have (head_dim 1,024; KVCache
// refuses larger heads).
constexpr int64_t kMaxQ8Groups = 32;
inline size_t kv_q8_block_bytes(int64_t hd) {
    return (size_t)(kBlockKeys * hd) + (size_t)(kBlockKeys * (hd / kKVQuantGroup)) * sizeof(uint16_t);
}
inline const uint16_t* kv_q8_scales(const void* block, int64_t hd) {
    return (const uint16_t*)((const int8_t*)block + kBlockKeys * hd);
}
inline uint16_t* kv_q8_scales(void* block, int64_t hd) { return (uint16_t*)((int8_t*)block + kBlockKeys * hd); }
// Where the quant of dimension d of key j sits in a q8_0 block of keys.
inline int64_t kv_q8_key_index(int64_t d, int64_t j) { return (d / 4) * 4 * kBlockKeys + j * 4 + d % 4; }
// A query as the q8_0 cache's keys take it (llama.cpp's too): quantized
// as q8_0, hd quants and a scale per 32. Quants, the keys' too, are in
// -127 .. 127 (as q8_0 makes them): AVX2's sign trick needs it.
struct QueryQ8 {
    const int8_t* q;
    const float* d;
};

struct KernelTable {
    const char* name;

    void (*matmul)(const MatmulArgs& a);

    // Quantize k floats (k % 32 == 0) into k/32 q16a blocks.
    void (*quantize_q16a)(const float* x, block_q16a* y, int64_t k);
    void (*quantize_q8a)(const float* x, block_q8a* y, int64_t k);
    // q8a rows go to the matmul in this set's own layout (Q8): the bytes of
    // a packed row of k activations, and the packing of one row. Without
    // groups, the part of the row that only weight types outside the row
    // tiles read (reads_activation_groups) is left unwritten.
    size_t (*q8a_packed_row_bytes)(int64_t k);
    void (*pack_q8a)(const block_q8a* x, int64_t k, void* out, bool groups);
    // Quantized weights (q4_0, q4_1, q8_0, the K-quants) for the Q8 path, in
    // this set's own order: packed once at load instead of transposed on
    // every call. Rows [r0, r1) of a tensor of rows of k weights, to their
    // own bytes in out (rows of q8a_packed_weight_row_bytes: row r's at r
    // rows from the start; the SIMD sets lay out q4_0, q4_1 and
    // q8_0 in tiles of 16 rows in the bytes of those rows, so their r0 is a
    // multiple of 16 and their r1 one too or the tensor's end). Null for a
    // set that reads GGUF rows as they are (scalar); a set that has it takes
    // only packed weights on the Q8 path.
    void (*pack_q8a_weights)(GgmlType t, const void* w, int64_t r0, int64_t r1, int64_t k, void* out);

    // Attention helpers over one head: an axpy into the output with a cached
    // value, for f32 and f16 caches, and the f16 cache's rounding.
    void (*axpy_f32)(float alpha, const float* x, float* y, int64_t n);   // y += alpha * x
    void (*axpy_f16)(float alpha, const uint16_t* x, float* y, int64_t n);
    void (*f32_to_f16_row)(const float* x, uint16_t* y, int64_t n);  // round to nearest even

    // Attention over one KV-cache block of kBlockKeys positions of one head.
    // A block's keys are stored dimension-major, kt[d * kBlockKeys + j] =
    // dimension d of key j, so that one load gives a dimension of every key
    // and a query's scores need no horizontal sums:
    //   scores: out[j] = sum_d kt[d * kBlockKeys + j] * q[d] for every j <
    //   kBlockKeys (slots the block has not filled give scores the caller
    //   ignores); summed as four interleaved parts, d mod 4, added at the end.
    // Its values are position-major (v[j * hd + i]):
    //   accumulate: out[i] += sum_j w[j] * v[j * hd + i] over j < n, in order
    //   of j (the fast paths may split the sum into interleaved parts).
    // The f16 forms convert as they load: on f16_to_f32_row's output the f32
    // forms give bit-identical results, so a caller may convert a block once
    // for many queries. A result depends only on the block's data, the query
    // or weights and n, never on other rows.
    void (*scores_f32)(const float* q, const float* kt, int64_t hd, float* out);
    void (*scores_f16)(const float* q, const uint16_t* kt, int64_t hd, float* out);
    // nq (1 .. kGroupQueries) queries against the same block: out[m] is
    // exactly what scores gives for q[m] (AVX-512 loads and converts each key
    // dimension once for the group: the heads that share a KV head).
    void (*scores_group_f32)(const float* const* q, int nq, const float* kt, int64_t hd, float* const* out);
    void (*scores_group_f16)(const float* const* q, int nq, const uint16_t* kt, int64_t hd, float* const* out);
    void (*accumulate_f32)(const float* w, const float* v, int64_t n, int64_t hd, float* out);
    void (*accumulate_f16)(const float* w, const uint16_t* v, int64_t n, int64_t hd, float* out);
    // nq (1 .. kGroupQueries) weight rows over the same n values: out[m] is
    // exactly what accumulate gives for w[m] and out[m].
    void (*accumulate_group_f32)(const float* const* w, int nq, const float* v, int64_t n, int64_t hd, float* const* out);
    void (*accumulate_group_f16)(const float* const* w, int nq, const uint16_t* v, int64_t n, int64_t hd,
                                 float* const* out);
    void (*f16_to_f32_row)(const uint16_t* x, float* y, int64_t n);  // exact
    // The q8_0 cache's forms (blocks laid out as kv_q8_block_bytes says).
    // scores: for each key j, over its groups of 32 dimensions c in order,
    //   out[j] = fma((float)dot_c, d_key[c][j] * d_q[c], out[j])   from 0,
    // dot_c the exact integer dot product of the quants: the same bits in
    // every set. dequantize_values_q8 writes a block's first n values as
    // f32, exactly; accumulate_group_q8 gives bit for
    // bit what accumulate_group_f32 gives on those values, so a caller may
    // dequantize values once for many queries or in the loads for a few.
    void (*dequantize_values_q8)(const void* block, int64_t n, int64_t hd, float* out);
    void (*scores_group_q8)(const QueryQ8* q, int nq, const void* kt, int64_t hd, float* const* out);
    void (*accumulate_group_q8)(const float* const* w, int nq, const void* v, int64_t n, int64_t hd, float* const* out);
    // What the q8_0 cache stores of a key or value, and what its scores take
    // of a query: n floats (n % 32 == 0) as GGUF's q8_0 quantizes them
    // (ggml's quantize_row_q8_0): per 32, d = max |x| / 127 rounded to f16
    // (d[i / 32], as f32), q[i] = round(x[i] * (1 / d)) with the unrounded
    // d, halves away from zero. A group holding a NaN or inf gets quants 0
    // and d NaN or inf (it dequantizes to NaN, as an f16 cache would give
    // attention). The same bytes in every set: a position is written once,
    // whatever set reads it.
    void (*quantize_kv_q8_0)(const float* x, int64_t n, int8_t* q, float* d);

    // Attention weights in place: x = softmax(scale * x) over n scores
    // (max subtracted first; the SIMD sets use a polynomial exp within a few
    // ulp of std::exp).
    void (*scaled_softmax)(float* x, int64_t n, float scale);

    // gate[i] = silu(gate[i]) * up[i], SwiGLU's gating (the SIMD sets use the
    // same polynomial exp as scaled_softmax).
    void (*silu_mul)(float* gate, const float* up, int64_t n);

    // The sampler's weights: y[i] = e^(x[i] - shift), 0 below e^-87 and for
    // x = -inf, by sampler_exp.h's operations: bit for bit the same in every
    // set, so that a seeded draw does not depend on the CPU.
    void (*exp_shifted)(const float* x, int64_t n, float shift, float* y);
    // The same in double (y[i] = e^((double)x[i] - shift), 0 below e^-708),
    // for the sums that need a double's rounding: top-p's, min-p's, the
    // log-probabilities'.
    void (*exp_shifted_f64)(const float* x, int64_t n, float shift, double* y);
};

// Bytes of a row of k weights of type t as pack_q8a_weights writes it, the
// same for every set: the file's row bytes, except for the K-quants, whose
// scales take a few more (kernels/k_packing.h).
size_t q8a_packed_weight_row_bytes(GgmlType t, int64_t k);

// Whether a SIMD set's matmul of quantized weights of type t reads the
// groups of the packed activations (pack_q8a): every type but q4_0, q4_1 and
// q8_0, which read the row tiles' part (kernels/row_tiles.h).
bool reads_activation_groups(GgmlType t);

// The table in use: chosen on first use (HEARTH_KERNELS or the CPU's best).
const KernelTable& kernels();
// Switches the table in use, for tests and benchmarks; call it only while no
// model is computing. Throws when the name is unknown or the CPU lacks it.
void use_kernels(const char* name);
// A table by name ("scalar", "avx2", "avx512", "amx"), or nullptr when this build or
// this CPU lacks it. For tests and benchmarks.
const KernelTable* kernels_by_name(const char* name);

// Implemented in the per-ISA files.
const KernelTable& scalar_kernels();
#if HEARTH_X86_KERNELS
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();
// avx512, but the matmuls of q4_0 / q4_1 / q8_0 weights (avx512's row
// tiles) do whole tiles of 16 tokens on the tile unit (AMX-INT8).
const KernelTable& amx_kernels();
#endif
// The 8-bit-activation entries of each set (avx2_q8.cpp, avx512_q8.cpp); the
// set's matmul calls its matmul_q8a when x_type is Q8.
void avx2_matmul_q8a(const MatmulArgs& a);
size_t avx2_q8a_packed_row_bytes(int64_t k);
void avx2_pack_q8a(const block_q8a* x, int64_t k, void* out, bool groups);
void avx2_pack_q8a_weights(GgmlType t, const void* w, int64_t r0, int64_t r1, int64_t k, void* out);
void avx512_matmul_q8a(const MatmulArgs& a);
size_t avx512_q8a_packed_row_bytes(int64_t k);
void avx512_pack_q8a(const block_q8a* x, int64_t k, void* out, bool groups);
void avx512_pack_q8a_weights(GgmlType t, const void* w, int64_t r0, int64_t r1, int64_t k, void* out);
// q4_0, q4_1 and q8_0 take row tiles (kernels/row_tiles.h) on the 8-bit
// path of every SIMD set: avx2_rows.cpp's and avx512_rows.cpp's matmuls
// (the amx set's tile unit hands its leftover tokens to avx512's). A set's
// packed activation row is its groups (written only when some weight
// reads them: reads_activation_groups), then row_tiles.h's raw part.
void avx2_rows_matmul_q8a(const MatmulArgs& a);
void avx512_rows_matmul_q8a(const MatmulArgs& a);

}  // namespace hearth
