// The job queue in PostgreSQL (see docs/ARCHITECTURE.md §2-§6 and
// docs/QUEUE.md).
//
// Tables (schema "quern"): `queue` holds only waiting and running jobs (the
// small hot table); `completed_jobs` holds finished ones; `job_logs` holds log
// chunks. Guarantee: at-least-once execution, exactly one completion record.
//
// Thread-safety: a Queue runs over one database session (its own, or one
// shared with other stores) and is NOT thread-safe. Use one per thread. Every method returns expected
// failures (lost connection, bad SQL state) as a Status; a lost connection is re-established on the next
// call.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/common/status.h"
#include "host/queue/job_policy.h"
#include "host/queue/worker_telemetry.h"

namespace pqxx {
class transaction_base;
}
namespace quern::pg {
class Session;
}

namespace quern::queue {

using Clock = std::chrono::system_clock;

constexpr int kMinPriority = 1;
constexpr int kMaxPriority = 100;
constexpr int kDefaultPriority = 50;

// A job to enqueue.
struct NewJob {
  std::string tag;       // routing tag; workers serve a set of tags
  std::string language;  // selects the executor plugin
  nlohmann::ordered_json payload =
      nlohmann::ordered_json::object();            // {"code": "...", "args": {...}}; key order kept
  int priority = kDefaultPriority;                 // 1..100, higher runs first
  std::optional<Clock::time_point> scheduled_for;  // nullopt = now
  int timeout_s = 0;                               // 0 = the worker's default
  int max_restarts = -1;                           // -1 = the queue default (lost leases)
  std::string script_path;                         // informational, may be empty
  ConcurrencyLimit concurrency;                    // key already substituted; empty key = none
  RetryPolicy retry;                               // max_attempts 1 = no retries
  int gpus = 0;                                    // whole GPUs the job needs (0 = not a GPU job)
  int gpu_memory_mb = 0;                           // per device, 0 = any
  // Non-empty: the submitter waits for the result under this token; when
  // the job finishes, channel kJobDoneChannel gets a NOTIFY whose payload is
  // {"w": waiter, "id": ...} plus, from a completion that fits in a NOTIFY,
  // "status", "result" and "error" (see listen_channel()).
  std::string waiter;
};

// A notification received on a channel from Queue::listen_channel().
struct Notification {
  std::string channel;
  std::string payload;
};

// Channel of the NOTIFYs sent when a job with a waiter finishes.
inline constexpr const char* kJobDoneChannel = "quern_done";
// Channel of the NOTIFY sent when the cancellation of a running job is
// requested; the payload is the job's id. The worker holding the job listens
// and stops it at once; the heartbeat reply is the fallback.
inline constexpr const char* kCancelChannel = "quern_cancel";

// What a claimer can run besides its tags: GPU jobs are claimed only when
// they fit (free devices >= gpus, and that many devices with the memory).
// A claimer without GPUs never claims a GPU job.
struct ClaimCapacity {
  int free_gpus = 0;
  std::vector<int> device_memory_mb;  // every device of the claimer
};

// A job handed to a worker by claim(). The lease is (id, attempt, worker_id).
struct ClaimedJob {
  int64_t id = 0;
  int32_t attempt = 0;  // 1 for the first run, +1 for every re-queue after a lost lease
  std::string tag;
  std::string language;
  nlohmann::ordered_json payload;  // key order as submitted (args order matters to bash)
  int priority = kDefaultPriority;
  int timeout_s = 0;
  std::string script_path;
  Clock::time_point created_at;
  Clock::time_point started_at;
  Clock::time_point due_at;  // when it became due (scheduled_for): started_at - due_at is its queue wait
  int gpus = 0;              // devices the job asked for (the claimer's accounting)
};

// Final status of a job, as stored in completed_jobs.status.
enum class JobStatus { success, failure, timeout, canceled };
const char* to_string(JobStatus s);
std::optional<JobStatus> job_status_from_string(std::string_view s);

struct Completion {
  int64_t id = 0;
  int32_t attempt = 0;
  JobStatus status = JobStatus::success;
  nlohmann::json result;  // null when none
  std::string error;      // empty on success
  // What the job used, counted by its cgroup: {"peak_memory_bytes", "cpu_ms",
  // "oom_kills"}, each only when known; null when nothing was counted.
  nlohmann::json resources = nullptr;
};

struct Lease {
  int64_t id = 0;
  int32_t attempt = 0;
};

struct HeartbeatReply {
  std::vector<int64_t> canceled;  // still ours, but cancellation was requested
  std::vector<int64_t> lost;      // no longer ours (re-queued, completed, or gone): stop them
};

struct LogChunk {
  int64_t job_id = 0;
  int32_t attempt = 0;  // the lease's attempt (checked by complete(); append_logs ignores it)
  std::string text;     // whole lines, each ending in '\n'
};

// An attempt that ended in a retried outcome (or a lost lease).
struct AttemptRecord {
  int32_t attempt = 0;
  std::string status;  // failure | timeout | lost
  std::string error;
  std::string worker_id;
  std::optional<Clock::time_point> started_at;
  Clock::time_point ended_at;
  std::optional<Clock::time_point> retry_at;  // when the next attempt was due
};

// Where a job is, as seen by get_job().
struct JobRecord {
  int64_t id = 0;
  std::string state;  // "queued", "running", or a JobStatus name
  std::string tag;
  std::string language;
  std::string script_path;
  nlohmann::ordered_json payload;  // key order as submitted (args order matters to bash)
  int priority = kDefaultPriority;
  int32_t attempt = 0;
  std::string worker_id;  // empty while queued
  nlohmann::json result;  // null unless completed
  std::string error;
  Clock::time_point created_at;
  std::optional<Clock::time_point> started_at;
  std::optional<Clock::time_point> completed_at;
  bool cancel_requested = false;
  std::string concurrency_key;          // empty when none
  nlohmann::json resources;             // Completion::resources of the last attempt; null when none
  std::vector<AttemptRecord> attempts;  // earlier attempts (get_job only), oldest first
};

enum class CancelOutcome {
  not_found,         // no such job
  canceled,          // was queued: now completed with status canceled
  requested,         // is running: its worker stops it at once (NOTIFY; the heartbeat is the fallback)
  already_finished,  // completed before the request
};

struct RecoveryReport {
  int requeued = 0;  // lost leases put back in the queue
  int failed = 0;    // lost leases over max_restarts: completed as failure
  int canceled = 0;  // lost leases of jobs whose cancellation was requested: completed as canceled
};

// Filter for list_jobs(); empty fields match everything.
struct JobFilter {
  std::string state;  // queued, running, success, failure, timeout, canceled, or "" (any)
  std::string tag;
  std::string script_path;
  std::optional<Clock::time_point> created_after;
  std::optional<Clock::time_point> created_before;
  int64_t before_id = 0;  // pagination: only ids below this (0 = from the newest)
  int limit = 100;        // 1..1000
};

// Per-tag queue statistics (queue_stats()).
struct TagStats {
  std::string tag;
  int64_t waiting = 0;    // due and not running
  int64_t scheduled = 0;  // not yet due
  int64_t running = 0;
  double oldest_wait_s = 0;  // age of the oldest due waiting job
  bool served = false;       // some live worker or agent serves this tag
  // Due waiting jobs per priority, highest first: starvation shows as a
  // growing oldest_wait_s of a low priority.
  struct Priority {
    int priority = 0;
    int64_t waiting = 0;
    double oldest_wait_s = 0;
  };
  std::vector<Priority> by_priority;
};

// What /metrics reports of the queue (queue_metrics()): per tag, and live
// workers per group and kind.
struct QueueMetrics {
  struct Tag {
    std::string tag;
    int64_t waiting = 0;  // not running (due or not)
    int64_t due = 0;      // waiting and due
    int64_t blocked = 0;  // due, but its concurrency key is at its limit
    int64_t running = 0;
    double oldest_due_s = 0;  // age of the oldest due waiting job
  };
  struct Group {
    std::string group;
    std::string kind;  // worker | agent
    int64_t live = 0, slots = 0, busy = 0;
    double heartbeat_age_s = 0;  // of the least recently seen live one
  };
  std::vector<Tag> tags;
  std::vector<Group> groups;
};

// A concurrency key's state (limit_stats()).
struct LimitStats {
  std::string key;
  int max_running = 0;
  int rate_max = 0;
  std::chrono::milliseconds rate_window{0};
  int64_t running = 0;
  int64_t waiting = 0;  // due, not running
  int64_t started_in_window = 0;
};

// A worker or agent as registered in quern.workers.
struct WorkerInfo {
  std::string id;
  std::string kind = "worker";  // worker | agent
  std::string group;
  std::vector<std::string> tags;
  int slots = 0;
  std::string version;
  std::string hostname;
  std::string isolation;  // sandbox::describe() of its jobs' confinement; empty for agents that say nothing
  int pid = 0;
  int running = 0;
  std::vector<int64_t> current_jobs;  // ids of the jobs it runs now (list_workers only)
  // Its last heartbeat's telemetry (list_workers only); none before the first.
  std::optional<WorkerTelemetry> telemetry;
  // Since its last heartbeat, by the database's clock (list_workers only):
  // the clock that stamped it, whatever the reader's clock says.
  std::chrono::milliseconds heartbeat_age{0};
  Clock::time_point started_at;
  Clock::time_point last_seen_at;
};

// Input checks that push()/push_batch() and list_jobs() apply before any
// query; callers that must tell bad input from database trouble (the API:
// 400 vs 503) run them first.
Status validate(const NewJob& job);
Status validate(const JobFilter& filter);

struct QueueOptions {
  int default_max_restarts = 3;  // lost leases before a job is failed
  // Session synchronous_commit=off. Only for connections whose writes may be
  // lost in a database crash without harm: a worker's claims (a lost claim
  // means the job is claimed again — at-least-once holds). Never for pushes
  // or completions, which must be durable once acknowledged.
  bool relaxed_commit = false;
  // The connection's application_name (pg_stat_activity).
  std::string application_name = "quern";
};

class Queue {
 public:
  // Connects (libpq URL or key=value string) over a session of its own.
  // Does not migrate.
  static StatusOr<std::unique_ptr<Queue>> connect(const std::string& database_url, QueueOptions options = {});
  // A queue over a session shared with other stores (the server's pool);
  // connects at first use. options.relaxed_commit is the session's to set.
  static std::unique_ptr<Queue> over(std::shared_ptr<pg::Session> session, QueueOptions options = {});
  ~Queue();
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // Applies pending numbered migrations under an advisory lock; safe to call
  // from many processes at once. Returns the resulting schema version.
  StatusOr<int> migrate();
  // The database's schema version (0: no Quern schema), changing nothing.
  StatusOr<int> schema_version();

