// hearthlm._core.KVCache: the paged KV cache on its own, so that tests can
// check block sharing and copy on write (what beams and batching build on).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "base/error.h"
#include "base/fp16.h"
#include "model/kv_cache.h"

namespace py = pybind11;
using namespace hearth;

void bind_kv_cache(py::module_& m) {
    py::class_<KVCache>(m, "KVCache")
        .def(py::init([](int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, const std::string& type, int64_t n_blocks) {
                 return new KVCache(n_layers, n_kv_heads, head_dim, parse_kv_type(type), n_blocks);
             }),
             py::arg("n_layers"), py::arg("n_kv_heads"), py::arg("head_dim"), py::arg("kv_type"), py::arg("n_blocks"))
        .def_readonly_static("block_tokens", &KVCache::kBlockTokens)
        .def("new_sequence", &KVCache::new_sequence)
        .def("fork", &KVCache::fork)
        .def("free_sequence", &KVCache::free_sequence)
        .def("clear", &KVCache::clear)
        .def("grow", &KVCache::grow)
        .def("truncate", &KVCache::truncate)
        .def("length", &KVCache::length)
        .def("blocks", [](const KVCache& c, int seq) { return std::vector<int32_t>(c.blocks(seq)); })
        .def_property_readonly("free_blocks", &KVCache::free_blocks)
        .def_property_readonly("total_bytes", &KVCache::total_bytes)
        // key (kv=0) or value (kv=1) vector of (seq, layer, pos, head), as f32
        .def("write", [](KVCache& c, int seq, int64_t layer, int64_t pos, int64_t head, int kv,
                         py::array_t<float, py::array::c_style | py::array::forcecast> x) {
            HEARTH_CHECK(pos >= 0 && pos < c.length(seq) && x.size() == c.head_dim(), "write: bad position or size");
            void* p = kv ? c.value(seq, layer, pos, head) : c.key(seq, layer, pos, head);
            if (c.type() == KVType::F32) std::memcpy(p, x.data(), sizeof(float) * c.head_dim());
            else for (int64_t i = 0; i < c.head_dim(); i++) ((uint16_t*)p)[i] = f32_to_f16(x.data()[i]);
        })
        .def("read", [](KVCache& c, int seq, int64_t layer, int64_t pos, int64_t head, int kv) {
            HEARTH_CHECK(pos >= 0 && pos < c.length(seq), "read: bad position");
            py::array_t<float> out(c.head_dim());
            const void* p = kv ? c.value(seq, layer, pos, head) : c.key(seq, layer, pos, head);
            for (int64_t i = 0; i < c.head_dim(); i++) {
                out.mutable_data()[i] = c.type() == KVType::F32 ? ((const float*)p)[i] : f16_to_f32(((const uint16_t*)p)[i]);
            }
            return out;
        });
}
