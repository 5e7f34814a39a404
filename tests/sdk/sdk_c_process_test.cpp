// quern/process.h, the C runner, compiled as C (tests/sdk/c_layer.c) and
// wired to a RecordingSink through the host's own callback table (JobCall):
// exit code and signal, lines of both streams, exact environment and
// working directory, stdin, PATH lookup, start-up failures, a stop (TERM, and
// KILL after the grace), stray processes of the group, the stop reason read
// after the child exited, long lines and the stderr tail.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "host/plugin/job_callbacks.h"
#include "tests/plugin/recording_sink.h"
#include "tests/sdk/c_layer.h"

namespace {

namespace fs = std::filesystem;
using quern::plugin::JobCall;
using quern::testing::RecordingSink;
using Clock = std::chrono::steady_clock;

// A spec's strings, kept alive for the C arrays that point into them.
struct Command {
  std::vector<std::string> argv, env;
  std::vector<const char*> argv_c, env_c;
  const char* workdir = nullptr;
  std::string stdin_text;
  bool has_stdin = false;

  quern_process_spec spec() {
    argv_c.clear();
    env_c.clear();
    for (const auto& a : argv) argv_c.push_back(a.c_str());
    argv_c.push_back(nullptr);
    for (const auto& e : env) env_c.push_back(e.c_str());
    env_c.push_back(nullptr);
    quern_process_spec s{};
    s.argv = argv_c.data();
    s.env = env_c.data();
    s.workdir = workdir;
    s.stdin_data = has_stdin ? stdin_text.data() : nullptr;
    s.stdin_size = stdin_text.size();
    return s;
  }
};

Command sh(const std::string& script) {
  Command c;
  c.argv = {"/bin/sh", "-c", script};
  c.env = {"PATH=/usr/bin:/bin"};
  return c;
}

class CProcess : public ::testing::Test {
 protected:
  // Runs the command through the C compilation of quern_run_process.
  int run(Command& c, const quern_process_options* options = nullptr) {
    const quern_process_spec s = c.spec();
    const quern_job job = quern_job_make(JobCall::callbacks(), call_.ctx());
    return quern_test_c_run_process(&job, &s, options, &result_);
  }
  void TearDown() override { quern_process_result_free(&result_); }
  // The group the runner reported first (0 until it did).
  int64_t reported_group() const {
    auto groups = sink_.process_groups();
    return groups.empty() ? 0 : groups.front();
  }
  bool logged(int32_t stream, const std::string& line) const {
    for (const auto& l : sink_.lines(stream))
      if (l == line) return true;
    return false;
  }

  RecordingSink sink_;
  JobCall call_{sink_, "{}"};
  quern_process_result result_{};
};

TEST_F(CProcess, ExitCodeLinesOfBothStreamsAndTheGroup) {
  Command c = sh("echo out1; echo err1 >&2; echo out2; printf 'no newline'; exit 3");
  ASSERT_EQ(run(c), 0) << result_.error;
  EXPECT_EQ(result_.exit_code, 3);
  EXPECT_EQ(result_.term_signal, 0);
  EXPECT_EQ(result_.stop_reason, QUERN_RUNNING);
  EXPECT_EQ(sink_.lines(QUERN_STREAM_STDOUT), (std::vector<std::string>{"out1", "out2", "no newline"}));
  EXPECT_EQ(sink_.lines(QUERN_STREAM_STDERR), std::vector<std::string>{"err1"});
  EXPECT_STREQ(result_.last_stdout_line, "no newline");
  EXPECT_STREQ(result_.stderr_tail, "err1");
  // Reported at once, withdrawn after the reap.
  const auto groups = sink_.process_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_GT(groups[0], 0);
  EXPECT_EQ(groups[1], 0);
}

TEST_F(CProcess, ExactEnvironmentAndWorkingDirectory) {
  Command env;
  env.argv = {"/usr/bin/env"};
  env.env = {"ONLY=this", "AND=that"};
  ASSERT_EQ(run(env), 0) << result_.error;
  EXPECT_EQ(sink_.lines(QUERN_STREAM_STDOUT), (std::vector<std::string>{"ONLY=this", "AND=that"}));

  RecordingSink sink;
  JobCall call(sink, "{}");
  const fs::path dir = fs::canonical(fs::temp_directory_path());
  Command pwd = sh("pwd; echo \"$HOME\"");
  pwd.workdir = dir.c_str();
  const quern_process_spec s = pwd.spec();
  const quern_job job = quern_job_make(JobCall::callbacks(), call.ctx());
  quern_process_result r{};
  ASSERT_EQ(quern_test_c_run_process(&job, &s, nullptr, &r), 0) << r.error;
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT), (std::vector<std::string>{dir.string(), ""}));  // no HOME given
  quern_process_result_free(&r);
}