  // Enqueue. Validation errors (priority out of range, empty tag/language)
  // are returned before anything is written; a batch is all-or-nothing.
  // Each statement NOTIFYs once per distinct tag.
  StatusOr<int64_t> push(const NewJob& job);
  StatusOr<std::vector<int64_t>> push_batch(const std::vector<NewJob>& jobs);

  // Claims up to max_jobs due, waiting jobs whose tag is in tags, in one
  // statement: priority desc, scheduled_for, id; FOR UPDATE SKIP LOCKED.
  // Concurrency keys at their limit are skipped (docs/LIMITS.md); GPU jobs
  // only when they fit `capacity`.
  StatusOr<std::vector<ClaimedJob>> claim(const std::string& worker_id, const std::vector<std::string>& tags,
                                          int max_jobs, const ClaimCapacity& capacity = {});

  // Refreshes the heartbeat of every lease still held by worker_id, in one
  // statement, and says which were canceled or lost.
  StatusOr<HeartbeatReply> heartbeat(const std::string& worker_id, const std::vector<Lease>& leases);

  // Completes jobs whose lease is still held (same id, attempt, worker):
  // moves each from queue to completed_jobs in one transaction. Returns the
  // ids accepted; a stale completion is silently ignored (not an error).
  // An accepted completion whose job's retry policy re-queues it is among
  // the ids, and also appended to *retried when given.
  // `logs` are appended in the same statement, before the completions (a
  // job's last output with its outcome: one round trip, not two), and only
  // for leases worker_id holds (id and attempt); others are dropped. All or
  // nothing: on an error neither the logs nor the completions are stored.
  StatusOr<std::vector<int64_t>> complete(const std::string& worker_id,
                                          const std::vector<Completion>& completions,
                                          std::vector<int64_t>* retried = nullptr,
                                          const std::vector<LogChunk>& logs = {});

