// The worker in-process, against the harness's real PostgreSQL and the real
// bash and noop plugins: ordering, routing, timeouts, cancellation, logs,
// graceful shutdown, a concurrency key's limit with 50 busy slots.
#include "host/worker/worker.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <tuple>

#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q) << q.message();
    q_ = std::move(q).value();
    ASSERT_TRUE(registry_.load_directory(testing::plugin_dir())) << "plugins";
  }

  worker::WorkerOptions options(std::vector<std::string> tags, int slots) {
    worker::WorkerOptions o;
    o.database_url = url_;
    o.tags = std::move(tags);
    o.slots = slots;
    o.poll_interval = 200ms;
    o.heartbeat_interval = 100ms;
    o.lease_timeout = 2s;
    o.kill_grace = 500ms;
    o.jobs_dir = std::filesystem::temp_directory_path() / ("quern-test-jobs-" + std::to_string(getpid()));
    return o;
  }

  int64_t push(const std::string& language, const std::string& code, nlohmann::ordered_json args = {},
               int priority = 50, int timeout_s = 0, std::string tag = "") {
    queue::NewJob j;
    j.language = language;
    j.tag = tag.empty() ? language : tag;
    j.priority = priority;
    j.timeout_s = timeout_s;
    j.payload["code"] = code;
    j.payload["args"] = args.is_null() ? nlohmann::ordered_json::object() : args;
    auto id = q_->push(j);
    EXPECT_TRUE(id) << id.message();
    return id ? *id : 0;
  }

  std::string state(int64_t id) {
    auto r = q_->get_job(id);
    if (!r || !*r) return "?";
    return (*r)->state;
  }

  queue::JobRecord record(int64_t id) {
    auto r = q_->get_job(id);
    EXPECT_TRUE(r && *r);
    return r && *r ? **r : queue::JobRecord{};
  }

  bool finished(int64_t id) {
    auto s = state(id);
    return s != "queued" && s != "running" && s != "?";
  }

  std::string url_;
  std::unique_ptr<queue::Queue> q_;
  plugin::PluginRegistry registry_;
};

TEST_F(WorkerTest, RunsBashJobWithArgsResultAndLogs) {
  worker::Worker w(options({"bash"}, 2), registry_);
  ASSERT_TRUE(w.start());
  int64_t id = push("bash", "echo \"hello $1 and $b\"; echo 'to stderr' >&2; echo '{\"sum\": 3}'",
                    {{"a", "first"}, {"b", "second"}});
  ASSERT_TRUE(wait_until([&] { return finished(id); }, 20s));
  auto rec = record(id);
  EXPECT_EQ(rec.state, "success") << rec.error;
  EXPECT_EQ(rec.result, nlohmann::json({{"sum", 3}}));
  auto logs = q_->read_logs(id);
  ASSERT_TRUE(logs);
  EXPECT_NE(logs->find("hello first and second\n"), std::string::npos) << *logs;
  EXPECT_NE(logs->find("to stderr\n"), std::string::npos) << *logs;
}

TEST_F(WorkerTest, FailingJobReportsExitCodeAndStderr) {
  worker::Worker w(options({"bash"}, 1), registry_);
  ASSERT_TRUE(w.start());
  int64_t id = push("bash", "echo 'something broke' >&2; exit 3");
  ASSERT_TRUE(wait_until([&] { return finished(id); }, 20s));
  auto rec = record(id);
  EXPECT_EQ(rec.state, "failure");
  EXPECT_NE(rec.error.find("3"), std::string::npos) << rec.error;
  EXPECT_NE(rec.error.find("something broke"), std::string::npos) << rec.error;
}

TEST_F(WorkerTest, HigherPriorityRunsFirstThenSubmissionOrder) {
  std::vector<int64_t> low;
  for (int i = 0; i < 5; ++i) low.push_back(push("noop", "", {}, 10));
  int64_t high = push("noop", "", {}, 90);
  std::mutex mu;
  std::vector<int64_t> order;
  auto o = options({"noop"}, 1);
  o.on_job_start = [&](const queue::ClaimedJob& j) {
    std::lock_guard lock(mu);
    order.push_back(j.id);
  };
  worker::Worker w(o, registry_);
  ASSERT_TRUE(w.start());
  ASSERT_TRUE(wait_until([&] { return finished(low.back()); }, 20s));
  std::lock_guard lock(mu);
  std::vector<int64_t> expected = {high};
  expected.insert(expected.end(), low.begin(), low.end());
  EXPECT_EQ(order, expected);
}

