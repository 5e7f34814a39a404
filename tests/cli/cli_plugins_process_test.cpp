// The loader as a user meets it, through the real `quern` binary:
// `quern plugins --check FILE [--config F]` (what it prints, its exit status,
// the plugin's settings from the config), and a `quern worker` that starts
// despite a broken file in its plugin directory that no group needs, and
// refuses to start when its group lists that plugin.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "host/queue/queue.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::wait_until;

const fs::path kFixtures = QUERN_FIXTURE_DIR;
const fs::path kSdkFixtures = QUERN_SDK_FIXTURE_DIR;

class PluginsCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = fs::temp_directory_path() / ("quern_cli_process_" + name_);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write_config(const std::string& body) {
    const fs::path file = dir_ / "quern.xml";
    std::ofstream(file) << "<quern>\n" << body << "\n</quern>\n";
    return file;
  }
  // Runs `quern ARGS...` to its end; returns the exit status, output in out_.
  int quern(std::vector<std::string> args) {
    args.insert(args.begin(), testing::quern_binary());
    auto done = testing::run_to_end(std::move(args), (dir_ / "out.log").string());
    out_ = std::move(done.output);
    return done.status;
  }

  std::string name_, out_;
  fs::path dir_;
};

TEST_F(PluginsCommand, CheckPrintsWhatItFoundAndSaysOk) {
  const fs::path so = kSdkFixtures / "libquern_c_echo.so";
  ASSERT_EQ(quern({"plugins", "--check", so.string(), "--config", write_config("").string()}), 0) << out_;
  for (const std::string& line :
       {"file          " + so.string(), std::string("name          c_echo"),
        std::string("version       1.0.0"), std::string("ABI           1.2 (this host: 1.2)"),
        std::string("languages     c_echo"), std::string("tags          c_echo"),
        std::string("capabilities  spawns-processes"), std::string("create        ok"),
        std::string("resources     none reported"), std::string("health        ok"), std::string("OK")})
    EXPECT_NE(out_.find(line + "\n"), std::string::npos) << line << "\n" << out_;
  EXPECT_NE(out_.find("config        {} (no <plugin> entry for it in " + (dir_ / "quern.xml").string() + ")"),
            std::string::npos)
      << out_;
}

