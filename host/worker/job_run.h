// One job while a slot runs it: the JobSink the plugin reports into, the stop
// flag the watchdog raises, and the pending log text the writer flushes.
//
// This is where a plugin's output enters the host, for every plugin: log
// lines and error messages are bytes, made storable here (invalid UTF-8 and
// NUL bytes become U+FFFD, noted once in the job's log as a system line);
// a result must be JSON that PostgreSQL's jsonb can hold, within
// QUERN_MAX_JSON_DEPTH and kMaxResultBytes, or the job fails saying why
// (docs/LIMITS.md).
//
// Thread-safety: stop_reason, pgid and the watchdog fields are touched by the
// slot, the watchdog and plugin threads: atomics, or guarded by the Worker's
// mutex (watchdog fields). Log text and result are guarded by mu_.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

#include "host/cgroup/cgroup.h"
#include "host/plugin/plugin_registry.h"
#include "host/queue/queue.h"
#include "host/slot/job_executor.h"

namespace quern::worker {

using SteadyClock = std::chrono::steady_clock;

class JobRun final : public plugin::JobSink {
 public:
  // Logs of one job beyond this many bytes are dropped (with a marker line):
  // a runaway job must not exhaust the worker's memory or the database.
  static constexpr size_t kMaxLogBytes = 32u << 20;
  // A longer log line is stored as several lines of at most this size.
  static constexpr size_t kMaxLogLineBytes = 64u << 10;
  // A larger result fails the job (it must fit an agent's POST as well).
  static constexpr size_t kMaxResultBytes = 4u << 20;
  // An error message is cut to this size.
  static constexpr size_t kMaxErrorBytes = 64u << 10;

  JobRun(queue::ClaimedJob job, SteadyClock::time_point deadline)
      : job_(std::move(job)), deadline_(deadline) {}

  const queue::ClaimedJob& job() const { return job_; }
  SteadyClock::time_point deadline() const { return deadline_; }

  // --- JobSink (any plugin thread) ---
  void log_line(int32_t stream, std::string_view line) override;
  void progress(double) override {}
  int32_t is_cancelled() override { return stop_reason_.load(std::memory_order_relaxed); }
  void set_result(std::string_view json) override;
  void set_error(std::string_view message) override;
  void set_process_group(int64_t pgid) override { pgid_.store(pgid); }

  // Raises the stop flag once; the first reason wins. Returns true if this
  // call raised it.
  bool request_stop(int32_t reason);
  int32_t stop_reason() const { return stop_reason_.load(); }
  int64_t process_group() const { return pgid_.load(); }

  // Lease lost (heartbeat): the job is stopped and never completed by us.
  void mark_lost() { lost_.store(true); }
  bool lost() const { return lost_.load(); }

  // Moves out the log text gathered since the last call ("" when none).
  std::string take_logs();
  size_t pending_log_bytes() const;

  // The outcome, after execute() returned with plugin status `rc`. A stop the
  // host raised (timeout, cancel) decides the status, whatever rc says.
  queue::Completion outcome(quern_status rc, int timeout_s) const;

  const SteadyClock::time_point claimed_at = SteadyClock::now();  // its run time counts from here

  // Watchdog bookkeeping (guarded by the Worker's mutex).
  bool term_sent = false;
  bool kill_sent = false;
  SteadyClock::time_point term_at{};
  slot::JobExecutor* executor = nullptr;  // for stop()/kill(); set by the slot while executing
  // The job's cgroup while it executes, when it is sandboxed: SIGTERM goes to
  // its processes but not to bubblewrap, which would die of it and take the
  // sandbox along before the job had its grace.
  const cgroup::Job* sandboxed_cgroup = nullptr;

 private:
  const queue::ClaimedJob job_;
  const SteadyClock::time_point deadline_;
  std::atomic<int32_t> stop_reason_{QUERN_RUNNING};
  std::atomic<int64_t> pgid_{0};
  std::atomic<bool> lost_{false};

  mutable std::mutex mu_;
  std::string logs_;         // guarded by mu_
  size_t logged_bytes_ = 0;  // guarded by mu_
  bool log_truncated_ = false;
  bool repair_noted_ = false;  // guarded by mu_
  std::string result_json_;    // guarded by mu_
  bool has_result_ = false;
  std::string error_;  // guarded by mu_

  // Appends one storable line (mu_ held).
  void append_line(int32_t stream, std::string_view line);
};

}  // namespace quern::worker