  // Appends log chunks (one statement for the batch).
  Status append_logs(const std::vector<LogChunk>& chunks);

  // Log text of a job after byte offset `from` (for streaming); empty when none.
  StatusOr<std::string> read_logs(int64_t job_id, int64_t from = 0);

  // Hands running jobs back to the queue without counting a restart (a worker
  // shutting down). Only leases still held by worker_id are released.
  Status release(const std::string& worker_id, const std::vector<Lease>& leases);

  StatusOr<CancelOutcome> cancel(int64_t job_id, const std::string& reason = "canceled by user");

  // Puts back jobs whose heartbeat is older than lease_timeout (or fails them
  // after too many restarts). Runs under a transaction-level advisory lock so
  // only one process sweeps at a time; returns zeros when another holds it.
  StatusOr<RecoveryReport> recover_expired(std::chrono::milliseconds lease_timeout);

  StatusOr<std::optional<JobRecord>> get_job(int64_t job_id);

  // Waiting/running counts (for tests, stats and benchmarks).
  StatusOr<int64_t> count_waiting(const std::vector<std::string>& tags = {});
  StatusOr<int64_t> count_running();

  // Newest first. Validation errors (unknown state, limit out of range) are
  // returned before querying.
  StatusOr<std::vector<JobRecord>> list_jobs(const JobFilter& filter);
  // One row per tag with waiting, scheduled or running jobs, plus tags served
  // by live workers. A worker is live if seen within `live_within`.
  StatusOr<std::vector<TagStats>> queue_stats(std::chrono::milliseconds live_within);
  // Queue depth per tag and live workers per group, in two statements (one
  // scan of quern.queue, none of completed jobs): for /metrics.
  StatusOr<QueueMetrics> queue_metrics(std::chrono::milliseconds live_within);
  // Every concurrency key with its limits and current use, by key.
  StatusOr<std::vector<LimitStats>> limit_stats();

