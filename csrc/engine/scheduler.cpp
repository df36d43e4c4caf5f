#include "engine/scheduler.h"

#include <algorithm>

#include "base/error.h"

namespace hearth {

Scheduler::Scheduler(const SchedulerConfig& c, KVCacheManager& kv) : c_(c), kv_(kv) {
    if (c.max_num_seqs < 1) throw Error("max_num_seqs must be >= 1, got " + std::to_string(c.max_num_seqs));
    if (c.max_num_batched_tokens < 1) {
        throw Error("max_num_batched_tokens must be >= 1, got " + std::to_string(c.max_num_batched_tokens));
    }
}

void Scheduler::add(Request* r) {
    r->status = RequestStatus::Waiting;
    waiting_.push_back(r);
}

void Scheduler::release_blocks(Request* r) {
    for (auto& s : r->seqs) {
        if (s->kv >= 0) kv_.free(s->kv);
        s->kv = -1;
        s->n_computed = 0;
        s->has_logits = false;
    }
}

void Scheduler::remove(Request* r) {
    release_blocks(r);
    running_.erase(std::remove(running_.begin(), running_.end(), r), running_.end());
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), r), waiting_.end());
}

void Scheduler::preempt(Request* r) {
    release_blocks(r);  // recomputed from its tokens when it runs again
    running_.erase(std::remove(running_.begin(), running_.end(), r), running_.end());
    r->status = RequestStatus::Waiting;
    r->num_preemptions++;
    waiting_.push_front(r);
    preemptions_++;
}

bool Scheduler::schedule_request(Request* r, int64_t& budget, std::vector<ScheduledChunk>& out) {
    const size_t mark = out.size();
    const int64_t budget0 = budget;
    for (auto& s : r->seqs) {
        if (s->finished || s->to_compute() <= 0) continue;
        if (budget <= 0) break;
        const int64_t n = std::min(s->to_compute(), budget);
        if (!kv_.allocate(s->kv, s->n_computed, s->n_computed + n)) {
            out.resize(mark);  // blocks already given to its other sequences stay theirs
            budget = budget0;
            return false;
        }
        out.push_back(ScheduledChunk{r, s.get(), n});
        budget -= n;
    }
    return true;
}

void Scheduler::admit(Request* r) {
    for (auto& s : r->seqs) {
        if (s->finished || s->kv >= 0) continue;
        s->kv = kv_.new_sequence();
        // at least the last token is computed again: its logits are needed;
        // prompt_logprobs need every prompt row once: no cached prefix then
        if (!r->prompt_logprobs_pending()) s->n_computed = kv_.take_cached_prefix(s->kv, s->tokens.data(), (int64_t)s->tokens.size() - 1);
    }
}

std::vector<ScheduledChunk> Scheduler::schedule() {
    std::vector<ScheduledChunk> out;
    int64_t budget = c_.max_num_batched_tokens;
    bool preempted = false;

    // the running requests, oldest first
    for (size_t i = 0; i < running_.size() && budget > 0;) {
        Request* r = running_[i];
        bool gone = false;
        while (!schedule_request(r, budget, out)) {
            Request* victim = running_.back();  // the newest
            preempt(victim);
            preempted = true;
            if (victim == r) {
                gone = true;
                break;
            }
        }
        if (!gone) i++;
    }

    // then the waiting ones, in order, while there is room (none after a
    // preemption, unless that emptied the running set: the pool is short)
    const bool admit_more = !preempted || running_.empty();
    while (admit_more && !waiting_.empty() && budget > 0 && (int64_t)running_.size() < c_.max_num_seqs) {
        Request* r = waiting_.front();
        admit(r);
        if (!schedule_request(r, budget, out)) {
            release_blocks(r);  // it waits for blocks; those behind it wait too (first come, first served)
            break;
        }
        if (r->num_cached_tokens < 0) {  // first admission: what the prefix cache gave the prompt
            const Sequence& s = *r->seqs.front();
            r->num_cached_tokens = std::min<int64_t>(s.n_computed, (int64_t)r->prompt.size());
            prefix_queries_ += (int64_t)r->prompt.size();
            prefix_hits_ += r->num_cached_tokens;
        }
        waiting_.pop_front();
        r->status = RequestStatus::Running;
        running_.push_back(r);
    }
    return out;
}

}  // namespace hearth