TEST_F(WorkerTest, JobForATagNoWorkerServesStaysQueued) {
  int64_t orphan = push("noop", "", {}, 50, 0, "gpu-nobody-serves");
  worker::Worker w(options({"noop"}, 2), registry_);
  ASSERT_TRUE(w.start());
  std::vector<int64_t> served;
  for (int i = 0; i < 20; ++i) served.push_back(push("noop", ""));
  ASSERT_TRUE(wait_until([&] { return finished(served.back()); }, 20s));
  // The worker drained everything it serves and polled again: the orphan is untouched.
  ASSERT_TRUE(wait_until([&] { return w.stats().claim_queries >= 3; }, 5s));
  EXPECT_EQ(state(orphan), "queued");
  EXPECT_EQ(record(orphan).attempt, 0);
}

TEST_F(WorkerTest, UnknownLanguageFailsWithClearMessage) {
  worker::Worker w(options({"cobol"}, 1), registry_);
  ASSERT_TRUE(w.start());
  int64_t id = push("cobol", "DISPLAY 'HI'.");
  ASSERT_TRUE(wait_until([&] { return finished(id); }, 20s));
  auto rec = record(id);
  EXPECT_EQ(rec.state, "failure");
  EXPECT_NE(rec.error.find("no executor plugin for language 'cobol'"), std::string::npos) << rec.error;
}

TEST_F(WorkerTest, TimeoutKillsTheWholeProcessGroup) {
  const std::string marker = "quern_timeout_marker_" + std::to_string(getpid());
  worker::Worker w(options({"bash"}, 1), registry_);
  ASSERT_TRUE(w.start());
  int64_t id =
      push("bash", "(exec -a " + marker + " sleep 300) & exec -a " + marker + " sleep 300", {}, 50, 1);
  ASSERT_TRUE(wait_until([&] { return !testing::processes_with_marker(marker).empty(); }, 20s));
  ASSERT_TRUE(wait_until([&] { return finished(id); }, 20s));
  auto rec = record(id);
  EXPECT_EQ(rec.state, "timeout") << rec.error;
  EXPECT_TRUE(wait_until([&] { return testing::processes_with_marker(marker).empty(); }, 5s))
      << "processes of the job survived its timeout";
}

TEST_F(WorkerTest, CancelStopsARunningJobAndItsChildren) {
  const std::string marker = "quern_cancel_marker_" + std::to_string(getpid());
  worker::Worker w(options({"bash"}, 1), registry_);
  ASSERT_TRUE(w.start());
  int64_t id = push("bash", "(exec -a " + marker + " sleep 300) & exec -a " + marker + " sleep 300");
  ASSERT_TRUE(wait_until([&] { return testing::processes_with_marker(marker).size() == 2; }, 20s));
  auto outcome = q_->cancel(id);
  ASSERT_TRUE(outcome);
  EXPECT_EQ(*outcome, queue::CancelOutcome::requested);
  ASSERT_TRUE(wait_until([&] { return finished(id); }, 20s));
  EXPECT_EQ(state(id), "canceled");
  EXPECT_TRUE(wait_until([&] { return testing::processes_with_marker(marker).empty(); }, 5s));
}

