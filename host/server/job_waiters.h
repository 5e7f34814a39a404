// Wakes run_wait_result requests when their job finishes, without polling
// and usually without reading the job back: such a job is pushed with a
// waiter token, the statement that finishes it NOTIFYs
// queue::kJobDoneChannel with {"w": token, "id", and when it fits "status",
// "result", "error"}, and one listener thread per server hands each payload
// to the request waiting under that token.
//
// Also wakes agents' long polls when jobs of their tags arrive (watch_tags,
// a callback on the listener thread): the same listener LISTENs on those
// tags' channels. So a waiting request holds no database connection of its
// own: the server's waits cost one connection in all. A notification wakes
// one watcher of its tag, not all of them (a herd: a claim per parked poll
// for one job); a watcher that finds jobs passes the wake-up on
// (wake_tags).
//
// Contract for a waiter: watch() a fresh token BEFORE pushing the job, so no
// notification can come first. wait() also returns after its timeout, so a
// notification lost while the listener reconnects costs at most one
// timeout (then read the job), never a hang.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace quern::queue {
class Queue;
}

namespace quern::server {

class JobWaiters {
 public:
  struct Waiter;  // internal

  // A registration; unregisters when destroyed.
  class Watch {
   public:
    Watch(JobWaiters& owner, std::string token, std::shared_ptr<Waiter> w);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    const std::string& token() const { return token_; }
    // The notification's payload (the JSON text described above), or
    // nullopt when none arrived within timeout.
    std::optional<std::string> wait(std::chrono::milliseconds timeout);

   private:
    JobWaiters& owner_;
    std::string token_;
    std::shared_ptr<Waiter> waiter_;
  };

  struct TagWaiter;  // internal

  // A registration for jobs of some tags (see watch_tags); unregisters when
  // destroyed. The destructor waits for a call of its on_wake in progress on
  // the listener thread: once it returned, on_wake is never called again.
  class TagWatch {
    friend class JobWaiters;

   public:
    TagWatch(JobWaiters& owner, std::vector<std::string> channels, std::shared_ptr<TagWaiter> w);
    ~TagWatch();
    TagWatch(const TagWatch&) = delete;
    TagWatch& operator=(const TagWatch&) = delete;

   private:
    JobWaiters& owner_;
    std::vector<std::string> channels_;
    std::shared_ptr<TagWaiter> waiter_;
  };

  explicit JobWaiters(std::string database_url);  // the listener starts with the first watch
  ~JobWaiters();                                  // stops and joins the listener
  JobWaiters(const JobWaiters&) = delete;
  JobWaiters& operator=(const JobWaiters&) = delete;

  // Registers a new unique token (random, 128 bits) to push a job with.
  std::unique_ptr<Watch> watch();
  // Registers interest in jobs of these tags. Each notification on one of
  // the tags' channels (a job due now pushed, handed back or retried when no
  // worker was woken by name; not the "+<us>" announcements of jobs due
  // later) calls on_wake of ONE watcher of that tag, taking turns, on the
  // listener thread; on_wake returns whether it will act on the wake-up
  // (false: it has ended; the next watcher is asked). A notification may
  // stand for several jobs: the watcher that claims some must pass the
  // wake-up on (wake_tags). on_wake runs under the waiters' lock, so it
  // must be quick, must not block or throw, and must not call into
  // JobWaiters (nor destroy a TagWatch): set a flag, post a task. Wake-ups
  // are hints, not counts, and a woken claim may find the job taken. The
  // first watch of a tag may miss jobs pushed before the listener LISTENs on
  // its channel (a few ms), and any may miss those pushed while the listener
  // reconnects: claim again at least every second as well.
  std::unique_ptr<TagWatch> watch_tags(const std::vector<std::string>& tags, std::function<bool()> on_wake);
  // Wakes up to n watchers of these tags other than `except` (may be null),
  // taking turns as notifications do: what a watcher that claimed jobs calls,
  // since more may be waiting. Any thread; returns how many were woken.
  int wake_tags(const std::vector<std::string>& tags, int n, const TagWatch* except);
  // Registers interest in a channel of its own (not a tag's):
  // on_notify(payload) is called on the listener thread for each
  // notification on it, under the same rules as watch_tags' on_wake.
  std::unique_ptr<TagWatch> watch_channel(const std::string& channel,
                                          std::function<void(const std::string&)> on_notify);
  // Whether the listener is connected and LISTENing (else waiters should poll).
  bool listening() const { return (state_.load() & 1) != 0; }
  // While the listener is connected and LISTENs on every watched channel:
  // a number that changes when that stops or a channel is added (so nothing
  // could be missed under one epoch). nullopt while it is not.
  std::optional<uint64_t> epoch() const {
    const uint64_t s = state_.load();
    return (s & 1) != 0 ? std::optional<uint64_t>(s) : std::nullopt;
  }

 private:
  void run();
  void start_listener();  // mu_ held
  void unwatch(const std::string& token);
  void unwatch_tags(const std::vector<std::string>& channels, const TagWaiter* w);
  // tags: the channels are tags' (their watchers are woken one at a time).
  std::unique_ptr<TagWatch> watch_channels(std::vector<std::string> channels, std::shared_ptr<TagWaiter> w,
                                           bool tags);

  const std::string url_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Waiter>> waiters_;  // by token; guarded by mu_
  struct Watchers {
    bool tag = false;  // a tag's channel: one watcher per notification, none for "+<us>"
    std::vector<std::shared_ptr<TagWaiter>> list;
    size_t next = 0;  // whose turn it is to be woken (tag channels)
  };
  // Wakes one watcher of `w` other than those in `skip`, taking turns; the
  // one woken is added to `skip`. mu_ held.
  bool wake_one(Watchers& w, std::vector<const TagWaiter*>& skip);
  // Channel -> its watchers; guarded by mu_. The listener LISTENs on every
  // channel ever watched (tags come from tokens: a bounded set).
  std::map<std::string, Watchers> channel_waiters_;
  std::condition_variable stop_cv_;  // with mu_
  bool stopping_ = false;            // guarded by mu_
  queue::Queue* live_ = nullptr;     // the listener's connection, to interrupt(); guarded by mu_
  // Odd while listening (all watched channels LISTENed); every change of
  // connection or of the channels LISTENed moves it on: epoch().
  std::atomic<uint64_t> state_{0};
  std::thread thread_;  // the listener, started by the first watch(); guarded by mu_ until joined
};

}  // namespace quern::server