TEST_F(PluginsCommand, CheckReportsResourcesAndFailsOnHealthWithTheReason) {
  // The 1.1 fixture reports a GPU and is never healthy (its health says how often it was asked).
  ASSERT_EQ(quern({"plugins", "--check", (kSdkFixtures / "libquern_abi_1_1.so").string(), "--config",
                   write_config("").string()}),
            1)
      << out_;
  EXPECT_NE(out_.find("ABI           1.1 (this host: 1.2)\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("resources     1 GPU (0: 1024 MB)\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("health        FAILED\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("quern plugins --check: FAILED: plugin 'abi_1_1': unhealthy: calls=1"),
            std::string::npos)
      << out_;
  EXPECT_EQ(out_.find("\nOK\n"), std::string::npos) << out_;
}

TEST_F(PluginsCommand, CheckCreatesWithTheSettingsOfTheConfig) {
  // The 1.0 fixture refuses a config that says "refuse": the check must hand it its <plugin> settings.
  const fs::path so = kSdkFixtures / "libquern_abi_1_0.so";
  const fs::path config =
      write_config("<plugins dir=\"" + dir_.string() + "\"><plugin path=\"" + so.string() +
                   "\"><setting name=\"refuse\" value=\"yes\"/></plugin></plugins>");
  ASSERT_EQ(quern({"plugins", "--check", so.string(), "--config", config.string()}), 1) << out_;
  EXPECT_NE(out_.find("config        {\"refuse\":\"yes\"} (<plugin path=\"" + so.string() + "\"> in " +
                      config.string() + ")"),
            std::string::npos)
      << out_;
  EXPECT_NE(out_.find("create        FAILED\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("create failed: abi_1_0 fixture refuses this config"), std::string::npos) << out_;
  // Without that entry it creates and is healthy.
  ASSERT_EQ(quern({"plugins", "--check", so.string(), "--config", write_config("").string()}), 0) << out_;
}

TEST_F(PluginsCommand, CheckFailsOnAFileThatDoesNotLoadAndNotesNames) {
  ASSERT_EQ(
      quern({"plugins", "--check", (kFixtures / "bad.so").string(), "--config", write_config("").string()}),
      1)
      << out_;
  EXPECT_NE(out_.find("load          FAILED\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("FAILED: plugin '" + (kFixtures / "bad.so").string() + "' refused: not loadable: "),
            std::string::npos)
      << out_;
  // Loads, but its file name would keep it out of a plugin directory.
  ASSERT_EQ(quern({"plugins", "--check", (kFixtures / "c_good.so").string(), "--config",
                   write_config("").string()}),
            0)
      << out_;
  EXPECT_NE(out_.find("note: a plugin directory loads only libquern_*.so files"), std::string::npos) << out_;
  // Named like a plugin file, but for another plugin name than its own.
  fs::copy_file(kFixtures / "c_good.so", dir_ / "libquern_cgood.so");
  ASSERT_EQ(quern({"plugins", "--check", (dir_ / "libquern_cgood.so").string(), "--config",
                   write_config("").string()}),
            0)
      << out_;
  EXPECT_NE(
      out_.find("note: the file stands for plugin 'cgood' in a group's plugins list, but the plugin calls "
                "itself 'fixture_c': name the file libquern_fixture_c.so"),
      std::string::npos)
      << out_;
}

TEST_F(PluginsCommand, ListingNamesFilesThatAreNoPlugins) {
  fs::copy_file(kFixtures / "c_good.so", dir_ / "libquern_fixture_c.so");
  fs::copy_file(kFixtures / "fixture_good.so", dir_ / "fixture_good.so");
  ASSERT_EQ(quern({"plugins", "--plugin-dir", dir_.string(), "--config", write_config("").string()}), 0)
      << out_;
  EXPECT_NE(out_.find("fixture_c"), std::string::npos) << out_;
  EXPECT_NE(out_.find("NOT PLUGINS (a plugin directory loads only libquern_*.so)\n" +
                      (dir_ / "fixture_good.so").string() + "\n"),
            std::string::npos)
      << out_;
}

TEST_F(PluginsCommand, ListingSaysHowEachGroupConfinesItsJobs) {
  const fs::path config = write_config(
      "<workers><group name='safe' tags='bash' plugins='bash' memory-max='256M' pids-max='100' "
      "network='none'/><group name='open' tags='sql' plugins='sql' sandbox='none' in-process='none'/>"
      "</workers>");
  ASSERT_EQ(quern({"plugins", "--config", config.string()}), 0) << out_;
  const std::string as_user = ::geteuid() == 0 ? ", jobs as uid 65534" : "";
  EXPECT_NE(
      out_.find(
          "\nGROUPS\nsafe         in-process bash,python,sql,http,gpu,noop; jobs: bwrap (network none), "
          "memory-max 256 MiB, pids-max 100" +
          as_user + "\nopen         in-process none; jobs: none\n"),
      std::string::npos)
      << out_;
}

// `quern worker` on a plugin directory with a broken file.
class WorkerStart : public PluginsCommand {
 protected:
  void SetUp() override {
    PluginsCommand::SetUp();
    fs::copy_file(fs::path(testing::plugin_dir()) / "libquern_noop.so", dir_ / "libquern_noop.so");
    fs::copy_file(kFixtures / "bad.so", dir_ / "libquern_broken.so");
    url_ = testing::fresh_database_url(name_);
  }
  std::unique_ptr<ChildProcess> worker(const std::string& group) {
    const fs::path config =
        write_config("<plugins dir=\"" + dir_.string() + "\"/>\n<queue poll-interval=\"100ms\"/>\n<workers>" +
                     group + "</workers>");
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{testing::quern_binary(), "worker", "--config", config.string(), "--group",
                                 "g", "--database-url", url_, "--worker-id",
                                 "start-" + name_},  // per test: ids lock a shared folder
        (dir_ / "worker.log").string());
  }
  std::string url_;
};

TEST_F(WorkerStart, ABrokenFileNoGroupNeedsIsAWarningAndJobsRun) {
  auto w = worker(R"(<group name="g" tags="noop"/>)");
  auto q = queue::Queue::connect(url_);
  ASSERT_TRUE(q) << q.message();
  queue::NewJob job;
  job.language = "noop";
  job.tag = "noop";
  job.payload["args"] = {{"result", "ran"}};
  auto id = (*q)->push(job);
  ASSERT_TRUE(id) << id.message();
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = (*q)->get_job(*id);
        return r && *r && (*r)->state == "success";
      },
      30s))
      << w->output();
  EXPECT_NE(w->output().find(" warning worker start-" + name_ + ": plugin '" +
                             (dir_ / "libquern_broken.so").string() + "' refused: not loadable"),
            std::string::npos)
      << w->output();
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait_exit(30s), 0) << w->output();
}

TEST_F(WorkerStart, ABrokenFileItsGroupListsStopsTheStart) {
  auto w = worker(R"(<group name="g" tags="noop" plugins="noop,broken"/>)");
  EXPECT_EQ(w->wait_exit(30s), 2) << w->output();
  EXPECT_NE(w->output().find("(needed: worker group 'g' lists plugin 'broken')"), std::string::npos)
      << w->output();
}

}  // namespace
}  // namespace quern
