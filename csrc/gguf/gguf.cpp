#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/error.h"

namespace hearth {

namespace {

constexpr uint32_t GGUF_MAGIC = 0x46554747;  // "GGUF" little endian

size_t scalar_size(GGUFType t) {
    switch (t) {
        case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::BOOL: return 1;
        case GGUFType::UINT16: case GGUFType::INT16: return 2;
        case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::FLOAT32: return 4;
        case GGUFType::UINT64: case GGUFType::INT64: case GGUFType::FLOAT64: return 8;
        default: return 0;
    }
}

// Reads little-endian values from the mapping, never past its end.
class Cursor {
public:
    Cursor(const uint8_t* base, size_t size, const std::string& path) : base_(base), size_(size), path_(path) {}

    size_t pos() const { return pos_; }
    const uint8_t* here() const { return base_ + pos_; }

    void need(uint64_t n, const char* what) {
        if (n > size_ - pos_) {
            throw Error("file '" + path_ + "': truncated or corrupt: " + what + " at byte " + std::to_string(pos_) +
                        " needs " + std::to_string(n) + " bytes but the file ends at " + std::to_string(size_));
        }
    }
    template <typename T>
    T read(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, base_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    std::string_view read_string(const char* what) {
        const uint64_t len = read<uint64_t>(what);
        need(len, what);
        std::string_view s((const char*)base_ + pos_, (size_t)len);
        pos_ += (size_t)len;
        return s;
    }
    void skip(uint64_t n, const char* what) {
        need(n, what);
        pos_ += (size_t)n;
    }

private:
    const uint8_t* base_;
    size_t size_;
    size_t pos_ = 0;
    const std::string& path_;
};

GGUFValue read_value(Cursor& c, GGUFType type, const std::string& key, const std::string& path) {
    GGUFValue v;
    v.type = type;
    switch (type) {
        case GGUFType::UINT8: v.i = c.read<uint8_t>("value"); break;
        case GGUFType::INT8: v.i = c.read<int8_t>("value"); break;
        case GGUFType::UINT16: v.i = c.read<uint16_t>("value"); break;
        case GGUFType::INT16: v.i = c.read<int16_t>("value"); break;
        case GGUFType::UINT32: v.i = c.read<uint32_t>("value"); break;
        case GGUFType::INT32: v.i = c.read<int32_t>("value"); break;
        case GGUFType::UINT64: v.i = (int64_t)c.read<uint64_t>("value"); break;
        case GGUFType::INT64: v.i = c.read<int64_t>("value"); break;
        case GGUFType::BOOL: v.i = c.read<uint8_t>("value") != 0; break;
        case GGUFType::FLOAT32: v.f = c.read<float>("value"); break;
        case GGUFType::FLOAT64: v.f = c.read<double>("value"); break;
        case GGUFType::STRING: v.s = c.read_string("string value"); break;
        case GGUFType::ARRAY: {
            const uint32_t et = c.read<uint32_t>("array type");
            v.elem_type = (GGUFType)et;
            v.n = c.read<uint64_t>("array length");
            if (v.elem_type == GGUFType::STRING) {
                // each string takes at least its 8-byte length: bound n before reserving
                if (v.n > UINT64_MAX / 8) c.need(UINT64_MAX, "string array");
                c.need(v.n * 8, "string array");
                v.strings.reserve((size_t)v.n);
                for (uint64_t i = 0; i < v.n; i++) v.strings.push_back(c.read_string("string array element"));
            } else if (scalar_size(v.elem_type) > 0) {
                const uint64_t es = scalar_size(v.elem_type);
                if (v.n > UINT64_MAX / es) c.need(UINT64_MAX, "array");
                v.elems = c.here();
                c.skip(v.n * es, "array data");
            } else {
                throw Error("file '" + path + "': metadata key '" + key + "' is an array of type " +
                            std::to_string(et) + ", which hearth does not read (nested or unknown array type)");
            }
            break;
        }
        default:
            throw Error("file '" + path + "': metadata key '" + key + "' has unknown value type " +
                        std::to_string((uint32_t)type) + " (corrupt file?)");
    }
    if (type != GGUFType::FLOAT32 && type != GGUFType::FLOAT64) v.f = (double)v.i;
    return v;
}

// A float element read as an integer: converting one outside int64's range
// (or NaN) is undefined behaviour, and the file is untrusted.
int64_t saturating_int(double x) {
    if (!(x == x)) return 0;
    if (x >= 9.2e18) return INT64_MAX;
    if (x <= -9.2e18) return INT64_MIN;
    return (int64_t)x;
}

}  // namespace

const char* gguf_type_name(GGUFType t) {
    static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"};
    return (uint32_t)t < 13 ? names[(uint32_t)t] : "?";
}

bool GGUFValue::is_integer() const {
    switch (type) {
        case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::UINT16: case GGUFType::INT16:
        case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::UINT64: case GGUFType::INT64:
            return true;
        default: return false;
    }
}

int64_t GGUFValue::array_i(uint64_t idx) const {
    const uint8_t* p = elems + idx * scalar_size(elem_type);
    switch (elem_type) {
        case GGUFType::UINT8: case GGUFType::BOOL: return *p;
        case GGUFType::INT8: return (int8_t)*p;
        case GGUFType::UINT16: { uint16_t x; std::memcpy(&x, p, 2); return x; }
        case GGUFType::INT16: { int16_t x; std::memcpy(&x, p, 2); return x; }
        case GGUFType::UINT32: { uint32_t x; std::memcpy(&x, p, 4); return x; }
        case GGUFType::INT32: { int32_t x; std::memcpy(&x, p, 4); return x; }
        case GGUFType::UINT64: { uint64_t x; std::memcpy(&x, p, 8); return (int64_t)x; }
        case GGUFType::INT64: { int64_t x; std::memcpy(&x, p, 8); return x; }
        case GGUFType::FLOAT32: { float x; std::memcpy(&x, p, 4); return saturating_int(x); }
        case GGUFType::FLOAT64: { double x; std::memcpy(&x, p, 8); return saturating_int(x); }
        default: return 0;
    }
}

double GGUFValue::array_f(uint64_t idx) const {
    const uint8_t* p = elems + idx * scalar_size(elem_type);
    if (elem_type == GGUFType::FLOAT32) { float x; std::memcpy(&x, p, 4); return x; }
    if (elem_type == GGUFType::FLOAT64) { double x; std::memcpy(&x, p, 8); return x; }
    return (double)array_i(idx);
}

std::string GGUFTensor::shape_str() const {
    std::string s = "[";
    for (int d = 0; d < n_dims; d++) s += (d ? ", " : "") + std::to_string(ne[d]);
    return s + "]";
}

std::unique_ptr<GGUFFile> GGUFFile::open(const std::string& path) {
    std::unique_ptr<GGUFFile> f(new GGUFFile());
    f->path_ = path;
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw Error("cannot open model file '" + path + "': " + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error("model file '" + path + "' is not a regular file");
    }
    f->size_ = (size_t)st.st_size;
    if (f->size_ < 24) {
        ::close(fd);
        throw Error("file '" + path + "': not a GGUF file (only " + std::to_string(f->size_) + " bytes)");
    }
    void* m = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) throw Error("cannot map model file '" + path + "': " + std::strerror(errno));
    f->map_ = (uint8_t*)m;
    f->parse();
    return f;
}

GGUFFile::~GGUFFile() {
    if (map_) munmap(map_, size_);
}

std::string GGUFFile::err(const std::string& what) const { return "file '" + path_ + "': " + what; }

void GGUFFile::release_pages(const GGUFTensor& t) const {
    // only the pages wholly inside the tensor: its neighbours' stay
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t begin = ((uintptr_t)t.data + page - 1) / page * page;
    const uintptr_t end = ((uintptr_t)t.data + t.n_bytes) / page * page;
    if (end > begin) madvise((void*)begin, end - begin, MADV_DONTNEED);  // advice: failure is harmless
}

void GGUFFile::parse() {
    Cursor c(map_, size_, path_);
    const uint32_t magic = c.read<uint32_t>("magic");
    if (magic != GGUF_MAGIC) {
        throw Error(err("not a GGUF file (bad magic bytes; expected 'GGUF')"));
    }
    version_ = c.read<uint32_t>("version");
    if (version_ != 2 && version_ != 3) {
        throw Error(err("GGUF version " + std::to_string(version_) + " is not supported (hearth reads versions 2 and 3)"));
    }
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata count");
    // Every entry takes some bytes: bound the counts before trusting them.
    if (n_tensors > size_ / 24 || n_kv > size_ / 12) {
        throw Error(err("truncated or corrupt header: " + std::to_string(n_tensors) + " tensors and " + std::to_string(n_kv) +
                        " metadata entries cannot fit in " + std::to_string(size_) + " bytes"));
    }

    for (uint64_t i = 0; i < n_kv; i++) {
        const std::string key(c.read_string("metadata key"));
        const GGUFType type = (GGUFType)c.read<uint32_t>("metadata type");
        GGUFValue v = read_value(c, type, key, path_);
        if (kv_index_.count(key)) throw Error(err("duplicate metadata key '" + key + "'"));
        kv_index_[key] = kv_.size();
        kv_.emplace_back(key, std::move(v));
    }

    if (const GGUFValue* a = find("general.alignment")) {
        if (!a->is_integer() || a->i <= 0 || (a->i & (a->i - 1)) != 0 || a->i > (1 << 20)) {
            throw Error(err("general.alignment must be a power of two, got " + std::to_string(a->i)));
        }
        alignment_ = (uint32_t)a->i;
    }

    tensors_.reserve((size_t)n_tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        GGUFTensor t;
        t.name = std::string(c.read_string("tensor name"));
        const uint32_t n_dims = c.read<uint32_t>("tensor dims");
        if (n_dims < 1 || n_dims > 4) {
            throw Error(err("tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)"));
        }
        t.n_dims = (int)n_dims;
        for (int d = 0; d < 4; d++) t.ne[d] = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            const uint64_t ne = c.read<uint64_t>("tensor shape");
            if (ne == 0 || ne > (uint64_t)1 << 40) {
                throw Error(err("tensor '" + t.name + "' has an invalid dimension " + std::to_string(ne)));
            }
            t.ne[d] = (int64_t)ne;
        }
        const uint32_t raw_type = c.read<uint32_t>("tensor type");
        if (!is_supported_type(raw_type)) {
            throw Error(err("tensor '" + t.name + "' has " + type_name(raw_type) +
                            ", which hearth does not support (supported: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K)"));
        }
        t.type = (GgmlType)raw_type;
        t.offset = c.read<uint64_t>("tensor offset");
        if (t.offset % alignment_ != 0) {
            throw Error(err("tensor '" + t.name + "' offset " + std::to_string(t.offset) + " is not aligned to " +
                            std::to_string(alignment_)));
        }
        const int64_t be = type_block_elems(t.type);
        if (t.ne[0] % be != 0) {
            throw Error(err("tensor '" + t.name + "' of type " + type_name(raw_type) + " has a row of " +
                            std::to_string(t.ne[0]) + " elements, not a multiple of its block size " + std::to_string(be)));
        }
        // the shape is bounded by 2^40 per dim; check the product does not overflow
        double elems = (double)t.ne[0] * (double)t.ne[1] * (double)t.ne[2] * (double)t.ne[3];
        if (elems > 9e15) throw Error(err("tensor '" + t.name + "' is impossibly large " + t.shape_str()));
        t.n_bytes = row_bytes(t.type, t.ne[0]) * (size_t)t.rows();
        if (tensor_index_.count(t.name)) throw Error(err("duplicate tensor name '" + t.name + "'"));
        tensor_index_[t.name] = tensors_.size();
        tensors_.push_back(std::move(t));
    }

