// Pruning of old completed jobs and logs. The contract is in retention.h;
// why the statements look the way they do is said next to each.
#include "host/retention/retention.h"

#include <utility>

#include <pqxx/pqxx>

#include "host/log/log.h"
#include "host/pg/session.h"
#include "host/queue/migrations.h"

namespace quern::retention {
namespace {

// The predicates, shared by the deleting batches and the dry run's count so
// that a dry run counts exactly what the batches would delete. `cut` is the
// cut-off's parameter ($N, epoch microseconds).
//
// A completed job past the jobs cut-off. The queue check is a guard: a job
// is in exactly one of queue and completed_jobs, and must stay so.
// clang-format off
#define QUERN_OLD_JOB(c, cut)                                                \
  c ".completed_at < " QUERN_PG_TS(cut)                                      \
  " AND NOT EXISTS (SELECT 1 FROM quern.queue q WHERE q.id = " c ".id)"
// A log chunk past the logs cut-off whose job is not waiting or running and
// did not finish after the cut-off (a long job may have written it early).
#define QUERN_OLD_LOG(l, cut)                                                \
  l ".created_at < " QUERN_PG_TS(cut)                                        \
  " AND NOT EXISTS (SELECT 1 FROM quern.queue q WHERE q.id = " l ".job_id)"  \
  " AND NOT EXISTS (SELECT 1 FROM quern.completed_jobs c"                    \
  " WHERE c.id = " l ".job_id AND c.completed_at >= " QUERN_PG_TS(cut) ")"
// clang-format on

// Run first in each batch's transaction. The lock is transaction-level, so a
// pruner that dies or stalls can hold it for one batch at most: PostgreSQL
// ends a transaction left idle for 5 s. lock_timeout: a row lock we would
// wait for (SKIP LOCKED covers the rows we select, not every index page) must
// not hold a batch, and the locks it already has, for long.
const std::string kLockBatch =
    "SELECT set_config('lock_timeout', '5s', true), "
    "set_config('idle_in_transaction_session_timeout', '5s', true), "
    "pg_try_advisory_xact_lock(" +
    std::to_string(queue::kRetentionLockKey) + ") AS locked";

constexpr const char* kNowUs = "SELECT " QUERN_PG_US("now()");

// $1 cut-off, $2 batch size. The oldest jobs first, with their logs and
// attempts in the same statement (one snapshot, one transaction): nothing is
// left that names a job that is gone. `jobs` drives the loop.
constexpr const char* kPruneJobs = R"SQL(
WITH doomed AS (
  SELECT c.id FROM quern.completed_jobs c
   WHERE )SQL" QUERN_OLD_JOB("c", "$1") R"SQL(
   ORDER BY c.completed_at
   LIMIT $2
   FOR UPDATE OF c SKIP LOCKED
), logs AS (
  DELETE FROM quern.job_logs l USING doomed d WHERE l.job_id = d.id RETURNING 1
), attempts AS (
  DELETE FROM quern.job_attempts a USING doomed d WHERE a.job_id = d.id RETURNING 1
), jobs AS (
  DELETE FROM quern.completed_jobs c USING doomed d WHERE c.id = d.id RETURNING 1
)
SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM logs) AS logs,
       (SELECT count(*) FROM attempts) AS attempts
)SQL";

// $1 cut-off, $2 batch size. Read through job_logs_created_at_idx (migration 7).
constexpr const char* kPruneLogs = R"SQL(
WITH doomed AS (
  SELECT l.job_id, l.start_offset FROM quern.job_logs l
   WHERE )SQL" QUERN_OLD_LOG("l", "$1") R"SQL(
   LIMIT $2
   FOR UPDATE OF l SKIP LOCKED
), logs AS (
  DELETE FROM quern.job_logs l USING doomed d
   WHERE l.job_id = d.job_id AND l.start_offset = d.start_offset RETURNING 1
)
SELECT 0::bigint AS jobs, (SELECT count(*) FROM logs) AS logs, 0::bigint AS attempts
)SQL";

// $1 jobs on, $2 jobs cut-off, $3 logs on, $4 logs cut-off. What the jobs
// pass and then the logs pass would delete: the logs pass never sees the
// logs of jobs the jobs pass took, so those are counted once.
constexpr const char* kCount = R"SQL(
WITH jobs AS (
  SELECT c.id FROM quern.completed_jobs c WHERE $1::boolean AND )SQL" QUERN_OLD_JOB("c", "$2") R"SQL(
)
SELECT (SELECT count(*) FROM jobs) AS jobs,
       (SELECT count(*) FROM quern.job_logs l JOIN jobs j ON l.job_id = j.id)
       + (SELECT count(*) FROM quern.job_logs l
           WHERE $3::boolean AND )SQL" QUERN_OLD_LOG("l", "$4") R"SQL(
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = l.job_id)) AS logs,
       (SELECT count(*) FROM quern.job_attempts a JOIN jobs j ON a.job_id = j.id) AS attempts
)SQL";

#undef QUERN_OLD_JOB
#undef QUERN_OLD_LOG

constexpr int kMaxBatchSize = 100000;

