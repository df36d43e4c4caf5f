// A GGUF file (v2/v3, as llama.cpp writes it), memory-mapped and validated
// before anything uses it: the magic, the version, every string and array
// length, every tensor's shape, type, alignment and data bounds. Tensor data
// is used in place from the mapping, never copied.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/ggml_type.h"

namespace hearth {

// GGUF metadata value types, numbered as in the file.
enum class GGUFType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
    BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_type_name(GGUFType t);

// One metadata value. Scalars are held decoded; arrays point into the mapping
// (numbers) or hold views of their strings.
struct GGUFValue {
    GGUFType type = GGUFType::UINT8;
    // scalar (integers, floats and bools)
    int64_t i = 0;       // integer and bool value (uint64 above 2^63 wraps; never seen)
    double f = 0.0;      // float value; for integers, the same value as a double
    std::string_view s;  // STRING
    // ARRAY
    GGUFType elem_type = GGUFType::UINT8;
    uint64_t n = 0;
    const uint8_t* elems = nullptr;          // numeric elements, little endian, packed
    std::vector<std::string_view> strings;   // string elements

    bool is_integer() const;
    bool is_number() const { return is_integer() || type == GGUFType::FLOAT32 || type == GGUFType::FLOAT64; }
    // Numeric array element i, as double / int64.
    double array_f(uint64_t idx) const;
    int64_t array_i(uint64_t idx) const;
};

struct GGUFTensor {
    std::string name;
    GgmlType type;
    int n_dims;
    int64_t ne[4];         // ne[0] is the contiguous (inner) dimension
    uint64_t offset;       // from the start of the data section
    size_t n_bytes;
    const uint8_t* data;   // inside the mapping

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
    std::string shape_str() const;  // "[576, 49152]"
};

class GGUFFile {
public:
    // Maps and validates; throws hearth::Error naming the file and the problem.
    static std::unique_ptr<GGUFFile> open(const std::string& path);
    ~GGUFFile();
    GGUFFile(const GGUFFile&) = delete;
    GGUFFile& operator=(const GGUFFile&) = delete;

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    size_t file_size() const { return size_; }
    uint32_t alignment() const { return alignment_; }

    // metadata, in file order
    const std::vector<std::pair<std::string, GGUFValue>>& metadata() const { return kv_; }
    const GGUFValue* find(const std::string& key) const;
    // Typed getters: throw a clear error when the key is missing or of the wrong kind.
    std::string get_string(const std::string& key) const;
    int64_t get_int(const std::string& key) const;
    double get_float(const std::string& key) const;  // accepts integers too
    std::string get_string_or(const std::string& key, const std::string& dflt) const;
    int64_t get_int_or(const std::string& key, int64_t dflt) const;
    double get_float_or(const std::string& key, double dflt) const;

    const std::vector<GGUFTensor>& tensors() const { return tensors_; }
    const GGUFTensor* find_tensor(const std::string& name) const;

    // "file 'x.gguf': " + what; for errors raised by users of the file.
    std::string err(const std::string& what) const;

    // Gives the memory pages of t's data back to the kernel, for a tensor
    // the engine keeps a copy of in another layout: they stop counting in
    // resident memory, and are read again from the file (the page cache) if
    // anything touches them later.
    void release_pages(const GGUFTensor& t) const;

private:
    GGUFFile() = default;
    void parse();
    void check_no_overlap() const;

    std::string path_;
    uint8_t* map_ = nullptr;
    size_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    std::vector<std::pair<std::string, GGUFValue>> kv_;
    std::map<std::string, size_t> kv_index_;
    std::vector<GGUFTensor> tensors_;
    std::map<std::string, size_t> tensor_index_;
};

}  // namespace hearth
