// Per-job resource limits and accounting (host/cgroup, host/worker's
// JobConfinement) as a job meets them: a real worker, the real bash and
// python plugins, the machine's real cgroups (v1 memory/pids beside a v2
// hierarchy without controllers here and in CI). Each limit is checked
// against the same job without it, so no check passes vacuously.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "host/cgroup/cgroup.h"
#include "host/worker/worker.h"
#include "tests/sandbox/run_job.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::wait_until;

class JobLimits : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url("limits");
    q_ = std::move(queue::Queue::connect(url_)).value();
    ASSERT_TRUE(registry_.load_file(fs::path(testing::plugin_dir()) / "libquern_bash.so"));
    ASSERT_TRUE(registry_.load_file(fs::path(testing::plugin_dir()) / "libquern_python.so"));
  }
  void TearDown() override {
    for (pid_t pid : testing::processes_with_marker(marker_)) ::kill(pid, SIGKILL);
  }

  std::unique_ptr<worker::Worker> start_worker(sandbox::Mode mode, const cgroup::Limits& limits) {
    sandbox::Policy p;
    p.mode = mode;
    p.limits = limits;
    return testing::start_confined_worker(url_, registry_, p, 1);
  }

  queue::JobRecord run(const std::string& language, const std::string& code, int timeout_s = 0,
                       const nlohmann::json& limits = nullptr) {
    return testing::run_job(*q_, language, code, timeout_s, limits);
  }

  // A job of dedicated script `path` (version "h1"), once it has ended.
  queue::JobRecord run_dedicated(const std::string& path, const std::string& code,
                                 const nlohmann::json& args = nlohmann::json::object()) {
    queue::NewJob j;
    j.language = "python3";
    j.tag = "dedicated:" + path;
    j.script_path = path;
    j.payload["code"] = code;
    j.payload["script_hash"] = "h1";
    j.payload["args"] = args;
    return testing::run_to_end(*q_, j);
  }

  std::string url_;
  std::unique_ptr<queue::Queue> q_;
  plugin::PluginRegistry registry_;
  const std::string marker_ = "quern_limits_marker_" + std::to_string(::getpid());
};

// Allocates (and touches) 1 GiB.
const char* const kGreedy = "def main():\n    block = b'x' * (1 << 30)\n    return {'bytes': len(block)}\n";

TEST_F(JobLimits, OverItsMemoryLimitAJobFailsWithOutOfMemoryAndTheWorkerGoesOn) {
  auto w = start_worker(sandbox::Mode::bwrap, {256 << 20, 0, 0});
  const queue::JobRecord rec = run("python3", kGreedy);
  EXPECT_EQ(rec.state, "failure");
  EXPECT_EQ(rec.error.rfind("out of memory (limit 256 MiB, peak ", 0), 0u) << rec.error;
  ASSERT_TRUE(rec.resources.is_object()) << rec.resources;
  EXPECT_GE(rec.resources.value("oom_kills", 0), 1);
  EXPECT_LE(rec.resources.value("peak_memory_bytes", int64_t{1} << 40), 256 << 20);
  // The worker is unharmed: the next job runs at once.
  const queue::JobRecord next = run("bash", "echo '{\"ok\": true}'");
  EXPECT_EQ(next.state, "success") << next.error;
  w->stop();
  w->wait();
}

// A dedicated script's warm interpreter outlives jobs, so it has a cgroup of
// its own with the group's limits; an OOM kill there is the running job's.
TEST_F(JobLimits, ADedicatedScriptsWarmProcessIsHeldToTheLimitsToo) {
  sandbox::Policy p;
  p.mode = sandbox::Mode::bwrap;
  p.limits = {256 << 20, 0, 0};
  auto w = testing::start_confined_worker(url_, registry_, p, 1, {"f/t/greedy"});
  const queue::JobRecord rec = run_dedicated("f/t/greedy", kGreedy);
  EXPECT_EQ(rec.state, "failure");
  EXPECT_EQ(rec.error.rfind("out of memory (limit 256 MiB", 0), 0u) << rec.error;
  const queue::JobRecord next = run("bash", "echo '{\"ok\": true}'");
  EXPECT_EQ(next.state, "success") << next.error;
  w->stop();
  w->wait();
}

