// A persistent pool of worker threads. Decode calls parallel_for a few hundred
// times per token, so waking the workers must cost microseconds: they spin
// for a short while after each job and only then sleep on a condition
// variable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hearth {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);  // n_threads includes the caller
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // Runs fn(i) for every i in [0, n) on the pool (the calling thread takes
    // part) and returns when all calls are done. Tasks are handed out in
    // order from a shared counter, so uneven tasks balance themselves.
    void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);

    // The same for cheap, even work per row (quantizing, norms, rope): a
    // few runs of rows per thread instead of a task per row, since taking a
    // task costs an atomic on a cache line the threads pass between them,
    // as much as a row's work.
    void parallel_for_rows(int64_t n, const std::function<void(int64_t)>& fn);

private:
    void worker_loop();
    void run_tasks();

    int n_threads_;
    std::vector<std::thread> workers_;

    // the current job
    const std::function<void(int64_t)>* job_ = nullptr;
    int64_t job_size_ = 0;
    // on its own cache line: the threads take tasks from it while idle
    // workers poll generation_
    alignas(64) std::atomic<int64_t> next_task_{0};
    alignas(64) std::atomic<int> busy_workers_{0};
    std::atomic<uint64_t> generation_{0};
    std::atomic<bool> stop_{false};

    // sleeping
    std::mutex mutex_;
    std::condition_variable wake_;
    std::atomic<int> sleepers_{0};
};

// Number of threads to use when the user does not say: the CPUs this process may run on.
int default_thread_count();

}  // namespace hearth
