// Agents as real processes against a real `quern server` process, which is
// restarted twice while 1,000 jobs flow: every job completes exactly once.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "host/auth/tokens.h"
#include "host/queue/queue.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::free_port;
using testing::wait_until;

class AgentProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    url_ = testing::fresh_database_url(name_);
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q);
    q_ = std::move(q).value();
    port_ = free_port();
    config_ = std::filesystem::temp_directory_path() / (name_ + ".xml");
    std::ofstream(config_)
        << "<quern>\n  <plugins dir=\"" << testing::plugin_dir() << "\"/>\n"
        << "  <queue lease-timeout=\"30s\" heartbeat-interval=\"500ms\" poll-interval=\"500ms\"/>\n"
        << "  <server listen=\"127.0.0.1:" << port_ << "\"/>\n</quern>\n";
    auto store = auth::TokenStore::connect(url_);
    ASSERT_TRUE(store);
    auth::NewToken t;
    t.role = auth::Role::agent;
    t.group = "edge";
    t.tags = {"noop"};
    auto issued = (*store)->create(t);
    ASSERT_TRUE(issued);
    token_ = issued->token;
  }

  std::unique_ptr<ChildProcess> start_server(int n) {
    auto p = std::make_unique<ChildProcess>(
        std::vector<std::string>{testing::quern_binary(), "server", "--config", config_, "--database-url",
                                 url_},
        std::filesystem::temp_directory_path() / (name_ + "-server" + std::to_string(n) + ".log"));
    EXPECT_TRUE(wait_until(
        [&] { return p->output().find("listening on") != std::string::npos || !p->running(); }, 30s))
        << p->output();
    EXPECT_NE(p->output().find("listening on"), std::string::npos) << "the server did not start:\n"
                                                                   << p->output();
    return p;
  }

  std::unique_ptr<ChildProcess> start_agent(const std::string& id) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{testing::quern_binary(), "agent", "--server",
                                 "http://127.0.0.1:" + std::to_string(port_), "--token", token_, "--slots",
                                 "8", "--worker-id", id, "--config", config_},
        std::filesystem::temp_directory_path() / (name_ + "-" + id + ".log"));
  }

  int64_t completed() {
    auto v = q_->exec_scalar("select count(*) from quern.completed_jobs");
    return v ? std::stoll(*v) : -1;
  }

  std::string name_, url_, config_, token_;
  int port_ = 0;
  std::unique_ptr<queue::Queue> q_;
};

TEST_F(AgentProcessTest, ThousandJobsThroughTwoAgentsWhileTheServerRestartsTwice) {
  constexpr int kJobs = 1000;
  std::vector<queue::NewJob> jobs(kJobs);
  for (int i = 0; i < kJobs; ++i) {
    jobs[i].language = "noop";
    jobs[i].tag = "noop";
    jobs[i].payload["args"] = {{"sleep_ms", 30}, {"result", i}};
  }
  ASSERT_TRUE(q_->push_batch(jobs));
  auto server = start_server(1);
  auto a1 = start_agent("agent-1");
  auto a2 = start_agent("agent-2");
  for (int restart = 1; restart <= 2; ++restart) {
    ASSERT_TRUE(wait_until([&] { return completed() >= restart * kJobs / 3; }, 120s)) << completed() << "\n"
                                                                                      << a1->output();
    server->signal(SIGTERM);
    ASSERT_EQ(server->wait_exit(30s), 0) << server->output();
    server = start_server(restart + 1);
  }
  ASSERT_TRUE(wait_until([&] { return completed() == kJobs; }, 180s)) << completed() << "\n" << a1->output();
  auto scalar = [&](const std::string& sql) { return q_->exec_scalar(sql).value(); };
  EXPECT_EQ(scalar("select count(distinct id) from quern.completed_jobs where status = 'success'"),
            std::to_string(kJobs));
  EXPECT_EQ(scalar("select count(*) from quern.queue"), "0");
  EXPECT_EQ(scalar("select count(*) from quern.completed_jobs where result::text::int <> "
                   "(payload->'args'->>'result')::int"),
            "0");
  EXPECT_EQ(scalar("select count(distinct worker_id) from quern.completed_jobs"), "2");
  for (auto* a : {a1.get(), a2.get()}) {
    a->signal(SIGTERM);
    EXPECT_EQ(a->wait_exit(30s), 0) << a->output();
  }
}

}  // namespace
}  // namespace quern
