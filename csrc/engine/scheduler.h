// Which rows each engine step computes (vLLM v1's scheduler): first come,
// first served. The running requests go first, each with what it has left
// to compute (a decode token per sequence, or the next chunk of a prompt),
// then waiting requests are admitted while there is room: at most
// max_num_seqs requests running, at most max_num_batched_tokens rows per
// step (chunked prefill: a long prompt is fed over several steps while the
// others keep decoding), and only when the KV pool has the blocks. When the
// pool runs dry, the newest running request is preempted: its blocks go
// back and it waits at the front of the queue, to be recomputed (its cached
// prefix blocks make that cheap).
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "engine/kv_cache_manager.h"
#include "engine/request.h"

namespace hearth {

struct SchedulerConfig {
    int32_t max_num_seqs = 16;              // requests running at once
    int64_t max_num_batched_tokens = 512;   // rows per step: decode rows and prefill chunks together
};

// Computes tokens [seq->n_computed, seq->n_computed + n_tokens) of a sequence.
struct ScheduledChunk {
    Request* req;
    Sequence* seq;
    int64_t n_tokens;
};

class Scheduler {
public:
    Scheduler(const SchedulerConfig& c, KVCacheManager& kv);

    void add(Request* r);     // waits for its turn
    void remove(Request* r);  // finished or aborted: out of the queues, its blocks given back
    // This step's work; its sequences' blocks are allocated.
    std::vector<ScheduledChunk> schedule();

    int64_t n_running() const { return (int64_t)running_.size(); }
    int64_t n_waiting() const { return (int64_t)waiting_.size(); }
    const Request* first_waiting() const { return waiting_.empty() ? nullptr : waiting_.front(); }
    int64_t n_preemptions() const { return preemptions_; }
    // prefix cache, in prompt tokens of admitted requests (vLLM's counters)
    int64_t prefix_queries() const { return prefix_queries_; }
    int64_t prefix_hits() const { return prefix_hits_; }

private:
    // Allocates and schedules what r has left to compute, within budget.
    // False when the pool lacks blocks (out and budget as they were).
    bool schedule_request(Request* r, int64_t& budget, std::vector<ScheduledChunk>& out);
    // Gives r's sequences KV tables, starting from their cached prefixes.
    void admit(Request* r);
    void release_blocks(Request* r);
    void preempt(Request* r);

    SchedulerConfig c_;
    KVCacheManager& kv_;
    std::deque<Request*> waiting_;
    std::vector<Request*> running_;  // in the order they were scheduled: the last is the newest
    int64_t preemptions_ = 0;
    int64_t prefix_queries_ = 0, prefix_hits_ = 0;
};

}  // namespace hearth
