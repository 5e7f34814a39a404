// host/retention against a real PostgreSQL: what prune() deletes and what it
// keeps (queued and running jobs whatever their age, recent completed jobs,
// job rows under a logs-only retention), dry runs, batches, two pruners at
// once, the advisory lock, and the server's periodic duty.
#include <latch>
#include <thread>

#include <pqxx/pqxx>

#include "host/pg/session.h"
#include "host/queue/migrations.h"
#include "host/retention/retention.h"
#include "tests/retention/retention_test_util.h"

namespace quern::retention::test {
namespace {

using namespace std::chrono_literals;

constexpr std::chrono::hours kDay{24};

RetentionPolicy policy(std::optional<std::chrono::milliseconds> jobs,
                       std::optional<std::chrono::milliseconds> logs) {
  RetentionPolicy p;
  p.completed_jobs = jobs;
  p.logs = logs;
  return p;
}

using RetentionTest = RetentionFixture;

TEST_F(RetentionTest, DeletesOldCompletedJobsWithTheirLogsAndAttemptsOnly) {
  std::vector<int64_t> old_jobs;
  for (int i = 0; i < 5; ++i) old_jobs.push_back(completed(40 * kDay, {.logs = 3, .attempts = i % 2}));
  const int64_t recent = completed(2 * kDay, {.logs = 2, .attempts = 1});
  // Queued and running jobs are never touched, however old they and their history are.
  const int64_t waiting = queued({.logs = 2, .attempts = 1, .logs_age = 90 * kDay});
  sql("UPDATE quern.queue SET created_at = now() - interval '90 days' WHERE id = " + std::to_string(waiting));
  const int64_t busy = running({.logs = 4, .logs_age = 90 * kDay});

  PruneOptions options;
  options.batch_size = 2;  // three batches of jobs: the loop, not one statement, does the work
  auto report = must(prune(q_->session(), policy(30 * kDay, std::nullopt), options));
  EXPECT_EQ(report.jobs, 5);
  EXPECT_EQ(report.logs, 15);
  EXPECT_EQ(report.attempts, 2);
  EXPECT_FALSE(report.skipped);
  EXPECT_FALSE(report.more);
  EXPECT_FALSE(report.dry_run);
  ASSERT_TRUE(report.jobs_cutoff);
  EXPECT_FALSE(report.logs_cutoff);
  using Days = std::chrono::duration<double, std::ratio<86400>>;
  EXPECT_NEAR(Days(Clock::now() - *report.jobs_cutoff).count(), 30, 0.01);

  for (int64_t id : old_jobs)
    for (const char* table : {"completed_jobs", "job_logs", "job_attempts"})
      EXPECT_EQ(count_of(table, id), 0) << table << " of job " << id;
  EXPECT_EQ(count_of("completed_jobs", recent), 1);
  EXPECT_EQ(count_of("job_logs", recent), 2);
  EXPECT_EQ(count_of("job_attempts", recent), 1);
  EXPECT_EQ(count_of("queue", waiting), 1);
  EXPECT_EQ(count_of("job_logs", waiting), 2);
  EXPECT_EQ(count_of("job_attempts", waiting), 1);
  EXPECT_EQ(count_of("queue", busy), 1);
  EXPECT_EQ(count_of("job_logs", busy), 4);

  // Nothing is left past the cut-off: a second call deletes nothing.
  report = must(prune(q_->session(), policy(30 * kDay, std::nullopt)));
  EXPECT_EQ(report.total(), 0);
}

TEST_F(RetentionTest, LogsRetentionDeletesOldLogsAndKeepsTheJobs) {
  const int64_t old_done = completed(20 * kDay, {.logs = 3, .attempts = 1});
  const int64_t new_done = completed(1 * kDay, {.logs = 2});
  // Ran for three weeks, finished yesterday: its early logs are older than the cut-off, but the job is not.
  const int64_t long_job = completed(1 * kDay, {.logs = 2, .logs_age = 21 * kDay});
  const int64_t busy = running({.logs = 2, .logs_age = 20 * kDay});
  const int64_t waiting = queued({.logs = 1, .logs_age = 20 * kDay});
  // A chunk of no job at all (a late write for a job since pruned).
  sql("INSERT INTO quern.job_logs (job_id, start_offset, chunk, created_at) "
      "VALUES (999999, 0, 'late\n', now() - interval '20 days')");

  auto report = must(prune(q_->session(), policy(std::nullopt, 14 * kDay)));
  EXPECT_EQ(report.jobs, 0);
  EXPECT_EQ(report.logs, 4);
  EXPECT_EQ(report.attempts, 0);
  EXPECT_FALSE(report.jobs_cutoff);
  ASSERT_TRUE(report.logs_cutoff);

  EXPECT_EQ(count_of("job_logs", old_done), 0);
  EXPECT_EQ(count_of("completed_jobs", old_done), 1);  // the job row stays, with its attempts
  EXPECT_EQ(count_of("job_attempts", old_done), 1);
  EXPECT_EQ(count_of("job_logs", 999999), 0);
  EXPECT_EQ(count_of("job_logs", new_done), 2);
  EXPECT_EQ(count_of("job_logs", long_job), 2);
  EXPECT_EQ(count_of("job_logs", busy), 2);
  EXPECT_EQ(count_of("job_logs", waiting), 1);
  // Reading the job still works; its log is empty.
  auto rec = must(q_->get_job(old_done));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->state, "success");
  EXPECT_EQ(must(q_->read_logs(old_done)), "");
}

TEST_F(RetentionTest, DryRunDeletesNothingAndCountsWhatTheRealRunDeletes) {
  for (int i = 0; i < 4; ++i) completed(40 * kDay, {.logs = 2, .attempts = 1});
  for (int i = 0; i < 3; ++i) completed(20 * kDay, {.logs = 3});
  completed(1 * kDay, {.logs = 5});
  running({.logs = 2, .logs_age = 40 * kDay});
  const auto totals = [&] {
    return std::vector<int64_t>{count("completed_jobs"), count("job_logs"), count("job_attempts"),
                                count("queue")};
  };
  const auto before = totals();
  const RetentionPolicy p = policy(30 * kDay, 14 * kDay);

  PruneOptions dry;
  dry.dry_run = true;
  auto would = must(prune(q_->session(), p, dry));
  EXPECT_TRUE(would.dry_run);
  EXPECT_EQ(totals(), before);
  EXPECT_EQ(would.jobs, 4);
  EXPECT_EQ(would.logs, 4 * 2 + 3 * 3);
  EXPECT_EQ(would.attempts, 4);

  PruneOptions real;
  real.batch_size = 3;
  auto did = must(prune(q_->session(), p, real));
  EXPECT_EQ(did.jobs, would.jobs);
  EXPECT_EQ(did.logs, would.logs);
  EXPECT_EQ(did.attempts, would.attempts);
  EXPECT_EQ(totals(),
            (std::vector<int64_t>{before[0] - 4, before[1] - would.logs, before[2] - 4, before[3]}));
}

TEST_F(RetentionTest, MaxBatchesStopsWithMoreAndTheNextCallGoesOn) {
  for (int i = 0; i < 5; ++i) completed(40 * kDay, {.logs = 1});
  PruneOptions options;
  options.batch_size = 2;
  options.max_batches = 2;
  auto first = must(prune(q_->session(), policy(30 * kDay, std::nullopt), options));
  EXPECT_EQ(first.jobs, 4);
  EXPECT_TRUE(first.more);
  auto second = must(prune(q_->session(), policy(30 * kDay, std::nullopt), options));
  EXPECT_EQ(second.jobs, 1);
  EXPECT_FALSE(second.more);
  EXPECT_EQ(count("completed_jobs"), 0);
}

TEST_F(RetentionTest, TwoPrunersAtOnceDeleteEachRowOnceAndNeitherFails) {
  constexpr int kJobs = 60;
  for (int i = 0; i < kJobs; ++i) completed(40 * kDay, {.logs = 2, .attempts = 1});
  for (int i = 0; i < 10; ++i) completed(20 * kDay, {.logs = 2});
  PruneOptions options;
  options.batch_size = 5;
  std::latch start(2);
  StatusOr<PruneReport> reports[2] = {Status::error("not run"), Status::error("not run")};
  std::vector<std::thread> threads;
  for (auto& r : reports) {
    threads.emplace_back([&] {
      pg::Session session(url_);  // a connection each, like two servers
      start.arrive_and_wait();
      r = prune(session, policy(30 * kDay, 14 * kDay), options);
    });
  }
  for (auto& t : threads) t.join();
  int64_t jobs = 0, logs = 0, attempts = 0;
  for (auto& r : reports) {
    ASSERT_TRUE(r) << r.message();
    jobs += r->jobs;
    logs += r->logs;
    attempts += r->attempts;
  }
  EXPECT_EQ(jobs, kJobs);
  EXPECT_EQ(logs, kJobs * 2 + 10 * 2);
  EXPECT_EQ(attempts, kJobs);
  EXPECT_EQ(count("completed_jobs"), 10);
  EXPECT_EQ(count("job_logs"), 0);
}

TEST_F(RetentionTest, SkipsWhileAnotherProcessHoldsTheLock) {
  const int64_t id = completed(40 * kDay);
  pqxx::connection other(url_);
  pqxx::work holder(other);
  holder.exec("SELECT pg_advisory_xact_lock(" + std::to_string(queue::kRetentionLockKey) + ")");

  auto report = must(prune(q_->session(), policy(30 * kDay, 14 * kDay)));
  EXPECT_TRUE(report.skipped);
  EXPECT_EQ(report.total(), 0);
  EXPECT_EQ(count_of("completed_jobs", id), 1);

  holder.commit();
  report = must(prune(q_->session(), policy(30 * kDay, 14 * kDay)));
  EXPECT_FALSE(report.skipped);
  EXPECT_EQ(report.jobs, 1);
}

TEST_F(RetentionTest, PolicyOffAndBadOptions) {
  completed(400 * kDay);
  auto report = must(prune(q_->session(), RetentionPolicy{}));
  EXPECT_EQ(report.total(), 0);
  EXPECT_FALSE(report.jobs_cutoff);
  EXPECT_EQ(count("completed_jobs"), 1);

  PruneOptions bad;
  bad.batch_size = 0;
  auto r = prune(q_->session(), policy(1 * kDay, std::nullopt), bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), StatusCode::invalid_argument);
  r = prune(q_->session(), policy(0ms, std::nullopt));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), StatusCode::invalid_argument);
  EXPECT_EQ(count("completed_jobs"), 1);
}

TEST_F(RetentionTest, UnreachableDatabaseIsAStatus) {
  auto r = prune("postgresql://127.0.0.1:1/nothing?connect_timeout=2", policy(1 * kDay, std::nullopt));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), StatusCode::unavailable) << r.message();
}

TEST_F(RetentionTest, PeriodicPrunerRunsAtOnceThenWaitsForItsInterval) {
  completed(40 * kDay);
  std::vector<PruneReport> seen;
  PeriodicPruner pruner(policy(30 * kDay, std::nullopt), 1h,
                        [&](const PruneReport& r) { seen.push_back(r); });
  pruner.run_if_due(q_->session());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].jobs, 1);
  completed(40 * kDay);
  pruner.run_if_due(q_->session());  // not due for an hour
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_EQ(count("completed_jobs"), 1);
}

}  // namespace
}  // namespace quern::retention::test
