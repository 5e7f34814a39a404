// A fixed pool of threads running request handlers, with a bounded queue.
// Thread-safe: try_submit and pending may be called from any thread; start
// and stop from the owner only.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace quern::http::detail {

class HandlerPool {
 public:
  ~HandlerPool() { stop(); }
  void start(int threads, size_t max_pending);
  // Queues task unless every thread is busy and max_pending tasks already
  // wait (or the pool is stopped): then returns false and drops it.
  bool try_submit(std::function<void()> task);
  // Drops queued tasks, waits for running ones, joins. Idempotent.
  void stop();
  size_t pending() const;

 private:
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  size_t idle_ = 0;                          // threads waiting for a task; guarded by mu_
  size_t max_pending_ = 0;
  bool stopping_ = false;  // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace quern::http::detail
