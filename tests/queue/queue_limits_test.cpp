// Concurrency keys, rate limits, retries, priorities and GPU fit, enforced by
// the claim itself (docs/LIMITS.md, retries included), against the real test
// PostgreSQL with many claimers on their own connections.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/queue/queue_test_util.h"

namespace quern::queue::test {
namespace {

using namespace std::chrono_literals;

NewJob keyed_job(const std::string& key, int max_running, int rate_max = 0,
                 std::chrono::milliseconds window = 0ms) {
  NewJob j = make_job("api");
  j.concurrency.key = key;
  j.concurrency.max_running = max_running;
  j.concurrency.rate_max = rate_max;
  j.concurrency.rate_window = window;
  return j;
}

class QueueLimitsTest : public QueueFixture {};

// 10 claimers x 5 slots = 50 slots, all busy on one key limited to 3 (plus
// unkeyed jobs to keep the other slots busy). The count of the key's jobs
// held by claimers is tracked in-process (raised after a claim commits,
// lowered before the completion is sent), so it never undercounts.
TEST_F(QueueLimitsTest, KeyLimitedToThreeNeverRunsMoreAndAllComplete) {
  constexpr int kKeyed = 120, kFree = 300, kClaimers = 10, kSlots = 5;
  std::vector<NewJob> jobs;
  for (int i = 0; i < kKeyed; ++i) jobs.push_back(keyed_job("api:stripe", 3));
  for (int i = 0; i < kFree; ++i) jobs.push_back(make_job("api"));
  must(q_->push_batch(jobs), "push_batch");

  std::atomic<int> keyed_running{0}, max_seen{0}, keyed_done{0}, free_done{0}, sampled_max{0};
  std::atomic<bool> stop{false};
  std::thread sampler([&] {
    auto q = open_queue(url_);
    while (!stop) {
      auto n =
          q->exec_scalar("SELECT count(*) FROM quern.queue WHERE concurrency_key = 'api:stripe' AND running");
      if (n.is_ok()) sampled_max = std::max(sampled_max.load(), std::stoi(n.value()));
    }
  });
  std::vector<std::thread> claimers;
  for (int c = 0; c < kClaimers; ++c) {
    claimers.emplace_back([&, c] {
      auto q = open_queue(url_, QueueOptions{.relaxed_commit = true});
      const std::string me = "w" + std::to_string(c);
      const auto deadline = std::chrono::steady_clock::now() + 60s;
      while (keyed_done + free_done < kKeyed + kFree && std::chrono::steady_clock::now() < deadline) {
        auto got = must(q->claim(me, {"api"}, kSlots), "claim");
        int keyed = 0;
        for (const ClaimedJob& j : got) keyed += must(q->get_job(j.id))->concurrency_key.empty() ? 0 : 1;
        const int now = keyed_running += keyed;
        max_seen = std::max(max_seen.load(), now);
        std::this_thread::sleep_for(2ms);  // the jobs' "work"
        std::vector<Completion> done;
        for (const ClaimedJob& j : got) done.push_back({j.id, j.attempt, JobStatus::success, nullptr, ""});
        keyed_running -= keyed;
        must(q->complete(me, done), "complete");
        keyed_done += keyed;
        free_done += static_cast<int>(got.size()) - keyed;
      }
    });
  }
  for (auto& t : claimers) t.join();
  stop = true;
  sampler.join();
  EXPECT_EQ(keyed_done.load(), kKeyed);
  EXPECT_EQ(free_done.load(), kFree);
  EXPECT_LE(max_seen.load(), 3);
  EXPECT_LE(sampled_max.load(), 3);
  EXPECT_GE(max_seen.load(), 2) << "the limit should let several run at once";
  EXPECT_EQ(must(q_->count_waiting()), 0);
}

// A key's slots are released however its jobs end: cancel of a running job,
// and a lost lease swept by recovery.
TEST_F(QueueLimitsTest, LimitIsReleasedByCancelAndLostLease) {
  for (int i = 0; i < 3; ++i) must(q_->push(keyed_job("k", 1)));
  auto first = must(q_->claim("w1", {"api"}, 10));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(must(q_->claim("w2", {"api"}, 10)).empty()) << "key k is full";

  // Lost lease: the heartbeat is old; recovery requeues it, and the key has room again.
  must(q_->exec_scalar("UPDATE quern.queue SET heartbeat_at = now() - interval '1 hour' WHERE running"));
  EXPECT_EQ(must(q_->recover_expired(1s)).requeued, 1);
  auto second = must(q_->claim("w2", {"api"}, 10));
  ASSERT_EQ(second.size(), 1u);

  // Cancel of the running job, once the worker acknowledges it.
  EXPECT_EQ(must(q_->cancel(second[0].id)), CancelOutcome::requested);
  must(q_->complete("w2", {{second[0].id, second[0].attempt, JobStatus::canceled, nullptr, "canceled"}}));
  EXPECT_EQ(must(q_->claim("w3", {"api"}, 10)).size(), 1u);
}

// At most 4 starts in any 500 ms window, sampled over ~1.5 s of eager claiming.
TEST_F(QueueLimitsTest, RateLimitIsNeverExceeded) {
  constexpr int kMax = 4;
  const auto window = 500ms;
  std::vector<NewJob> jobs(16, keyed_job("rate", 0, kMax, window));
  must(q_->push_batch(jobs));
  std::mutex mu;
  std::vector<Clock::time_point> starts;
  std::vector<std::thread> claimers;
  for (int c = 0; c < 4; ++c) {
    claimers.emplace_back([&, c] {
      auto q = open_queue(url_);
      const std::string me = "w" + std::to_string(c);
      const auto deadline = std::chrono::steady_clock::now() + 1500ms;
      while (std::chrono::steady_clock::now() < deadline) {
        auto got = must(q->claim(me, {"api"}, 3));
        std::vector<Completion> done;
        for (const ClaimedJob& j : got) {
          std::lock_guard lock(mu);
          starts.push_back(j.started_at);
          done.push_back({j.id, j.attempt, JobStatus::success, nullptr, ""});
        }
        must(q->complete(me, done));
      }
    });
  }
  for (auto& t : claimers) t.join();
  std::sort(starts.begin(), starts.end());
  ASSERT_GE(starts.size(), static_cast<size_t>(2 * kMax)) << "the limit should let later windows start jobs";
  for (size_t i = kMax; i < starts.size(); ++i)
    EXPECT_GE(starts[i] - starts[i - kMax], window)
        << "start " << i << " makes " << kMax + 1 << " in one window";
  auto stats = must(q_->limit_stats());
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].key, "rate");
  EXPECT_EQ(stats[0].rate_max, kMax);
}

