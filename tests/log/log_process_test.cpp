// The real `quern` binary's --log-level and --log-format: a worker started
// with JSON lines at debug writes nothing but log records, each one JSON;
// a bad value exits 2 naming it, whether it comes from the flag (before or
// after the subcommand) or from QUERN_LOG_LEVEL.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::ChildProcess;

class LogProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("quern_log_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    ::unsetenv("QUERN_LOG_LEVEL");
    fs::remove_all(dir_);
  }

  // Runs `quern ARGS...` to its end; returns the exit status, output in out_.
  int quern(std::vector<std::string> args) {
    args.insert(args.begin(), testing::quern_binary());
    auto done = testing::run_to_end(std::move(args), (dir_ / "out.log").string());
    out_ = std::move(done.output);
    return done.status;
  }

  fs::path dir_;
  std::string out_;
};

TEST_F(LogProcess, AJsonWorkerWritesOnlyJsonRecords) {
  // Logs without PostgreSQL: a broken file in the plugin directory that no
  // group needs is a warning, and a database that refuses connections is a
  // warning per retry.
  fs::copy_file(fs::path(testing::plugin_dir()) / "libquern_noop.so", dir_ / "libquern_noop.so");
  std::ofstream(dir_ / "libquern_broken.so") << "not a shared library\n";
  const fs::path config = dir_ / "quern.xml";
  std::ofstream(config) << "<quern>\n<plugins dir=\"" << dir_.string()
                        << "\"/>\n<workers><group name=\"g\" tags=\"noop\"/></workers>\n</quern>\n";
  const std::string url = "postgresql://127.0.0.1:" + std::to_string(testing::free_port()) + "/quern";
  ChildProcess p({testing::quern_binary(), "--log-format", "json", "--log-level", "debug", "worker",
                  "--config", config.string(), "--database-url", url, "--worker-id", "log-w"},
                 (dir_ / "worker.log").string());
  ASSERT_TRUE(testing::wait_until(
      [&] { return p.output().find("not reachable") != std::string::npos || !p.running(); }, 60s))
      << p.output();
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(30s), 1) << p.output();

  const std::string out = p.output();
  std::vector<nlohmann::json> records;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not a JSON record: " << line << "\n" << out;
    for (const char* key : {"time", "level", "component", "message"})
      EXPECT_TRUE(j.contains(key)) << key << " missing: " << line;
    records.push_back(std::move(j));
  }
  auto has = [&](const std::string& level, const std::string& text) {
    for (const auto& r : records)
      if (r["level"] == level && r["component"] == "worker" && r.value("worker", "") == "log-w" &&
          r["message"].get<std::string>().find(text) != std::string::npos)
        return true;
    return false;
  };
  EXPECT_TRUE(has("warning", "libquern_broken.so' refused")) << out;
  EXPECT_TRUE(has("warning", "the database is not reachable, retrying in")) << out;
}

TEST_F(LogProcess, ABadLevelOrFormatExitsTwoNamingTheValue) {
  EXPECT_EQ(quern({"--log-level", "nonsense", "version"}), 2) << out_;
  EXPECT_NE(out_.find("--log-level: unknown log level 'nonsense'"), std::string::npos) << out_;
  EXPECT_EQ(out_.find("plugin ABI"), std::string::npos) << out_;  // the command did not run

  // After the subcommand too.
  EXPECT_EQ(quern({"version", "--log-format", "xml"}), 2) << out_;
  EXPECT_NE(out_.find("--log-format: unknown log format 'xml'"), std::string::npos) << out_;

  // From the environment when the flag is absent; the flag wins over it.
  ::setenv("QUERN_LOG_LEVEL", "loud", 1);
  EXPECT_EQ(quern({"version"}), 2) << out_;
  EXPECT_NE(out_.find("'loud'"), std::string::npos) << out_;
  EXPECT_EQ(quern({"--log-level", "warning", "version"}), 0) << out_;
  EXPECT_NE(out_.find("plugin ABI"), std::string::npos) << out_;
}

}  // namespace
}  // namespace quern
