// A bounded pool of objects that each own one database session (the
// server's per-request Db). A handler borrows one for the duration of a
// request.
//
// - At most max_size objects exist at once: the pool is the connection
//   budget of what borrows from it. A borrower waits up to its deadline for
//   one to come back, then gets `unavailable` (the API answers 503 with
//   Retry-After).
// - Idle objects are handed out most-recently-used first, so the least used
//   ones age out: an object idle for longer than idle_timeout is destroyed
//   (closing its connection), down to min_idle. A reaper thread trims every
//   idle_timeout / 4, so an idle server shrinks without traffic.
// - Before an idle object is lent, `check` may repair it (the server's
//   checks that a connection survived a database restart).
//
// Thread-safety: acquire(), the Lease destructor, size() and idle() may be
// called from any thread; a borrowed object is used by one thread at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "host/common/status.h"

namespace quern::server {

template <typename T>
class Pool {
 public:
  using Factory = std::function<StatusOr<std::unique_ptr<T>>()>;
  using Check = std::function<void(T&)>;
  using SteadyClock = std::chrono::steady_clock;

  struct Options {
    size_t max_size = 16;
    size_t min_idle = 1;
    std::chrono::milliseconds idle_timeout{60000};
  };

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

  Pool(Factory factory, Options options, Check check = nullptr)
      : factory_(std::move(factory)), check_(std::move(check)), options_(options) {
    reaper_ = std::thread([this] { reap(); });
  }
  ~Pool() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    reaper_cv_.notify_all();
    reaper_.join();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Borrows an idle object, creates one while under max_size, else waits up
  // to `wait` for one to come back.
  StatusOr<Lease> acquire(std::chrono::milliseconds wait = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, wait, [&] { return !idle_.empty() || created_ < options_.max_size; }))
      return Status::unavailable("all " + std::to_string(options_.max_size) +
                                 " database connections of this server are busy");
    if (!idle_.empty()) {
      auto item = std::move(idle_.back().item);
      idle_.pop_back();
      lock.unlock();
      if (check_) check_(*item);
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

  size_t size() const {
    std::lock_guard lock(mu_);
    return created_;
  }
  size_t idle() const {
    std::lock_guard lock(mu_);
    return idle_.size();
  }
  size_t max_size() const { return options_.max_size; }

  // Destroys idle objects unused for idle_timeout, keeping min_idle.
  void trim() {
    std::vector<std::unique_ptr<T>> doomed;  // destroyed outside the lock
    {
      std::lock_guard lock(mu_);
      const auto cutoff = SteadyClock::now() - options_.idle_timeout;
      // idle_ is ordered by return time: the oldest first.
      size_t n = 0;
      while (n < idle_.size() && idle_.size() - n > options_.min_idle && idle_[n].since < cutoff) ++n;
      for (size_t i = 0; i < n; ++i) doomed.push_back(std::move(idle_[i].item));
      idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(n));
      created_ -= n;
      if (n > 0) cv_.notify_all();
    }
  }

 private:
  struct Idle {
    std::unique_ptr<T> item;
    SteadyClock::time_point since;
  };

  void give_back(std::unique_ptr<T> item) {
    std::lock_guard lock(mu_);
    idle_.push_back({std::move(item), SteadyClock::now()});
    cv_.notify_one();
  }

  void reap() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      reaper_cv_.wait_for(lock, options_.idle_timeout / 4, [&] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      trim();
      lock.lock();
    }
  }

  Factory factory_;
  Check check_;
  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable reaper_cv_;
  std::vector<Idle> idle_;  // guarded by mu_; oldest return first
  size_t created_ = 0;      // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  std::thread reaper_;      // declared last: starts after everything it uses
};

}  // namespace quern::server
