// A small pool of per-thread objects that each own one database connection
// (Queue, TokenStore, ScriptStore are not thread-safe). A handler borrows one
// for the duration of a request.
//
// Thread-safety: acquire() and the Lease destructor may be called from any
// thread; a borrowed object is used by one thread at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "host/common/status.h"

namespace quern::server {

template <typename T>
class Pool {
 public:
  using Factory = std::function<StatusOr<std::unique_ptr<T>>()>;

  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<T> item) : pool_(pool), item_(std::move(item)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (item_) pool_->give_back(std::move(item_));
    }
    T* operator->() { return item_.get(); }
    T& operator*() { return *item_; }

   private:
    Pool* pool_;
    std::unique_ptr<T> item_;
  };

  Pool(Factory factory, size_t max_size) : factory_(std::move(factory)), max_size_(max_size) {}

  // Borrows an idle object, creates one while under max_size, else waits up
  // to `wait` for one to come back.
  StatusOr<Lease> acquire(std::chrono::milliseconds wait = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, wait, [&] { return !idle_.empty() || created_ < max_size_; }))
      return Status::error("all database connections are busy");
    if (!idle_.empty()) {
      auto item = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(item));
    }
    created_++;
    lock.unlock();
    auto made = factory_();
    if (!made) {
      std::lock_guard relock(mu_);
      created_--;
      cv_.notify_one();
      return made.status();
    }
    return Lease(this, std::move(made).value());
  }

 private:
  void give_back(std::unique_ptr<T> item) {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(item));
    cv_.notify_one();
  }

  Factory factory_;
  const size_t max_size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<T>> idle_;  // guarded by mu_
  size_t created_ = 0;                    // guarded by mu_
};

}  // namespace quern::server
