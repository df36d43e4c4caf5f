// quantize_rows: the converter's K-quant (and q5_0 / q5_1) encoder, rows in
// parallel with the GIL released (csrc/gguf/quantize.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "base/error.h"
#include "gguf/ggml_type.h"
#include "gguf/quantize.h"

namespace py = pybind11;
using namespace hearth;

namespace {

py::array_t<uint8_t> quantize_rows(int type, const py::array_t<float, py::array::c_style | py::array::forcecast>& x,
                                   int n_threads) {
    const GgmlType t = (GgmlType)type;
    if (!is_supported_type((uint32_t)type) || !can_quantize_row(t))
        throw Error("quantize_rows: cannot write " + type_name((uint32_t)type));
    if (x.ndim() != 2) throw Error("quantize_rows: x must be 2-D float32 [rows, n]");
    const int64_t rows = x.shape(0), n = x.shape(1);
    if (n % type_block_elems(t) != 0)
        throw Error("quantize_rows: a row of " + std::to_string(n) + " is not whole " + type_name(t) + " blocks of " +
                    std::to_string(type_block_elems(t)));
    const size_t rb = row_bytes(t, n);
    py::array_t<uint8_t> out({rows, (int64_t)rb});
    const float* src = x.data();
    uint8_t* dst = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        const int threads = (int)std::max<int64_t>(1, std::min<int64_t>(n_threads, rows));
        std::vector<std::thread> pool;
        auto work = [&](int ti) {
            for (int64_t r = rows * ti / threads; r < rows * (ti + 1) / threads; r++)
                quantize_row(t, src + r * n, dst + r * rb, n);
        };
        for (int ti = 1; ti < threads; ti++) pool.emplace_back(work, ti);
        work(0);
        for (auto& th : pool) th.join();
    }
    return out;
}

}  // namespace

void bind_quantize(py::module_& m) {
    m.def("quantize_rows", &quantize_rows, py::arg("type"), py::arg("x"), py::arg("n_threads") = 1,
          "float32 rows [rows, n] -> uint8 rows of GGUF blocks of `type` (ggml's number: q2_K ... q6_K, q5_0, "
          "q5_1), by llama.cpp's reference quantizers.");
}