void add_counts(PruneReport& report, const pqxx::row& row) {
  report.jobs += row["jobs"].as<int64_t>();
  report.logs += row["logs"].as<int64_t>();
  report.attempts += row["attempts"].as<int64_t>();
}

// One batch in a transaction of its own, under the retention lock; nullopt
// when another process holds the lock.
std::optional<pqxx::row> run_batch(pqxx::connection& c, const char* sql, int64_t cutoff_us, int limit) {
  pqxx::work tx(c);
  if (!tx.exec1(kLockBatch)["locked"].as<bool>()) return std::nullopt;
  pqxx::row row = tx.exec_params1(sql, cutoff_us, limit);
  tx.commit();
  return row;
}

// The deleting passes (jobs, then logs), until a batch comes back short, the
// lock is taken by another process, or max_batches is reached.
void delete_in_batches(pqxx::connection& c, const PruneOptions& options, int64_t jobs_cut_us,
                       int64_t logs_cut_us, PruneReport& report) {
  int batches = 0;
  // Returns whether the pass ran to its end.
  const auto pass = [&](const char* sql, int64_t cutoff_us, const char* driving_column) {
    while (true) {
      if (options.max_batches > 0 && batches >= options.max_batches) {
        report.more = true;
        return false;
      }
      std::optional<pqxx::row> row = run_batch(c, sql, cutoff_us, options.batch_size);
      if (!row) {
        report.skipped = batches == 0;  // later: another pruner took over between our batches
        return false;
      }
      ++batches;
      add_counts(report, *row);
      if ((*row)[driving_column].as<int64_t>() < options.batch_size) return true;
    }
  };
  if (report.jobs_cutoff && !pass(kPruneJobs, jobs_cut_us, "jobs")) return;
  if (report.logs_cutoff) pass(kPruneLogs, logs_cut_us, "logs");
}

int64_t cutoff_us(int64_t now_us, std::chrono::milliseconds keep) {
  return now_us - std::chrono::duration_cast<std::chrono::microseconds>(keep).count();
}

}  // namespace

StatusOr<PruneReport> prune(pg::Session& session, const RetentionPolicy& policy,
                            const PruneOptions& options) {
  if (options.batch_size < 1 || options.batch_size > kMaxBatchSize)
    return Status::invalid("batch size must be 1.." + std::to_string(kMaxBatchSize));
  if (options.max_batches < 0) return Status::invalid("max_batches must be 0 (no limit) or more");
  for (const auto& keep : {policy.completed_jobs, policy.logs}) {
    if (keep && keep->count() <= 0) return Status::invalid("a retention period must be greater than zero");
  }
  PruneReport report;
  report.dry_run = options.dry_run;
  if (!policy.enabled()) return report;
  return session.run("pruning old jobs", [&](pqxx::connection& c) {
    int64_t now_us = 0;
    {
      pqxx::nontransaction tx(c);
      now_us = tx.exec1(kNowUs)[0].as<int64_t>();
    }
    const int64_t jobs_cut = policy.completed_jobs ? cutoff_us(now_us, *policy.completed_jobs) : 0;
    const int64_t logs_cut = policy.logs ? cutoff_us(now_us, *policy.logs) : 0;
    if (policy.completed_jobs) report.jobs_cutoff = pg::from_epoch_us(jobs_cut);
    if (policy.logs) report.logs_cutoff = pg::from_epoch_us(logs_cut);
    if (options.dry_run) {
      pqxx::read_transaction tx(c);
      add_counts(report, tx.exec_params1(kCount, policy.completed_jobs.has_value(), jobs_cut,
                                         policy.logs.has_value(), logs_cut));
      return report;
    }
    delete_in_batches(c, options, jobs_cut, logs_cut, report);
    return report;
  });
}

StatusOr<PruneReport> prune(const std::string& database_url, const RetentionPolicy& policy,
                            const PruneOptions& options) {
  pg::SessionOptions so;
  so.application_name = "quern prune";
  pg::Session session(database_url, so);
  if (Status s = session.open("connecting to the database"); !s) return s;
  return prune(session, policy, options);
}

std::string counts_text(const PruneReport& report) {
  return std::to_string(report.jobs) + " jobs, " + std::to_string(report.logs) + " log chunks, " +
         std::to_string(report.attempts) + " attempts";
}

PeriodicPruner::PeriodicPruner(RetentionPolicy policy, std::chrono::milliseconds interval,
                               std::function<void(const PruneReport&)> on_pruned)
    : policy_(std::move(policy)), interval_(interval), on_pruned_(std::move(on_pruned)) {}

void PeriodicPruner::run_if_due(pg::Session& session) {
  if (!policy_.enabled()) return;
  const auto now = std::chrono::steady_clock::now();
  if (next_ && now < *next_) return;
  next_ = now + interval_;
  PruneOptions options;
  options.max_batches = kBatchesPerRound;
  StatusOr<PruneReport> report = prune(session, policy_, options);
  if (!report) {
    log::warning("retention", "pruning old jobs failed: " + report.message());
    return;
  }
  if (report->more) next_ = now;  // a backlog: go on at the next duty round
  if (report->skipped) return;
  if (report->total() > 0) log::info("retention", "pruned " + counts_text(*report));
  if (on_pruned_) on_pruned_(*report);
}

}  // namespace quern::retention