    // the data section starts at the next multiple of the alignment
    const size_t data_start = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
    if (data_start > size_ && n_tensors > 0) {
        throw Error(err("truncated: the file ends before its tensor data"));
    }
    for (GGUFTensor& t : tensors_) {
        if (t.offset > size_ || t.n_bytes > size_ - data_start || data_start + t.offset > size_ - t.n_bytes) {
            throw Error(err("truncated or corrupt: tensor '" + t.name + "' " + t.shape_str() + " (" + type_name(t.type) +
                            ") needs bytes up to " + std::to_string(data_start + t.offset + t.n_bytes) +
                            " but the file has " + std::to_string(size_)));
        }
        t.data = map_ + data_start + t.offset;
    }
    check_no_overlap();
}

void GGUFFile::check_no_overlap() const {
    // Two tensors sharing bytes would let a write-free reader still compute
    // garbage (one tensor's data read as another's): refuse the file.
    std::vector<const GGUFTensor*> by_offset;
    by_offset.reserve(tensors_.size());
    for (const GGUFTensor& t : tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GGUFTensor* a, const GGUFTensor* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); i++) {
        const GGUFTensor& prev = *by_offset[i - 1];
        const GGUFTensor& next = *by_offset[i];
        if (prev.offset + prev.n_bytes > next.offset) {
            throw Error(err("corrupt: tensors '" + prev.name + "' (bytes " + std::to_string(prev.offset) + " to " +
                            std::to_string(prev.offset + prev.n_bytes) + " of the data) and '" + next.name +
                            "' (from byte " + std::to_string(next.offset) + ") overlap"));
        }
    }
}

