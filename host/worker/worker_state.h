// Internal to host/worker: the state a worker's threads share (worker.cpp
// runs the threads, worker_reconfig.cpp changes tags and slots while they
// run). Members are guarded by `mu` unless their section says otherwise.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "host/cgroup/cgroup.h"
#include "host/metrics/job_metrics.h"
#include "host/worker/job_run.h"
#include "host/worker/job_source.h"
#include "host/worker/jobs_dir.h"
#include "host/worker/worker.h"

namespace quern::worker {

struct Worker::State {
  std::unique_ptr<JobSource> claim_source;   // claimer thread only (interrupt(): any thread)
  std::unique_ptr<JobSource> writer_source;  // writer thread only
  // The claimer's source pushes cancellations (JobSource::listen_cancels):
  // the claimer then waits on it while busy too. Set before the threads start.
  bool cancels_on_claimer = false;

  std::mutex mu;
  std::condition_variable slots_cv;     // dispatch has work / stopping
  std::condition_variable claimer_cv;   // a slot became free / stopping
  std::condition_variable writer_cv;    // something to write / finished
  std::condition_variable watchdog_cv;  // stopping

  // --- guarded by mu ---
  std::deque<std::shared_ptr<JobRun>> dispatch;                  // claimed, not yet started
  int busy = 0;                                                  // claimed and not yet finished by a slot
  int gpus_in_use = 0;                                           // GPUs asked for by the jobs counted in busy
  std::unordered_map<int64_t, std::shared_ptr<JobRun>> running;  // id → run (claimed, in a slot or waiting)
  std::vector<queue::Completion> pending_completions;
  std::vector<queue::LogChunk> pending_logs;  // final chunks of finished jobs
  std::vector<queue::Lease> pending_releases;
  // Completions the queue has not answered yet, for metrics (only with
  // WorkerOptions::metrics): counted by tag and outcome once accepted.
  struct Finished {
    std::string tag;
    queue::JobStatus status;
    std::chrono::duration<double> took;
  };
  // By job id and attempt: a retried job's next attempt may finish here
  // before the queue has answered for the one before.
  std::map<std::pair<int64_t, int32_t>, Finished> finished;
  bool log_flush_wanted = false;
  bool stopping = false;
  SteadyClock::time_point stop_requested_at{};
  bool claimer_done = false;
  int slots_alive = 0;
  bool writer_done = false;
  // Reconfiguration (set_tags / set_slots): the claimer copies `tags` when
  // tags_version moves; the writer writes registry_update to quern.workers.
  std::vector<std::string> tags;
  uint64_t tags_version = 0;
  int slot_limit = 0;    // jobs claimed at most at once
  int slot_threads = 0;  // slot threads started (never fewer than slot_limit)
  queue::WorkerInfo registry_info;
  std::optional<queue::WorkerInfo> registry_update;
  // Plugin name → its last health() answer on this worker ("ok", why not,
  // or "unchecked" until a slot has an instance of it): heartbeat telemetry.
  std::map<std::string, std::string> plugin_health;

  // The busy count or the slot limit changed (mu held): the occupancy the
  // heartbeat reports follows, and the group's metrics when exported.
  void slots_changed(metrics::WorkerMetrics* m) {
    occupancy.set(busy, slot_limit);
    if (m) m->slots(busy, slot_limit);
  }

  // --- set by start(), read-only afterwards ---
  JobsDir jobs_dir;                               // locked from start() until wait()
  std::unique_ptr<cgroup::Tree> cgroups;          // null: no cgroups on this machine
  std::string setup_items;                        // QUERN_SETUP's part common to every job
  std::map<std::string, std::string> passed_env;  // pass_env names → values on this host
  std::function<void()> start_slot;               // starts one more slot thread

  // --- stats (atomics: read without the lock) ---
  std::atomic<int64_t> claimed{0}, completed{0}, refused{0}, claim_queries{0};
  std::atomic<int64_t> exec_ewma_us{0};  // moving average of execute() time (1/8 weight per job)
  metrics::Occupancy occupancy;          // thread-safe itself; set() through slots_changed()

  // Readiness (Worker::ready): whether the last heartbeat round reached the
  // source (the database, or the server for an agent), and if not, why.
  std::atomic<bool> started{false};  // start() succeeded
  std::atomic<bool> source_ok{true};
  void set_source_status(const Status& s) {
    if (!s) {
      std::lock_guard lock(source_mu);
      source_message = s.message();
    }
    source_ok.store(s.is_ok());
  }
  std::string source_error() const {
    std::lock_guard lock(source_mu);
    return "the last heartbeat did not reach the queue: " + source_message;
  }
  mutable std::mutex source_mu;
  std::string source_message;  // guarded by source_mu

  std::vector<std::thread> threads;
};

// Appends dedicated_tag(path) of each script not yet in tags.
void add_dedicated_tags(std::vector<std::string>& tags, const std::vector<std::string>& scripts);

}  // namespace quern::worker