  // The worker registry (quern.workers): a worker registers at start,
  // refreshes last_seen_at, its running count and (when given) its
  // telemetry with each heartbeat round, and unregisters when it stops. Rows of workers not seen for long are
  // pruned by prune_workers().
  Status register_worker(const WorkerInfo& info);
  Status touch_worker(const std::string& worker_id, int running, const WorkerTelemetry* telemetry = nullptr);
  Status unregister_worker(const std::string& worker_id);
  StatusOr<std::vector<WorkerInfo>> list_workers();
  StatusOr<int> prune_workers(std::chrono::milliseconds unseen_for);
  // Whether a worker seen within live_within serves this tag.
  StatusOr<bool> tag_is_served(const std::string& tag, std::chrono::milliseconds live_within);

  // LISTEN on the channels of these tags (one channel per tag).
  Status listen(const std::vector<std::string>& tags);
  // LISTEN on one channel by name, collecting its notifications for
  // wait_for_notifications() (kJobDoneChannel, or a tag's channel).
  Status listen_channel(const std::string& channel);
  // Waits up to timeout for notifications; returns those received on
  // channels from listen_channel() (empty on timeout). Channels from
  // listen() only wake it.
  StatusOr<std::vector<Notification>> wait_for_notifications(std::chrono::milliseconds timeout);
  // The notifications of listen_channel() channels received so far, without
  // waiting and without touching what wait_for_jobs() will report. A caller
  // that mixes listen_channel() with wait_for_jobs() takes them after every
  // wait: wait_for_jobs() returns at once while any are left.
  StatusOr<std::vector<Notification>> take_notifications();
  // Stops listening on the channels of listen() (the served tags changed);
  // those of listen_channel() and listen_for_wakeups() stay, with what they
  // collected.
  void unlisten_tags();
  // Waits up to timeout for a notification on a listened channel. Returns
  // true if one (or more) arrived on a channel of listen() or
  // listen_for_wakeups(); drains everything pending. A notification on a
  // listen_channel() channel ends the wait too (returning false unless jobs
  // were announced as well): take it with take_notifications(). A due-time
  // announcement (a tag channel's "+<delay us>" payload) does not count: it
  // moves next_due() and, when earlier than the one known, ends the wait
  // (returning false) so that the caller can wait until then.
  StatusOr<bool> wait_for_jobs(std::chrono::milliseconds timeout);
  // Wake-ups by name (migration 11): LISTENs on this claimer's own channel
  // and names it in every claim, so that a push wakes one waiting claimer per
  // job instead of every worker of the tag. Kept across unlisten_tags().
  Status listen_for_wakeups(const std::string& worker_id);
  // This claimer claims no more: wake-ups of its tags go to other claimers.
  Status stop_waiting(const std::string& worker_id);
  // When a job of the claimed tags may next become claimable, as the last
  // short claim and the due-time announcements heard since tell (a delayed
  // job, a retry's backoff, a key's rate window); nullopt: none known.
  std::optional<std::chrono::steady_clock::time_point> next_due() const;
  // Ends the current, or else the next, wait_for_jobs() or
  // wait_for_notifications() early (stop, reconfiguration). Unlike every
  // other method, any thread may call it at any time.
  void interrupt();

  // Runs arbitrary SQL (tests, admin). Returns the first column of the first
  // row as text, or empty.
  StatusOr<std::string> exec_scalar(const std::string& sql);

  // The session the queue runs over, for work that shares its connection
  // (the server's duties thread prunes old jobs on it, host/retention).
  // Same thread-safety as the queue's.
  pg::Session& session();

 private:
  struct Impl;
  explicit Queue(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Name of the NOTIFY channel for a tag.
std::string channel_for_tag(const std::string& tag);
// The NOTIFY channel that wakes one claimer by name (listen_for_wakeups).
std::string channel_for_worker(const std::string& worker_id);
// A tag channel's payload "+<delay us>" (migration 11) announces a job that
// becomes due that long after the NOTIFY: the delay, or nullopt for any
// other payload (a job due now).
std::optional<std::chrono::microseconds> due_announcement(const std::string& payload);

// Enqueues `job` inside the caller's open transaction, with push()'s
// statement: the caller's commit makes the job visible (and NOTIFYs its tag),
// its rollback drops it. Validation errors are returned before anything is
// sent; database errors are thrown as pqxx exceptions, like any other
// statement the caller runs in `tx`. (The scheduler fires a schedule and
// advances it in one transaction this way.)
StatusOr<int64_t> push_in_transaction(pqxx::transaction_base& tx, const NewJob& job);

}  // namespace quern::queue