// Cancellations reach the worker by NOTIFY on its claimer's connection, in
// each state the claimer can be in: every slot busy, some slot free, and
// stopping with jobs still in their grace period. Heartbeats (which also
// deliver cancels) come once a minute here, so they cannot be what ends the
// jobs within seconds.
TEST_F(WorkerTest, CancelsArriveAtOnceWhetherTheWorkerIsBusyIdleOrStopping) {
  auto o = options({"noop"}, 2);
  o.heartbeat_interval = 60s;
  o.lease_timeout = 300s;
  o.shutdown_grace = 60s;
  worker::Worker w(o, registry_);
  ASSERT_TRUE(w.start());
  const auto cancel_within = [&](int64_t id, std::chrono::milliseconds limit) {
    ASSERT_TRUE(q_->cancel(id));
    EXPECT_TRUE(wait_until([&] { return finished(id); }, limit)) << "job " << id << ": " << state(id);
    EXPECT_EQ(state(id), "canceled");
  };
  const int64_t a = push("noop", "", {{"sleep_ms", 600000}});
  const int64_t b = push("noop", "", {{"sleep_ms", 600000}});
  ASSERT_TRUE(wait_until([&] { return state(a) == "running" && state(b) == "running"; }, 20s));
  cancel_within(a, 5s);  // both slots busy
  cancel_within(b, 5s);  // one slot free
  const int64_t c = push("noop", "", {{"sleep_ms", 600000}});
  ASSERT_TRUE(wait_until([&] { return state(c) == "running"; }, 20s));
  const auto stopped = std::chrono::steady_clock::now();
  w.stop();
  cancel_within(c, 5s);  // stopping, c in its grace period
  w.wait();
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, 30s);
}

TEST_F(WorkerTest, StopLetsRunningJobsFinish) {
  auto o = options({"noop"}, 2);
  o.shutdown_grace = 30s;
  // Started by a slot, not only claimed ("running" in the database): a job
  // claimed but not yet started when the worker stops goes back to the queue.
  std::atomic<bool> started{false};
  o.on_job_start = [&](const queue::ClaimedJob&) { started = true; };
  worker::Worker w(o, registry_);
  ASSERT_TRUE(w.start());
  int64_t id = push("noop", "", {{"sleep_ms", 300}});
  ASSERT_TRUE(wait_until([&] { return started.load(); }, 20s));
  w.stop();
  w.wait();
  EXPECT_EQ(state(id), "success");
}

TEST_F(WorkerTest, StopAfterGraceHandsJobsBack) {
  auto o = options({"noop"}, 1);
  o.shutdown_grace = 100ms;
  worker::Worker w(o, registry_);
  ASSERT_TRUE(w.start());
  int64_t id = push("noop", "", {{"sleep_ms", 60000}});
  ASSERT_TRUE(wait_until([&] { return state(id) == "running"; }, 20s));
  auto started = std::chrono::steady_clock::now();
  w.stop();
  w.wait();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_EQ(state(id), "queued") << "a job interrupted by shutdown goes back to the queue";
  // And another worker runs it to the end.
  auto o2 = options({"noop"}, 1);
  worker::Worker w2(o2, registry_);
  ASSERT_TRUE(w2.start());
  EXPECT_TRUE(wait_until([&] { return state(id) == "running"; }, 20s));
  ASSERT_TRUE(q_->cancel(id));
  EXPECT_TRUE(wait_until([&] { return finished(id); }, 20s));
}

TEST_F(WorkerTest, EnvironmentIsMinimal) {
  setenv("QUERN_TEST_SECRET", "leaked", 1);
  worker::Worker w(options({"bash"}, 1), registry_);
  ASSERT_TRUE(w.start());
  int64_t id = push(
      "bash", "echo \"{\\\"secret\\\": \\\"${QUERN_TEST_SECRET:-none}\\\", \\\"home\\\": \\\"$HOME\\\"}\"");
  ASSERT_TRUE(wait_until([&] { return finished(id); }, 20s));
  auto rec = record(id);
  ASSERT_EQ(rec.state, "success") << rec.error;
  EXPECT_EQ(rec.result["secret"], "none");
  EXPECT_NE(rec.result["home"].get<std::string>().find("quern-test-jobs"), std::string::npos);
}