TEST_F(CProcess, StdinTextAndAProgramFromThePathOfItsEnvironment) {
  Command c;
  c.argv = {"cat"};  // looked up in the child's PATH
  c.env = {"PATH=/nonexistent:/usr/bin:/bin"};
  c.has_stdin = true;
  c.stdin_text = "line one\nlast line";
  ASSERT_EQ(run(c), 0) << result_.error;
  EXPECT_EQ(result_.exit_code, 0);
  EXPECT_EQ(sink_.lines(QUERN_STREAM_STDOUT), (std::vector<std::string>{"line one", "last line"}));
}

TEST_F(CProcess, AChildClosingStdinEarlyIsNoSigpipe) {
  Command c = sh("exec 0<&-; echo closed");
  c.has_stdin = true;
  c.stdin_text = std::string(4 * 1024 * 1024, 'x');
  ASSERT_EQ(run(c), 0) << result_.error;
  EXPECT_EQ(result_.exit_code, 0);
  EXPECT_STREQ(result_.last_stdout_line, "closed");
}

TEST_F(CProcess, StartUpFailuresSayWhatFailed) {
  Command missing;
  missing.argv = {"/nonexistent/program"};
  EXPECT_EQ(run(missing), -1);
  EXPECT_NE(std::string(result_.error).find("exec '/nonexistent/program': No such file or directory"),
            std::string::npos)
      << result_.error;
  EXPECT_EQ(result_.exit_code, -1);
  EXPECT_EQ(result_.last_stdout_line, nullptr);
  auto groups = sink_.process_groups();  // reported, then withdrawn
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[1], 0);

  Command not_on_path;
  not_on_path.argv = {"quern-no-such-program"};
  not_on_path.env = {"PATH=/usr/bin:/bin"};
  EXPECT_EQ(run(not_on_path), -1);
  EXPECT_NE(std::string(result_.error).find("program 'quern-no-such-program' not found in PATH"),
            std::string::npos)
      << result_.error;

  Command bad_dir = sh("true");
  bad_dir.workdir = "/nonexistent/dir";
  EXPECT_EQ(run(bad_dir), -1);
  EXPECT_NE(std::string(result_.error).find("chdir to '/nonexistent/dir'"), std::string::npos)
      << result_.error;

  Command empty;
  EXPECT_EQ(run(empty), -1);
  EXPECT_STREQ(result_.error, "quern_run_process: empty argv");
}

TEST_F(CProcess, AStopSendsTermAndSaysWhy) {
  sink_.set_cancel_check(
      [this] { return logged(QUERN_STREAM_STDOUT, "ready") ? QUERN_CANCEL_REQUESTED : 0; });
  Command c = sh("echo ready; sleep 30");
  const auto start = Clock::now();
  ASSERT_EQ(run(c), 0) << result_.error;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(result_.stop_reason, QUERN_CANCEL_REQUESTED);
  EXPECT_EQ(result_.term_signal, SIGTERM);
  EXPECT_EQ(result_.exit_code, -1);
}

