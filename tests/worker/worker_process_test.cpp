// Real `quern worker` processes against the harness's PostgreSQL: exactly-once
// completion under load, recovery from a worker killed mid-job, and a stale
// (paused) worker whose late completion changes nothing.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>

#include "host/queue/queue.h"
#include "host/worker/worker.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::wait_until;

class WorkerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    url_ = testing::fresh_database_url(name_);
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q) << q.message();
    q_ = std::move(q).value();
  }

  // A worker process with a short lease so recovery tests run in seconds.
  std::unique_ptr<ChildProcess> start_worker(const std::string& id, const std::string& tags, int slots,
                                             const std::string& lease = "1500ms") {
    std::string config = std::filesystem::temp_directory_path() / (name_ + "-" + id + ".xml");
    {
      std::ofstream out(config);
      out << "<quern>\n"
          << "  <plugins dir=\"" << testing::plugin_dir() << "\"/>\n"
          << "  <queue lease-timeout=\"" << lease << "\" heartbeat-interval=\"250ms\" poll-interval=\"200ms\""
          << " kill-grace=\"500ms\"/>\n"
          << "</quern>\n";
    }
    std::string log = std::filesystem::temp_directory_path() / (name_ + "-" + id + ".log");
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{testing::quern_binary(), "worker", "--config", config, "--database-url",
                                 url_, "--tags", tags, "--slots", std::to_string(slots), "--worker-id", id},
        log);
  }

  std::string scalar(const std::string& sql) {
    auto v = q_->exec_scalar(sql);
    EXPECT_TRUE(v) << v.message();
    return v ? *v : "";
  }

  int64_t push_bash(const std::string& code) {
    queue::NewJob j;
    j.language = "bash";
    j.tag = "bash";
    j.payload["code"] = code;
    auto id = q_->push(j);
    EXPECT_TRUE(id) << id.message();
    return id ? *id : 0;
  }

  queue::JobRecord record(int64_t id) {
    auto r = q_->get_job(id);
    EXPECT_TRUE(r && *r);
    return r && *r ? **r : queue::JobRecord{};
  }

  std::string name_;
  std::string url_;
  std::unique_ptr<queue::Queue> q_;
};

TEST_F(WorkerProcessTest, TenThousandJobsOverFourWorkerProcessesCompleteExactlyOnce) {
  constexpr int kJobs = 10000;
  std::vector<queue::NewJob> jobs(kJobs);
  for (int i = 0; i < kJobs; ++i) {
    jobs[i].language = "noop";
    jobs[i].tag = "noop";
    jobs[i].payload["args"] = {{"result", i}};
  }
  auto ids = q_->push_batch(jobs);
  ASSERT_TRUE(ids) << ids.message();
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (int w = 0; w < 4; ++w) workers.push_back(start_worker("w" + std::to_string(w), "noop", 4, "30s"));
  ASSERT_TRUE(
      wait_until([&] { return scalar("select count(*) from quern.completed_jobs") == "10000"; }, 300s))
      << scalar("select count(*) from quern.completed_jobs") << " completed";
  EXPECT_EQ(scalar("select count(*) from quern.queue"), "0");
  EXPECT_EQ(scalar("select count(distinct id) from quern.completed_jobs where status = 'success'"), "10000");
  EXPECT_EQ(scalar("select count(*) from quern.completed_jobs where attempt <> 1"), "0");
  // Each job's own result came back (no crossed wires between jobs).
  EXPECT_EQ(scalar("select count(*) from quern.completed_jobs "
                   "where result::text::int <> (payload->'args'->>'result')::int"),
            "0");
  // All four workers took part.
  EXPECT_EQ(scalar("select count(distinct worker_id) from quern.completed_jobs"), "4");
  for (auto& w : workers) {
    w->signal(SIGTERM);
    EXPECT_EQ(w->wait_exit(30s), 0) << w->output();
  }
}

TEST_F(WorkerProcessTest, WorkerKilledMidJobIsRecoveredByAnotherAndCompletedOnce) {
  const std::string marker = "quern_sigkill_marker_" + std::to_string(getpid());
  auto a = start_worker("killed", "bash", 1);
  const int64_t id = push_bash("if [ \"$QUERN_ATTEMPT\" = 1 ]; then exec -a " + marker +
                               " sleep 300; fi; echo \"{\\\"attempt\\\": $QUERN_ATTEMPT}\"");
  ASSERT_NE(id, 0);
  ASSERT_TRUE(wait_until([&] { return record(id).state == "running"; }, 30s)) << a->output();
  a->signal(SIGKILL);
  ASSERT_EQ(a->wait_exit(10s), 128 + SIGKILL);
  // The orphaned child of the killed worker is not our concern here; don't
  // let it, or the worker's directories, linger.
  worker::clean_up_after("killed");
  for (pid_t p : testing::processes_with_marker(marker)) kill(p, SIGKILL);

  auto b = start_worker("rescuer", "bash", 1);
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = record(id).state;
        return s != "queued" && s != "running";
      },
      30s))
      << b->output();
  auto rec = record(id);
  EXPECT_EQ(rec.state, "success") << rec.error;
  EXPECT_EQ(rec.attempt, 2);
  EXPECT_EQ(rec.worker_id, "rescuer");
  EXPECT_EQ(rec.result, nlohmann::json({{"attempt", 2}}));
  EXPECT_EQ(scalar("select count(*) from quern.completed_jobs where id = " + std::to_string(id)), "1");
}

