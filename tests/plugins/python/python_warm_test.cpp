// The python executor's dedicated mode through the real loader: prepare()
// keeps one warm interpreter that many jobs reuse; its logs go to the right
// job; a crash, a timeout or a redeploy cost one job at most and never run
// stale code; destroying the instance leaves nothing behind.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/plugins/python/python_test_support.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using quern::testing::PythonExecutorTest;
using quern::testing::RecordingSink;
using Clock = std::chrono::steady_clock;

// State that survives between jobs only on a warm interpreter.
const char* const kCounterScript =
    "import os, sys, time\n"
    "calls = 0\n"
    "def main(i=0, crash=False, sleep=False):\n"
    "    global calls\n"
    "    calls += 1\n"
    "    print('out %d a' % i)\n"
    "    print('err %d' % i, file=sys.stderr)\n"
    "    print('out %d b' % i)\n"
    "    sys.stdout.write('tail %d' % i)\n"  // no newline: still this job's line
    "    if crash:\n"
    "        sys.stdout.flush()\n"
    "        print('about to die', file=sys.stderr, flush=True)\n"
    "        os._exit(1)\n"
    "    if sleep:\n"
    "        sys.stdout.flush()\n"
    "        time.sleep(300)\n"
    "    return {'pid': os.getpid(), 'calls': calls, 'job': os.environ.get('QUERN_JOB_ID'), 'cwd': "
    "os.getcwd()}\n";

class PythonWarm : public PythonExecutorTest {
 protected:
  void SetUp() override {
    PythonExecutorTest::SetUp();
    if (HasFailure()) return;
    quern::Status s = executor_->prepare(script(kCounterScript));
    ASSERT_TRUE(s.is_ok()) << s.message();
  }
  // Runs job i on the counter script; returns the result object.
  ordered_json run_counter(int i, RecordingSink& sink, ordered_json extra = ordered_json::object()) {
    extra["i"] = i;
    EXPECT_EQ(run(sink, kCounterScript, extra, 1000 + i), QUERN_STATUS_SUCCESS) << sink.error().value_or("");
    return ordered_json::parse(sink.result().value_or("null"));
  }
};

TEST_F(PythonWarm, FiftyJobsReuseOneInterpreterAndItsModuleState) {
  std::set<int64_t> pids;
  for (int i = 1; i <= 50; ++i) {
    RecordingSink sink;
    ordered_json r = run_counter(i, sink);
    ASSERT_TRUE(r.is_object()) << sink.error().value_or("");
    pids.insert(r["pid"].get<int64_t>());
    EXPECT_EQ(r["calls"], i);  // imported once: the module-level counter keeps counting
    EXPECT_EQ(r["job"], std::to_string(1000 + i));
    // The host may kill the reported group on timeout, and after execute
    // returns kills whatever is still reported, so it is cleared.
    auto groups = sink.process_groups();
    ASSERT_EQ(groups.size(), 2u);
    EXPECT_EQ(groups[0], r["pid"].get<int64_t>());
    EXPECT_EQ(groups[1], 0);
  }
  EXPECT_EQ(pids.size(), 1u);
  EXPECT_NE(*pids.begin(), ::getpid());
}

TEST_F(PythonWarm, EachJobGetsExactlyItsOwnLogLines) {
  for (int i = 1; i <= 20; ++i) {
    RecordingSink sink;
    run_counter(i, sink);
    std::string n = std::to_string(i);
    EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT),
              (std::vector<std::string>{"out " + n + " a", "out " + n + " b", "tail " + n}));
    EXPECT_EQ(sink.lines(QUERN_STREAM_STDERR), (std::vector<std::string>{"err " + n}));
  }
}

