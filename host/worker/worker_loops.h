// The worker's threads (host/worker/worker.h): the state they share is
// Worker::State (worker_state.h); Loops holds what each of them needs and
// its methods are the threads' bodies. worker.cpp has the claimer (which
// also hears of cancellations), writer and watchdog; worker_slots.cpp the
// slots, which run jobs.
// Internal to host/worker.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "host/cgroup/cgroup.h"
#include "host/log/log.h"
#include "host/worker/job_run.h"
#include "host/worker/worker.h"
#include "host/worker/worker_state.h"

namespace quern::worker::detail {

using std::chrono::milliseconds;

// Log text is flushed at least this often while a job runs, and at once when
// a job's pending text passes kLogFlushBytes.
inline constexpr milliseconds kLogFlushInterval{100};
inline constexpr size_t kLogFlushBytes = 64 * 1024;
inline constexpr milliseconds kWatchdogTick{20};
inline constexpr milliseconds kDatabaseRetry{250};
inline constexpr milliseconds kMaxRetryDelay{5000};
inline constexpr milliseconds kBacklogBatchWait{2};
inline constexpr int64_t kShortJobUs = 10000;  // jobs shorter than this benefit from batched claims
// A slot asks its plugin instances for health() at most this often (after a
// job, or when idle this long): heartbeat telemetry.
inline constexpr milliseconds kHealthEvery{30000};

// What one slot owns: its executor instances (by plugin name) and, for
// dedicated scripts, the script version each instance was prepared for.
struct SlotExecutors {
  int id = 0;  // unique within the worker: names the slot's cgroups
  // A warm process's cgroup per plugin (dedicated scripts): declared before
  // instances so that it is killed and removed after them.
  std::map<std::string, cgroup::Job> warm_cgroups;
  std::map<std::string, cgroup::Limits> warm_limits;  // plugin name → its warm cgroup's limits
  std::map<std::string, std::unique_ptr<slot::JobExecutor>> instances;
  std::map<std::string, std::string> prepared_hash;               // plugin name → script hash
  std::map<std::string, SteadyClock::time_point> health_checked;  // plugin name → last health() call
};

// Everything a thread of one worker needs; the loops below are its methods.
class Loops {
 public:
  Loops(const WorkerOptions& o, const plugin::PluginRegistry& p, Worker::State& s)
      : opt(o), plugins(p), st(s) {}

  void claimer();
  void slot();
  void writer();
  void watchdog();

 private:
  // What this worker's log records carry (component "worker"): its id, and
  // the job's when a record is about one.
  log::Fields log_fields(int64_t job = 0) const { return {.worker = opt.worker_id, .job = job}; }
  // Raises a running job's stop flag (st.mu held); true if this call did.
  bool stop_job(JobRun& run, int32_t reason);
  // Claimer thread: stops the running jobs whose cancellation the claim
  // source heard of since the last call (none from a source without
  // listen_cancels()); st.mu not held.
  void take_cancels(JobSource& q);
  // Claimer thread, with a source that pushes cancellations: waits on the
  // source, taking the cancellations it hears of, until done() (called with
  // st.mu held, which `lock` holds on entry and on return). Whoever makes
  // done() true interrupts the source; while the database is away it waits
  // on claimer_cv in kDatabaseRetry steps instead.
  void hear_cancels_until(std::unique_lock<std::mutex>& lock, JobSource& q,
                          const std::function<bool()>& done);
  void run_job(const std::shared_ptr<JobRun>& run, SlotExecutors& executors);
  // True when the job will run in the slot's warm process (its script's
  // version is the one the instance is prepared for).
  bool prepare_dedicated(const queue::ClaimedJob& job, const plugin::LoadedPlugin& p,
                         slot::JobExecutor& executor, SlotExecutors& slot);
  // A new instance of p for one slot: in a slot process of its own, or in
  // this process for the plugins the options name.
  StatusOr<std::unique_ptr<slot::JobExecutor>> make_executor(const plugin::LoadedPlugin& p);
  void finish(const std::shared_ptr<JobRun>& run, std::optional<queue::Completion> completion, bool release);
  void heartbeat(JobSource& q);
  // What the heartbeat tells the registry (any thread; takes st.mu).
  queue::WorkerTelemetry telemetry();
  // Asks the slot's plugin instances for their health() when their last
  // answer is older than kHealthEvery (the slot's own thread, between jobs).
  void check_health(SlotExecutors& executors);
  // Counts, for metrics, the completions of `sent` that delivery is done
  // with (not in `left`): accepted ones by tag and outcome, re-queued ones
  // as retries.
  void count_completions(const std::vector<queue::Lease>& sent, const std::vector<queue::Completion>& left,
                         const std::vector<int64_t>& accepted, const std::vector<int64_t>& retried);

  const WorkerOptions& opt;
  const plugin::PluginRegistry& plugins;
  Worker::State& st;
  std::atomic<int> slot_ids{0};  // SlotExecutors::id
};

}  // namespace quern::worker::detail