// Holds `mb` MiB (touched) while it spins `loops` times.
const char* const kHolder =
    "def main(mb=0, loops=0):\n"
    "    block = b'x' * (mb << 20)\n"
    "    n = 0\n"
    "    for _ in range(loops):\n"
    "        n += 1\n"
    "    return {'bytes': len(block), 'n': n}\n";

// A job of a dedicated script runs in the slot's warm interpreter, not in a
// cgroup of its own: its record shows what the warm process used while it
// ran, each job its own share.
TEST_F(JobLimits, ADedicatedJobsPeakAndCpuAreWhatTheWarmProcessUsedForIt) {
  sandbox::Policy p;
  p.mode = sandbox::Mode::bwrap;
  auto w = testing::start_confined_worker(url_, registry_, p, 1, {"f/t/holder"});
  const auto run_holder = [&](const nlohmann::json& args) {
    return run_dedicated("f/t/holder", kHolder, args);
  };
  const queue::JobRecord warm_up = run_holder({{"mb", 0}, {"loops", 0}});  // imports the script
  EXPECT_EQ(warm_up.state, "success") << warm_up.error;
  const queue::JobRecord big = run_holder({{"mb", 200}, {"loops", 3000000}});
  EXPECT_EQ(big.state, "success") << big.error;
  ASSERT_TRUE(big.resources.is_object()) << big.resources;
  EXPECT_GE(big.resources.value("peak_memory_bytes", int64_t{0}), int64_t{200} << 20) << big.resources;
  EXPECT_GE(big.resources.value("cpu_ms", int64_t{0}), 50) << big.resources;
  // Where the hierarchy lets a peak start afresh (cgroup v1 memory, as on
  // this machine and CI), the next small job's peak is its own; on v2 it
  // stays the warm process's high-water mark.
  const queue::JobRecord small = run_holder({{"mb", 0}, {"loops", 0}});
  EXPECT_EQ(small.state, "success") << small.error;
  EXPECT_LT(small.resources.value("cpu_ms", int64_t{1} << 40), big.resources.value("cpu_ms", int64_t{0}));
  if (fs::exists("/sys/fs/cgroup/memory/memory.max_usage_in_bytes")) {
    EXPECT_LT(small.resources.value("peak_memory_bytes", int64_t{1} << 40), int64_t{100} << 20)
        << small.resources;
  }
  w->stop();
  w->wait();
}

TEST_F(JobLimits, WithoutALimitTheSameJobSucceedsAndItsPeakAndCpuAreOnTheRecord) {
  auto w = start_worker(sandbox::Mode::bwrap, {});
  const queue::JobRecord rec = run("python3", kGreedy);
  EXPECT_EQ(rec.state, "success") << rec.error;
  ASSERT_TRUE(rec.resources.is_object()) << rec.resources;
  EXPECT_GE(rec.resources.value("peak_memory_bytes", int64_t{0}), int64_t{1} << 30);
  EXPECT_FALSE(rec.resources.contains("oom_kills"));
  // A fixed amount of work (about a second of CPU here), whatever the machine's load.
  const queue::JobRecord busy = run("bash", "i=0; while [ $i -lt 300000 ]; do i=$((i + 1)); done");
  EXPECT_EQ(busy.state, "success") << busy.error;
  EXPECT_GE(busy.resources.value("cpu_ms", int64_t{0}), 100) << busy.resources;
  w->stop();
  w->wait();
}

// Forks up to 200 sleepers; prints how many it got.
const char* const kForker =
    "import os, time\n"
    "def main():\n"
    "    n = 0\n"
    "    for _ in range(200):\n"
    "        try:\n"
    "            if os.fork() == 0:\n"
    "                time.sleep(30)\n"
    "                os._exit(0)\n"
    "            n += 1\n"
    "        except OSError:\n"
    "            break\n"
    "    return {'forked': n}\n";