// 90% of the queue belongs to a key at its limit: claims still find the free jobs.
TEST_F(QueueLimitsTest, FullKeyDoesNotHideOtherJobs) {
  std::vector<NewJob> jobs(900, keyed_job("full", 1));
  for (auto& j : jobs) j.priority = 90;  // ahead of the free jobs in claim order
  must(q_->push_batch(jobs));
  must(q_->push_batch(std::vector<NewJob>(100, make_job("api"))));
  ASSERT_EQ(must(q_->claim("w0", {"api"}, 1)).size(), 1u);  // the key's one slot
  int claimed = 0;
  for (int i = 0; i < 20; ++i) {
    auto got = must(q_->claim("w1", {"api"}, 10));
    for (const ClaimedJob& j : got) EXPECT_EQ(j.priority, kDefaultPriority) << "only free jobs may come";
    claimed += static_cast<int>(got.size());
  }
  EXPECT_EQ(claimed, 100);
}

TEST_F(QueueLimitsTest, HighPriorityJobBehindThousandLowStartsNext) {
  must(q_->push_batch(std::vector<NewJob>(1000, make_job("api", 10))));
  const int64_t urgent = must(q_->push(make_job("api", 90)));
  auto got = must(q_->claim("w", {"api"}, 1));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, urgent);
  auto stats = must(q_->queue_stats(1s));
  ASSERT_EQ(stats.size(), 1u);
  ASSERT_EQ(stats[0].by_priority.size(), 1u) << "the urgent job runs; only priority 10 waits";
  EXPECT_EQ(stats[0].by_priority[0].priority, 10);
  EXPECT_EQ(stats[0].by_priority[0].waiting, 1000);
}

