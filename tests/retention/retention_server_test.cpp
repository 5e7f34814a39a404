// Retention as users meet it: the server's duty prunes and reports through
// ServerOptions::on_pruned; a pruned job that a schedule still names reads
// cleanly through the API and `quern schedule list`; `quern prune` and
// `quern prune --dry-run` as real processes. Real server, HTTP, PostgreSQL.
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "host/auth/tokens.h"
#include "host/server/server.h"
#include "tests/http/http_test_client.h"
#include "tests/retention/retention_test_util.h"
#include "tests/support/child_process.h"

namespace quern::retention::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr std::chrono::hours kDay{24};

class RetentionServerTest : public RetentionFixture {
 protected:
  void TearDown() override {
    if (server_) server_->stop();
    for (const auto& f : files_) std::filesystem::remove(f);
  }

  // A server in this process pruning at every duties round (every 250 ms) with completed-jobs="30d".
  void start_server() {
    server::ServerOptions o;
    o.port = 0;
    o.api.database_url = url_;
    o.run_scheduler = false;
    o.lease_timeout = 1s;
    o.retention.completed_jobs = 30 * kDay;
    o.prune_interval = 20ms;
    o.on_pruned = [this](const PruneReport& r) {
      std::lock_guard lock(mu_);
      pruned_jobs_ += r.jobs;
      cv_.notify_all();
    };
    server_ = std::make_unique<server::Server>(o);
    ASSERT_TRUE(server_->start());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    auto tokens = must(auth::TokenStore::connect(url_));
    auth::NewToken t;
    t.role = auth::Role::admin;
    admin_ = must(tokens->create(t)).token;
  }
  // Waits (on the hook, not on a clock) until the server has pruned `jobs` jobs.
  bool wait_pruned(int64_t jobs) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 30s, [&] { return pruned_jobs_ >= jobs; });
  }

  testing::HttpResult get(const std::string& path) {
    return testing::http_request("GET", base_ + path, "", {{"Authorization", "Bearer " + admin_}});
  }
  static std::string message(const testing::HttpResult& r) {
    auto j = Json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"].value("message", "") : r.body;
  }

  // Runs `quern ARGS...`; returns its exit status and output.
  std::pair<int, std::string> quern(std::vector<std::string> args) {
    args.insert(args.begin(), testing::quern_binary());
    const auto log = temp_file("log");
    testing::ChildProcess p(args, log);
    const int code = p.wait_exit(60s);
    return {code, p.output()};
  }
  std::string temp_file(const std::string& ext) {
    files_.push_back(std::filesystem::temp_directory_path() /
                     (queue::test::test_name() + "-" + std::to_string(getpid()) + "-" +
                      std::to_string(files_.size()) + "." + ext));
    return files_.back();
  }
  std::string config_file(const std::string& xml) {
    const auto path = temp_file("xml");
    std::ofstream(path) << xml;
    return path;
  }

  std::unique_ptr<server::Server> server_;
  std::string base_, admin_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t pruned_jobs_ = 0;  // guarded by mu_
  std::vector<std::string> files_;
};

TEST_F(RetentionServerTest, ServerPrunesPeriodicallyAndReportsThroughTheHook) {
  const int64_t old_job = completed(40 * kDay, {.logs = 2});
  const int64_t recent = completed(1 * kDay);
  const int64_t busy = running({.logs = 1, .logs_age = 90 * kDay});
  ASSERT_NO_FATAL_FAILURE(start_server());
  ASSERT_TRUE(wait_pruned(1));
  EXPECT_EQ(count_of("completed_jobs", old_job), 0);
  EXPECT_EQ(count_of("job_logs", old_job), 0);
  EXPECT_EQ(count_of("completed_jobs", recent), 1);
  EXPECT_EQ(count_of("queue", busy), 1);
  EXPECT_EQ(count_of("job_logs", busy), 1);

  // Later rounds keep going: a job that ages past the cut-off goes too.
  sql("UPDATE quern.completed_jobs SET completed_at = now() - interval '31 days' WHERE id = " +
      std::to_string(recent));
  ASSERT_TRUE(wait_pruned(2));
  EXPECT_EQ(count_of("completed_jobs", recent), 0);
}

