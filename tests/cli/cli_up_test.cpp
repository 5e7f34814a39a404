// `quern up` as a user runs it, through the real binary with its embedded
// PostgreSQL: a third-party plugin that segfaults fails only its own job
// while the API keeps answering and the next jobs run; and a `quern up`
// killed outright leaves its cluster to be adopted by the next start, which
// stops it cleanly at its own SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "tests/http/http_test_client.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::wait_until;

class QuernUp : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("QUERN_DATABASE_URL");  // the embedded cluster, whatever the caller's environment says
    ::unsetenv("QUERN_CONFIG");
    dir_ = fs::temp_directory_path() /
           ("quern_cli_up_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // As root the cluster runs as the postgres user, which must reach its directory.
    ::chmod(dir_.c_str(), 0755);
    config_ = dir_ / "quern.xml";
    std::ofstream(config_)
        << "<quern>\n"
        << "  <database data-dir='" << (dir_ / "data").string() << "'/>\n"
        << "  <plugins dir='" << testing::plugin_dir() << "'>\n"
        << "    <plugin path='" << QUERN_BROKEN_PLUGIN << "'/>\n"
        << "  </plugins>\n"
        << "  <queue poll-interval='100ms' heartbeat-interval='200ms' kill-grace='500ms'/>\n"
        << "  <server listen='127.0.0.1:0'/>\n"
        << "  <workers><group name='w' slots='2' tags='bash,broken' plugins='bash,broken'/>"
        << "</workers>\n"
        << "</quern>\n";
  }
  void TearDown() override {
    up_.reset();  // SIGKILL if still running
    // A cluster a failed test left running: immediate shutdown (SIGQUIT to the postmaster).
    std::ifstream pid_file(dir_ / "data" / "postgres" / "postmaster.pid");
    pid_t postmaster = 0;
    if (pid_file >> postmaster && postmaster > 0) {
      ::kill(postmaster, SIGQUIT);
      wait_until([&] { return ::kill(postmaster, 0) != 0; }, 10s);
    }
    fs::remove_all(dir_);
  }

  // Starts `quern up` and waits for "ready"; returns the API's base URL.
  std::string start_up(const std::string& log_name) {
    up_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{testing::quern_binary(), "up", "--config", config_.string()},
        (dir_ / log_name).string());
    EXPECT_TRUE(wait_until(
        [&] { return up_->output().find(" up: ready") != std::string::npos || !up_->running(); }, 120s))
        << up_->output();
    std::smatch m;
    const std::string out = up_->output();
    if (!std::regex_search(out, m, std::regex("API on (http://127\\.0\\.0\\.1:[0-9]+)"))) {
      ADD_FAILURE() << "no API address in:\n" << out;
      return "";
    }
    return m[1];
  }

  // `quern run` through the same config (it finds the embedded cluster's URL).
  int run(const std::string& language, const std::string& code, std::string& out) {
    ChildProcess p({testing::quern_binary(), "run", "--config", config_.string(), "--language", language,
                    "--code", code},
                   (dir_ / "run.log").string());
    const int rc = p.wait_exit(60s);
    out = p.output();
    return rc;
  }

  fs::path dir_, config_;
  std::unique_ptr<ChildProcess> up_;
};

TEST_F(QuernUp, ASegfaultingPluginFailsOnlyItsJobWhileTheApiServes) {
  const std::string base = start_up("up.log");
  ASSERT_FALSE(base.empty());
  // Each group says how its jobs are confined (the default: the sandbox).
  EXPECT_NE(up_->output().find(": worker group w (2 slots, tags bash,broken, sandbox bwrap (network host))"),
            std::string::npos)
      << up_->output();
  std::string out;
  EXPECT_NE(run("broken", "segv", out), 0) << out;
  EXPECT_NE(out.find("plugin 'broken' crashed with SIGSEGV while running job 1 (attempt 1)"),
            std::string::npos)
      << out;
  EXPECT_TRUE(up_->running()) << up_->output();
  EXPECT_EQ(testing::http_request("GET", base + "/healthz").status, 200);
  // The slot comes back, and the other plugin was never affected.
  EXPECT_EQ(run("broken", "fine", out), 0) << out;
  EXPECT_EQ(run("bash", "echo '{\"ok\": true}'", out), 0) << out;

  // `quern workers`: the worker's line with its heartbeat's telemetry (every
  // 200 ms here): version, occupancy, memory, and both plugins healthy once
  // each slot that ran them asked.
  std::smatch token;
  const std::string up_out = up_->output();
  ASSERT_TRUE(std::regex_search(up_out, token, std::regex("qrn_tok_[0-9a-f_]+"))) << up_out;
  std::string table;
  EXPECT_TRUE(wait_until(
      [&] {
        ChildProcess w({testing::quern_binary(), "workers", "--server", base, "--token", token[0]},
                       (dir_ / "workers.log").string());
        w.wait_exit(30s);
        table = w.output();
        return std::regex_search(
                   table, std::regex(R"(\bworker\s+w\s+2\s+0\s+\d\.\d\d/\d\.\d\d/\d\.\d\d\s+[0-9.]+ MiB)")) &&
               table.find("2 ok") != std::string::npos;
      },
      20s))
      << table;
  EXPECT_NE(table.find("OCC 15s/5m/30m"), std::string::npos) << table;
  EXPECT_EQ(table.find("LATE"), std::string::npos) << table;

  up_->signal(SIGTERM);
  EXPECT_EQ(up_->wait_exit(60s), 0) << up_->output();
}

TEST_F(QuernUp, AKilledQuernUpLeavesItsClusterToBeAdoptedAndStopped) {
  ASSERT_FALSE(start_up("first.log").empty());
  const fs::path pid_file = dir_ / "data" / "postgres" / "postmaster.pid";
  ASSERT_TRUE(fs::exists(pid_file));
  up_->signal(SIGKILL);
  up_->wait_exit(10s);
  EXPECT_TRUE(fs::exists(pid_file));  // the cluster outlives it
  ASSERT_FALSE(start_up("second.log").empty());
  std::string out;
  EXPECT_EQ(run("bash", "echo '{\"n\": 1}'", out), 0) << out;
  up_->signal(SIGTERM);
  EXPECT_EQ(up_->wait_exit(60s), 0) << up_->output();
  EXPECT_FALSE(fs::exists(pid_file)) << "the adopted cluster was left running";
}

}  // namespace
}  // namespace quern