TEST_F(JobLimits, PidsMaxCapsTheProcessesOfAJob) {
  {
    auto w = start_worker(sandbox::Mode::bwrap, {});
    const queue::JobRecord rec = run("python3", kForker);
    EXPECT_EQ(rec.state, "success") << rec.error;
    EXPECT_EQ(rec.result.value("forked", -1), 200);
    w->stop();
    w->wait();
  }
  auto w = start_worker(sandbox::Mode::bwrap, {0, 50, 0});
  const queue::JobRecord rec = run("python3", kForker);
  EXPECT_EQ(rec.state, "success") << rec.error;
  EXPECT_GT(rec.result.value("forked", -1), 0);
  EXPECT_LT(rec.result.value("forked", 200), 50);
  w->stop();
  w->wait();
}

// A job's own limits (a script's settings or a run request: the document's
// "limits") tighten its group's and never loosen them. The same jobs without
// them fork 200 and allocate 1 GiB (the two tests above).
TEST_F(JobLimits, AScriptsOwnLimitsTightenTheGroupsAndNeverLoosenThem) {
  auto w = start_worker(sandbox::Mode::bwrap, {0, 50, 0});
  const queue::JobRecord oom = run("python3", kGreedy, 0, {{"memory_max", "256M"}});
  EXPECT_EQ(oom.state, "failure");
  EXPECT_EQ(oom.error.rfind("out of memory (limit 256 MiB, peak ", 0), 0u) << oom.error;
  const queue::JobRecord tighter = run("python3", kForker, 0, {{"pids_max", 20}});
  EXPECT_EQ(tighter.state, "success") << tighter.error;
  EXPECT_GT(tighter.result.value("forked", -1), 0);
  EXPECT_LT(tighter.result.value("forked", 200), 20);
  const queue::JobRecord looser = run("python3", kForker, 0, {{"pids_max", 500}});
  EXPECT_EQ(looser.state, "success") << looser.error;
  EXPECT_GE(looser.result.value("forked", -1), 20);
  EXPECT_LT(looser.result.value("forked", 200), 50);
  // A document whose limits do not parse (not through the API, which checks
  // them) fails its job, naming the field.
  const queue::JobRecord bad = run("bash", "echo '{}'", 0, {{"memory_max", "lots"}});
  EXPECT_EQ(bad.state, "failure");
  EXPECT_NE(bad.error.find("limits.memory_max: expected a size"), std::string::npos) << bad.error;
  w->stop();
  w->wait();
}

TEST_F(JobLimits, AForkBombStopsAtPidsMaxAndEndsWithItsJob) {
  auto w = start_worker(sandbox::Mode::bwrap, {0, 64, 0});
  const queue::JobRecord bomb = run("bash", "bomb() { bomb | bomb & }; bomb; sleep 3; echo '{}'", 4);
  EXPECT_TRUE(bomb.state == "timeout" || bomb.state == "success" || bomb.state == "failure") << bomb.state;
  // Nothing of it is left, and the worker runs the next job.
  const queue::JobRecord next = run("bash", "echo '{\"ok\": true}'");
  EXPECT_EQ(next.state, "success") << next.error;
  w->stop();
  w->wait();
}

// SIGTERM reaches the job's processes, not bubblewrap around them (which
// would die of it and end the sandbox at once): a job that traps it cleans up.
TEST_F(JobLimits, ASandboxedJobThatTrapsTermGetsItsGraceAtTimeout) {
  auto w = start_worker(sandbox::Mode::bwrap, {});
  const queue::JobRecord rec =
      run("bash", "trap 'echo cleaned up; exit 0' TERM\necho started\nsleep 100 &\nwait\n", 1);
  EXPECT_EQ(rec.state, "timeout") << rec.error;
  auto logs = q_->read_logs(rec.id);
  ASSERT_TRUE(logs) << logs.message();
  EXPECT_NE(logs->find("started\ncleaned up\n"), std::string::npos) << *logs;
  w->stop();
  w->wait();
}

