#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "base/error.h"
#include "kernels/kernels.h"

namespace hearth {

namespace {

constexpr float kRemoved = -std::numeric_limits<float>::infinity();

std::string num(double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
}

bool more_likely(const float* logits, int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
}

// e^(l - max) of every token in double (0 for a removed one), by the
// kernels' exp: within 2 ulp of std::exp, the same on every CPU, and some
// eight times faster over a 49k vocabulary. The sums of top-p, min-p and the
// log-probabilities take these.
std::unique_ptr<double[]> weights(const float* logits, int64_t n_vocab, float max) {
    std::unique_ptr<double[]> w(new double[(size_t)n_vocab]);
    kernels().exp_shifted_f64(logits, n_vocab, max, w.get());
    return w;
}

}  // namespace

void check_sampling_params(const SamplingParams& p) {
    if (!(p.temperature >= 0.0f) || std::isinf(p.temperature)) {
        throw Error("temperature must be >= 0 (0 is greedy), got " + num(p.temperature), "temperature");
    }
    if (p.top_k < 0) throw Error("top_k must be an integer >= -1 (-1 or 0 is off), got " + std::to_string(p.top_k), "top_k");
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) throw Error("top_p must be in (0, 1], got " + num(p.top_p), "top_p");
    if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) throw Error("min_p must be in [0, 1], got " + num(p.min_p), "min_p");
    if (!(p.repetition_penalty > 0.0f) || std::isinf(p.repetition_penalty)) {
        throw Error("repetition_penalty must be > 0 (1 is off), got " + num(p.repetition_penalty), "repetition_penalty");
    }
    if (!std::isfinite(p.presence_penalty) || p.presence_penalty < -2.0f || p.presence_penalty > 2.0f) {
        throw Error("presence_penalty must be in [-2, 2], got " + num(p.presence_penalty), "presence_penalty");
    }
    if (!std::isfinite(p.frequency_penalty) || p.frequency_penalty < -2.0f || p.frequency_penalty > 2.0f) {
        throw Error("frequency_penalty must be in [-2, 2], got " + num(p.frequency_penalty), "frequency_penalty");
    }
    for (int32_t t : p.allowed_token_ids) {
        if (t < 0) {
            throw Error("allowed_token_ids must be token ids (>= 0), got " + std::to_string(t), "allowed_token_ids");
        }
    }
    for (const auto& [t, bias] : p.logit_bias) {
        if (t < 0) throw Error("logit_bias keys must be token ids (>= 0), got " + std::to_string(t), "logit_bias");
        if (!std::isfinite(bias)) {
            throw Error("logit_bias of token " + std::to_string(t) + " must be a finite number, got " + num(bias),
                        "logit_bias");
        }
    }
}

void apply_allowed_tokens(float* logits, int64_t n_vocab, const std::vector<int32_t>& allowed) {
    if (allowed.empty()) return;
    std::vector<std::pair<int32_t, float>> kept;
    kept.reserve(allowed.size());
    for (int32_t t : allowed)
        if (t >= 0 && t < n_vocab) kept.emplace_back(t, logits[t]);
    std::fill(logits, logits + n_vocab, kRemoved);
    for (const auto& [t, v] : kept) logits[t] = v;
}

void apply_logit_bias(float* logits, int64_t n_vocab, const std::map<int32_t, float>& bias) {
    for (const auto& [t, b] : bias)
        if (t >= 0 && t < n_vocab) logits[t] += b;
}

void apply_repetition_penalty(float* logits, int64_t n_vocab, const int32_t* tokens, size_t n_tokens, float penalty) {
    if (penalty == 1.0f) return;
    std::vector<bool> seen((size_t)n_vocab, false);
    for (size_t i = 0; i < n_tokens; i++) {
        const int32_t t = tokens[i];
        if (t < 0 || t >= n_vocab || seen[t]) continue;  // at most once per token
        seen[t] = true;
        logits[t] = logits[t] < 0 ? logits[t] * penalty : logits[t] / penalty;
    }
}