TEST_F(WorkerProcessTest, PausedWorkersLateCompletionChangesNothing) {
  auto a = start_worker("paused", "bash", 1);
  // The first attempt takes a while (long enough to be paused); the second is immediate.
  const int64_t id = push_bash(
      "if [ \"$QUERN_ATTEMPT\" = 1 ]; then sleep 3; echo '{\"by\": \"first\"}'; "
      "else echo '{\"by\": \"second\"}'; fi");
  ASSERT_NE(id, 0);
  ASSERT_TRUE(wait_until([&] { return record(id).state == "running"; }, 30s)) << a->output();
  a->signal(SIGSTOP);  // partitioned / paused: no heartbeats, but its job's process goes on

  auto b = start_worker("fresh", "bash", 1);
  ASSERT_TRUE(wait_until([&] { return record(id).state == "success"; }, 30s)) << b->output();
  EXPECT_EQ(record(id).result, nlohmann::json({{"by", "second"}}));

  a->signal(SIGCONT);
  // The stale worker notices it lost the lease (or has its completion refused) and says so.
  ASSERT_TRUE(wait_until(
      [&] {
        auto out = a->output();
        return out.find("lease lost") != std::string::npos || out.find("refused") != std::string::npos;
      },
      30s))
      << a->output();
  auto rec = record(id);
  EXPECT_EQ(rec.result, nlohmann::json({{"by", "second"}}));
  EXPECT_EQ(rec.worker_id, "fresh");
  EXPECT_EQ(rec.attempt, 2);
  EXPECT_EQ(scalar("select count(*) from quern.completed_jobs where id = " + std::to_string(id)), "1");
  a->signal(SIGTERM);
  EXPECT_EQ(a->wait_exit(30s), 0) << a->output();
}

// Job ids repeat across databases, so a worker's job directories live under
// its id; a second live worker with that id would delete the first one's.
TEST_F(WorkerProcessTest, ASecondWorkerWithTheSameIdIsRefusedAndTheFirstsJobKeepsItsDirectory) {
  const std::string id = "twin-" + std::to_string(getpid());
  auto a = start_worker(id, "bash", 1);
  const int64_t job =
      push_bash("touch started; while [ ! -e go ]; do sleep 0.02; done; echo '{\"went\": true}'");
  ASSERT_NE(job, 0);
  auto dir = std::filesystem::temp_directory_path() / "quern-jobs" / id / (std::to_string(job) + "-1");
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(dir / "started"); }, 30s)) << a->output();

  auto b = start_worker(id, "bash", 1);
  EXPECT_NE(b->wait_exit(30s), 0) << b->output();
  EXPECT_NE(b->output().find("worker id '" + id + "' is in use by another running worker"), std::string::npos)
      << b->output();

  std::ofstream(dir / "go").close();
  ASSERT_TRUE(wait_until([&] { return record(job).state == "success"; }, 30s)) << record(job).error;
  EXPECT_EQ(record(job).result, nlohmann::json({{"went", true}}));
  a->signal(SIGTERM);
  EXPECT_EQ(a->wait_exit(30s), 0) << a->output();
}

// The lock dies with its process: a SIGKILLed worker's successor takes its id
// and clears the job directories it left.
TEST_F(WorkerProcessTest, AKilledWorkersIdIsReusableAndItsLeftDirectoriesAreCleared) {
  const std::string id = "phoenix-" + std::to_string(getpid());
  const std::string marker = "quern_phoenix_marker_" + std::to_string(getpid());
  auto a = start_worker(id, "bash", 1);
  const int64_t job = push_bash("touch started; if [ \"$QUERN_ATTEMPT\" = 1 ]; then exec -a " + marker +
                                " sleep 300; fi; echo '{}'");
  ASSERT_NE(job, 0);
  auto root = std::filesystem::temp_directory_path() / "quern-jobs" / id;
  auto first = root / (std::to_string(job) + "-1");
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(first / "started"); }, 30s)) << a->output();
  a->signal(SIGKILL);
  ASSERT_EQ(a->wait_exit(10s), 128 + SIGKILL);
  for (pid_t p : testing::processes_with_marker(marker)) kill(p, SIGKILL);
  ASSERT_TRUE(std::filesystem::exists(first));

  auto b = start_worker(id, "bash", 1);
  ASSERT_TRUE(wait_until([&] { return record(job).state == "success"; }, 30s)) << b->output();
  EXPECT_EQ(record(job).attempt, 2);
  EXPECT_FALSE(std::filesystem::exists(first));
  b->signal(SIGTERM);
  EXPECT_EQ(b->wait_exit(30s), 0) << b->output();
  EXPECT_FALSE(std::filesystem::exists(root)) << "a worker that stops removes its jobs directory";
}

TEST_F(WorkerProcessTest, QuernRunPrintsResultAndExitStatusReflectsTheJob) {
  auto w = start_worker("cli", "bash", 2);
  auto run = [&](const std::string& code, const std::string& log) {
    ChildProcess p({testing::quern_binary(), "run", "--database-url", url_, "--language", "bash", "--code",
                    code, "--args", R"({"who": "quern"})"},
                   std::filesystem::temp_directory_path() / (name_ + "-" + log));
    int rc = p.wait_exit(60s);
    return std::make_pair(rc, p.output());
  };
  auto [ok_rc, ok_out] = run("echo \"hi $1\"; echo '{\"ok\": true}'", "ok.log");
  EXPECT_EQ(ok_rc, 0) << ok_out;
  EXPECT_NE(ok_out.find("hi quern"), std::string::npos) << ok_out;
  EXPECT_NE(ok_out.find("{\"ok\":true}"), std::string::npos) << ok_out;
  auto [bad_rc, bad_out] = run("echo nope >&2; exit 4", "bad.log");
  EXPECT_EQ(bad_rc, 1) << bad_out;
  EXPECT_NE(bad_out.find("nope"), std::string::npos) << bad_out;
}

}  // namespace
}  // namespace quern