TEST_F(RetentionServerTest, APrunedJobThatAScheduleNamesReadsCleanly) {
  const int64_t gone = completed(40 * kDay, {.logs = 2});
  sql("INSERT INTO quern.schedules (name, cron, script_path, next_fire_at, last_fired_at, last_job_id) "
      "VALUES ('nightly', '0 3 * * *', 'f/t/hello', now() + interval '1 day', now() - interval '40 days', " +
      std::to_string(gone) + ")");
  ASSERT_NO_FATAL_FAILURE(start_server());
  ASSERT_TRUE(wait_pruned(1));

  auto list = get("/api/schedules");
  ASSERT_EQ(list.status, 200) << list.body;
  auto schedules = Json::parse(list.body);
  ASSERT_TRUE(schedules.contains("schedules")) << list.body;
  ASSERT_EQ(schedules["schedules"].size(), 1u) << list.body;
  EXPECT_EQ(schedules["schedules"][0]["last_job_id"], gone);
  EXPECT_EQ(get("/api/schedules/nightly").status, 200);

  const std::string job_path = "/api/jobs/" + std::to_string(gone);
  for (const std::string& path : {job_path, job_path + "/logs"}) {
    auto job = get(path);
    EXPECT_EQ(job.status, 404) << path << ": " << job.body;
    EXPECT_NE(message(job).find("pruned after the retention period"), std::string::npos) << job.body;
  }

  auto [code, out] = quern({"schedule", "list", "--server", base_, "--token", admin_, "--json"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"last_job_id\": " + std::to_string(gone)), std::string::npos) << out;
}

TEST_F(RetentionServerTest, PruneCommandDryRunThenReal) {
  for (int i = 0; i < 2; ++i) completed(40 * kDay, {.logs = 3, .attempts = 1});
  completed(20 * kDay, {.logs = 2});
  const int64_t busy = running({.logs = 1, .logs_age = 90 * kDay});
  const std::string cfg =
      config_file("<quern>\n  <retention completed-jobs=\"30d\" logs=\"14d\"/>\n</quern>\n");
  const int64_t logs_before = count("job_logs");

  auto [code, out] = quern({"prune", "--dry-run", "--config", cfg, "--database-url", url_});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("would delete 2 jobs, 8 log chunks, 2 attempts"), std::string::npos) << out;
  EXPECT_NE(out.find("completed before 20"), std::string::npos) << out;  // the cut-off, e.g. 2025-...Z
  EXPECT_EQ(count("completed_jobs"), 3);
  EXPECT_EQ(count("job_logs"), logs_before);

  std::tie(code, out) = quern({"prune", "--config", cfg, "--database-url", url_});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("deleted 2 jobs, 8 log chunks, 2 attempts"), std::string::npos) << out;
  EXPECT_EQ(count("completed_jobs"), 1);
  EXPECT_EQ(count("job_logs"), 1);
  EXPECT_EQ(count_of("job_logs", busy), 1);

  std::tie(code, out) = quern({"prune", "--config", cfg, "--database-url", url_});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("deleted 0 jobs, 0 log chunks, 0 attempts"), std::string::npos) << out;
}

TEST_F(RetentionServerTest, PruneCommandFailsClearly) {
  const std::string bad = config_file("<quern>\n  <retention logs=\"0\"/>\n</quern>\n");
  auto [code, out] = quern({"prune", "--dry-run", "--config", bad, "--database-url", url_});
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find(bad + ":2: <retention logs=\"0\">: must be at least 1s"), std::string::npos) << out;

  const std::string cfg = config_file("<quern><retention/></quern>\n");
  std::tie(code, out) =
      quern({"prune", "--config", cfg, "--database-url", "postgresql://127.0.0.1:1/none?connect_timeout=2"});
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("quern prune: "), std::string::npos) << out;
}

}  // namespace
}  // namespace quern::retention::test
