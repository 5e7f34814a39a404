// The bash executor through the real loader and a recording JobSink: the
// result convention, args, environment, failures, and that timeout / cancel
// leave no process of the job alive.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "host/plugin/plugin_registry.h"
#include "tests/plugin/recording_sink.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using quern::testing::RecordingSink;
using Clock = std::chrono::steady_clock;

// A marker unique to this test process and call, to find the job's processes.
std::string unique_marker() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return std::to_string(::getpid()) + std::to_string(++counter) + std::to_string(rd() % 100000);
}

// Pids of live (not zombie) processes whose command line contains marker.
std::vector<pid_t> live_processes_with(const std::string& marker) {
  std::vector<pid_t> pids;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmdline(entry.path() / "cmdline", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (text.find(marker) == std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string stat_line;
    std::getline(stat, stat_line);
    // Field 3, after the ")" that closes the command name, is the state.
    auto close = stat_line.rfind(')');
    if (close != std::string::npos && close + 2 < stat_line.size() && stat_line[close + 2] == 'Z') continue;
    if (std::stoi(name) == ::getpid()) continue;
    pids.push_back(std::stoi(name));
  }
  return pids;
}

// Waits (with a deadline) until no live process carries the marker.
bool wait_until_gone(const std::string& marker, std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    if (live_processes_with(marker).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return live_processes_with(marker).empty();
}

class BashExecutor : public ::testing::Test {
 protected:
  void SetUp() override {
    quern::Status s = registry_.load_file(fs::path(QUERN_PLUGIN_DIR) / "libquern_bash.so");
    ASSERT_TRUE(s.is_ok()) << s.message();
    auto created = registry_.by_name("bash")->create("{}");
    ASSERT_TRUE(created.is_ok()) << created.message();
    executor_ = std::move(created.value());
    char tmpl[] = "/tmp/quern-bash-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    workdir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(workdir_, ec);
  }

  // The job document as the host builds it.
  std::string job(const std::string& code, const ordered_json& args = ordered_json::object()) {
    ordered_json j;
    j["id"] = 1;
    j["attempt"] = 1;
    j["language"] = "bash";
    j["code"] = code;
    j["args"] = args;
    j["timeout_s"] = 60;
    j["workdir"] = workdir_.string();
    j["env"] = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"HOME", workdir_.string()}, {"LANG", "C.UTF-8"}};
    return j.dump();
  }
  quern_status run(RecordingSink& sink, const std::string& code,
                   const ordered_json& args = ordered_json::object()) {
    return executor_->execute(job(code, args), sink);
  }

  quern::plugin::PluginRegistry registry_;
  std::unique_ptr<quern::plugin::Executor> executor_;
  fs::path workdir_;
};

TEST_F(BashExecutor, ResultIsTheLastJsonLineOfStdout) {
  RecordingSink sink;
  ASSERT_EQ(run(sink, "echo hello\necho '{\"a\": [1, 2]}'\necho\necho '   '\n"), QUERN_STATUS_SUCCESS)
      << sink.error().value_or("");
  EXPECT_EQ(sink.result(), R"({"a":[1,2]})");
  auto out = sink.lines(QUERN_STREAM_STDOUT);
  ASSERT_GE(out.size(), 2u);
  EXPECT_EQ(out[0], "hello");
  EXPECT_EQ(out[1], R"({"a": [1, 2]})");
  EXPECT_FALSE(sink.error().has_value());
}

TEST_F(BashExecutor, NonJsonLastLineMeansNullResult) {
  RecordingSink sink;
  ASSERT_EQ(run(sink, "echo '{\"not\": \"last\"}'\necho done\n"), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(sink.result(), "null");
  RecordingSink silent;
  ASSERT_EQ(run(silent, "true\n"), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(silent.result(), "null");
}

TEST_F(BashExecutor, ArgsArePositionalInOrderAndEnvironmentVariables) {
  ordered_json args = ordered_json::object();
  // Declaration order, deliberately not alphabetical.
  args["zeta"] = "a b";
  args["alpha"] = 2;
  args["obj"] = {{"x", 1}};
  args["not-an-identifier"] = "kept positional only";
  RecordingSink sink;
  const char* code =
      "echo \"n=$#\"\n"
      "echo \"1=$1\"\necho \"2=$2\"\necho \"3=$3\"\necho \"4=$4\"\n"
      "echo \"zeta=$zeta\"\necho \"alpha=$alpha\"\necho \"obj=$obj\"\n"
      "env | grep -c '^not-an-identifier=' || true\n";
  ASSERT_EQ(run(sink, code, args), QUERN_STATUS_SUCCESS) << sink.error().value_or("");
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT),
            (std::vector<std::string>{"n=4", "1=a b", "2=2", R"(3={"x":1})", "4=kept positional only",
                                      "zeta=a b", "alpha=2", R"(obj={"x":1})", "0"}));
}

