// Agents' long polls (POST /api/agent/claim with a wait) against a real
// server and real PostgreSQL: far more waiting polls than handler threads
// and database connections, a pushed job claimed by exactly one of them at
// once, clients that leave, and a server stopped with polls parked.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <vector>

#include "tests/http/http_test_client.h"
#include "tests/http/raw_connection.h"
#include "tests/server/agent_api_fixture.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::http_request;
using testing::RawConnection;
using testing::wait_until;
using Clock = std::chrono::steady_clock;

class AgentLongPollTest : public testing::AgentApiTest {
 protected:
  std::string claim_request(const std::string& token, const std::string& worker_id, int wait_ms) const {
    const std::string body = json{{"worker_id", worker_id}, {"slots", 1}, {"wait_ms", wait_ms}}.dump();
    return "POST /api/agent/claim HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }

  // n agents, each with one claim sent (a RawConnection each: no thread per poll here either).
  std::vector<std::unique_ptr<RawConnection>> start_polls(int n, int wait_ms, const std::string& prefix,
                                                          const std::string& token = "") {
    std::vector<std::unique_ptr<RawConnection>> conns;
    for (int i = 0; i < n; ++i) {
      conns.push_back(std::make_unique<RawConnection>(server_->port()));
      EXPECT_TRUE(conns.back()->is_open());
      EXPECT_TRUE(conns.back()->send_all(
          claim_request(token.empty() ? agent_ : token, prefix + std::to_string(i), wait_ms), 5s));
    }
    return conns;
  }

  int64_t push_job() {
    queue::NewJob j;
    j.tag = "edge";
    j.language = "bash";
    j.payload = {{"code", "true"}};
    auto id = queue_->push(j);
    EXPECT_TRUE(id) << id.message();
    return id ? *id : 0;
  }

  // Plain requests answer promptly (a handler thread and a connection are free).
  void expect_responsive() {
    auto t0 = Clock::now();
    auto h = http_request("GET", base_ + "/healthz", "", {}, 10s);
    EXPECT_EQ(h.status, 200) << h.error << h.body;
    auto q = http_request("GET", base_ + "/api/queue", "", {{"Authorization", "Bearer " + admin_}}, 10s);
    EXPECT_EQ(q.status, 200) << q.error << q.body;
    EXPECT_LT(Clock::now() - t0, 2s);
  }
};

// (a) 64 polls on 4 handler threads and 4 connections, and the server still
// answers; (b) a job pushed meanwhile goes to exactly one poll, at once;
// the others answer {"jobs": []} at their deadline.
TEST_F(AgentLongPollTest, ManyPollsWaitWithoutThreadsAndAJobGoesToExactlyOne) {
  const auto started = Clock::now();
  auto conns = start_polls(64, 5000, "a");
  expect_responsive();
  expect_responsive();  // ... twice: not a lucky gap between polls
  for (auto& c : conns) EXPECT_FALSE(c->readable_now()) << "a poll answered before any job";

  const auto pushed = Clock::now();
  const int64_t id = push_job();
  RawConnection* winner = testing::first_readable(conns, 5s);
  ASSERT_NE(winner, nullptr);
  // Promptly: the notification wakes one parked poll, which passes the
  // wake-up on to two more once it claimed (tests/server/job_waiters_test.cpp
  // checks that one is woken per notification). That the notification, not
  // the 1 s re-check, resumes a deferral is tests/http/deferred_test.cpp's.
  EXPECT_LT(Clock::now() - pushed, 3s);
  auto r = winner->read_response(5s);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto jobs = json::parse(r->body)["jobs"];
  ASSERT_EQ(jobs.size(), 1u) << r->body;
  EXPECT_EQ(jobs[0]["id"], id);

  // Everyone else: an empty answer at the deadline, in today's shape.
  for (auto& c : conns) {
    if (c.get() == winner) continue;
    auto rest = c->read_response(10s);
    ASSERT_TRUE(rest);
    EXPECT_EQ(rest->status, 200) << rest->body;
    EXPECT_EQ(json::parse(rest->body), json::parse(R"({"jobs": []})"));
  }
  EXPECT_GE(Clock::now() - started, 4500ms);
}

// (c) clients that leave mid-poll cost nothing further; (d) stop with polls
// parked returns promptly and closes them.
TEST_F(AgentLongPollTest, ClientsThatLeaveAndAStopWithPollsParked) {
  // Of another tag: the job below cannot go to one of them while the
  // server has not yet noticed that it left.
  auto leaving = start_polls(32, 30000, "gone", other_agent_);
  auto staying = start_polls(8, 30000, "stay");
  expect_responsive();
  for (auto& c : leaving) c->close();
  expect_responsive();
  // A job still goes to one of the agents that stayed, at once.
  push_job();
  RawConnection* winner = nullptr;
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto& c : staying)
          if (c->readable_now()) winner = c.get();
        return winner != nullptr;
      },
      5s));
  auto r = winner->read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["jobs"].size(), 1u) << r->body;

  const auto t0 = Clock::now();
  server_->stop();
  EXPECT_LT(Clock::now() - t0, 3s);
  for (auto& c : staying) {
    if (c.get() == winner) continue;
    EXPECT_TRUE(c->wait_closed(3s));
  }
}

// A poll without a wait, or one that finds a job at once, answers without parking.
TEST_F(AgentLongPollTest, ImmediateAnswersStayAsTheyWere) {
  auto none =
      http_request("POST", base_ + "/api/agent/claim", R"({"worker_id": "x", "slots": 1, "wait_ms": 0})",
                   {{"Authorization", "Bearer " + agent_}}, 10s);
  EXPECT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(json::parse(none.body), json::parse(R"({"jobs": []})"));
  const int64_t id = push_job();
  auto t0 = Clock::now();
  auto one =
      http_request("POST", base_ + "/api/agent/claim", R"({"worker_id": "x", "slots": 1, "wait_ms": 20000})",
                   {{"Authorization", "Bearer " + agent_}}, 30s);
  EXPECT_LT(Clock::now() - t0, 2s);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(json::parse(one.body)["jobs"][0]["id"], id);
}

}  // namespace
}  // namespace quern
