#include "host/http/handler_pool.h"

#include "host/log/log.h"

namespace quern::http::detail {

void HandlerPool::start(int threads, size_t max_pending) {
  max_pending_ = max_pending;
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

bool HandlerPool::try_submit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    // Idle threads take queued tasks at once, so they count as room too.
    if (stopping_ || queue_.size() >= idle_ + max_pending_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

void HandlerPool::stop() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  // Destroyed outside the lock: a task may own the last reference to a session.
  dropped.clear();
}

size_t HandlerPool::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void HandlerPool::run() {
  std::unique_lock lock(mu_);
  while (true) {
    ++idle_;
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (stopping_) return;
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    try {
      task();
    } catch (const std::exception& e) {  // tasks catch their own; this is a last resort
      log::error("http", std::string("handler task threw: ") + e.what());
    } catch (...) {
      log::error("http", "handler task threw a non-standard exception");
    }
    task = nullptr;  // release captured state before taking the lock
    lock.lock();
  }
}

}  // namespace quern::http::detail
