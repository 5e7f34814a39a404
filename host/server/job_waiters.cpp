#include "host/server/job_waiters.h"

#include <cstdio>
#include <iostream>
#include <random>
#include <utility>

#include "host/queue/queue.h"

namespace quern::server {

struct JobWaiters::Waiter {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<std::string> payload;  // guarded by mu
};

JobWaiters::Watch::Watch(JobWaiters& owner, std::string token, std::shared_ptr<Waiter> w)
    : owner_(owner), token_(std::move(token)), waiter_(std::move(w)) {}

JobWaiters::Watch::~Watch() { owner_.unwatch(token_); }

std::optional<std::string> JobWaiters::Watch::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(waiter_->mu);
  waiter_->cv.wait_for(lock, timeout, [&] { return waiter_->payload.has_value(); });
  return std::exchange(waiter_->payload, std::nullopt);
}

JobWaiters::JobWaiters(std::string database_url) : url_(std::move(database_url)) {}

JobWaiters::~JobWaiters() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::unique_ptr<JobWaiters::Watch> JobWaiters::watch() {
  // Unique across servers and restarts without coordination: 128 random bits.
  thread_local std::mt19937_64 rng(std::random_device{}());
  char token[33];
  std::snprintf(token, sizeof token, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  auto w = std::make_shared<Waiter>();
  {
    std::lock_guard lock(mu_);
    waiters_[token] = w;
    // Started by the first waiter: a server that never answers
    // run_wait_result holds no listening connection.
    if (!thread_.joinable() && !stopping_) thread_ = std::thread([this] { run(); });
  }
  return std::make_unique<Watch>(*this, token, std::move(w));
}

void JobWaiters::unwatch(const std::string& token) {
  std::lock_guard lock(mu_);
  waiters_.erase(token);
}

void JobWaiters::run() {
  using namespace std::chrono_literals;
  std::unique_ptr<queue::Queue> q;
  auto stopping = [&] {
    std::lock_guard lock(mu_);
    return stopping_;
  };
  bool reported = false;  // one log line per outage, not one per retry
  while (!stopping()) {
    if (!q) {
      auto c = queue::Queue::connect(url_);
      Status s = c ? (*c)->listen_channel(queue::kJobDoneChannel) : c.status();
      if (!s) {
        if (!std::exchange(reported, true))
          std::cerr << "quern server: job-done listener: " << s.message()
                    << " (run_wait_result polls until it reconnects)\n";
        std::unique_lock lock(mu_);
        stop_cv_.wait_for(lock, 1s, [&] { return stopping_; });
        continue;
      }
      q = std::move(c).value();
      listening_ = true;
      reported = false;
    }
    // Short slices: stop() is noticed within 100 ms.
    auto payloads = q->wait_for_notifications(100ms);
    if (!payloads) {
      listening_ = false;  // reconnects (and re-LISTENs) on the next call
      if (!std::exchange(reported, true))
        std::cerr << "quern server: job-done listener: " << payloads.message()
                  << " (run_wait_result polls until it reconnects)\n";
      q.reset();
      continue;
    }
    if (payloads->empty()) continue;
    std::lock_guard lock(mu_);
    for (std::string& text : *payloads) {
      // {"w":"<token>",...}: find the token without parsing the whole result.
      const size_t start = text.find("\"w\"");
      const size_t open = start == std::string::npos ? start : text.find('"', start + 3);
      const size_t close = open == std::string::npos ? open : text.find('"', open + 1);
      if (close == std::string::npos) continue;
      auto it = waiters_.find(text.substr(open + 1, close - open - 1));
      if (it == waiters_.end()) continue;  // nobody waits (anymore): another server's job
      {
        std::lock_guard wl(it->second->mu);
        it->second->payload = std::move(text);
      }
      it->second->cv.notify_all();
    }
  }
  listening_ = false;
}

}  // namespace quern::server
