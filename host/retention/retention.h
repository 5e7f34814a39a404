// Data retention: deleting finished jobs and logs older than the operator's
// <retention completed-jobs="30d" logs="14d"/> (docs/OPERATIONS.md,
// "Retention"; docs/CONFIG.md). `quern server` (and so `quern up`) prunes
// every minute from its duties thread; `quern prune` prunes once.
//
// Contract of prune():
// - It never touches quern.queue: a waiting or running job, its logs and its
//   earlier attempts are kept whatever their age (every statement checks the
//   job is not in the queue).
// - Jobs: a completed_jobs row whose completed_at is before now() minus
//   policy.completed_jobs is deleted together with its job_logs and
//   job_attempts rows, in the same statement (nothing is left pointing at a
//   job that is gone). A schedule's last_job_id may then name a pruned job:
//   it is a plain number, and reading that job answers "not found".
// - Logs: a job_logs chunk older than now() minus policy.logs is deleted when
//   its job is not in the queue and did not finish after that cut-off: the
//   logs of old completed jobs go, their completed_jobs rows stay. (Chunks of
//   no job at all, written late by a worker that lost its lease to a job
//   since pruned, go too.)
// - "now" is the database's clock, read once per call: every server prunes
//   against the same clock, and the cut-offs are the same for every batch.
// - Deletes go in batches of at most options.batch_size jobs (or log chunks),
//   one short transaction each, so no lock is held for long; each batch takes
//   its rows FOR UPDATE SKIP LOCKED, with a 5 s lock timeout.
// - Each batch's transaction first takes pg_try_advisory_xact_lock(
//   kRetentionLockKey). When another process holds it at the first batch,
//   nothing is done and the report says skipped; when another process takes
//   it between two of our batches, this call stops and leaves the rest to it.
//   Two pruners at once therefore never delete a row twice, never count one
//   twice (counts are the rows each DELETE returned) and never fail for it.
// - Dry run: one read-only statement counts what a real call would delete
//   now, with the same predicates and cut-offs, and deletes nothing. It
//   takes no lock, so a pruner running at the same time may make the numbers
//   stale.
// - Failures (database unreachable, a statement refused) are returned as a
//   Status, classified by pg::Session; no exception escapes. Batches already
//   committed stay deleted: a later call goes on where this one stopped.
//
// Thread-safety: prune() uses the session it is given (pg::Session is used by
// one thread at a time); distinct sessions may prune concurrently.
// PeriodicPruner is used by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "host/common/status.h"

namespace quern::pg {
class Session;
}

namespace quern::retention {

using Clock = std::chrono::system_clock;

// How long finished jobs and their logs are kept; nullopt = kept forever.
// The default keeps everything: the config's defaults (30 days, 14 days) are
// applied where the config is read (docs/CONFIG.md), not by the library.
struct RetentionPolicy {
  std::optional<std::chrono::milliseconds> completed_jobs;
  std::optional<std::chrono::milliseconds> logs;

  bool enabled() const { return completed_jobs.has_value() || logs.has_value(); }
  bool operator==(const RetentionPolicy&) const = default;
};

struct PruneOptions {
  bool dry_run = false;
  int batch_size = 1000;  // jobs, or log chunks, per statement (1..100000)
  // Batches in all before the call returns with `more` set (0 = no limit):
  // the server bounds each round so that its other duties keep running.
  int max_batches = 0;
};

// Rows deleted by one call (in a dry run: that it would delete).
struct PruneReport {
  int64_t jobs = 0;      // quern.completed_jobs
  int64_t logs = 0;      // quern.job_logs chunks, those of pruned jobs included
  int64_t attempts = 0;  // quern.job_attempts (only with their jobs)
  bool dry_run = false;
  bool skipped = false;  // another process was pruning: nothing done
  bool more = false;     // stopped at max_batches: rows past the cut-offs remain
  // Rows older than these were (or would be) pruned; nullopt = that policy is off.
  std::optional<Clock::time_point> jobs_cutoff;
  std::optional<Clock::time_point> logs_cutoff;

  int64_t total() const { return jobs + logs + attempts; }
};

// Prunes per the contract above over `session`.
StatusOr<PruneReport> prune(pg::Session& session, const RetentionPolicy& policy,
                            const PruneOptions& options = {});
// The same over a connection of its own to `database_url` (closed on return).
StatusOr<PruneReport> prune(const std::string& database_url, const RetentionPolicy& policy,
                            const PruneOptions& options = {});

// "12 jobs, 340 log chunks, 2 attempts" (for log lines and the CLI).
std::string counts_text(const PruneReport& report);

// The server's duty: prunes at most every `interval`, each round bounded by
// kBatchesPerRound batches (a backlog is worked off over the next rounds,
// between the other duties). Errors are logged (component "retention") and
// retried at the next interval; on_pruned is called after each round that ran
// (not skipped), whatever it deleted.
class PeriodicPruner {
 public:
  static constexpr int kBatchesPerRound = 100;

  PeriodicPruner(RetentionPolicy policy, std::chrono::milliseconds interval,
                 std::function<void(const PruneReport&)> on_pruned);
  // Prunes if a round is due (always at the first call), else returns at once.
  void run_if_due(pg::Session& session);

 private:
  RetentionPolicy policy_;
  std::chrono::milliseconds interval_;
  std::function<void(const PruneReport&)> on_pruned_;
  std::optional<std::chrono::steady_clock::time_point> next_;
};

}  // namespace quern::retention