TEST_F(PythonWarm, ExceptionFailsTheJobButKeepsTheInterpreter) {
  const char* code =
      "import os\ndef main(fail):\n    if fail:\n        raise KeyError('missing')\n    return os.getpid()\n";
  ASSERT_TRUE(executor_->prepare(script(code)).is_ok());
  RecordingSink first;
  ASSERT_EQ(run(first, code, {{"fail", false}}), QUERN_STATUS_SUCCESS) << first.error().value_or("");
  RecordingSink failing;
  ASSERT_EQ(run(failing, code, {{"fail", true}}), QUERN_STATUS_FAILURE);
  EXPECT_NE(failing.error().value_or("").find("main.py\", line 4, in main"), std::string::npos)
      << failing.error().value_or("");
  EXPECT_NE(failing.error().value_or("").find("KeyError: 'missing'"), std::string::npos);
  RecordingSink after;
  ASSERT_EQ(run(after, code, {{"fail", false}}), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(after.result(), first.result());  // same interpreter
}

TEST_F(PythonWarm, CrashFailsOnlyItsJobAndTheNextJobGetsAFreshInterpreter) {
  RecordingSink before;
  ordered_json r1 = run_counter(1, before);
  RecordingSink crash;
  ASSERT_EQ(run(crash, kCounterScript, {{"i", 2}, {"crash", true}}), QUERN_STATUS_FAILURE);
  const std::string error = crash.error().value_or("");
  EXPECT_EQ(error.rfind("the warm python process died while running the job (exit code 1)", 0), 0u) << error;
  EXPECT_NE(error.find("about to die"), std::string::npos) << error;
  EXPECT_EQ(crash.lines(QUERN_STREAM_STDOUT), (std::vector<std::string>{"out 2 a", "out 2 b", "tail 2"}));
  EXPECT_TRUE(quern::testing::process_gone(r1["pid"].get<int64_t>()));
  RecordingSink after;
  ordered_json r3 = run_counter(3, after);
  EXPECT_NE(r3["pid"], r1["pid"]);
  EXPECT_EQ(r3["calls"], 1);  // re-imported
}

TEST_F(PythonWarm, TimeoutKillsTheWarmInterpreterAndTheNextJobRecovers) {
  RecordingSink before;
  ordered_json r1 = run_counter(1, before);
  RecordingSink slow;
  slow.set_cancel_check(
      [&] { return slow.lines(QUERN_STREAM_STDOUT).size() < 2 ? QUERN_RUNNING : QUERN_TIMEOUT_REACHED; });
  const auto start = Clock::now();
  ASSERT_EQ(run(slow, kCounterScript, {{"i", 2}, {"sleep", true}}), QUERN_STATUS_TIMEOUT);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(slow.error(), "timed out");
  EXPECT_TRUE(quern::testing::process_gone(r1["pid"].get<int64_t>()));
  RecordingSink after;
  ordered_json r3 = run_counter(3, after);
  EXPECT_NE(r3["pid"], r1["pid"]);
  EXPECT_EQ(r3["calls"], 1);
  // Cancel behaves the same way.
  RecordingSink canceled;
  canceled.set_cancel_check([&] {
    return canceled.lines(QUERN_STREAM_STDOUT).size() < 2 ? QUERN_RUNNING : QUERN_CANCEL_REQUESTED;
  });
  ASSERT_EQ(run(canceled, kCounterScript, {{"i", 4}, {"sleep", true}}), QUERN_STATUS_CANCELED);
  EXPECT_TRUE(quern::testing::process_gone(r3["pid"].get<int64_t>()));
}

TEST_F(PythonWarm, RedeployReplacesTheInterpreterAndNeverRunsStaleCode) {
  const char* v1 = "import os\ndef main():\n    return ['v1', os.getpid()]\n";
  const char* v2 = "import os\ndef main():\n    return ['v2', os.getpid()]\n";
  ASSERT_TRUE(executor_->prepare(script(v1, "hash-v1")).is_ok());
  RecordingSink a;
  ASSERT_EQ(run(a, v1), QUERN_STATUS_SUCCESS);
  ordered_json r1 = ordered_json::parse(*a.result());
  EXPECT_EQ(r1[0], "v1");
  ASSERT_TRUE(executor_->prepare(script(v2, "hash-v2")).is_ok());
  EXPECT_TRUE(quern::testing::process_gone(r1[1].get<int64_t>()));
  RecordingSink b;
  ASSERT_EQ(run(b, v2), QUERN_STATUS_SUCCESS);
  ordered_json r2 = ordered_json::parse(*b.result());
  EXPECT_EQ(r2[0], "v2");
  // The old code still runs, but in standard mode: a process of its own.
  RecordingSink c;
  ASSERT_EQ(run(c, v1), QUERN_STATUS_SUCCESS);
  ordered_json r3 = ordered_json::parse(*c.result());
  EXPECT_EQ(r3[0], "v1");
  EXPECT_NE(r3[1], r2[1]);
  // Preparing the same script again keeps the warm interpreter.
  ASSERT_TRUE(executor_->prepare(script(v2, "hash-v2")).is_ok());
  RecordingSink d;
  ASSERT_EQ(run(d, v2), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(ordered_json::parse(*d.result()), r2);
}

TEST_F(PythonWarm, TheHashDecidesWhenBothSidesHaveOne) {
  const char* code = "import os\ndef main():\n    return os.getpid()\n";
  ASSERT_TRUE(executor_->prepare(script(code, "h1")).is_ok());
  auto with_hash = [&](const std::string& c, const std::string& hash) {
    ordered_json j = ordered_json::parse(job(c));
    j["hash"] = hash;
    RecordingSink sink;
    EXPECT_EQ(executor_->execute(j.dump(), sink), QUERN_STATUS_SUCCESS) << sink.error().value_or("");
    return sink.result().value_or("");
  };
  std::string warm = with_hash(code, "h1");
  EXPECT_EQ(with_hash(code + std::string("# edited\n"), "h1"), warm);  // same hash: the warm one
  EXPECT_NE(with_hash(code, "h2"), warm);                              // other hash: standard mode
}

TEST_F(PythonWarm, EnvironmentIsMinimalAndTheDirectoryIsPerInstance) {
  ::setenv("QUERN_SECRET_TEST", "x", 1);
  const char* code =
      "import os\ndef main():\n"
      "    return {'secret': os.environ.get('QUERN_SECRET_TEST'), 'keys': sorted(os.environ), 'cwd': "
      "os.getcwd()}\n";
  quern::Status s = executor_->prepare(script(code));
  ::unsetenv("QUERN_SECRET_TEST");
  ASSERT_TRUE(s.is_ok()) << s.message();
  RecordingSink sink;
  ASSERT_EQ(run(sink, code), QUERN_STATUS_SUCCESS) << sink.error().value_or("");
  ordered_json r = ordered_json::parse(*sink.result());
  EXPECT_TRUE(r["secret"].is_null());
  EXPECT_EQ(r["keys"],
            ordered_json::parse(R"(["HOME", "LANG", "PATH", "QUERN_ATTEMPT", "QUERN_JOB_ID", "TMPDIR"])"));
  const fs::path dir = r["cwd"].get<std::string>();
  EXPECT_EQ(dir.parent_path(), fs::canonical(fs::temp_directory_path()));
  EXPECT_TRUE(fs::exists(dir / "main.py"));
  // A second instance has its own directory and interpreter.
  auto other = create("{}");
  ASSERT_TRUE(other->prepare(script(code)).is_ok());
  RecordingSink sink2;
  ASSERT_EQ(other->execute(job(code), sink2), QUERN_STATUS_SUCCESS);
  EXPECT_NE(ordered_json::parse(*sink2.result())["cwd"], r["cwd"]);
}

TEST_F(PythonWarm, DestroyingTheInstanceKillsTheInterpreterAndRemovesItsDirectory) {
  RecordingSink sink;
  ordered_json r = run_counter(1, sink);
  const int64_t pid = r["pid"].get<int64_t>();
  const fs::path dir = r["cwd"].get<std::string>();
  ASSERT_FALSE(quern::testing::process_gone(pid));
  ASSERT_TRUE(fs::exists(dir));
  executor_.reset();
  EXPECT_TRUE(quern::testing::process_gone(pid));  // killed and reaped before destroy returned
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(PythonWarm, LargeArgsResultsAndLogsDoNotBlock) {
  // More than any pipe buffer in each direction, in both modes.
  const char* code =
      "def main(blob, lines):\n"
      "    for i in range(lines):\n"
      "        print('line %d' % i)\n"
      "    return {'size': len(blob), 'echo': blob}\n";
  ASSERT_TRUE(executor_->prepare(script(code)).is_ok());
  const std::string blob(1 << 20, 'q');
  for (const char* mode : {"warm", "standard"}) {
    RecordingSink sink;
    std::string run_code = code;
    if (std::string(mode) == "standard") run_code += "# not the prepared code\n";
    ASSERT_EQ(run(sink, run_code, {{"blob", blob}, {"lines", 20000}}), QUERN_STATUS_SUCCESS)
        << mode << ": " << sink.error().value_or("");
    ordered_json r = ordered_json::parse(*sink.result());
    EXPECT_EQ(r["size"], blob.size()) << mode;
    EXPECT_EQ(r["echo"], blob) << mode;
    auto out = sink.lines(QUERN_STREAM_STDOUT);
    ASSERT_EQ(out.size(), 20000u) << mode;
    EXPECT_EQ(out.back(), "line 19999") << mode;
  }
}

// In the host stand-in below: reports the warm pid, then dies mid-job.
class DieOnPidLine : public RecordingSink {
 public:
  explicit DieOnPidLine(int fd) : fd_(fd) {}
  void log_line(int32_t, std::string_view line) override {
    if (line.rfind("pid ", 0) != 0) return;
    std::string pid(line.substr(4));
    pid += "\n";
    ssize_t ignored = ::write(fd_, pid.data(), pid.size());
    (void)ignored;
    ::_exit(0);  // no destructor runs: as if the host crashed
  }

 private:
  int fd_;
};

TEST_F(PythonWarm, TheWarmInterpreterDiesWithTheHostProcess) {
  // A host stand-in: a child process that loads the plugin, prepares, and
  // dies while the warm interpreter is busy in a job (so it is not reading
  // its stdin and would not notice EOF). The interpreter must not survive it.
  const char* code =
      "import os, time\ndef main():\n    print('pid', os.getpid(), os.getcwd(), flush=True)\n    "
      "time.sleep(300)\n";
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const std::string job_text = job(code);
  const std::string script_text = script(code);
  const pid_t host = ::fork();
  ASSERT_GE(host, 0);
  if (host == 0) {
    ::close(report[0]);
    quern::plugin::PluginRegistry registry;
    if (!registry.load_file(fs::path(QUERN_PLUGIN_DIR) / "libquern_python.so").is_ok()) ::_exit(2);
    auto created = registry.by_name("python")->create("{}");
    if (!created.is_ok() || !created.value()->prepare(script_text).is_ok()) ::_exit(3);
    DieOnPidLine sink(report[1]);
    created.value()->execute(job_text, sink);
    ::_exit(4);
  }
  ::close(report[1]);
  std::string text;
  char buf[64];
  for (ssize_t n; (n = ::read(report[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  ::close(report[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(host, &status, 0), host);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "host stand-in failed: " << status;
  std::istringstream fields(text);
  pid_t warm = 0;
  std::string dir;
  fields >> warm >> dir;
  ASSERT_GT(warm, 0) << text;
  EXPECT_TRUE(quern::testing::wait_until([&] { return !quern::testing::process_running(warm); },
                                         std::chrono::seconds(5)))
      << "warm interpreter " << warm << " outlived its host";
  if (quern::testing::process_running(warm)) ::kill(warm, SIGKILL);
  std::error_code ec;
  fs::remove_all(dir, ec);  // the stand-in died before its destructor could
}

TEST_F(PythonWarm, PrepareFailsWhenTheScriptCannotBeImported) {
  const char* broken = "import os\nraise RuntimeError('no config')\ndef main():\n    return 1\n";
  quern::Status s = executor_->prepare(script(broken));
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("RuntimeError: no config"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("main.py\", line 2"), std::string::npos) << s.message();
  // The instance is unprepared: jobs of that script run (and fail) in standard mode.
  RecordingSink sink;
  ASSERT_EQ(run(sink, broken), QUERN_STATUS_FAILURE);
  EXPECT_NE(sink.error().value_or("").find("RuntimeError: no config"), std::string::npos);
}

}  // namespace
