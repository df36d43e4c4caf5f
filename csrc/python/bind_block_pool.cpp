// _core.testing.KVCacheManager: the KV cache's block tables on a pool of
// their own, so that tests can check sharing, copy on write, the prefix
// cache and its LRU eviction without a model. And kv_cache_block: the bytes
// the KV cache stores for some keys and values, in each type.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "base/error.h"
#include "engine/kv_cache_manager.h"

namespace py = pybind11;
using namespace hearth;

namespace {

// The manager with the (tiny) memory it copies blocks in.
struct ManagerWithCache {
    std::unique_ptr<KVCache> cache;
    std::unique_ptr<KVCacheManager> kv;
};

}  // namespace

void bind_block_pool(py::module_& testing) {
    testing.def("kv_cache_block", [](const std::string& type, const py::array_t<float, py::array::c_style | py::array::forcecast>& keys,
                                     const py::array_t<float, py::array::c_style | py::array::forcecast>& values) {
        // keys, values: [n, hd], n <= 16 positions of one head, written to
        // slots 0 .. n - 1 of a one-block cache
        if (keys.ndim() != 2 || values.ndim() != 2 || keys.shape(0) != values.shape(0) || keys.shape(1) != values.shape(1))
            throw Error("kv_cache_block: keys and values must both be [n, head_dim]");
        const int64_t n = keys.shape(0), hd = keys.shape(1);
        if (n > KVCache::kBlockTokens) throw Error("kv_cache_block: at most 16 positions");
        KVCache cache(1, 1, hd, parse_kv_type(type), 1);
        for (int64_t j = 0; j < n; j++) cache.write(0, 0, 0, j, keys.data() + j * hd, values.data() + j * hd);
        auto bytes = [&](int kv) {
            py::array_t<uint8_t> out((py::ssize_t)cache.run_bytes());
            const uint8_t* p = (const uint8_t*)cache.block_data(0, 0, 0, kv);
            std::copy(p, p + cache.run_bytes(), out.mutable_data());
            return out;
        };
        return py::make_tuple(bytes(0), bytes(1));
    }, py::arg("kv_type"), py::arg("keys"), py::arg("values"),
       "The bytes of a one-block KV cache of kv_type after writing keys and values [n, head_dim] to slots 0 .. n - 1: (keys, values).");
    py::class_<ManagerWithCache>(testing, "KVCacheManager")
        .def(py::init([](int64_t n_blocks, bool prefix_caching) {
                 auto m = std::make_unique<ManagerWithCache>();
                 m->cache = std::make_unique<KVCache>(1, 1, 1, KVType::F32, n_blocks);
                 m->kv = std::make_unique<KVCacheManager>(*m->cache, prefix_caching);
                 return m;
             }),
             py::arg("n_blocks"), py::arg("prefix_caching") = true)
        .def_readonly_static("block_tokens", &KVCacheManager::kBlockTokens)
        .def("new_sequence", [](ManagerWithCache& m) { return m.kv->new_sequence(); })
        .def("fork", [](ManagerWithCache& m, int s) { return m.kv->fork(s); })
        .def("free", [](ManagerWithCache& m, int s) { m.kv->free(s); })
        .def("blocks", [](ManagerWithCache& m, int s) { return m.kv->blocks(s); })
        .def("allocate", [](ManagerWithCache& m, int s, int64_t first_write, int64_t n) { return m.kv->allocate(s, first_write, n); })
        .def("blocks_needed", [](ManagerWithCache& m, int s, int64_t first_write, int64_t n) {
            return m.kv->blocks_needed(s, first_write, n);
        })
        .def("take_cached_prefix", [](ManagerWithCache& m, int s, const std::vector<int32_t>& tokens, int64_t max_tokens) {
            return m.kv->take_cached_prefix(s, tokens.data(), max_tokens);
        })
        .def("cache_blocks", [](ManagerWithCache& m, int s, const std::vector<int32_t>& tokens, int64_t n_computed) {
            m.kv->cache_blocks(s, tokens.data(), n_computed);
        })
        .def("refcount", [](ManagerWithCache& m, int32_t b) { return m.kv->pool().refcount(b); })
        .def("is_cached", [](ManagerWithCache& m, int32_t b) { return m.kv->pool().is_cached(b); })
        // block contents: one float per position (1 layer, 1 head, head_dim 1)
        .def("write", [](ManagerWithCache& m, int32_t block, int64_t slot, float v) {
            m.cache->write(block, 0, 0, slot, &v, &v);
        })
        .def("read", [](ManagerWithCache& m, int32_t block, int64_t slot) {
            return ((const float*)m.cache->block_data(block, 0, 0, 0))[slot];  // head_dim 1: key slot at slot
        })
        .def_property_readonly("n_free", [](ManagerWithCache& m) { return m.kv->pool().n_free(); })
        .def_property_readonly("n_used", [](ManagerWithCache& m) { return m.kv->pool().n_used(); });
}
