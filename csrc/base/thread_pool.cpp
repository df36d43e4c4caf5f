#include "base/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>

namespace hearth {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// How long an idle worker spins before it sleeps.
constexpr auto kSpinTime = std::chrono::microseconds(2000);

}  // namespace

int default_thread_count() {
#ifdef __linux__
    // the CPUs this process may run on (a container or taskset may allow fewer than the machine has)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    const unsigned n = std::thread::hardware_concurrency();
    return n > 0 ? (int)n : 1;
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
    for (int i = 1; i < n_threads_; i++) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
    stop_.store(true);
    generation_.fetch_add(1);
    {
        std::lock_guard<std::mutex> lock(mutex_);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::run_tasks() {
    for (;;) {
        const int64_t i = next_task_.fetch_add(1);
        if (i >= job_size_) return;
        (*job_)(i);
    }
}

void ThreadPool::worker_loop() {
    uint64_t seen = 0;
    for (;;) {
        // wait for a new generation: spin first, then sleep
        auto spin_start = std::chrono::steady_clock::now();
        int spins = 0;
        while (generation_.load() == seen) {
            // spin briefly, then yield: on a busy machine a spinning thread
            // would keep a descheduled worker from running
            if (++spins < 4096) cpu_relax();
            else std::this_thread::yield();
            if (spins % 1024 == 0 && std::chrono::steady_clock::now() - spin_start > kSpinTime) {
                std::unique_lock<std::mutex> lock(mutex_);
                sleepers_.fetch_add(1);
                wake_.wait(lock, [&] { return generation_.load() != seen; });
                sleepers_.fetch_sub(1);
            }
        }
        seen = generation_.load();
        if (stop_.load()) return;
        run_tasks();
        busy_workers_.fetch_sub(1);
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n == 1) {
        for (int64_t i = 0; i < n; i++) fn(i);
        return;
    }
    job_ = &fn;
    job_size_ = n;
    next_task_.store(0);
    busy_workers_.store(n_threads_ - 1);
    generation_.fetch_add(1);  // publishes the job (seq_cst)
    if (sleepers_.load() > 0) {
        { std::lock_guard<std::mutex> lock(mutex_); }
        wake_.notify_all();
    }
    run_tasks();
    for (int spins = 0; busy_workers_.load() != 0; spins++) {
        if (spins < 4096) cpu_relax();
        else std::this_thread::yield();
    }
    job_ = nullptr;
}

void ThreadPool::parallel_for_rows(int64_t n, const std::function<void(int64_t)>& fn) {
    // four runs per thread: even work, and a thread slowed by the machine
    // still leaves the others something to take
    const int64_t runs = 4 * (int64_t)n_threads_;
    if (n <= runs) return parallel_for(n, fn);
    const int64_t per_run = (n + runs - 1) / runs;
    parallel_for((n + per_run - 1) / per_run, [&](int64_t r) {
        const int64_t end = std::min(n, (r + 1) * per_run);
        for (int64_t i = r * per_run; i < end; i++) fn(i);
    });
}

}  // namespace hearth