const GGUFValue* GGUFFile::find(const std::string& key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GGUFTensor* GGUFFile::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::string GGUFFile::get_string(const std::string& key) const {
    const GGUFValue* v = find(key);
    if (!v) throw Error(err("missing metadata key '" + key + "'"));
    if (v->type != GGUFType::STRING) throw Error(err("metadata key '" + key + "' is not a string"));
    return std::string(v->s);
}

int64_t GGUFFile::get_int(const std::string& key) const {
    const GGUFValue* v = find(key);
    if (!v) throw Error(err("missing metadata key '" + key + "'"));
    if (!v->is_integer()) throw Error(err("metadata key '" + key + "' is not an integer"));
    return v->i;
}

double GGUFFile::get_float(const std::string& key) const {
    const GGUFValue* v = find(key);
    if (!v) throw Error(err("missing metadata key '" + key + "'"));
    if (!v->is_number()) throw Error(err("metadata key '" + key + "' is not a number"));
    return v->f;
}

std::string GGUFFile::get_string_or(const std::string& key, const std::string& dflt) const {
    return find(key) ? get_string(key) : dflt;
}
int64_t GGUFFile::get_int_or(const std::string& key, int64_t dflt) const { return find(key) ? get_int(key) : dflt; }
double GGUFFile::get_float_or(const std::string& key, double dflt) const { return find(key) ? get_float(key) : dflt; }

}  // namespace hearth