TEST_F(BashExecutor, RunsMainShInTheWorkdir) {
  RecordingSink sink;
  ASSERT_EQ(run(sink, "pwd\nls\n"), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT), (std::vector<std::string>{workdir_.string(), "main.sh"}));
}

TEST_F(BashExecutor, NonZeroExitIsFailureWithStderrTail) {
  RecordingSink sink;
  ASSERT_EQ(run(sink, "echo out\necho first problem >&2\necho 'it broke' >&2\nexit 3\n"),
            QUERN_STATUS_FAILURE);
  ASSERT_TRUE(sink.error().has_value());
  EXPECT_EQ(*sink.error(), "exit code 3\nfirst problem\nit broke");
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDERR), (std::vector<std::string>{"first problem", "it broke"}));
}

TEST_F(BashExecutor, StderrTailIsCapped) {
  RecordingSink sink;
  ASSERT_EQ(run(sink, "for i in $(seq 1 3000); do echo \"error line $i\" >&2; done\nexit 1\n"),
            QUERN_STATUS_FAILURE);
  ASSERT_TRUE(sink.error().has_value());
  EXPECT_LE(sink.error()->size(), 4096u + 64u);
  EXPECT_NE(sink.error()->find("error line 3000"), std::string::npos);
  EXPECT_EQ(sink.error()->find("error line 1\n"), std::string::npos);
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDERR).size(), 3000u);  // the log keeps everything
}

TEST_F(BashExecutor, KilledBySignalIsFailureNamingTheSignal) {
  RecordingSink sink;
  ASSERT_EQ(run(sink, "kill -KILL $$\n"), QUERN_STATUS_FAILURE);
  ASSERT_TRUE(sink.error().has_value());
  EXPECT_NE(sink.error()->find("killed by SIGKILL"), std::string::npos) << *sink.error();
}

TEST_F(BashExecutor, TimeoutKillsTheWholeProcessGroupQuickly) {
  const std::string marker = unique_marker();
  // Every process of the job carries the marker: bash (as $1) and both sleeps.
  const std::string code = "sleep 300.$1 &\necho started\nsleep 300.$1\n";
  RecordingSink sink;
  std::atomic<size_t> seen_alive{0};
  std::atomic<bool> timed_out{false};
  sink.set_cancel_check([&] {
    if (timed_out) return QUERN_TIMEOUT_REACHED;
    // Time out once the script runs and both sleeps exist.
    auto lines = sink.lines(QUERN_STREAM_STDOUT);
    if (lines.empty()) return QUERN_RUNNING;
    size_t alive = live_processes_with(marker).size();
    if (alive < 3) return QUERN_RUNNING;
    seen_alive = alive;
    timed_out = true;
    return QUERN_TIMEOUT_REACHED;
  });
  ordered_json args = ordered_json::object();
  args["marker"] = marker;
  const auto start = Clock::now();
  EXPECT_EQ(run(sink, code, args), QUERN_STATUS_TIMEOUT);
  const auto took = Clock::now() - start;
  EXPECT_GE(seen_alive.load(), 3u);
  EXPECT_LT(took, std::chrono::seconds(10));
  EXPECT_TRUE(wait_until_gone(marker, std::chrono::seconds(5)))
      << live_processes_with(marker).size() << " process(es) of the job still alive";
  auto groups = sink.process_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_GT(groups[0], 0);
  EXPECT_EQ(groups[1], 0);
}

TEST_F(BashExecutor, CancelAndShutdownAreCanceled) {
  for (int32_t why : {QUERN_CANCEL_REQUESTED, QUERN_SHUTDOWN}) {
    const std::string marker = unique_marker();
    RecordingSink sink;
    sink.set_cancel_check([&] { return sink.lines(QUERN_STREAM_STDOUT).empty() ? QUERN_RUNNING : why; });
    ordered_json args = ordered_json::object();
    args["marker"] = marker;
    EXPECT_EQ(run(sink, "echo started\nsleep 300.$1\n", args), QUERN_STATUS_CANCELED);
    EXPECT_TRUE(wait_until_gone(marker, std::chrono::seconds(5)));
  }
}

TEST_F(BashExecutor, IgnoredSigtermIsFollowedBySigkillAfterGrace) {
  const std::string marker = unique_marker();
  RecordingSink sink;
  sink.set_cancel_check(
      [&] { return sink.lines(QUERN_STREAM_STDOUT).empty() ? QUERN_RUNNING : QUERN_CANCEL_REQUESTED; });
  ordered_json args = ordered_json::object();
  args["marker"] = marker;
  const auto start = Clock::now();
  EXPECT_EQ(run(sink, "trap '' TERM\necho started\nwhile :; do sleep 0.05; done\n", args),
            QUERN_STATUS_CANCELED);
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(1500));  // the 2 s grace was honoured
  EXPECT_TRUE(wait_until_gone(marker, std::chrono::seconds(5)));
}

