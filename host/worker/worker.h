// A worker: N slots, each running one job at a time through the executor
// plugin for the job's language (docs/ARCHITECTURE.md §1, §3-§6, §8).
//
// Threads and what they own:
//  - claimer: its own Queue connection; LISTENs on the served tags and claims
//    at most as many jobs as there are free slots, in one statement; polls
//    every poll_interval in case a notification was lost.
//  - slots (N): each takes a claimed job, runs it through its own Executor
//    instance (one per plugin per slot, so plugins never see concurrent
//    execute calls on one instance), and hands the outcome to the writer.
//  - writer: its own Queue connection; batches log chunks and completions
//    (logs of a job are always written before its completion), heartbeats
//    the leases of running jobs, and sweeps expired leases of other workers.
//  - watchdog: enforces timeouts, cancellations and lost leases by flagging
//    the job (is_cancelled) and killing the job's process group (TERM, then
//    KILL after kill_grace).
// Shared state is guarded by Worker's mutex unless noted on the member.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "host/common/status.h"
#include "host/metrics/job_metrics.h"
#include "host/plugin/plugin_registry.h"
#include "host/queue/queue.h"
#include "host/sandbox/sandbox.h"
#include "host/worker/job_source.h"

namespace quern::worker {

struct WorkerOptions {
  std::string database_url;
  std::string worker_id;  // empty = <hostname>-<pid>-<random>
  std::string group = "default";
  std::string version;  // reported in the worker registry
  std::vector<std::string> tags;
  int slots = 4;
  std::chrono::milliseconds poll_interval{1000};
  std::chrono::milliseconds heartbeat_interval{10000};
  std::chrono::milliseconds lease_timeout{30000};
  std::chrono::milliseconds kill_grace{2000};
  // On stop(): how long running jobs may go on before they are interrupted
  // and handed back to the queue.
  std::chrono::milliseconds shutdown_grace{30000};
  int default_timeout_s = 3600;
  int max_restarts = 3;
  bool recover_expired_leases = true;  // take part in the cluster-wide sweep
  std::filesystem::path jobs_dir;      // job working directories; empty = $TMPDIR/quern-jobs/<worker id>
  std::map<std::string, std::string> plugin_configs;  // plugin name → config JSON
  // Dedicated worker: script paths kept warm (plugins with QUERN_CAP_DEDICATED
  // are prepared per slot for the script version each job carries). The
  // worker also serves dedicated_tag(path) for each.
  std::vector<std::string> dedicated_scripts;
  // Names of host environment variables passed on to jobs (a group's
  // pass-env); their values are read once, at start(). Unset ones are skipped.
  std::vector<std::string> pass_env;
  // Memory (MB) of each GPU this worker may assign (from the gpu plugin's
  // resources). Empty: the worker never claims a job that asks for GPUs.
  std::vector<int> gpu_devices_mb;
  std::string kind = "worker";  // worker | agent (the registry's kind)
  // Plugins (by name) whose instances run in the worker's own process: the
  // fastest, but a crash in them takes the worker down. Every other plugin
  // runs in a slot process per slot (host/slot/slot_process.h).
  std::vector<std::string> in_process_plugins;
  // The quern-slot program; empty = next to this process's executable.
  std::filesystem::path slot_program;
  // How job processes are confined (host/sandbox/sandbox.h). A worker asked
  // for a sandbox it cannot build refuses to start, saying why.
  sandbox::Policy sandbox;
  // Where jobs come from; empty = PostgreSQL at database_url. The agent
  // passes a factory of HTTP sources. Called twice (claimer, writer).
  std::function<StatusOr<std::unique_ptr<JobSource>>()> source_factory;
  // Where this worker's metrics go (host/metrics/job_metrics.h); null: none.
  // Must outlive the worker.
  metrics::WorkerMetrics* metrics = nullptr;
  // Called on the writer thread after each heartbeat round that reached the
  // queue (the database, or the server for an agent): a service manager's
  // watchdog ping, so that a worker that no longer heartbeats stops pinging.
  std::function<void()> on_heartbeat;
  // Test and benchmark hook: called on the slot thread right before execute().
  std::function<void(const queue::ClaimedJob&)> on_job_start;
  // Test and benchmark hook: called (under the worker's lock, keep it short)
  // when the host raises a job's stop flag: what is_cancelled() returns from
  // then on (QUERN_CANCEL_REQUESTED, QUERN_TIMEOUT_REACHED, QUERN_SHUTDOWN).
  std::function<void(int64_t job_id, int32_t reason)> on_stop_requested;
};

struct WorkerStats {
  int64_t claimed = 0;
  int64_t completed = 0;            // completions accepted by the queue
  int64_t completions_refused = 0;  // stale (lease lost) completions
  int64_t claim_queries = 0;
  int64_t running = 0;
};

class Worker {
 public:
  Worker(WorkerOptions options, const plugin::PluginRegistry& plugins);
  ~Worker();  // stop() + wait()
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Connects, LISTENs and starts the threads: the claimer, the writer
  // (logs, completions, heartbeats, lease recovery), the watchdog (timeouts,
  // stop signals) and one per slot. The claimer's connection also LISTENs
  // for cancellations, so a job stops the moment its cancellation is
  // requested (a NOTIFY; heartbeats are the fallback), busy or not, and
  // through a stop's grace period. Two database connections in all. Errors: unreachable database
  // (unavailable), no tags; a database without the schema version this worker
  // needs is not_found when its schema is older or missing (wait for a server
  // or `quern migrate`, then start again) and conflict when it is newer. No
  // plugin for a served language is NOT an error (jobs of an unknown language
  // fail with a clear message).
  Status start();
  // Graceful stop: stop claiming; let running jobs finish for up to
  // shutdown_grace, then interrupt them and hand them back. Non-blocking;
  // async-signal-unsafe (call from a normal thread).
  void stop();
  // Blocks until every thread has ended and every completion was written.
  void wait();

