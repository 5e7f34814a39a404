#include "host/server/job_waiters.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>
#include <utility>

#include "host/log/log.h"
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

struct JobWaiters::TagWaiter {
  std::function<bool(const std::string&)> on_notify;  // called under JobWaiters::mu_
};

JobWaiters::TagWatch::TagWatch(JobWaiters& owner, std::vector<std::string> channels,
                               std::shared_ptr<TagWaiter> w)
    : owner_(owner), channels_(std::move(channels)), waiter_(std::move(w)) {}

JobWaiters::TagWatch::~TagWatch() { owner_.unwatch_tags(channels_, waiter_.get()); }

JobWaiters::JobWaiters(std::string database_url) : url_(std::move(database_url)) {}

JobWaiters::~JobWaiters() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (live_) live_->interrupt();
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
    start_listener();
  }
  return std::make_unique<Watch>(*this, token, std::move(w));
}

std::unique_ptr<JobWaiters::TagWatch> JobWaiters::watch_tags(const std::vector<std::string>& tags,
                                                             std::function<bool()> on_wake) {
  auto w = std::make_shared<TagWaiter>();
  w->on_notify = [on_wake = std::move(on_wake)](const std::string&) { return on_wake(); };
  std::vector<std::string> channels;
  for (const std::string& tag : tags) channels.push_back(queue::channel_for_tag(tag));
  return watch_channels(std::move(channels), std::move(w), /*tags=*/true);
}

std::unique_ptr<JobWaiters::TagWatch> JobWaiters::watch_channel(
    const std::string& channel, std::function<void(const std::string&)> on_notify) {
  auto w = std::make_shared<TagWaiter>();
  w->on_notify = [on_notify = std::move(on_notify)](const std::string& payload) {
    on_notify(payload);
    return true;
  };
  return watch_channels({channel}, std::move(w), /*tags=*/false);
}

std::unique_ptr<JobWaiters::TagWatch> JobWaiters::watch_channels(std::vector<std::string> channels,
                                                                 std::shared_ptr<TagWaiter> w, bool tags) {
  {
    std::lock_guard lock(mu_);
    bool new_channel = false;
    for (const std::string& ch : channels) {
      auto [it, inserted] = channel_waiters_.try_emplace(ch);
      it->second.tag = tags;  // tag channels ("quern_jobs:...") never share a name with others
      it->second.list.push_back(w);
      new_channel = new_channel || inserted;
    }
    start_listener();
    // The listener LISTENs on new channels now, not after its wait. A known
    // channel is LISTENed already (or will be: its first watch interrupted),
    // so the long polls of a busy server do not interrupt it each.
    if (new_channel && live_) live_->interrupt();
  }
  return std::make_unique<TagWatch>(*this, std::move(channels), std::move(w));
}

void JobWaiters::unwatch_tags(const std::vector<std::string>& channels, const TagWaiter* w) {
  std::lock_guard lock(mu_);
  for (const std::string& ch : channels) {
    auto it = channel_waiters_.find(ch);
    if (it == channel_waiters_.end()) continue;
    auto& list = it->second.list;
    list.erase(std::remove_if(list.begin(), list.end(), [&](const auto& p) { return p.get() == w; }),
               list.end());
    // The entry stays (empty): its channel stays LISTENed.
  }
}

bool JobWaiters::wake_one(Watchers& w, std::vector<const TagWaiter*>& skip) {
  const size_t n = w.list.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t at = (w.next + i) % n;
    TagWaiter& candidate = *w.list[at];
    if (std::find(skip.begin(), skip.end(), &candidate) != skip.end()) continue;
    bool woken = false;
    try {
      woken = candidate.on_notify && candidate.on_notify("");
    } catch (...) {  // a contract breach; the listener must go on
      log::error("server", "a tag watch's wake-up threw");
    }
    if (!woken) continue;
    w.next = at + 1;
    skip.push_back(&candidate);
    return true;
  }
  return false;
}