// Fails twice with growing delays, then succeeds; each failed attempt is kept.
TEST_F(QueueLimitsTest, RetriesWithGrowingBackoffAndKeepsAttempts) {
  NewJob j = make_job("api");
  j.retry.max_attempts = 3;
  j.retry.backoff = 300ms;
  j.retry.multiplier = 2;
  j.retry.jitter = 0;
  const int64_t id = must(q_->push(j));
  std::vector<std::chrono::milliseconds> delays;
  // Measured from before the completion that set the backoff (its clock
  // starts inside that statement), so a slow completion cannot shorten it.
  std::chrono::steady_clock::time_point completing;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    std::vector<ClaimedJob> got;
    ASSERT_TRUE(eventually([&] { return !(got = must(q_->claim("w", {"api"}, 1))).empty(); }, 5s));
    if (attempt > 1)
      delays.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - completing));
    const JobStatus outcome =
        attempt < 3 ? (attempt == 1 ? JobStatus::failure : JobStatus::timeout) : JobStatus::success;
    completing = std::chrono::steady_clock::now();
    auto accepted =
        must(q_->complete("w", {{got[0].id, got[0].attempt, outcome, nullptr,
                                 outcome == JobStatus::success ? "" : "boom " + std::to_string(attempt)}}));
    ASSERT_EQ(accepted.size(), 1u);
  }
  ASSERT_EQ(delays.size(), 2u);
  EXPECT_GE(delays[0], 300ms);
  EXPECT_GE(delays[1], 600ms);
  EXPECT_GT(delays[1], delays[0]);
  auto rec = must(q_->get_job(id));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->state, "success");
  ASSERT_EQ(rec->attempts.size(), 2u);
  EXPECT_EQ(rec->attempts[0].status, "failure");
  EXPECT_EQ(rec->attempts[0].error, "boom 1");
  EXPECT_EQ(rec->attempts[1].status, "timeout");
  EXPECT_TRUE(rec->attempts[1].retry_at.has_value());
}

TEST_F(QueueLimitsTest, RetryStopsAtMaxAttemptsAndSkipsUncoveredOutcomes) {
  NewJob j = make_job("api");
  j.retry.max_attempts = 2;
  j.retry.backoff = 0ms;
  j.retry.on_timeout = false;
  const int64_t id = must(q_->push(j));
  auto got = must(q_->claim("w", {"api"}, 1));
  must(q_->complete("w", {{got[0].id, got[0].attempt, JobStatus::timeout, nullptr, "slow"}}));
  auto rec = must(q_->get_job(id));
  EXPECT_EQ(rec->state, "timeout") << "timeouts are not in this policy";

  const int64_t id2 = must(q_->push(j));
  for (int i = 0; i < 2; ++i) {
    std::vector<ClaimedJob> c;
    ASSERT_TRUE(eventually([&] { return !(c = must(q_->claim("w", {"api"}, 1))).empty(); }, 5s));
    must(q_->complete("w", {{c[0].id, c[0].attempt, JobStatus::failure, nullptr, "bad"}}));
  }
  rec = must(q_->get_job(id2));
  EXPECT_EQ(rec->state, "failure");
  EXPECT_EQ(rec->attempts.size(), 1u);
}

TEST_F(QueueLimitsTest, LostWorkerRetriedByPolicyWhenItSaysLost) {
  NewJob j = make_job("api");
  j.retry.max_attempts = 2;
  j.retry.backoff = 0ms;
  j.retry.on_lost = true;
  const int64_t id = must(q_->push(j));
  must(q_->claim("w", {"api"}, 1));
  must(q_->exec_scalar("UPDATE quern.queue SET heartbeat_at = now() - interval '1 hour' WHERE running"));
  EXPECT_EQ(must(q_->recover_expired(1s)).requeued, 1);
  must(q_->claim("w", {"api"}, 1));
  must(q_->exec_scalar("UPDATE quern.queue SET heartbeat_at = now() - interval '1 hour' WHERE running"));
  EXPECT_EQ(must(q_->recover_expired(1s)).failed, 1) << "two attempts used";
  auto rec = must(q_->get_job(id));
  EXPECT_EQ(rec->state, "failure");
  ASSERT_EQ(rec->attempts.size(), 2u);
  EXPECT_EQ(rec->attempts[0].status, "lost");
}

