// The agent's job source (host/agent/agent_source.h) against a real server
// and real PostgreSQL: what it learns at registration, and a job's last
// output sent with its completion in one request.
#include "host/agent/agent_source.h"

#include <gtest/gtest.h>

#include "tests/server/agent_api_fixture.h"

namespace quern {
namespace {

using AgentSourceTest = testing::AgentApiTest;

TEST_F(AgentSourceTest, LogsGoWithTheCompletionOnceTheServerSaysItTakesThem) {
  agent::AgentJobSource source(base_, agent_);
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