void apply_presence_frequency(float* logits, int64_t n_vocab, const int32_t* output, size_t n_output, float presence,
                              float frequency) {
    if (presence == 0.0f && frequency == 0.0f) return;
    std::vector<int32_t> count((size_t)n_vocab, 0);
    for (size_t i = 0; i < n_output; i++)
        if (output[i] >= 0 && output[i] < n_vocab) count[output[i]]++;
    for (int64_t t = 0; t < n_vocab; t++)
        if (count[t] > 0) logits[t] -= frequency * (float)count[t] + presence;
}

void apply_temperature(float* logits, int64_t n_vocab, float temperature) {
    for (int64_t i = 0; i < n_vocab; i++) logits[i] /= temperature;
}

void apply_top_k(float* logits, int64_t n_vocab, int32_t k) {
    if (k <= 0 || k >= n_vocab) return;
    // the k-th largest value (duplicates counted): a min-heap of the k
    // largest so far, which few of a row's logits enter once it is full
    // (nth_element over a copy of the row took some 400 µs over 49k logits)
    std::vector<float> heap(logits, logits + k);
    std::make_heap(heap.begin(), heap.end(), std::greater<float>());
    for (int64_t i = k; i < n_vocab; i++) {
        if (logits[i] > heap.front()) {
            std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
            heap.back() = logits[i];
            std::push_heap(heap.begin(), heap.end(), std::greater<float>());
        }
    }
    const float kth = heap.front();
    for (int64_t i = 0; i < n_vocab; i++)
        if (logits[i] < kth) logits[i] = kRemoved;
}

