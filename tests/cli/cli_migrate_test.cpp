// Schema versions as an operator meets them, through the real `quern`
// binary: `quern migrate` (and --check) on an empty, a current and a newer
// database, and a `quern worker` started before the schema exists, which
// says what it found, what it needs and the command that fixes it, waits,
// and starts once `quern migrate` ran; one started on a newer schema is
// refused.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "host/queue/migrations.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::wait_until;

class SchemaVersions : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = fs::temp_directory_path() / ("quern_cli_migrate_" + name_);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    url_ = testing::empty_database_url(name_);
    config_ = dir_ / "quern.xml";
    std::ofstream(config_) << "<quern>\n  <plugins dir=\"" << testing::plugin_dir()
                           << "\"/>\n  <queue poll-interval=\"100ms\"/>\n"
                           << "  <workers><group name=\"g\" tags=\"noop\" plugins=\"noop\" sandbox=\"none\"/>"
                           << "</workers>\n</quern>\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `quern ARGS... --database-url URL` to its end: its exit status, output in out_.
  int quern(std::vector<std::string> args) {
    args.insert(args.begin(), testing::quern_binary());
    args.insert(args.end(), {"--config", config_.string(), "--database-url", url_});
    auto done = testing::run_to_end(std::move(args), (dir_ / "out.log").string());
    out_ = std::move(done.output);
    return done.status;
  }
  // Unique per test: a worker id holds a lock in the machine's shared jobs
  // directory, and ctest runs this file's tests in parallel.
  std::string worker_id() const { return "schema-" + name_; }
  std::unique_ptr<ChildProcess> worker() {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{testing::quern_binary(), "worker", "--config", config_.string(), "--group",
                                 "g", "--database-url", url_, "--worker-id", worker_id()},
        (dir_ / "worker.log").string());
  }

  std::string name_, url_, out_;
  fs::path dir_, config_;
};

TEST_F(SchemaVersions, MigrateBringsAnEmptyDatabaseToThisVersionAndCheckSaysWhereItStands) {
  const std::string latest = std::to_string(queue::latest_schema_version());
  EXPECT_EQ(quern({"migrate", "--check"}), 4) << out_;
  EXPECT_NE(out_.find("the database has no Quern schema; this binary needs version " + latest +
                      ": run `quern migrate`"),
            std::string::npos)
      << out_;
  ASSERT_EQ(quern({"migrate"}), 0) << out_;
  EXPECT_NE(out_.find("quern migrate: schema version " + latest + " (was no Quern schema)"),
            std::string::npos)
      << out_;
  EXPECT_EQ(quern({"migrate"}), 0) << out_;
  EXPECT_NE(out_.find("at schema version " + latest + " (current)"), std::string::npos) << out_;
  EXPECT_EQ(quern({"migrate", "--check"}), 0) << out_;
}

TEST_F(SchemaVersions, AWorkerWaitsForTheSchemaSayingWhatFixesItAndStartsOnceMigrated) {
  auto w = worker();
  const std::string latest = std::to_string(queue::latest_schema_version());
  ASSERT_TRUE(wait_until([&] { return w->output().find("has no Quern schema") != std::string::npos; }, 30s))
      << w->output();
  const std::string out = w->output();
  EXPECT_NE(
      out.find("the database has no Quern schema; this worker needs schema version " + latest +
               ": run `quern migrate` against this database (or start `quern server`, which migrates at "
               "start); waiting for it"),
      std::string::npos)
      << out;
  EXPECT_EQ(out.find("does not exist"), std::string::npos) << "a raw SQL error reached the log:\n" << out;
  EXPECT_TRUE(w->running());
  ASSERT_EQ(quern({"migrate"}), 0) << out_;
  // The worker starts on its own and registers.
  ASSERT_TRUE(wait_until(
      [&] {
        try {
          pqxx::connection c(url_);
          pqxx::nontransaction tx(c);
          return tx.exec_params("select count(*) from quern.workers where id = $1", worker_id())[0][0]
                     .as<int>() == 1;
        } catch (const std::exception&) {
          return false;
        }
      },
      30s))
      << w->output();
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait_exit(30s), 0) << w->output();
}

TEST_F(SchemaVersions, ANewerSchemaIsRefusedByMigrateAndByAWorker) {
  ASSERT_EQ(quern({"migrate"}), 0) << out_;
  const int newer = queue::latest_schema_version() + 1;
  {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    tx.exec_params("insert into quern.schema_migrations (version, name) values ($1, 'from the future')",
                   newer);
    tx.commit();
  }
  EXPECT_EQ(quern({"migrate"}), 3) << out_;
  EXPECT_NE(
      out_.find("the database has schema version " + std::to_string(newer) + ", newer than this binary's"),
      std::string::npos)
      << out_;
  auto w = worker();
  EXPECT_EQ(w->wait_exit(30s), 1) << w->output();
  EXPECT_NE(w->output().find("the database's Quern schema is version " + std::to_string(newer) +
                             ", newer than this worker's " + std::to_string(newer - 1)),
            std::string::npos)
      << w->output();
  EXPECT_NE(w->output().find("upgrade this worker"), std::string::npos) << w->output();
}

}  // namespace
}  // namespace quern