TEST_F(BashExecutor, InterruptFromAnotherThreadCancels) {
  const std::string marker = unique_marker();
  RecordingSink sink;
  std::atomic<bool> started{false};
  sink.set_cancel_check([&] {
    if (!sink.lines(QUERN_STREAM_STDOUT).empty()) started = true;
    return QUERN_RUNNING;
  });
  std::thread stopper([&] {
    while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    executor_->interrupt();
  });
  ordered_json args = ordered_json::object();
  args["marker"] = marker;
  EXPECT_EQ(run(sink, "echo started\nsleep 300.$1\n", args), QUERN_STATUS_CANCELED);
  stopper.join();
  EXPECT_TRUE(wait_until_gone(marker, std::chrono::seconds(5)));
}

TEST_F(BashExecutor, BackgroundProcessesDieWhenTheScriptEnds) {
  const std::string marker = unique_marker();
  RecordingSink sink;
  ordered_json args = ordered_json::object();
  args["marker"] = marker;
  // The stray keeps stdout open; the job must still finish promptly.
  const auto start = Clock::now();
  EXPECT_EQ(run(sink, "sleep 300.$1 &\necho '\"ok\"'\n", args), QUERN_STATUS_SUCCESS);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(sink.result(), "\"ok\"");
  EXPECT_TRUE(wait_until_gone(marker, std::chrono::seconds(5)));
}

TEST_F(BashExecutor, EnvironmentIsOnlyWhatTheHostGives) {
  ::setenv("QUERN_SECRET_TEST", "x", 1);
  RecordingSink sink;
  ASSERT_EQ(
      run(sink, "echo \"secret=${QUERN_SECRET_TEST:-unset}\"\necho \"path=$PATH\"\necho \"home=$HOME\"\n"),
      QUERN_STATUS_SUCCESS);
  ::unsetenv("QUERN_SECRET_TEST");
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT),
            (std::vector<std::string>{"secret=unset", "path=/usr/local/bin:/usr/bin:/bin",
                                      "home=" + workdir_.string()}));
}

TEST_F(BashExecutor, ChildInheritsNoFileDescriptorsButStdio) {
  // An fd the host opened without O_CLOEXEC must not reach the job.
  int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 3);
  RecordingSink sink;
  // bash keeps the script open on fd 255. No pipeline here: bash would hold
  // the pipe's fds itself while starting it.
  quern_status st = run(sink, "ls /proc/$$/fd > fds.txt\nsort -n fds.txt\n");
  ::close(leaked);
  ASSERT_EQ(st, QUERN_STATUS_SUCCESS);
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT), (std::vector<std::string>{"0", "1", "2", "255"}));
}

TEST_F(BashExecutor, StdinIsDevNullAndLongLinesAreSplit) {
  RecordingSink sink;
  ASSERT_EQ(run(sink, "cat\nhead -c 70000 /dev/zero | tr '\\0' x\n"), QUERN_STATUS_SUCCESS);
  auto out = sink.lines(QUERN_STREAM_STDOUT);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].size(), 64u * 1024u);
  EXPECT_EQ(out[1].size(), 70000u - 64u * 1024u);  // the partial last line, flushed at EOF
}

TEST_F(BashExecutor, ReportsAndClearsItsProcessGroup) {
  RecordingSink sink;
  ASSERT_EQ(run(sink, "echo $$\n"), QUERN_STATUS_SUCCESS);
  auto groups = sink.process_groups();
  ASSERT_EQ(groups.size(), 2u);
  // bash is the group leader: its pid is the group id.
  EXPECT_EQ(std::to_string(groups[0]), sink.lines(QUERN_STREAM_STDOUT).at(0));
  EXPECT_EQ(groups[1], 0);
}

TEST(BashExecutorConfig, InterpreterIsResolvedAtCreate) {
  quern::plugin::PluginRegistry registry;
  ASSERT_TRUE(registry.load_file(fs::path(QUERN_PLUGIN_DIR) / "libquern_bash.so").is_ok());
  const auto* bash = registry.by_name("bash");
  EXPECT_TRUE(bash->create(R"({"interpreter": "/bin/bash"})").is_ok());
  auto missing = bash->create(R"({"interpreter": "/nonexistent/bash"})");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.message().find("/nonexistent/bash"), std::string::npos) << missing.message();
  auto not_json = bash->create("{oops");
  EXPECT_FALSE(not_json.is_ok());
  auto executor = bash->create("{}");
  ASSERT_TRUE(executor.is_ok());
  EXPECT_TRUE(executor.value()->health().is_ok());
}

}  // namespace