int JobWaiters::wake_tags(const std::vector<std::string>& tags, int n, const TagWatch* except) {
  std::vector<const TagWaiter*> skip;
  if (except) skip.push_back(except->waiter_.get());
  int woken = 0;
  std::lock_guard lock(mu_);
  for (const std::string& tag : tags) {
    auto it = channel_waiters_.find(queue::channel_for_tag(tag));
    if (it == channel_waiters_.end()) continue;
    while (woken < n && wake_one(it->second, skip)) ++woken;
  }
  return woken;
}

void JobWaiters::start_listener() {
  // Started by the first watch: a server that never waits holds no
  // listening connection.
  if (!thread_.joinable() && !stopping_) thread_ = std::thread([this] { run(); });
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
  bool reported = false;           // one log line per outage, not one per retry
  std::set<std::string> listened;  // channels LISTENed on the current connection
  // The connection is gone (or never was): waiters poll, the epoch moves on.
  const auto lost = [&](const Status& why) {
    if (state_.load() & 1) state_++;
    {
      std::lock_guard lock(mu_);
      live_ = nullptr;
    }
    q.reset();
    if (!std::exchange(reported, true))
      log::warning("server",
                   "job-done listener: " + why.message() + " (run_wait_result polls until it reconnects)");
  };
  while (!stopping()) {
    if (!q) {
      listened.clear();
      queue::QueueOptions qo;
      qo.application_name = "quern server (listener)";
      auto c = queue::Queue::connect(url_, qo);
      Status s = c ? (*c)->listen_channel(queue::kJobDoneChannel) : c.status();
      if (!s) {
        lost(s);
        std::unique_lock lock(mu_);
        stop_cv_.wait_for(lock, 1s, [&] { return stopping_; });
        continue;
      }
      q = std::move(c).value();
      std::lock_guard lock(mu_);
      // A stop that came while this connected found no live_ to interrupt:
      // it is seen here; a later one interrupts the wait below.
      if (stopping_) break;
      live_ = q.get();
    }
    std::vector<std::string> wanted;
    {
      std::lock_guard lock(mu_);
      for (const auto& [ch, watchers] : channel_waiters_)
        if (!listened.count(ch)) wanted.push_back(ch);
    }
    Status listen_ok = Status::ok();
    for (const std::string& ch : wanted) {
      if (listen_ok = q->listen_channel(ch); !listen_ok) break;
      listened.insert(ch);
    }
    if (!listen_ok) {
      lost(listen_ok);
      continue;  // reconnects at once: a failed LISTEN means a broken connection
    }
    // Listening on every channel now: a new epoch when that is news.
    if ((state_.load() & 1) == 0) {
      state_++;
      reported = false;
    } else if (!wanted.empty()) {
      state_ += 2;
    }
    // stop() and new channels interrupt the wait: no periodic wake-ups.
    auto payloads = q->wait_for_notifications(60s);
    if (!payloads) {
      lost(payloads.status());  // reconnects (and re-LISTENs) on the next pass
      continue;
    }
    if (payloads->empty()) continue;
    std::lock_guard lock(mu_);
    for (queue::Notification& n : *payloads) {
      if (n.channel != queue::kJobDoneChannel) {
        auto it = channel_waiters_.find(n.channel);
        if (it == channel_waiters_.end()) continue;
        Watchers& watchers = it->second;
        // Tag watchers: one per notification (it passes the wake-up on when
        // it finds jobs); none for a job due later (a claim would find nothing).
        if (watchers.tag) {
          std::vector<const TagWaiter*> skip;
          if (!queue::due_announcement(n.payload)) wake_one(watchers, skip);
          continue;
        }
        for (const auto& w : watchers.list) {
          try {
            if (w->on_notify) w->on_notify(n.payload);
          } catch (...) {  // a contract breach; the listener must go on
            log::error("server", "a channel watch's callback threw");
          }
        }
        continue;
      }
      std::string& text = n.payload;
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
  if (state_.load() & 1) state_++;
  std::lock_guard lock(mu_);
  live_ = nullptr;  // q goes with this frame
}

}  // namespace quern::server