// Issue 5's check on a real worker: 50 slots busy, some jobs sharing a key
// limited to 3. Sampled from another connection while they run: never more
// than 3 of the key's jobs at once, and all of them complete.
TEST_F(WorkerTest, FiftySlotsNeverRunMoreThanAKeysLimit) {
  std::vector<queue::NewJob> jobs;
  for (int i = 0; i < 330; ++i) {
    queue::NewJob j;
    j.language = j.tag = "noop";
    j.payload = {{"code", ""}, {"args", {{"sleep_ms", 20}}}};
    if (i % 11 == 0) {  // 30 of them share the key
      j.concurrency.key = "api:limited";
      j.concurrency.max_running = 3;
    }
    jobs.push_back(std::move(j));
  }
  auto ids = q_->push_batch(jobs);
  ASSERT_TRUE(ids) << ids.message();

  std::atomic<bool> stop{false};
  std::atomic<int> max_keyed{0}, max_all{0}, samples{0};
  std::thread sampler([&] {
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q);
    while (!stop) {
      auto n = (*q)->exec_scalar(
          "SELECT count(*) FILTER (WHERE concurrency_key = 'api:limited') || ',' || count(*) "
          "FROM quern.queue WHERE running");
      if (!n) continue;
      const auto comma = n->find(',');
      max_keyed = std::max(max_keyed.load(), std::stoi(n->substr(0, comma)));
      max_all = std::max(max_all.load(), std::stoi(n->substr(comma + 1)));
      samples++;
    }
  });
  worker::Worker w(options({"noop"}, 50), registry_);
  ASSERT_TRUE(w.start());
  const bool drained = wait_until([&] { return w.stats().completed >= 330; }, 60s);
  stop = true;
  sampler.join();
  w.stop();
  w.wait();
  ASSERT_TRUE(drained) << w.stats().completed << " of 330 completed";
  EXPECT_LE(max_keyed.load(), 3) << "over " << samples.load() << " samples";
  EXPECT_GE(max_keyed.load(), 2) << "the key should run several at once";
  EXPECT_GE(max_all.load(), 25) << "the slots should have been busy";
  for (size_t i = 0; i < ids->size(); i += 11) EXPECT_EQ(state((*ids)[i]), "success");
}

// Wake-ups without polling (issue 17): with a poll interval far longer than
// the test, a delayed job starts at its due time, and a keyed job as soon as
// its key has room — the worker is told, it does not find out by polling.
TEST_F(WorkerTest, DelayedAndKeyedJobsStartWithoutWaitingForThePoll) {
  worker::WorkerOptions o = options({"noop"}, 2);
  o.poll_interval = 60s;
  worker::Worker w(o, registry_);
  ASSERT_TRUE(w.start());
  ASSERT_TRUE(wait_until([&] { return w.stats().claim_queries >= 1; }, 10s));  // idle, listening

  queue::NewJob later;
  later.language = later.tag = "noop";
  later.payload = {{"code", ""}, {"args", nlohmann::ordered_json::object()}};
  later.scheduled_for = queue::Clock::now() + 700ms;
  auto id = q_->push(later);
  ASSERT_TRUE(id) << id.message();
  ASSERT_TRUE(wait_until([&] { return finished(*id); }, 20s));
  const queue::JobRecord rec = record(*id);
  ASSERT_TRUE(rec.started_at.has_value());
  const auto late =
      std::chrono::duration_cast<std::chrono::milliseconds>(*rec.started_at - *later.scheduled_for);
  EXPECT_GE(late.count(), 0);
  EXPECT_LT(late.count(), 500) << "started " << late.count() << " ms after it was due";

  // Two slots, a key that allows one at a time: the second job starts when
  // the first ends, not a poll later.
  std::vector<queue::NewJob> keyed(2, later);
  for (auto& j : keyed) {
    j.scheduled_for.reset();
    j.payload["args"]["sleep_ms"] = 300;
    j.concurrency.key = "api:one";
    j.concurrency.max_running = 1;
  }
  auto ids = q_->push_batch(keyed);
  ASSERT_TRUE(ids) << ids.message();
  ASSERT_TRUE(wait_until([&] { return finished((*ids)[0]) && finished((*ids)[1]); }, 20s));
  const queue::JobRecord a = record((*ids)[0]), b = record((*ids)[1]);
  ASSERT_TRUE(a.started_at && b.started_at && a.completed_at && b.completed_at);
  const auto& [first, second] = *a.started_at < *b.started_at ? std::tie(a, b) : std::tie(b, a);
  EXPECT_GE(*second.started_at, *first.completed_at - 50ms);  // never both at once (clock slack)
  const auto gap =
      std::chrono::duration_cast<std::chrono::milliseconds>(*second.started_at - *first.completed_at);
  EXPECT_LT(gap.count(), 500) << "the key had room " << gap.count() << " ms before its next job started";
  w.stop();
  w.wait();
}

}  // namespace
}  // namespace quern