// A `quern worker` with a fixed id whose job left a setsid'd sleep behind,
// killed with SIGKILL; then the same id started again: is the sleep alive?
TEST_F(JobLimits, AWorkerRestartedAfterSigkillEndsWhatItsPredecessorsJobsLeft) {
  const fs::path dir = fs::temp_directory_path() / ("quern-limits-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path config = dir / "worker.xml";
  // sandbox="none": no pid namespace ends the sleep; only the job's cgroup can.
  std::ofstream(config) << "<quern>\n  <plugins dir='" << testing::plugin_dir() << "'/>\n"
                        << "  <queue poll-interval='100ms' lease-timeout='2s'/>\n"
                        << "  <workers><group name='g' slots='1' tags='bash' plugins='bash' sandbox='none'/>"
                        << "</workers>\n</quern>\n";
  const std::string id = "reaper-" + std::to_string(::getpid());
  auto start = [&](const char* log) {
    return std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{testing::quern_binary(), "worker", "--config", config.string(),
                                 "--database-url", url_, "--group", "g", "--worker-id", id},
        (dir / log).string());
  };
  auto first = start("first.log");
  queue::NewJob j;
  j.tag = j.language = "bash";
  j.payload["code"] =
      "setsid bash -c 'exec -a " + marker_ + " sleep 1000' </dev/null >/dev/null 2>&1 &\nsleep 1000\n";
  ASSERT_TRUE(q_->push(j));
  // Wait for the sleep itself: setsid and bash before it exec, and a process
  // mid-exec is briefly invisible to the check after the kill.
  ASSERT_TRUE(wait_until([&] { return !testing::processes_with_marker(marker_, true).empty(); }, 20s))
      << first->output();
  first->signal(SIGKILL);
  first->wait_exit(10s);
  EXPECT_FALSE(testing::processes_with_marker(marker_).empty()) << "the escapee outlives its killed worker";
  auto second = start("second.log");
  EXPECT_TRUE(wait_until([&] { return testing::processes_with_marker(marker_).empty(); }, 20s))
      << second->output();
  EXPECT_TRUE(wait_until(
      [&] {
        return second->output().find("ended 1 job cgroup(s) a previous worker left") != std::string::npos;
      },
      10s))
      << second->output();
  // A stop, not a kill: a clean stop removes the worker's directories.
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait_exit(30s), 0) << second->output();
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST_F(JobLimits, AsRootJobsRunAsTheJobUserOutsideTheirSandboxToo) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, as in CI";
  for (sandbox::Mode mode : {sandbox::Mode::none, sandbox::Mode::bwrap}) {
    auto w = start_worker(mode, {});
    queue::NewJob j;
    j.tag = j.language = "bash";
    j.payload["code"] = "exec -a " + marker_ + " sleep 1000";
    const int64_t id = q_->push(j).value();
    std::vector<pid_t> pids;
    ASSERT_TRUE(wait_until([&] { return !(pids = testing::processes_with_marker(marker_)).empty(); }, 20s));
    std::ifstream status("/proc/" + std::to_string(pids.front()) + "/status");
    std::string line, uid;
    while (std::getline(status, line))
      if (line.rfind("Uid:", 0) == 0) uid = line;
    // Seen from the machine, not from inside the job's user namespace.
    EXPECT_EQ(uid.substr(0, 10), mode == sandbox::Mode::none ? "Uid:\t0\t0\t0" : "Uid:\t65534") << uid;
    ASSERT_TRUE(q_->cancel(id, "done"));
    w->stop();
    w->wait();
  }
}

TEST(JobLimitsWorker, RefusesToStartForAJobUserThatDoesNotExist) {
  if (::geteuid() != 0) GTEST_SKIP() << "the job user applies to root workers only";
  plugin::PluginRegistry registry;
  worker::WorkerOptions o;
  o.database_url = testing::fresh_database_url("limits_user");
  o.tags = {"bash"};
  o.sandbox.mode = sandbox::Mode::bwrap;
  o.sandbox.job_user = "quern-no-such-user";
  worker::Worker w(o, registry);
  const Status s = w.start();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("job-user \"quern-no-such-user\" does not exist on this machine: create it"),
            std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace quern
