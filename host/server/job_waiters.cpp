#include "host/server/job_waiters.h"

#include <charconv>
#include <iostream>

#include "host/queue/queue.h"

namespace quern::server {

struct JobWaiters::Waiter {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;  // guarded by mu
};

JobWaiters::Watch::Watch(JobWaiters& owner, int64_t id, std::shared_ptr<Waiter> w)
    : owner_(owner), id_(id), waiter_(std::move(w)) {}

JobWaiters::Watch::~Watch() { owner_.unwatch(id_); }

bool JobWaiters::Watch::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(waiter_->mu);
  const bool done = waiter_->cv.wait_for(lock, timeout, [&] { return waiter_->done; });
  waiter_->done = false;  // a later wait waits for a later notification (e.g. after a retry)
  return done;
}

JobWaiters::JobWaiters(std::string database_url) : url_(std::move(database_url)) {
  thread_ = std::thread([this] { run(); });
}

JobWaiters::~JobWaiters() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

std::unique_ptr<JobWaiters::Watch> JobWaiters::watch(int64_t job_id) {
  auto w = std::make_shared<Waiter>();
  {
    std::lock_guard lock(mu_);
    waiters_[job_id] = w;
  }
  return std::make_unique<Watch>(*this, job_id, std::move(w));
}

void JobWaiters::unwatch(int64_t id) {
  std::lock_guard lock(mu_);
  waiters_.erase(id);
}

void JobWaiters::run() {
  using namespace std::chrono_literals;
  std::unique_ptr<queue::Queue> q;
  auto stopping = [&] {
    std::lock_guard lock(mu_);
    return stopping_;
  };
  while (!stopping()) {
    if (!q) {
      auto c = queue::Queue::connect(url_);
      Status s = c ? (*c)->listen_channel(queue::kJobDoneChannel) : c.status();
      if (!s) {
        std::cerr << "quern server: job-done listener: " << s.message() << " (retrying in 1 s)\n";
        std::unique_lock lock(mu_);
        stop_cv_.wait_for(lock, 1s, [&] { return stopping_; });
        continue;
      }
      q = std::move(c).value();
      listening_ = true;
    }
    // Short slices: stop() is noticed within 100 ms.
    auto ids = q->wait_for_notifications(100ms);
    if (!ids) {
      listening_ = false;  // reconnects (and re-LISTENs) on the next call
      std::cerr << "quern server: job-done listener: " << ids.message() << "\n";
      q.reset();
      continue;
    }
    if (ids->empty()) continue;
    std::lock_guard lock(mu_);
    for (const std::string& text : *ids) {
      int64_t id = 0;
      if (std::from_chars(text.data(), text.data() + text.size(), id).ec != std::errc()) continue;
      auto it = waiters_.find(id);
      if (it == waiters_.end()) continue;  // nobody waits (anymore)
      {
        std::lock_guard wl(it->second->mu);
        it->second->done = true;
      }
      it->second->cv.notify_all();
    }
  }
  listening_ = false;
}

}  // namespace quern::server