TEST_F(CProcess, AChildIgnoringTermIsKilledAfterTheGrace) {
  sink_.set_cancel_check([this] { return logged(QUERN_STREAM_STDOUT, "ready") ? QUERN_TIMEOUT_REACHED : 0; });
  Command c = sh("trap '' TERM; echo ready; while :; do sleep 0.05; done");
  quern_process_options options = quern_process_options_default();
  options.kill_grace_ms = 300;
  const auto start = Clock::now();
  ASSERT_EQ(run(c, &options), 0) << result_.error;
  const auto took = Clock::now() - start;
  EXPECT_EQ(result_.stop_reason, QUERN_TIMEOUT_REACHED);
  EXPECT_EQ(result_.term_signal, SIGKILL);
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST_F(CProcess, StopCheckCountsAsAStop) {
  std::atomic<bool> interrupted{false};
  quern_process_options options = quern_process_options_default();
  options.stop_check = [](void* arg) -> int32_t {
    return static_cast<std::atomic<bool>*>(arg)->load() ? QUERN_CANCEL_REQUESTED : QUERN_RUNNING;
  };
  options.stop_arg = &interrupted;
  std::thread interrupter([&] {
    while (reported_group() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    interrupted = true;
  });
  Command c = sh("sleep 30");
  ASSERT_EQ(run(c, &options), 0) << result_.error;
  interrupter.join();
  EXPECT_EQ(result_.stop_reason, QUERN_CANCEL_REQUESTED);
  EXPECT_EQ(result_.term_signal, SIGTERM);
}

TEST_F(CProcess, StrayProcessesOfTheGroupDieWithTheMainChild) {
  // The background sleep keeps stdout open; it must not keep the job alive.
  Command c = sh("sleep 30 & echo $!");
  const auto start = Clock::now();
  ASSERT_EQ(run(c), 0) << result_.error;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(result_.exit_code, 0);
  const pid_t stray = static_cast<pid_t>(std::stol(result_.last_stdout_line));
  // Killed with the group: gone, or a zombie until whoever adopted it reaps it.
  auto dead = [stray] {
    if (::kill(stray, 0) != 0) return true;
    std::ifstream stat("/proc/" + std::to_string(stray) + "/stat");
    std::string pid, comm, state;
    return stat >> pid >> comm >> state && state == "Z";
  };
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = dead();
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "pid " << stray << " outlived its job";
}

TEST_F(CProcess, AStopTheHostCarriedOutIsReportedAfterTheExit) {
  // The host stops a job by killing its group itself; the runner may only
  // see the child gone. It must still report why, not a plain exit.
  std::atomic<int64_t> group{0};
  sink_.set_cancel_check([&]() -> int32_t {
    const int64_t g = group.load();
    if (g == 0) return QUERN_RUNNING;
    siginfo_t info{};
    // Our own child: peek (WNOWAIT) without reaping it.
    const bool exited =
        ::waitid(P_PID, static_cast<id_t>(g), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == g;
    return exited ? QUERN_TIMEOUT_REACHED : QUERN_RUNNING;
  });
  std::thread host([&] {
    while (reported_group() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    group = reported_group();
    ::kill(static_cast<pid_t>(-group.load()), SIGKILL);
  });
  Command c = sh("sleep 30");
  ASSERT_EQ(run(c), 0) << result_.error;
  host.join();
  EXPECT_EQ(result_.stop_reason, QUERN_TIMEOUT_REACHED);
  EXPECT_EQ(result_.term_signal, SIGKILL);
}

TEST_F(CProcess, LongLinesInPiecesAndTheStderrTail) {
  quern_process_options options = quern_process_options_default();
  options.max_line_bytes = 10;
  options.stderr_tail_bytes = 20;
  Command c =
      sh("printf '%s\\n' aaaaaaaaaabbbbbbbbbbccccc; printf '%s\\n' 0123456789;"
         "for i in 1 2 3 4 5 6 7 8 9; do echo \"error $i\" >&2; done");
  ASSERT_EQ(run(c, &options), 0) << result_.error;
  // 25 bytes: two full pieces and the rest; exactly 10 bytes: one line, no empty one after it.
  EXPECT_EQ(sink_.lines(QUERN_STREAM_STDOUT),
            (std::vector<std::string>{"aaaaaaaaaa", "bbbbbbbbbb", "ccccc", "0123456789"}));
  EXPECT_EQ(sink_.lines(QUERN_STREAM_STDERR).size(), 9u);
  // At most the last 20 bytes of stderr, without the final newline.
  const std::string tail = result_.stderr_tail;
  const std::string all = "error 1\nerror 2\nerror 3\nerror 4\nerror 5\nerror 6\nerror 7\nerror 8\nerror 9";
  EXPECT_LE(tail.size(), 20u);
  EXPECT_GE(tail.size(), 15u);
  EXPECT_EQ(all.substr(all.size() - tail.size()), tail);
}

}  // namespace
