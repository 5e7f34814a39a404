// The agent's job source (host/agent/agent_source.h) against a real server
// and real PostgreSQL: what it learns at registration, and a job's last
// output sent with its completion in one request.
#include "host/agent/agent_source.h"

#include <gtest/gtest.h>

#include <memory>

#include "host/auth/tokens.h"
#include "host/queue/queue.h"
#include "host/server/server.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

class AgentSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    server::ServerOptions o;
    o.port = 0;
    o.api.database_url = url_;
    o.run_scheduler = false;
    server_ = std::make_unique<server::Server>(o);
    ASSERT_TRUE(server_->start());
    auto store = auth::TokenStore::connect(url_);
    ASSERT_TRUE(store) << store.message();
    auth::NewToken t;
    t.role = auth::Role::agent;
    t.group = "edge";
    t.tags = {"edge"};
    token_ = (*store)->create(t)->token;
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q) << q.message();
    queue_ = std::move(q).value();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  std::string url_, token_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<queue::Queue> queue_;
};

TEST_F(AgentSourceTest, LogsGoWithTheCompletionOnceTheServerSaysItTakesThem) {
  agent::AgentJobSource source("http://127.0.0.1:" + std::to_string(server_->port()), token_);
  EXPECT_FALSE(source.completes_with_logs());  // not before the server said so
  queue::WorkerInfo info;
  info.id = "a1";
  info.slots = 2;
  ASSERT_TRUE(source.register_worker(info));
  EXPECT_TRUE(source.completes_with_logs());

  std::vector<queue::NewJob> jobs(3);
  for (auto& j : jobs) j.tag = j.language = "edge";
  auto ids = queue_->push_batch(jobs);
  ASSERT_TRUE(ids) << ids.message();
  auto claimed = source.claim("a1", {"edge"}, 2, {});
  ASSERT_TRUE(claimed) << claimed.message();
  ASSERT_EQ(claimed->size(), 2u);
  const int64_t done = (*claimed)[0].id, running = (*claimed)[1].id;
  const int64_t waiting = (*ids)[0] + (*ids)[1] + (*ids)[2] - done - running;

  std::vector<int64_t> retried;
  auto accepted = source.complete(
      "a1", {{done, 1, queue::JobStatus::success, nlohmann::json{{"n", 1}}, ""}}, &retried,
      {{done, 1, "last\n"}, {running, 1, "still going\n"}, {waiting, 1, "not held\n"}, {done, 7, "stale\n"}});
  ASSERT_TRUE(accepted) << accepted.message();
  EXPECT_EQ(*accepted, std::vector<int64_t>{done});
  EXPECT_EQ((*queue_->get_job(done))->state, "success");
  EXPECT_EQ(*queue_->read_logs(done), "last\n");
  EXPECT_EQ(*queue_->read_logs(running), "still going\n");
  EXPECT_EQ(*queue_->read_logs(waiting), "");  // only chunks of leases this agent holds
}

}  // namespace
}  // namespace quern