void apply_top_p(float* logits, int64_t n_vocab, float p) {
    if (p >= 1.0f) return;
    const float max = logits[argmax(logits, n_vocab)];
    if (max == kRemoved) return;  // nothing left
    const std::unique_ptr<double[]> w = weights(logits, n_vocab, max);  // removed tokens weigh 0
    // the total, as four interleaved sums (they vectorize; any order is
    // within the margins below), and how many tokens are left
    double part[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t n_left = 0, i = 0;
    for (; i + 4 <= n_vocab; i += 4)
        for (int k = 0; k < 4; k++) part[k] += w[i + k];
    for (; i < n_vocab; i++) part[0] += w[i];
    for (i = 0; i < n_vocab; i++) n_left += logits[i] != kRemoved;
    const double z = (part[0] + part[1]) + (part[2] + part[3]);
    // Only the tokens within D logits of the max can be kept: each of the
    // n tokens below weighs less than e^-D of the max's 1, so together they
    // hold under n e^-D = z (1 - p - 1e-9) of z, and the tokens above hold
    // more than p of the mass (the 1e-9 covers rounding). Those above are a
    // prefix of the order by likelihood (equal logits fall on one side):
    // typically a few thousand of a 49k vocabulary.
    const double slack = 1.0 - (double)p - 1e-9;
    const double reach = slack > 0.0 ? -std::log((double)n_left / (z * slack)) : -HUGE_VAL;  // -D
    std::vector<int32_t> ids((size_t)n_vocab);  // the tokens within D, in id order (written without branches)
    size_t near = 0;
    for (i = 0; i < n_vocab; i++) {
        ids[near] = (int32_t)i;
        near += logits[i] != kRemoved && (double)logits[i] - max >= reach;
    }
    ids.resize(near);
    // Of those, select (nth_element, linear) a prefix of the order that
    // holds clearly more than p in any order of summation, doubling it
    // until it does, and sort just that prefix. The walk over it, most
    // likely first, then keeps exactly what a walk over the whole sorted row
    // would: the margin covers the rounding between orders of summation.
    auto by_likelihood = [&](int32_t a, int32_t b) { return more_likely(logits, a, b); };
    size_t selected = 0, want = std::min<size_t>(64, near);
    double mass = 0.0;
    for (;;) {
        if (want < near) std::nth_element(ids.begin() + selected, ids.begin() + want, ids.end(), by_likelihood);
        for (size_t k = selected; k < want; k++) mass += w[ids[k]] / z;
        selected = want;
        if (mass >= (double)p + 1e-9 || want == near) break;
        want = std::min(near, want * 2);
    }
    std::sort(ids.begin(), ids.begin() + selected, by_likelihood);
    double above = 0.0;  // the probability of the tokens before this one
    size_t keep = selected;
    for (size_t k = 0; k < selected; k++) {
        if (k > 0 && above >= p) {  // always keep the most likely
            keep = k;
            break;
        }
        above += w[ids[k]] / z;
    }
    // the kept tokens' logits stay; every other token goes
    std::vector<float> kept(keep);
    for (size_t k = 0; k < keep; k++) kept[k] = logits[ids[k]];
    std::fill(logits, logits + n_vocab, kRemoved);
    for (size_t k = 0; k < keep; k++) logits[ids[k]] = kept[k];
}

void apply_min_p(float* logits, int64_t n_vocab, float min_p) {
    if (min_p <= 0.0f) return;
    const int32_t top = argmax(logits, n_vocab);
    // p_i < min_p * p_max  <=>  exp(l_i - l_max) < min_p (the normaliser cancels)
    const std::unique_ptr<double[]> w = weights(logits, n_vocab, logits[top]);
    const float keep_top = logits[top];
    for (int64_t i = 0; i < n_vocab; i++) logits[i] = w[i] < (double)min_p ? kRemoved : logits[i];  // (a select: no branch)
    logits[top] = keep_top;
}

int32_t argmax(const float* logits, int64_t n_vocab) {
    // the largest value, as 8 running maxima (a loop the compiler vectorizes;
    // std::max_element's one chain of compares took 40 µs over 49k logits),
    // then the first token that has it
    constexpr int kLanes = 8;
    float lane[kLanes];
    for (int l = 0; l < kLanes; l++) lane[l] = -std::numeric_limits<float>::infinity();
    int64_t i = 0;
    for (; i + kLanes <= n_vocab; i += kLanes)
        for (int l = 0; l < kLanes; l++) lane[l] = logits[i + l] > lane[l] ? logits[i + l] : lane[l];
    for (; i < n_vocab; i++) lane[0] = logits[i] > lane[0] ? logits[i] : lane[0];
    float max = lane[0];
    for (int l = 1; l < kLanes; l++) max = lane[l] > max ? lane[l] : max;
    for (i = 0; i < n_vocab; i++)
        if (logits[i] == max) return (int32_t)i;
    return 0;  // every logit NaN
}

float log_prob(const float* logits, int64_t n_vocab, int32_t token) {
    const float max = logits[argmax(logits, n_vocab)];
    const std::unique_ptr<double[]> w = weights(logits, n_vocab, max);
    double z = 0.0;
    for (int64_t i = 0; i < n_vocab; i++) z += w[i];
    return (float)((double)logits[token] - max - std::log(z));
}

std::vector<std::pair<int32_t, float>> top_log_probs(const float* logits, int64_t n_vocab, int32_t k) {
    k = (int32_t)std::min<int64_t>(std::max(k, 0), n_vocab);
    std::vector<int32_t> ids((size_t)n_vocab);
    for (int64_t i = 0; i < n_vocab; i++) ids[i] = (int32_t)i;
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                      [&](int32_t a, int32_t b) { return more_likely(logits, a, b); });
    const float max = logits[ids.empty() ? 0 : argmax(logits, n_vocab)];
    const std::unique_ptr<double[]> w = weights(logits, n_vocab, max);
    double z = 0.0;
    for (int64_t i = 0; i < n_vocab; i++) z += w[i];
    const double lz = std::log(z);
    std::vector<std::pair<int32_t, float>> out;
    for (int32_t i = 0; i < k; i++) out.emplace_back(ids[i], (float)((double)logits[ids[i]] - max - lz));
    return out;
}

int32_t token_rank(const float* logits, int64_t n_vocab, int32_t token) {
    int32_t above = 0;
    for (int64_t i = 0; i < n_vocab; i++) above += logits[i] > logits[token];
    return above + 1;
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) { check_sampling_params(p); }

