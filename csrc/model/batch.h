// The rows of one forward pass (llama.cpp's llama_batch): row i puts token
// tokens[i] at position pos[i] of sequence seq[i], and asks for its logits
// when want_logits[i] (llama.cpp's inp_out_ids: a prefill chunk wants its
// last row, a decode row its own). A sequence is an index into
// block_tables: the KV cache blocks that hold its positions, in order.
//
// Rows of one sequence come in increasing positions; each attends to the
// positions before it, whether those were written by an earlier pass or by
// an earlier row of this one.
#pragma once

#include <cstdint>
#include <vector>

namespace hearth {

struct Batch {
    std::vector<int32_t> tokens;
    std::vector<int32_t> seq;
    std::vector<int64_t> pos;
    std::vector<uint8_t> want_logits;
    std::vector<const std::vector<int32_t>*> block_tables;  // per sequence index

    int64_t size() const { return (int64_t)tokens.size(); }
    int64_t n_logits() const {
        int64_t n = 0;
        for (uint8_t w : want_logits) n += w;
        return n;
    }
    // A sequence's index for the rows that follow.
    int32_t add_sequence(const std::vector<int32_t>& blocks) {
        block_tables.push_back(&blocks);
        return (int32_t)block_tables.size() - 1;
    }
    void add(int32_t token, int32_t s, int64_t p, bool logits) {
        tokens.push_back(token);
        seq.push_back(s);
        pos.push_back(p);
        want_logits.push_back(logits ? 1 : 0);
    }
    void clear() {
        tokens.clear();
        seq.clear();
        pos.clear();
        want_logits.clear();
        block_tables.clear();
    }
};

}  // namespace hearth