TEST_F(QueueLimitsTest, GpuJobsOnlyGoToClaimersTheyFit) {
  NewJob g = make_job("gpu");
  g.gpus = 2;
  g.gpu_memory_mb = 40000;
  const int64_t id = must(q_->push(g));
  EXPECT_TRUE(must(q_->claim("cpu", {"gpu"}, 4)).empty()) << "no GPUs: never";
  EXPECT_TRUE(must(q_->claim("small", {"gpu"}, 4, {2, {81920, 16384}})).empty()) << "one big device";
  EXPECT_TRUE(must(q_->claim("busy", {"gpu"}, 4, {1, {81920, 81920}})).empty()) << "one free";
  auto got = must(q_->claim("big", {"gpu"}, 4, {2, {81920, 81920}}));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, id);
  EXPECT_EQ(got[0].gpus, 2);
}

TEST_F(QueueLimitsTest, BadPoliciesAreRejectedBeforeWriting) {
  NewJob j = keyed_job("k", 0);
  EXPECT_FALSE(q_->push(j).is_ok());
  NewJob r = make_job("api");
  r.retry.max_attempts = 0;
  EXPECT_FALSE(q_->push(r).is_ok());
  EXPECT_EQ(must(q_->count_waiting()), 0);

  auto c = concurrency_from_json({{"key", "x"}, {"max_running", -1}}, "concurrency");
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.message(), "concurrency.max_running: expected an integer from 0 to 100000");
  auto p = retry_from_json({{"on", {"failure", "sometimes"}}}, "retry");
  ASSERT_FALSE(p.is_ok());
  EXPECT_NE(p.message().find("retry.on"), std::string::npos);
  auto u = retry_from_json({{"max_attempts", 3}, {"bakoff_s", 1}}, "retry");
  ASSERT_FALSE(u.is_ok());
  EXPECT_NE(u.message().find("unknown field 'bakoff_s'"), std::string::npos);
}

TEST(JobLimitsJson, SizesCpusAndCountsParseStrictlyAndRoundTrip) {
  auto l = limits_from_json({{"memory_max", "1.5G"}, {"pids_max", 64}, {"cpu_max", "0.5"}}, "limits");
  ASSERT_TRUE(l.is_ok()) << l.message();
  EXPECT_EQ(*l, (JobLimits{int64_t{3} << 29, 64, 500}));
  EXPECT_EQ(*limits_from_json(to_json(*l), "limits"), *l);  // bytes and a number of CPUs
  EXPECT_EQ(limits_from_json({{"memory_max", 268435456}, {"cpu_max", 2}}, "limits")->cpu_max_milli, 2000);
  const std::vector<std::pair<nlohmann::json, std::string>> bad = {
      {{{"memory_max", "1M"}}, "limits.memory_max: expected a size like 256M"},
      {{{"memory_max", "12Q"}}, "limits.memory_max: expected a size like 256M"},
      {{{"memory_max", "-5G"}}, "limits.memory_max: expected a size like 256M"},
      {{{"memory_max", 1e300}}, "limits.memory_max: expected a size like 256M"},
      {{{"pids_max", 0}}, "limits.pids_max"},
      {{{"pids_max", 18446744073709551615ULL}}, "limits.pids_max"},
      {{{"cpu_max", 0.001}}, "limits.cpu_max: expected a number of CPUs"},
      {{{"cpu_max", "fast"}}, "limits.cpu_max: expected a number of CPUs"},
      {{{"memory"}}, "limits: expected an object"},
      {nlohmann::json::object(), "limits: set memory_max, pids_max or cpu_max"},
      {{{"memory", "1G"}}, "limits: unknown field 'memory'"},
  };
  for (const auto& [j, want] : bad) {
    auto r = limits_from_json(j, "limits");
    ASSERT_FALSE(r.is_ok()) << j;
    EXPECT_EQ(r.message().rfind(want, 0), 0u) << j << " → " << r.message();
  }
}

}  // namespace
}  // namespace quern::queue::test
