#include "model/kv_cache.h"

#include <cstring>
#include <string>

#include "base/error.h"

namespace hearth {

KVType parse_kv_type(const std::string& name) {
    if (name == "f32") return KVType::F32;
    if (name == "f16") return KVType::F16;
    throw Error("kv_type must be 'f16' or 'f32', got '" + name + "'");
}

const char* kv_type_name(KVType t) { return t == KVType::F32 ? "f32" : "f16"; }

KVCache::KVCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, KVType type, int64_t n_blocks)
    : n_layers_(n_layers), n_kv_heads_(n_kv_heads), head_dim_(head_dim), type_(type), n_blocks_(n_blocks) {
    block_bytes_ = (size_t)(n_layers * 2 * n_kv_heads * kBlockTokens * head_dim) * elem_bytes();
    bytes_ = block_bytes_ * (size_t)n_blocks;
    storage_.reset(new uint8_t[bytes_]);
    base_ = storage_.get();
    refcount_.assign(n_blocks, 0);
    // hand out low blocks first
    for (int64_t b = n_blocks - 1; b >= 0; b--) free_.push_back((int32_t)b);
}

int KVCache::new_sequence() {
    for (size_t i = 0; i < seqs_.size(); i++) {
        if (!seqs_[i].alive) {
            seqs_[i] = Sequence();
            seqs_[i].alive = true;
            return (int)i;
        }
    }
    seqs_.emplace_back();
    seqs_.back().alive = true;
    return (int)seqs_.size() - 1;
}

int KVCache::fork(int seq) {
    const int child = new_sequence();
    seqs_[child].blocks = seqs_[seq].blocks;
    seqs_[child].n_tokens = seqs_[seq].n_tokens;
    for (int32_t b : seqs_[child].blocks) refcount_[b]++;
    return child;
}

void KVCache::free_sequence(int seq) {
    clear(seq);
    seqs_[seq].alive = false;
}

void KVCache::clear(int seq) {
    for (int32_t b : seqs_[seq].blocks) release_block(b);
    seqs_[seq].blocks.clear();
    seqs_[seq].n_tokens = 0;
}

int32_t KVCache::take_block() {
    if (free_.empty()) {
        throw Error("the KV cache is full (" + std::to_string(n_blocks_ * kBlockTokens) +
                    " positions): raise n_ctx or shorten the prompt");
    }
    const int32_t b = free_.back();
    free_.pop_back();
    refcount_[b] = 1;
    return b;
}

void KVCache::release_block(int32_t b) {
    if (--refcount_[b] == 0) free_.push_back(b);
}

void KVCache::grow(int seq, int64_t n) {
    Sequence& s = seqs_[seq];
    const int64_t new_len = s.n_tokens + n;
    const int64_t need_blocks = (new_len + kBlockTokens - 1) / kBlockTokens;
    if (need_blocks - (int64_t)s.blocks.size() > (int64_t)free_.size()) {
        throw Error("the KV cache is full: " + std::to_string(new_len) + " positions needed, room for " +
                    std::to_string(((int64_t)s.blocks.size() + (int64_t)free_.size()) * kBlockTokens));
    }
    // copy on write: the partly filled last block may be shared with a fork
    const int64_t first_written = s.n_tokens / kBlockTokens;
    for (int64_t i = first_written; i < (int64_t)s.blocks.size() && n > 0; i++) {
        const int32_t b = s.blocks[i];
        if (refcount_[b] > 1) {
            const int32_t copy = take_block();
            std::memcpy(base_ + (size_t)copy * block_bytes_, base_ + (size_t)b * block_bytes_, block_bytes_);
            release_block(b);
            s.blocks[i] = copy;
        }
    }
    while ((int64_t)s.blocks.size() < need_blocks) s.blocks.push_back(take_block());
    s.n_tokens = new_len;
}

void KVCache::truncate(int seq, int64_t new_len) {
    Sequence& s = seqs_[seq];
    HEARTH_CHECK(new_len >= 0 && new_len <= s.n_tokens, "KV cache truncate past the end");
    const int64_t keep = (new_len + kBlockTokens - 1) / kBlockTokens;
    while ((int64_t)s.blocks.size() > keep) {
        release_block(s.blocks.back());
        s.blocks.pop_back();
    }
    s.n_tokens = new_len;
}

}  // namespace hearth
