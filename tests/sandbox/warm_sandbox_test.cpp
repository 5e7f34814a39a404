// The job sandbox kept warm (sdk/include/quern/warm_sandbox.hpp), as the
// SDK's spawn enters it: the host's real wrapper (host/sandbox), real
// bubblewrap, real processes. Each property is checked against the
// bubblewrap-per-spawn ("cold") sandbox or the unsandboxed child where that
// tells the two apart, so no check passes vacuously.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "host/sandbox/sandbox.h"
#include "quern/process.hpp"
#include "quern/sandbox.h"
#include "tests/support/child_process.h"

namespace quern {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Ran {
  int status = -1;  // the exit code, or 128 + signal
  std::string output;
};

// Runs spec (its fds are set here) to its end; output is stdout and stderr together.
Ran run_spec(sdk::SpawnSpec spec) {
  int p[2];
  EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  spec.fds = {null_fd, p[1], p[1]};
  Ran r;
  pid_t pid = -1;
  try {
    pid = sdk::spawn(spec, "a test job");
  } catch (const std::exception& e) {
    r.output = e.what();
  }
  ::close(p[1]);
  ::close(null_fd);
  char buf[4096];
  ssize_t n;
  while (pid > 0 && ((n = ::read(p[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)))
    if (n > 0) r.output.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  if (pid < 0) return r;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

class WarmSandbox : public ::testing::Test {
 protected:
  void SetUp() override {
    policy_.mode = sandbox::Mode::bwrap;
    ASSERT_TRUE(sandbox::resolve_job_user(policy_));
    if (!sandbox::probe(policy_)) GTEST_SKIP() << "no bubblewrap sandbox on this machine";
    jobs_ = fs::temp_directory_path() / ("quern-warm-test-" + std::to_string(::getpid()));
    fs::create_directories(jobs_);
    ::unsetenv("QUERN_SANDBOX_COLD");
  }
  void TearDown() override {
    ::unsetenv("QUERN_SANDBOX_COLD");
    std::error_code ec;
    fs::remove_all(jobs_, ec);
  }

  // A job's working directory under the jobs directory, owned by the job user.
  std::string workdir(const std::string& name) {
    const fs::path d = jobs_ / name;
    fs::create_directories(d);
    if (policy_.uid >= 0) {
      EXPECT_EQ(::chown(d.c_str(), static_cast<uid_t>(policy_.uid), static_cast<gid_t>(policy_.gid)), 0);
    }
    return d.string();
  }

  // `sh -c script` in dir, sandboxed as a worker's job unless sandboxed is false.
  sdk::SpawnSpec job_spec(const std::string& dir, const std::string& script, bool sandboxed = true) {
    sdk::SpawnSpec spec;
    spec.argv = {"sh", "-c", script};
    spec.env = {"PATH=/usr/bin:/bin"};
    if (sandboxed) {
      spec.env.push_back(std::string(QUERN_SANDBOX_ENV "=") + sandbox::encode(sandbox::wrapper(policy_)));
      spec.env.push_back(std::string(QUERN_SETUP_ENV "=") + sandbox::setup_items(policy_));
    }
    spec.workdir = dir;
    return spec;
  }
  // Runs job_spec() to its end; output is stdout and stderr together.
  Ran run(const std::string& dir, const std::string& script, bool sandboxed = true) {
    return run_spec(job_spec(dir, script, sandboxed));
  }

  sandbox::Policy policy_;
  fs::path jobs_;
};

TEST_F(WarmSandbox, AJobIsPidOneOfItsOwnNamespaceAndTheColdSandboxIsNot) {
  const std::string a = workdir("1-1");
  Ran warm = run(a, "echo $$; hostname; id -u");
  ASSERT_EQ(warm.status, 0) << warm.output;
  EXPECT_EQ(warm.output, "1\nquern-job\n65534\n");  // the wrapper's uid inside, as bubblewrap gives
  // bubblewrap per spawn runs its own init as pid 1: the job is pid 2 there.
  ::setenv("QUERN_SANDBOX_COLD", "1", 1);
  Ran cold = run(a, "echo $$; hostname; id -u");
  ASSERT_EQ(cold.status, 0) << cold.output;
  EXPECT_EQ(cold.output, "2\nquern-job\n65534\n");
}

TEST_F(WarmSandbox, AJobSeesOnlyItsOwnDirectoryAndWritesOnlyThereAndInItsTmp) {
  const std::string mine = workdir("2-1");
  const std::string other = workdir("3-1");
  std::ofstream(other + "/secret") << "other job's data";
  if (policy_.uid >= 0) {
    ASSERT_EQ(::chown((other + "/secret").c_str(), policy_.uid, policy_.gid), 0);
  }
  const std::string script =
      "cat '" + other + "/secret' 2>/dev/null && echo read-other; ls '" + jobs_.string() +
      "'; echo mine > mine.txt && echo wrote-mine; echo t > /tmp/t && echo wrote-tmp; "
      "touch /x 2>/dev/null && echo wrote-root; touch /dev/x 2>/dev/null && echo wrote-dev; "
      "{ echo 1 > /proc/sys/kernel/hostname; } 2>/dev/null && echo wrote-proc; true";
  Ran in = run(mine, script);
  ASSERT_EQ(in.status, 0) << in.output;
  EXPECT_EQ(in.output, "2-1\nwrote-mine\nwrote-tmp\n");
  std::ifstream written(mine + "/mine.txt");
  std::string text;
  std::getline(written, text);
  EXPECT_EQ(text, "mine");  // the job's directory is the host's, not a copy
  // Unsandboxed, the same job reads the other directory and lists both.
  Ran out = run(mine, script, false);
  EXPECT_NE(out.output.find("read-other"), std::string::npos) << out.output;
  EXPECT_NE(out.output.find("3-1"), std::string::npos) << out.output;
}

TEST_F(WarmSandbox, WhatAJobLeavesInSharedPlacesTheNextJobDoesNotFind) {
  // Both jobs enter the same warm sandbox (same wrapper, jobs directory, user).
  Ran first = run(workdir("4-1"),
                  "echo x > /dev/shm/left && echo wrote-shm; echo x > /tmp/left && echo wrote-tmp; true");
  ASSERT_EQ(first.status, 0) << first.output;
  ASSERT_EQ(first.output, "wrote-shm\nwrote-tmp\n");  // the first could write there...
  Ran second = run(workdir("5-1"), "ls /dev/shm /tmp; ls '" + jobs_.string() + "'");
  ASSERT_EQ(second.status, 0) << second.output;
  // ...the next finds nothing of it (in /tmp, only the path to its own directory).
  EXPECT_EQ(second.output, "/dev/shm:\n\n/tmp:\n" + jobs_.filename().string() + "\n5-1\n");
}

TEST_F(WarmSandbox, NothingAJobStartedOutlivesIt) {
  const std::string dir = workdir("6-1");
  // A daemonised sleep with an argument nothing else on the machine uses.
  const std::string marker = "1000." + std::to_string(::getpid());
  auto alive = [&] {
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::ifstream in(e.path() / "cmdline");
      std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (cmd.find(marker) != std::string::npos && cmd.find("sleep") != std::string::npos) return true;
    }
    return false;
  };
  Ran r = run(dir, "setsid sleep " + marker + " </dev/null >/dev/null 2>&1 & sleep 0.2; echo started");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(testing::wait_until([&] { return !alive(); }, 5s)) << "the daemonised sleep outlived its job";
  // Unsandboxed, the same escape works (and is cleaned up here).
  Ran out = run(dir, "setsid sleep " + marker + " </dev/null >/dev/null 2>&1 & echo started", false);
  ASSERT_EQ(out.status, 0) << out.output;
  EXPECT_TRUE(testing::wait_until(alive, 5s));
  ::system(("pkill -f 'sleep " + marker + "'").c_str());
}

// A job's first process is pid 1 of its namespace, which the kernel shields
// from signals it has no handler for: stop_signal() makes a SIGTERM end it
// as it ends any other process, and one that traps it still gets it.
TEST_F(WarmSandbox, AStopSignalEndsAJobThatDoesNotTrapItAndReachesOneThatDoes) {
  auto start = [&](const std::string& dir, const std::string& script, int out_fd) {
    sdk::SpawnSpec spec = job_spec(dir, script);
    spec.fds = {::open("/dev/null", O_RDONLY | O_CLOEXEC), out_fd, out_fd};
    const pid_t pid = sdk::spawn(spec, "a test job");
    ::close(spec.fds[0]);
    return pid;
  };
  auto ended_within = [](pid_t pid, std::chrono::milliseconds limit, int& status) {
    return testing::wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit);
  };
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  // No handler: plain kill() does nothing to it...
  const pid_t plain = start(workdir("9-1"), "echo up; exec sleep 1000", p[1]);
  char buf[64];
  ASSERT_GT(::read(p[0], buf, sizeof buf), 0);  // it runs
  ASSERT_EQ(::kill(-plain, SIGTERM), 0);
  int status = 0;
  EXPECT_FALSE(ended_within(plain, 300ms, status)) << "the kernel delivered SIGTERM to a pid-1 process";
  // ...stop_signal() ends it at once.
  ASSERT_EQ(sdk::stop_signal(-plain, SIGTERM), 0);
  ASSERT_TRUE(ended_within(plain, 5s, status));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  // A job that traps TERM gets it, and decides.
  const pid_t trapping =
      start(workdir("10-1"), "trap 'echo got-term; exit 3' TERM; echo up; sleep 1000 & wait", p[1]);
  std::string out;
  ASSERT_TRUE(testing::wait_until(
      [&] {
        ssize_t n = ::read(p[0], buf, sizeof buf);
        if (n > 0) out.append(buf, static_cast<std::size_t>(n));
        return out.find("up") != std::string::npos;
      },
      5s));
  ASSERT_EQ(sdk::stop_signal(-trapping, SIGTERM), 0);
  ASSERT_TRUE(ended_within(trapping, 5s, status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status;
  ::close(p[1]);
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  EXPECT_NE(out.find("got-term"), std::string::npos) << out;
}

TEST_F(WarmSandbox, AJobsDirectoryMadeAnewGetsItsSandboxBuiltAgain) {
  ASSERT_EQ(run(workdir("7-1"), "echo $$").output, "1\n");
  // A restarted worker removes and recreates its jobs directory: the warm
  // sandbox bound the old one, so it is built again (still warm: pid 1).
  fs::remove_all(jobs_);
  fs::create_directories(jobs_);
  Ran again = run(workdir("8-1"), "echo $$; ls");
  EXPECT_EQ(again.output, "1\n");
  EXPECT_EQ(again.status, 0);
}

TEST_F(WarmSandbox, AWorkdirWithNoJobsDirectoryToHideGoesCold) {
  // "/<dir>" has no parent but "/": nothing to hide it in, so bubblewrap
  // builds the sandbox for it (pid 2) rather than weaken it.
  const fs::path top = "/quern-warm-test-" + std::to_string(::getpid());
  std::error_code ec;
  if (!fs::create_directories(top, ec)) GTEST_SKIP() << "cannot create " << top << ": " << ec.message();
  if (policy_.uid >= 0) {
    ASSERT_EQ(::chown(top.c_str(), policy_.uid, policy_.gid), 0);
  }
  Ran r = run(top.string(), "echo $$");
  fs::remove_all(top);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "2\n");
}

// A worker without root enters the warm sandbox another way (through the
// user namespace owning the sandbox's mounts, no init-namespace privilege):
// the tests above again, as nobody, from a copy of this binary in /tmp (the
// build tree may not be reachable for nobody).
TEST(WarmSandboxUnprivileged, WithoutRootTheSameTestsPass) {
  if (::geteuid() != 0) GTEST_SKIP() << "switches to nobody to run them: needs root, as in CI";
  sandbox::Policy policy;
  policy.mode = sandbox::Mode::bwrap;
  if (!sandbox::probe(policy)) GTEST_SKIP() << "no bubblewrap sandbox on this machine";
  const fs::path copy = fs::temp_directory_path() / ("quern-warm-unprivileged-" + std::to_string(::getpid()));
  fs::copy_file("/proc/self/exe", copy, fs::copy_options::overwrite_existing);
  fs::permissions(copy, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec);
  sdk::SpawnSpec spec;
  spec.argv = {
      copy.string(),
      "--gtest_filter=WarmSandbox.AJobIsPidOne*:WarmSandbox.AJobSeesOnly*:WarmSandbox.WhatAJobLeaves*:"
      "WarmSandbox.NothingAJob*:WarmSandbox.AJobsDirectoryMadeAnew*:WarmSandbox.AStopSignal*"};
  spec.env = {"PATH=/usr/bin:/bin", "HOME=/tmp", "TMPDIR=" + fs::temp_directory_path().string(),
              std::string(QUERN_SETUP_ENV "=user=65534:65534")};
  spec.workdir = fs::temp_directory_path().string();
  const Ran r = run_spec(spec);
  fs::remove(copy);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("[  PASSED  ] 6 tests."), std::string::npos) << r.output;
}

// systemd's NoNewPrivileges=yes (deploy/systemd, the worker's unit): the
// sandbox, warm and cold, must work for a worker started with no_new_privs.
TEST(WarmSandboxNoNewPrivileges, UnderNoNewPrivsTheSameTestsPass) {
  sandbox::Policy policy;
  policy.mode = sandbox::Mode::bwrap;
  if (!sandbox::probe(policy)) GTEST_SKIP() << "no bubblewrap sandbox on this machine";
  if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "no setpriv (util-linux)";
  sdk::SpawnSpec spec;
  spec.argv = {"/usr/bin/setpriv", "--no-new-privs", "/proc/self/exe", "--gtest_filter=WarmSandbox.*"};
  spec.argv[2] = fs::read_symlink("/proc/self/exe").string();
  spec.env = {"PATH=/usr/bin:/bin", "TMPDIR=" + fs::temp_directory_path().string()};
  spec.workdir = fs::temp_directory_path().string();
  const Ran r = run_spec(spec);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("[  PASSED  ] 7 tests."), std::string::npos) << r.output;
}

}  // namespace
}  // namespace quern
