// Test and benchmark hooks for the kernel tables (csrc/kernels): every entry
// of a named table ("scalar", "avx2", "avx512", "amx") callable on numpy arrays, so
// that tests compare the paths with each other and with numpy references.
// Underscore-free names on purpose: they live in hearthlm._core, which is
// private; nothing outside tests and bench/ should call them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "base/cache_aligned.h"
#include "base/error.h"
#include "base/page_buffer.h"
#include "gguf/ggml_type.h"
#include "kernels/kernels.h"

namespace py = pybind11;
using namespace hearth;

namespace {

template <typename T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

const KernelTable& table(const std::string& name) {
    const KernelTable* t = kernels_by_name(name.c_str());
    if (!t) throw Error("kernel set '" + name + "' is not available in this build or on this CPU");
    return *t;
}

GgmlType check_type(int w_type) {
    switch (w_type) {
        case (int)GgmlType::F32: case (int)GgmlType::F16: case (int)GgmlType::BF16:
        case (int)GgmlType::Q8_0: case (int)GgmlType::Q4_0: case (int)GgmlType::Q4_1: case (int)GgmlType::Q5_0:
        case (int)GgmlType::Q5_1: case (int)GgmlType::Q2_K: case (int)GgmlType::Q3_K: case (int)GgmlType::Q4_K: case (int)GgmlType::Q5_K:
        case (int)GgmlType::Q6_K:
            return (GgmlType)w_type;
    }
    throw Error("kernel_matmul: unsupported weight type " + std::to_string(w_type));
}

Activations activations_arg(const std::string& a) {
    Activations out;
    if (!parse_activations(a.c_str(), &out)) throw Error("activations must be 'q8' or 'q16', got '" + a + "'");
    return out;
}

// A prepared matmul: weights checked, activations converted (quantized with
// the named table's quantize_q8a + pack_q8a or quantize_q16a when the weights
// are quantized, as the model's Matmul does).
struct Prepared {
    MatmulArgs args{};
    std::vector<block_q16a> xq;
    std::vector<block_q8a> x8;
    std::vector<uint64_t> packed;  // the packed q8a rows (aligned in prepare)
    PageBuffer w_packed;  // the weights in the set's layout, when it packs them (as the model keeps them)
};

Prepared prepare(const KernelTable& kt, int w_type, const carray<uint8_t>& w, int64_t rows, int64_t k,
                 const carray<float>& x, const std::string& activations) {
    const GgmlType t = check_type(w_type);
    if (rows < 0 || k <= 0) throw Error("kernel_matmul: rows must be >= 0 and k > 0");
    if (is_quantized(t) && k % type_block_elems(t) != 0)
        throw Error("kernel_matmul: k must be a multiple of " + std::to_string(type_block_elems(t)) + " for " + type_name(t));
    const size_t rb = row_bytes(t, k);
    if ((size_t)w.size() < rb * (size_t)rows) throw Error("kernel_matmul: weight buffer too small");
    if (x.ndim() != 2 || x.shape(1) != k) throw Error("kernel_matmul: x must be float32 [n_tokens, k]");
    Prepared p;
    const int64_t nt = x.shape(0);
    p.args.w_type = t;
    p.args.w = w.data();
    p.args.w_row_bytes = rb;
    p.args.k = k;
    p.args.w_rows = rows;
    p.args.n_tokens = nt;
    p.args.x_type = activations_arg(activations);
    if (is_quantized(t) && p.args.x_type == Activations::Q16) {
        const int64_t nb = k / QK;
        p.xq.resize((size_t)(nt * nb));
        for (int64_t i = 0; i < nt; i++) kt.quantize_q16a(x.data() + i * k, p.xq.data() + i * nb, k);
        p.args.x = p.xq.data();
        p.args.x_row_bytes = nb * sizeof(block_q16a);
    } else if (is_quantized(t)) {
        const int64_t nb = k / QK;
        p.x8.resize((size_t)(nt * nb));
        const size_t row = (kt.q8a_packed_row_bytes(k) + 63) / 64 * 64;
        p.packed.resize(row / 8 * nt + 8);
        // the kernels load packed rows with aligned loads: start on a 64-byte line
        uint8_t* base = (uint8_t*)p.packed.data();
        base += (64 - (uintptr_t)base % 64) % 64;
        for (int64_t i = 0; i < nt; i++) {
            kt.quantize_q8a(x.data() + i * k, p.x8.data() + i * nb, k);
            kt.pack_q8a(p.x8.data() + i * nb, k, base + i * row, true);
        }
        p.args.x = base;
        p.args.x_row_bytes = row;
        if (kt.pack_q8a_weights) {  // as the model's Matmul does at load
            const size_t prb = q8a_packed_weight_row_bytes(t, k);
            p.w_packed = PageBuffer(prb * rows, "kernel_matmul", false);
            kt.pack_q8a_weights(t, w.data(), 0, rows, k, p.w_packed.data());
            p.args.w = p.w_packed.data();
            p.args.w_row_bytes = prb;
        }
    } else {
        p.args.x = x.data();
        p.args.x_row_bytes = k * sizeof(float);
    }
    return p;
}

py::array_t<float> kernel_matmul(const std::string& name, int w_type, const carray<uint8_t>& w, int64_t rows,
                                 int64_t k, const carray<float>& x, int64_t r0, int64_t r1,
                                 const std::string& activations) {
    const KernelTable& kt = table(name);
    Prepared p = prepare(kt, w_type, w, rows, k, x, activations);
    if (r0 < 0 || r1 > rows || r0 > r1) throw Error("kernel_matmul: need 0 <= r0 <= r1 <= rows");
    const int64_t nt = p.args.n_tokens;
    py::array_t<float> y({nt, rows});
    float* yp = y.mutable_data();
    for (int64_t i = 0; i < nt * rows; i++) yp[i] = std::numeric_limits<float>::quiet_NaN();  // untouched = nan
    p.args.y = yp;
    p.args.y_stride = rows;
    p.args.r0 = r0;
    p.args.r1 = r1;
    {
        py::gil_scoped_release nogil;
        kt.matmul(p.args);
    }
    return y;
}

double thread_cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// (wall seconds, CPU seconds of the busiest thread) per matmul, the rows split
// between n_threads threads (each runs `iters` products on its share; no
// barrier between iterations). The CPU time is what to read on a busy machine.
std::pair<double, double> kernel_bench_matmul(const std::string& name, int w_type, const carray<uint8_t>& w,
                                              int64_t rows, int64_t k, const carray<float>& x, int n_threads,
                                              int iters, const std::string& activations) {
    const KernelTable& kt = table(name);
    Prepared p = prepare(kt, w_type, w, rows, k, x, activations);
    if (n_threads < 1 || iters < 1) throw Error("kernel_bench_matmul: n_threads and iters must be >= 1");
    CacheAlignedVector<float> y((size_t)(p.args.n_tokens * rows));  // as the forward's outputs
    p.args.y = y.data();
    p.args.y_stride = rows;
    std::vector<double> cpu((size_t)n_threads);
    double seconds;
    {
        py::gil_scoped_release nogil;
        auto run = [&](int ti) {
            MatmulArgs a = p.args;
            a.r0 = rows * ti / n_threads;
            a.r1 = rows * (ti + 1) / n_threads;
            const double c0 = thread_cpu_seconds();
            for (int it = 0; it < iters; it++) kt.matmul(a);
            cpu[(size_t)ti] = thread_cpu_seconds() - c0;
        };
        const auto start = std::chrono::steady_clock::now();
        std::vector<std::thread> th;
        for (int ti = 1; ti < n_threads; ti++) th.emplace_back(run, ti);
        run(0);
        for (auto& t : th) t.join();
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    double cmax = 0;
    for (double c : cpu) cmax = c > cmax ? c : cmax;
    return {seconds / iters, cmax / iters};
}

std::tuple<py::array_t<float>, py::array_t<int32_t>, py::array_t<int16_t>> kernel_quantize_q16a(
    const std::string& name, const carray<float>& x) {
    const KernelTable& kt = table(name);
    const int64_t k = x.size();
    if (k % QK != 0) throw Error("kernel_quantize_q16a: length must be a multiple of 32");
    const int64_t nb = k / QK;
    std::vector<block_q16a> q((size_t)nb);
    {
        py::gil_scoped_release nogil;
        kt.quantize_q16a(x.data(), q.data(), k);
    }
    py::array_t<float> d(nb);
    py::array_t<int32_t> s(nb);
    py::array_t<int16_t> qs({nb, (int64_t)QK});
    for (int64_t b = 0; b < nb; b++) {
        d.mutable_data()[b] = q[b].d;
        s.mutable_data()[b] = q[b].sum;
        for (int i = 0; i < QK; i++) qs.mutable_data()[b * QK + i] = q[b].qs[i];
    }
    return {d, s, qs};
}

std::tuple<py::array_t<float>, py::array_t<int32_t>, py::array_t<int8_t>> kernel_quantize_q8a(
    const std::string& name, const carray<float>& x) {
    const KernelTable& kt = table(name);
    const int64_t k = x.size();
    if (k % QK != 0) throw Error("kernel_quantize_q8a: length must be a multiple of 32");
    const int64_t nb = k / QK;
    std::vector<block_q8a> q((size_t)nb);
    {
        py::gil_scoped_release nogil;
        kt.quantize_q8a(x.data(), q.data(), k);
    }
    py::array_t<float> d(nb);
    py::array_t<int32_t> s(nb);
    py::array_t<int8_t> qs({nb, (int64_t)QK});
    for (int64_t b = 0; b < nb; b++) {
        d.mutable_data()[b] = q[b].d;
        s.mutable_data()[b] = q[b].sum;
        for (int i = 0; i < QK; i++) qs.mutable_data()[b * QK + i] = q[b].qs[i];
    }
    return {d, s, qs};
}

// The named set's quantize_q8a then pack_q8a of x: the packed row's bytes.
py::array_t<uint8_t> kernel_pack_q8a(const std::string& name, const carray<float>& x) {
    const KernelTable& kt = table(name);
    const int64_t k = x.size();
    if (k % QK != 0) throw Error("kernel_pack_q8a: length must be a multiple of 32");
    std::vector<block_q8a> q((size_t)(k / QK));
    const size_t bytes = kt.q8a_packed_row_bytes(k);
    std::vector<uint64_t> packed(bytes / 8 + 8);  // 64-byte aligned below, as Matmul::prepare's rows
    uint8_t* row = (uint8_t*)(((uintptr_t)packed.data() + 63) / 64 * 64);
    kt.quantize_q8a(x.data(), q.data(), k);
    kt.pack_q8a(q.data(), k, row, true);
    py::array_t<uint8_t> out((int64_t)bytes);
    std::copy(row, row + bytes, out.mutable_data());
    return out;
}

// STREAM-style read bandwidth: n_threads threads each sum their share of a
// buffer of `bytes` (pages touched first), `reps` times; returns the best
// rep's bytes per second. The ceiling a decode step that streams the weights
// can reach.
double read_bandwidth(int n_threads, int64_t bytes, int reps) {
    if (n_threads < 1 || bytes < (1 << 20) || reps < 1) throw Error("read_bandwidth: need n_threads >= 1, bytes >= 1 MiB, reps >= 1");
    const int64_t n = bytes / 8;
    std::vector<uint64_t> buf((size_t)n);
    for (int64_t i = 0; i < n; i++) buf[(size_t)i] = (uint64_t)i;
    std::vector<uint64_t> sums((size_t)n_threads);
    double best = 0;
    py::gil_scoped_release nogil;
    for (int rep = 0; rep < reps; rep++) {
        auto run = [&](int ti) {
            const uint64_t* p = buf.data() + n * ti / n_threads;
            const int64_t m = n * (ti + 1) / n_threads - n * ti / n_threads;
            uint64_t a = 0, b = 0, c = 0, d = 0;  // four chains: the loads, not the adds, set the pace
            int64_t i = 0;
            for (; i + 4 <= m; i += 4) a += p[i], b += p[i + 1], c += p[i + 2], d += p[i + 3];
            for (; i < m; i++) a += p[i];
            sums[(size_t)ti] = a + b + c + d;
        };
        const auto start = std::chrono::steady_clock::now();
        std::vector<std::thread> th;
        for (int ti = 1; ti < n_threads; ti++) th.emplace_back(run, ti);
        run(0);
        for (auto& t : th) t.join();
        const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        best = std::max(best, (double)(n * 8) / sec);
    }
    volatile uint64_t sink = 0;
    for (uint64_t v : sums) sink = sink + v;  // keep the sums alive
    return best;
}

void check_same(int64_t a, int64_t b, const char* what) {
    if (a != b) throw Error(std::string(what) + ": arrays must have the same length");
}

}  // namespace

void bind_kernels(py::module_& m, py::module_& testing) {
    m.def("supported_kernels", [] {
        std::vector<std::string> names;
        for (const char* n : {"scalar", "avx2", "avx512", "amx"})
            if (kernels_by_name(n)) names.push_back(n);
        return names;
    }, "Kernel sets this build and this CPU support, scalar first.");
    m.def("kernel_name", [] { return std::string(kernels().name); },
          "The kernel set the engine uses (HEARTH_KERNELS or the CPU's best; use_kernels switches it).");
    m.def("use_kernels", [](const std::string& name) { use_kernels(name.c_str()); }, py::arg("name"),
          "Switches the kernel set (for tests and benchmarks; not while a model computes).");
    testing.def("kernel_matmul", &kernel_matmul, py::arg("name"), py::arg("w_type"), py::arg("w"), py::arg("rows"),
          py::arg("k"), py::arg("x"), py::arg("r0"), py::arg("r1"), py::arg("activations") = "q8",
          "y[t, r] = sum_k W[r, k] x[t, k] for r in [r0, r1) (other rows nan) with the named kernel set. "
          "w: raw GGUF row bytes (uint8), x: float32 [n_tokens, k], quantized by the same set to q8a or "
          "q16a (activations) when w is quantized. Returns float32 [n_tokens, rows].");
    testing.def("dequantize_row", [](int w_type, const carray<uint8_t>& raw, int64_t n) {
        const GgmlType t = check_type(w_type);
        if (n <= 0 || n % type_block_elems(t) != 0 || (size_t)raw.size() < row_bytes(t, n))
            throw Error("dequantize_row: n must be a positive multiple of the block size, with its bytes given");
        py::array_t<float> out(n);
        dequantize_row(t, raw.data(), out.mutable_data(), n);
        return out;
    }, py::arg("w_type"), py::arg("raw"), py::arg("n"), "The weights of one row of GGUF type w_type, as the model reads them.");
    testing.def("kernel_bench_matmul", &kernel_bench_matmul, py::arg("name"), py::arg("w_type"), py::arg("w"),
          py::arg("rows"), py::arg("k"), py::arg("x"), py::arg("n_threads") = 1, py::arg("iters") = 10,
          py::arg("activations") = "q8",
          "(wall, busiest thread CPU) seconds per matmul (activation quantization excluded), rows split between n_threads.");
    testing.def("kernel_quantize_q16a", &kernel_quantize_q16a, py::arg("name"), py::arg("x"),
          "Quantize float32 x (length % 32 == 0) to q16a: returns (d float32 [nb], sum int32 [nb], qs int16 [nb, 32]).");
    testing.def("kernel_quantize_q8a", &kernel_quantize_q8a, py::arg("name"), py::arg("x"),
          "Quantize float32 x (length % 32 == 0) to q8a: returns (d float32 [nb], sum int32 [nb], qs int8 [nb, 32]).");
    testing.def("kernel_pack_q8a", &kernel_pack_q8a, py::arg("name"), py::arg("x"),
          "quantize_q8a then pack_q8a of float32 x (length % 32 == 0): the packed row's bytes.");
    testing.def("kernel_axpy_f32", [](const std::string& name, float alpha, const carray<float>& x, const carray<float>& y) {
        check_same(x.size(), y.size(), "kernel_axpy_f32");
        py::array_t<float> out(y.size());
        std::copy(y.data(), y.data() + y.size(), out.mutable_data());
        table(name).axpy_f32(alpha, x.data(), out.mutable_data(), x.size());
        return out;
    }, "Returns y + alpha * x (y is not modified).");
    testing.def("kernel_axpy_f16", [](const std::string& name, float alpha, const carray<uint16_t>& x, const carray<float>& y) {
        check_same(x.size(), y.size(), "kernel_axpy_f16");
        py::array_t<float> out(y.size());
        std::copy(y.data(), y.data() + y.size(), out.mutable_data());
        table(name).axpy_f16(alpha, x.data(), out.mutable_data(), x.size());
        return out;
    }, "x: float16 bits as uint16. Returns y + alpha * x.");
    testing.def("read_bandwidth", &read_bandwidth, py::arg("n_threads"), py::arg("bytes") = (int64_t)1 << 30,
                py::arg("reps") = 5, "Read bandwidth in bytes/s (best of reps), n_threads summing a buffer of bytes.");
    testing.def("kernel_scaled_softmax", [](const std::string& name, const carray<float>& x, float scale) {
        py::array_t<float> out(x.size());
        std::copy(x.data(), x.data() + x.size(), out.mutable_data());
        table(name).scaled_softmax(out.mutable_data(), x.size(), scale);
        return out;
    }, "softmax(scale * x) (x is not modified).");
    testing.def("kernel_exp_shifted", [](const std::string& name, const carray<float>& x, float shift) {
        py::array_t<float> out(x.size());
        table(name).exp_shifted(x.data(), x.size(), shift, out.mutable_data());
        return out;
    }, "The sampler's weights e^(x - shift), 0 below e^-87.");
    testing.def("kernel_exp_shifted_f64", [](const std::string& name, const carray<float>& x, float shift) {
        py::array_t<double> out(x.size());
        table(name).exp_shifted_f64(x.data(), x.size(), shift, out.mutable_data());
        return out;
    }, "e^((double)x - shift) in double, 0 below e^-708.");
    testing.def("kernel_scores", [](const std::string& name, const carray<float>& q, py::array kt) {
        // kt: [hd, kBlockKeys] float32 or float16 bits (uint16), dimension-major
        py::array_t<float> out(kBlockKeys);
        const int64_t hd = q.size();
        if (py::isinstance<py::array_t<uint16_t>>(kt)) {
            const carray<uint16_t> kk(kt);
            check_same(kk.size(), hd * kBlockKeys, "kernel_scores");
            table(name).scores_f16(q.data(), kk.data(), hd, out.mutable_data());
        } else {
            const carray<float> kk(kt);
            check_same(kk.size(), hd * kBlockKeys, "kernel_scores");
            table(name).scores_f32(q.data(), kk.data(), hd, out.mutable_data());
        }
        return out;
    }, "scores of q against one block of 16 keys stored dimension-major ([hd, 16]; float32, or float16 bits as uint16)");
    testing.def("kernel_scores_group", [](const std::string& name, const carray<float>& q, py::array kt, int nq) {
        // q: [nq, hd]; kt as kernel_scores'; returns [nq, kBlockKeys]
        if (nq < 1 || nq > kGroupQueries) throw Error("kernel_scores_group: nq must be 1 .. " + std::to_string(kGroupQueries));
        const int64_t hd = q.size() / nq;
        check_same(q.size(), nq * hd, "kernel_scores_group");
        py::array_t<float> out({(int64_t)nq, (int64_t)kBlockKeys});
        const float* qs[kGroupQueries];
        float* outs[kGroupQueries];
        for (int m = 0; m < nq; m++) qs[m] = q.data() + m * hd, outs[m] = out.mutable_data() + m * kBlockKeys;
        if (py::isinstance<py::array_t<uint16_t>>(kt)) {
            const carray<uint16_t> kk(kt);
            check_same(kk.size(), hd * kBlockKeys, "kernel_scores_group");
            table(name).scores_group_f16(qs, nq, kk.data(), hd, outs);
        } else {
            const carray<float> kk(kt);
            check_same(kk.size(), hd * kBlockKeys, "kernel_scores_group");
            table(name).scores_group_f32(qs, nq, kk.data(), hd, outs);
        }
        return out;
    }, "scores_group: nq queries (q [nq, hd]) against one block, as kernel_scores takes it: [nq, 16]");
    testing.def("kernel_accumulate_group", [](const std::string& name, const carray<float>& w, py::array v,
                                              const carray<float>& out0, int nq) {
        // w: [nq, n]; v: [n, hd]; out0: [nq, hd]; returns out0 + w · v, [nq, hd]
        if (nq < 1 || nq > kGroupQueries) throw Error("kernel_accumulate_group: nq must be 1 .. " + std::to_string(kGroupQueries));
        const int64_t n = w.size() / nq, hd = out0.size() / nq;
        check_same(w.size(), nq * n, "kernel_accumulate_group");
        check_same(out0.size(), nq * hd, "kernel_accumulate_group");
        py::array_t<float> out({(int64_t)nq, hd});
        std::copy(out0.data(), out0.data() + nq * hd, out.mutable_data());
        const float* ws[kGroupQueries];
        float* outs[kGroupQueries];
        for (int m = 0; m < nq; m++) ws[m] = w.data() + m * n, outs[m] = out.mutable_data() + m * hd;
        if (py::isinstance<py::array_t<uint16_t>>(v)) {
            const carray<uint16_t> vv(v);
            check_same(vv.size(), n * hd, "kernel_accumulate_group");
            table(name).accumulate_group_f16(ws, nq, vv.data(), n, hd, outs);
        } else {
            const carray<float> vv(v);
            check_same(vv.size(), n * hd, "kernel_accumulate_group");
            table(name).accumulate_group_f32(ws, nq, vv.data(), n, hd, outs);
        }
        return out;
    }, "accumulate_group: nq weight rows (w [nq, n]) over the same n values, into out0 [nq, hd]");
    // The q8_0 cache's kernels on one block's bytes (as kv_cache_block writes them).
    auto q8_block = [](const carray<uint8_t>& block, int64_t hd, const char* what) {
        if (hd <= 0 || hd % kKVQuantGroup != 0 || hd > kMaxQ8Groups * kKVQuantGroup)
            throw Error(std::string(what) + ": head size must be a multiple of 32, at most 1024, got " +
                        std::to_string(hd));
        check_same(block.size(), (int64_t)kv_q8_block_bytes(hd), what);
        return (const void*)block.data();
    };
    testing.def("kernel_dequantize_values_q8", [q8_block](const std::string& name, const carray<uint8_t>& block,
                                                          int64_t hd, int64_t n) {
        if (n < 0 || n > kBlockKeys) throw Error("kernel_dequantize_values_q8: n must be 0 .. 16");
        const void* b = q8_block(block, hd, "kernel_dequantize_values_q8");
        py::array_t<float> out(n * hd);
        table(name).dequantize_values_q8(b, n, hd, out.mutable_data());
        return out;
    }, "A q8_0 block's first n values as f32: [n * hd].");
    testing.def("kernel_scores_group_q8", [q8_block](const std::string& name, const carray<int8_t>& quants,
                                                     const carray<float>& scales, const carray<uint8_t>& block, int nq) {
        // quants: [nq, hd] and scales: [nq, hd / 32], nq queries quantized as q8_0
        if (nq < 1 || nq > kGroupQueries) throw Error("kernel_scores_group_q8: nq must be 1 .. " + std::to_string(kGroupQueries));
        const int64_t hd = quants.size() / nq;
        check_same(quants.size(), nq * hd, "kernel_scores_group_q8");
        const void* b = q8_block(block, hd, "kernel_scores_group_q8");
        check_same(scales.size(), nq * (hd / kKVQuantGroup), "kernel_scores_group_q8");
        py::array_t<float> out({(int64_t)nq, (int64_t)kBlockKeys});
        QueryQ8 qs[kGroupQueries];
        float* outs[kGroupQueries];
        for (int m = 0; m < nq; m++) {
            qs[m] = {quants.data() + m * hd, scales.data() + m * (hd / kKVQuantGroup)};
            outs[m] = out.mutable_data() + m * kBlockKeys;
        }
        table(name).scores_group_q8(qs, nq, b, hd, outs);
        return out;
    }, "scores_group_q8: nq q8_0 queries (quants [nq, hd], scales [nq, hd / 32]) against a q8_0 block of keys: [nq, 16]");
    testing.def("kernel_accumulate_group_q8", [q8_block](const std::string& name, const carray<float>& w,
                                                         const carray<uint8_t>& block, const carray<float>& out0, int nq) {
        // w: [nq, n]; out0: [nq, hd]; returns out0 + w · values, [nq, hd]
        if (nq < 1 || nq > kGroupQueries) throw Error("kernel_accumulate_group_q8: nq must be 1 .. " + std::to_string(kGroupQueries));
        const int64_t n = w.size() / nq, hd = out0.size() / nq;
        check_same(w.size(), nq * n, "kernel_accumulate_group_q8");
        check_same(out0.size(), nq * hd, "kernel_accumulate_group_q8");
        if (n > kBlockKeys) throw Error("kernel_accumulate_group_q8: at most 16 values a block");
        const void* b = q8_block(block, hd, "kernel_accumulate_group_q8");
        py::array_t<float> out({(int64_t)nq, hd});
        std::copy(out0.data(), out0.data() + nq * hd, out.mutable_data());
        const float* ws[kGroupQueries];
        float* outs[kGroupQueries];
        for (int m = 0; m < nq; m++) ws[m] = w.data() + m * n, outs[m] = out.mutable_data() + m * hd;
        table(name).accumulate_group_q8(ws, nq, b, n, hd, outs);
        return out;
    }, "accumulate_group_q8: nq weight rows (w [nq, n]) over a q8_0 block's first n values, into out0 [nq, hd]");
    testing.def("kernel_accumulate", [](const std::string& name, const carray<float>& w, py::array v,
                                        const carray<float>& out0) {
        const int64_t n = w.size(), hd = out0.size();
        py::array_t<float> out(hd);
        std::copy(out0.data(), out0.data() + hd, out.mutable_data());
        if (py::isinstance<py::array_t<uint16_t>>(v)) {
            const carray<uint16_t> vv(v);
            check_same(vv.size(), n * hd, "kernel_accumulate");
            table(name).accumulate_f16(w.data(), vv.data(), n, hd, out.mutable_data());
        } else {
            const carray<float> vv(v);
            check_same(vv.size(), n * hd, "kernel_accumulate");
            table(name).accumulate_f32(w.data(), vv.data(), n, hd, out.mutable_data());
        }
        return out;
    }, "out0 + sum_j w[j] * v[j] over n cached values (float32, or float16 bits as uint16)");
    testing.def("kernel_f16_to_f32_row", [](const std::string& name, const carray<uint16_t>& x) {
        py::array_t<float> out(x.size());
        table(name).f16_to_f32_row(x.data(), out.mutable_data(), x.size());
        return out;
    }, "float16 bits (uint16) -> float32.");
    testing.def("kernel_silu_mul", [](const std::string& name, const carray<float>& gate, const carray<float>& up) {
        check_same(gate.size(), up.size(), "kernel_silu_mul");
        py::array_t<float> out(gate.size());
        std::copy(gate.data(), gate.data() + gate.size(), out.mutable_data());
        table(name).silu_mul(out.mutable_data(), up.data(), gate.size());
        return out;
    }, "silu(gate) * up (gate is not modified).");
    testing.def("kernel_f32_to_f16_row", [](const std::string& name, const carray<float>& x) {
        py::array_t<uint16_t> out(x.size());
        table(name).f32_to_f16_row(x.data(), out.mutable_data(), x.size());
        return out;
    }, "float32 -> float16 bits (uint16), round to nearest even.");
    testing.def("kernel_quantize_kv_q8_0", [](const std::string& name, const carray<float>& x) {
        if (x.size() % kKVQuantGroup != 0) throw Error("kernel_quantize_kv_q8_0: the length must be a multiple of 32");
        py::array_t<int8_t> q(x.size());
        py::array_t<float> d(x.size() / kKVQuantGroup);
        table(name).quantize_kv_q8_0(x.data(), x.size(), q.mutable_data(), d.mutable_data());
        return py::make_tuple(q, d);
    }, "x (a multiple of 32 floats) as the q8_0 KV cache and its queries quantize it: (quants, scales per 32).");
}