  const std::string& id() const { return options_.worker_id; }
  WorkerStats stats() const;
  // Readiness for probes (/readyz): started, not stopping, and its last
  // heartbeat round (every heartbeat_interval) reached the queue — the
  // database, or the server for an agent. Plugins are loaded before start().
  // Thread-safe.
  Status ready() const;

  // Reconfiguration while running (config reload, docs/ROUTING.md). Both
  // are thread-safe against the worker's own threads; call them after
  // start() and not concurrently with wait().
  //
  // set_tags: the tags served from now on (the dedicated scripts' tags stay
  // served). The claimer uses them from its next round and moves its LISTENs
  // to them; the writer updates the registry row (quern.workers) at once.
  // Jobs already claimed run to the end. Error: no tags, or stopping.
  Status set_tags(std::vector<std::string> tags);
  // set_slots: claim at most this many jobs at once. Fewer: running jobs
  // finish, no new ones are claimed until below the new count. More: new
  // slot threads start. Error: out of 1..1024, or stopping.
  Status set_slots(int slots);
  // The tags served now (dedicated ones included).
  std::vector<std::string> tags() const;

  struct State;  // internal (worker.cpp)

 private:
  WorkerOptions options_;
  bool owns_jobs_dir_ = false;  // created from the worker id: removed by wait()
  const plugin::PluginRegistry& plugins_;
  std::unique_ptr<State> state_;
};

// The tag of the jobs of a script that a dedicated worker keeps warm.
std::string dedicated_tag(const std::string& script_path);

// The minimal environment a job's process gets: never the worker's own.
std::map<std::string, std::string> minimal_job_environment(const std::filesystem::path& workdir,
                                                           int64_t job_id, int32_t attempt);

// Where a worker of this id keeps its jobs' directories unless told otherwise.
std::filesystem::path default_jobs_dir(const std::string& worker_id);

// Ends what a worker that died without its own clean-up (SIGKILL, a crash)
// left on this machine: the processes in its job cgroups (setsid'd ones
// too), those cgroups and its own, and its default jobs directory. A worker
// that starts does this for its own id; this is for a worker whose id will
// not come back (the default ids, a local autoscaled worker's), called by
// whoever saw it end — its parent. Does nothing when the worker still holds
// its jobs directory's lock (it is alive) or left no jobs directory (it
// stopped cleanly). Returns how many job cgroups it ended.
int clean_up_after(const std::string& worker_id);

}  // namespace quern::worker
