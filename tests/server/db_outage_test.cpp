// The database goes away and comes back: a private embedded cluster (not
// the shared test cluster, which other tests use at the same time) is
// restarted with `pg_ctl restart -m immediate` under a live server, and a
// `quern worker` is started before its database exists. Nothing answers 503
// without Retry-After, stale pooled connections are replaced before they
// fail a request, and the worker waits for the database instead of exiting.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "host/auth/tokens.h"
#include "host/pg/embedded_postgres.h"
#include "host/server/server.h"
#include "tests/http/http_test_client.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using testing::http_request;
using testing::wait_until;

class DbOutageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = std::filesystem::path(QUERN_BUILD_DIR) / ("outage-" + name_);
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    if (pg_) pg_->stop();
    pg_.reset();
    std::filesystem::remove_all(dir_);
  }
  pg::EmbeddedOptions cluster() {
    pg::EmbeddedOptions o;
    o.data_dir = dir_ / "pgdata";
    o.database = "quern";
    o.port = 5433;
    o.settings = {"fsync = off", "max_connections = 60"};
    return o;
  }
  void start_cluster() {
    auto pg = pg::EmbeddedPostgres::start(cluster());
    ASSERT_TRUE(pg) << pg.message();
    pg_ = std::move(pg).value();
  }

  std::string name_;
  std::filesystem::path dir_;
  std::unique_ptr<pg::EmbeddedPostgres> pg_;
};

TEST_F(DbOutageTest, AfterAnImmediateRestartNoRequestAnswers503WithoutRetryAfter) {
  start_cluster();
  const std::string url = pg_->url();
  {
    auto q = queue::Queue::connect(url);
    ASSERT_TRUE(q) << q.message();
    ASSERT_TRUE((*q)->migrate());
  }
  server::ServerOptions o;
  o.port = 0;
  o.api.database_url = url;
  o.api.db_connections = 8;
  o.limits.handler_threads = 16;
  server::Server server(o);
  ASSERT_TRUE(server.start());
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  std::string token;
  {
    auto store = auth::TokenStore::connect(url);
    ASSERT_TRUE(store);
    auth::NewToken t;
    t.role = auth::Role::admin;
    token = (*store)->create(t)->token;
  }
  const std::map<std::string, std::string> auth = {{"Authorization", "Bearer " + token}};
  auto get = [&](const std::string& path) { return http_request("GET", base + path, "", auth, 30s); };
  // Fill the pool: several connections, all idle afterwards.
  {
    std::vector<std::thread> burst;
    for (int i = 0; i < 16; ++i) burst.emplace_back([&] { EXPECT_EQ(get("/api/queue").status, 200); });
    for (auto& t : burst) t.join();
  }

  // Requests keep coming while the database restarts.
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, without_retry_after{0}, errors{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 3; ++c) {
    clients.emplace_back([&, c] {
      while (!stop) {
        auto r = get(c % 2 ? "/api/jobs" : "/readyz");
        answered++;
        if (r.status == 503 && !r.headers.count("retry-after")) without_retry_after++;
        if (r.status != 200 && r.status != 503 && errors++ == 0)
          ADD_FAILURE() << "during the restart: " << r.status << " " << r.body;
      }
    });
  }
  ASSERT_TRUE(pg_->restart("immediate"));
  // pg_ctl -w returned: the database accepts connections. Every pooled
  // connection is stale; none of them may fail a request now.
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_GT(answered.load(), 0);
  EXPECT_EQ(without_retry_after.load(), 0);
  EXPECT_EQ(errors.load(), 0);
  std::vector<std::thread> after;
  std::atomic<int> not_ok{0};
  for (int i = 0; i < 16; ++i)
    after.emplace_back([&] {
      auto r = get("/api/queue");
      if (r.status != 200) {
        not_ok++;
        ADD_FAILURE() << r.status << " " << r.body;
      }
    });
  for (auto& t : after) t.join();
  EXPECT_EQ(not_ok.load(), 0);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(get("/api/jobs").status, 200);
  server.stop();
}

TEST_F(DbOutageTest, AWorkerStartedBeforeItsDatabaseWaitsForIt) {
  // The cluster exists (so its URL is known) but is stopped.
  start_cluster();
  const std::string url = pg_->url();
  {
    auto q = queue::Queue::connect(url);
    ASSERT_TRUE(q);
    ASSERT_TRUE((*q)->migrate());
  }
  ASSERT_TRUE(pg_->stop());
  pg_.reset();
  const std::string config = (dir_ / "quern.xml").string();
  {
    std::ofstream out(config);
    out << "<quern><plugins dir=\"" << testing::plugin_dir()
        << "\"/><queue poll-interval=\"200ms\" heartbeat-interval=\"250ms\"/></quern>\n";
  }
  testing::ChildProcess worker({testing::quern_binary(), "worker", "--config", config, "--database-url", url,
                                "--tags", "bash", "--slots", "1"},
                               (dir_ / "worker.log").string());
  ASSERT_TRUE(wait_until([&] { return worker.output().find("retrying in") != std::string::npos; }, 20s))
      << worker.output();
  EXPECT_TRUE(worker.running()) << worker.output();
  start_cluster();
  auto q = queue::Queue::connect(url);
  ASSERT_TRUE(q) << q.message();
  queue::NewJob j;
  j.tag = j.language = "bash";
  j.payload["code"] = "echo '{\"up\": true}'";
  auto id = (*q)->push(j);
  ASSERT_TRUE(id);
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = (*q)->get_job(*id);
        return r && *r && (*r)->state == "success";
      },
      30s))
      << worker.output() << [&] {
           auto r = (*q)->get_job(*id);
           return r && *r ? (*r)->state + ": " + (*r)->error : std::string("?");
         }();
  worker.signal(SIGTERM);
  EXPECT_EQ(worker.wait_exit(20s), 0) << worker.output();
}

}  // namespace
}  // namespace quern
