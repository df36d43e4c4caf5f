// _core.testing.bench_attention: attention alone over a paged KV cache, for
// bench/attention_bench.py. A decode step's attention without the matmuls
// around it: n_seqs rows, one per sequence, each at position `positions`,
// over n_layers layers whose keys and values are all in the cache (more
// layers than the caches hold: read from memory, as in a decode step).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <climits>
#include <string>
#include <random>
#include <vector>

#include "base/cache_aligned.h"
#include "base/error.h"
#include "base/thread_pool.h"
#include "model/attention.h"
#include "model/batch.h"
#include "model/kv_cache.h"

namespace py = pybind11;
using namespace hearth;

namespace {

struct AttentionBenchArgs {
    std::string kv_type;
    int64_t n_seqs, positions, n_layers, n_head, n_head_kv, head_dim;
    int n_threads, iters;
};

// Seconds per pass over all layers, one entry per iteration.
std::vector<double> bench_attention(const AttentionBenchArgs& a) {
    auto refuse = [](const std::string& what) { throw Error("bench_attention: " + what); };
    if (a.n_seqs < 1 || a.n_layers < 1 || a.n_head < 1 || a.n_head_kv < 1 || a.head_dim < 1 || a.n_threads < 1 || a.iters < 1)
        refuse("n_seqs, n_layers, n_head, n_head_kv, head_dim, n_threads and iters must be at least 1");
    if (a.positions < 0 || a.positions >= (1 << 24)) refuse("positions must be in [0, 2^24), got " + std::to_string(a.positions));
    if (a.n_head % a.n_head_kv != 0)
        refuse("n_head " + std::to_string(a.n_head) + " is not a multiple of n_head_kv " + std::to_string(a.n_head_kv));
    const int64_t B = KVCache::kBlockTokens, per_seq = (a.positions + 1 + B - 1) / B;
    if (a.n_seqs > INT32_MAX / per_seq) refuse("n_seqs x blocks per sequence passes the KV cache's block ids");
    py::gil_scoped_release nogil;  // C++ objects only from here on
    KVCache cache(a.n_layers, a.n_head_kv, a.head_dim, parse_kv_type(a.kv_type), a.n_seqs * per_seq);
    // each sequence's blocks in a row, as a fresh pool hands them out
    std::vector<std::vector<int32_t>> tables((size_t)a.n_seqs);
    for (int64_t s = 0; s < a.n_seqs; s++)
        for (int64_t i = 0; i < per_seq; i++) tables[(size_t)s].push_back((int32_t)(s * per_seq + i));
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    std::vector<float> k((size_t)a.head_dim), v((size_t)a.head_dim);
    for (int64_t l = 0; l < a.n_layers; l++)
        for (int64_t s = 0; s < a.n_seqs; s++)
            for (int64_t p = 0; p <= a.positions; p++)
                for (int64_t h = 0; h < a.n_head_kv; h++) {
                    for (float& x : k) x = normal(rng);
                    for (float& x : v) x = normal(rng);
                    cache.write(tables[(size_t)s][(size_t)(p / B)], l, h, p % B, k.data(), v.data());
                }
    Batch batch;
    for (int64_t s = 0; s < a.n_seqs; s++) batch.add(0, batch.add_sequence(tables[(size_t)s]), a.positions, true);
    const int64_t width = a.n_head * a.head_dim;
    CacheAlignedVector<float> q((size_t)(a.n_seqs * width)), out(q.size());  // as the forward's
    for (float& x : q) x = normal(rng);
    const AttentionShape shape{a.n_head, a.n_head_kv, a.head_dim};
    ThreadPool pool(a.n_threads);
    std::vector<double> seconds;
    for (int it = 0; it < a.iters; it++) {
        const auto start = std::chrono::steady_clock::now();
        for (int64_t l = 0; l < a.n_layers; l++) attention(cache, batch, 0, a.n_seqs, l, shape, q.data(), out.data(), pool);
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return seconds;
}

}  // namespace

void bind_attention(py::module_& testing) {
    testing.def("bench_attention",
                [](const std::string& kv_type, int64_t n_seqs, int64_t positions, int64_t n_layers, int64_t n_head,
                   int64_t n_head_kv, int64_t head_dim, int n_threads, int iters) {
                    return bench_attention({kv_type, n_seqs, positions, n_layers, n_head, n_head_kv, head_dim, n_threads, iters});
                },
                py::arg("kv_type"), py::arg("n_seqs"), py::arg("positions"), py::arg("n_layers"), py::arg("n_head"),
                py::arg("n_head_kv"), py::arg("head_dim"), py::arg("n_threads") = 1, py::arg("iters") = 10,
                "Seconds per pass of attention over n_layers (one per iteration): n_seqs decode rows at `positions`, "
                "a kv_type cache holding every layer's keys and values.");
}