double Sampler::uniform() { return (double)(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(float* logits, int64_t n_vocab, const std::vector<int32_t>& prompt,
                        const std::vector<int32_t>& output) {
    apply_allowed_tokens(logits, n_vocab, p_.allowed_token_ids);
    apply_logit_bias(logits, n_vocab, p_.logit_bias);
    if (p_.repetition_penalty != 1.0f) {
        std::vector<int32_t> seen(prompt);
        seen.insert(seen.end(), output.begin(), output.end());
        apply_repetition_penalty(logits, n_vocab, seen.data(), seen.size(), p_.repetition_penalty);
    }
    apply_presence_frequency(logits, n_vocab, output.data(), output.size(), p_.presence_penalty, p_.frequency_penalty);
    if (p_.temperature == 0.0f) return argmax(logits, n_vocab);

    apply_temperature(logits, n_vocab, p_.temperature);
    apply_top_k(logits, n_vocab, p_.top_k);
    if (p_.top_k <= 0 || p_.top_k >= n_vocab) {
        apply_top_p(logits, n_vocab, p_.top_p);
        apply_min_p(logits, n_vocab, p_.min_p);
        return draw(logits, n_vocab);
    }
    // After top-k (llama.cpp's default keeps 40) the rest of the chain runs
    // on the tokens left, side by side in id order: the same order, so the
    // same ties and the same walk of the draw, without passes over a whole
    // vocabulary of removed tokens.
    left_ids_.clear();
    left_.clear();
    for (int64_t i = 0; i < n_vocab; i++) {
        if (logits[i] == kRemoved) continue;
        left_ids_.push_back((int32_t)i);
        left_.push_back(logits[i]);
    }
    const int64_t n_left = (int64_t)left_.size();
    if (n_left == 0) return -1;  // every token removed: as draw() says it
    apply_top_p(left_.data(), n_left, p_.top_p);
    apply_min_p(left_.data(), n_left, p_.min_p);
    const int32_t t = draw(left_.data(), n_left);
    return t < 0 ? t : left_ids_[(size_t)t];
}

// A token from softmax over what is left: the first whose running sum of
// weights, in id order, passes uniform() times their total. The weights are
// the kernels' e^(l - max) (the same on every CPU, a few hundred µs less than
// std::exp over a 49k vocabulary); they are summed in double by blocks of
// kBlock tokens, so that the walk skips whole blocks and adds weights one
// by one only inside the block where the sum passes the target.
int32_t Sampler::draw(const float* logits, int64_t n_vocab) {
    constexpr int64_t kBlock = 64;
    if (n_vocab <= 0) return -1;
    const float max = logits[argmax(logits, n_vocab)];
    weights_.resize((size_t)n_vocab);
    kernels().exp_shifted(logits, n_vocab, max, weights_.data());  // removed tokens (-inf) weigh 0
    const float* w = weights_.data();
    const int64_t n_blocks = (n_vocab + kBlock - 1) / kBlock;
    block_sums_.resize((size_t)n_blocks);
    double z = 0.0;
    for (int64_t b = 0; b < n_blocks; b++) {
        double s = 0.0;
        for (int64_t i = b * kBlock; i < std::min(n_vocab, (b + 1) * kBlock); i++) s += w[i];
        block_sums_[b] = s;
        z += s;
    }
    const double target = uniform() * z;
    double before = 0.0;  // the sum of the blocks before this one
    for (int64_t b = 0; b < n_blocks; b++) {
        if (before + block_sums_[b] > target) {
            double cum = before;
            for (int64_t i = b * kBlock; i < std::min(n_vocab, (b + 1) * kBlock); i++) {
                if (logits[i] == kRemoved) continue;
                cum += w[i];
                if (cum > target) return (int32_t)i;
            }
        }
        before += block_sums_[b];
    }
    // rounding left the target at the very end: the last token not removed
    for (int64_t i = n_vocab - 1; i >= 0; i--)
        if (logits[i] != kRemoved) return (int32_t)i;
    return -1;
}

}  // namespace hearth
