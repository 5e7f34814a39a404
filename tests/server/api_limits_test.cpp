// What a client sends can't wedge or crash the server, nor be silently
// changed: deep JSON anywhere, numbers beyond their range, tags outside the
// charset, ids with spaces, bytes that are not UTF-8 — each a 400 naming the
// field; and a burst of requests stays within the connection budget. A real
// server in this process, real PostgreSQL, real HTTP.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "host/auth/tokens.h"
#include "host/server/server.h"
#include "tests/http/http_test_client.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using testing::http_request;
using testing::HttpResult;

std::string nested_args(size_t levels) {
  // {"args": {"a": [[[...1...]]]}}: built as text, never as a value (printing
  // one that deep would recurse).
  return "{\"args\": {\"a\": " + std::string(levels, '[') + "1" + std::string(levels, ']') + "}}";
}

class ApiLimitsTest : public ::testing::Test {
 protected:
  void start(int handler_threads = 8, size_t db_connections = 8) {
    url_ = testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    server::ServerOptions o;
    o.port = 0;
    o.api.database_url = url_;
    o.api.db_connections = db_connections;
    o.limits.handler_threads = handler_threads;
    o.run_scheduler = false;
    server_ = std::make_unique<server::Server>(o);
    ASSERT_TRUE(server_->start());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    auto store = auth::TokenStore::connect(url_);
    ASSERT_TRUE(store);
    auth::NewToken t;
    t.role = auth::Role::admin;
    admin_ = (*store)->create(t)->token;
    t.role = auth::Role::operator_;
    operator_ = (*store)->create(t)->token;
    t.role = auth::Role::agent;
    t.group = "edge";
    t.tags = {"edge"};
    agent_ = (*store)->create(t)->token;
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  HttpResult call(const std::string& token, const std::string& method, const std::string& path,
                  const std::string& body = "") {
    return http_request(method, base_ + path, body, {{"Authorization", "Bearer " + token}}, 60s);
  }
  std::string message(const HttpResult& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"].value("message", "") : r.body;
  }
  void deploy_hello() {
    auto r = call(admin_, "POST", "/api/scripts",
                  R"({"path": "f/t/hello", "language": "bash", "content": "echo hi"})");
    ASSERT_EQ(r.status, 201) << r.body;
  }
  void expect_alive() {
    EXPECT_EQ(http_request("GET", base_ + "/healthz").status, 200);
    auto r = call(operator_, "POST", "/api/jobs/run/p/f/t/hello", R"({"args": {"x": 1}})");
    EXPECT_EQ(r.status, 201) << r.body;
  }

  std::string url_, base_, admin_, operator_, agent_;
  std::unique_ptr<server::Server> server_;
};

TEST_F(ApiLimitsTest, DeepArgsAnswer400AndTheServerLivesOn) {
  start();
  deploy_hello();
  // Under the limit: accepted, by path (an operator may) and inline.
  EXPECT_EQ(call(operator_, "POST", "/api/jobs/run/p/f/t/hello", nested_args(100)).status, 201);
  EXPECT_EQ(call(admin_, "POST", "/api/jobs/run_inline",
                 R"({"language": "bash", "content": "true", "args": {"a": [[1]]}})")
                .status,
            201);
  for (size_t levels : {size_t(1000), size_t(60000), size_t(1000000)}) {
    SCOPED_TRACE(levels);
    auto r = call(operator_, "POST", "/api/jobs/run/p/f/t/hello", nested_args(levels));
    EXPECT_EQ(r.status, 400) << r.body.substr(0, 300);
    EXPECT_NE(message(r).find("deeper than 128 levels"), std::string::npos) << message(r);
    std::string inline_body = nested_args(levels);
    inline_body.insert(1, R"("language": "bash", "content": "true", )");
    EXPECT_EQ(call(admin_, "POST", "/api/jobs/run_wait_result_inline", inline_body).status, 400);
    std::string schedule = nested_args(levels);
    schedule.insert(1, R"("name": "f/t/s", "cron": "* * * * *", "script_path": "f/t/hello", )");
    EXPECT_EQ(call(admin_, "POST", "/api/schedules", schedule).status, 400);
    const std::string completion =
        R"({"worker_id": "a", "completions": [{"id": 1, "attempt": 1, "status": "success", "result": )" +
        std::string(levels, '[') + std::string(levels, ']') + "}]}";
    EXPECT_EQ(call(agent_, "POST", "/api/agent/complete", completion).status, 400);
    expect_alive();
  }
}

TEST_F(ApiLimitsTest, OverflowsAndBadTagsAnswer400NamingTheField) {
  start();
  deploy_hello();
  const std::string run = "/api/jobs/run/p/f/t/hello";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"priority": 4294967346})", "priority: expected an integer from 1 to 100"},
      {R"({"priority": 18446744073709551615})", "priority: expected an integer from 1 to 100"},
      {R"({"priority": 50.0})", "priority: expected an integer from 1 to 100"},
      {R"({"timeout_s": 4294967297})", "timeout_s: expected an integer from 0 to"},
      {R"({"timeout_s": -1})", "timeout_s: expected an integer from 0 to"},
      {R"({"delay_s": 1e300})", "delay_s: expected a number from 0"},
      {R"({"delay_s": -1})", "delay_s: expected a number from 0"},
      {R"({"scheduled_for": "1734-01-01T00:00:00Z"})", "scheduled_for must be an ISO 8601 UTC time"},
      {R"({"scheduled_for": "2026-01-01T00:00:00.5e999Z"})", "scheduled_for must be in UTC"},
      {R"({"tag": "a\u0000b"})", "tag: tag \"a"},
      {R"({"tag": "a b"})", "tag: tag \"a b\" may only hold [A-Za-z0-9_.:/-] characters"},
      {R"({"tag": ""})", "tag: a tag must not be empty"},
      {"{\"tag\": \"" + std::string(301, 'x') + "\"}", "tag: a tag is at most 300 bytes"},
      {R"({"args": {"a": "x\u0000y"}})", "args holds \\u0000"},
      {R"({"concurrency": {"key": "k\u0000", "max_running": 1}})", "concurrency.key"},
      {R"({"concurrency": {"key": "k", "max_running": 4294967297}})", "concurrency.max_running"},
      {R"({"retry": {"max_attempts": 4294967298}})", "retry.max_attempts"},
      {R"({"limits": {"memory_max": 1e400}})", "the request body is not valid JSON"},
      {R"({"limits": {"memory_max": "99999999999999999999T"}})", "limits.memory_max: expected a size"},
      {R"({"limits": {"pids_max": 4294967297}})", "limits.pids_max"},
      {R"({"limits": {"cpu_max": "NaN"}})", "limits.cpu_max: expected a number of CPUs"},
      {R"({"limits": {}})", "limits: set memory_max, pids_max or cpu_max"},
      {"{\"args\": {\"a\": \"caf\xE9\"}}", "the request body is not valid JSON"},
  };
  for (const auto& [body, expected] : cases) {
    SCOPED_TRACE(body.substr(0, 80));
    auto r = call(operator_, "POST", run, body);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(message(r).find(expected), std::string::npos) << message(r);
  }
  // Nothing of those was enqueued.
  auto listed = call(operator_, "GET", "/api/jobs");
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(nlohmann::json::parse(listed.body)["jobs"].size(), 0u);

  // Ids, paths and query values.
  const std::vector<std::tuple<std::string, std::string, std::string>> urls = {
      {"GET", "/api/jobs/%201", "job id: expected an integer from 1 to 9223372036854775807, got \" 1\""},
      {"GET", "/api/jobs/1%20", "job id: expected an integer"},
      {"GET", "/api/jobs/+1", "job id: expected an integer"},
      {"GET", "/api/jobs/99999999999999999999", "job id: expected an integer"},
      {"POST", "/api/jobs/0/cancel", "job id: expected an integer"},
      {"GET", "/api/jobs/1/logs?offset=-5", "offset: expected an integer from 0"},
      {"GET", "/api/jobs/%FF", "the request path is not valid UTF-8 text"},
      {"GET", "/api/jobs?tag=%FF", "query parameter 'tag' is not valid UTF-8 text"},
      {"GET", "/api/jobs?tag=a%00b", "query parameter 'tag' is not valid UTF-8 text (or holds %00)"},
      {"GET", "/api/jobs?tag=a%20b", "tag: tag \"a b\""},
      {"GET", "/api/jobs?limit=4294967297", "limit: expected an integer from 1 to 1000"},
      {"GET", "/api/jobs?before_id=%201", "before_id: expected an integer"},
      {"GET", "/api/jobs?state=%C3%A9", "state: unknown state"},
      {"GET", "/api/schedules/f/t/%FF", "the request path is not valid UTF-8 text"},
      {"GET", "/api/scripts/p/f/t/%00", "the request path is not valid UTF-8 text (or holds %00)"},
  };
  for (const auto& [method, path, expected] : urls) {
    SCOPED_TRACE(path);
    auto r = call(admin_, method, path, method == "POST" ? "{}" : "");
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(message(r).find(expected), std::string::npos) << message(r);
  }
  // Tags in the other routes that take one.
  auto token =
      call(admin_, "POST", "/api/tokens", R"({"role": "agent", "group": "g", "tags": ["ok", "no pe"]})");
  EXPECT_EQ(token.status, 400);
  EXPECT_NE(message(token).find("tags[1]: tag \"no pe\""), std::string::npos) << message(token);
  auto script = call(admin_, "POST", "/api/scripts",
                     R"({"path": "f/t/x", "language": "bash", "content": "true", "tag": "a\u0000"})");
  EXPECT_EQ(script.status, 400);
  EXPECT_NE(message(script).find("tag: "), std::string::npos) << message(script);
  auto schedule = call(admin_, "POST", "/api/schedules",
                       R"({"name": "f/t/s", "cron": "* * * * *", "script_path": "f/t/hello", "tag": "x y"})");
  EXPECT_EQ(schedule.status, 400);
  EXPECT_NE(message(schedule).find("tag: "), std::string::npos) << message(schedule);
  auto bad_name = call(admin_, "POST", "/api/schedules",
                       "{\"name\": \"f/t/\xFF\", \"cron\": \"* * * * *\", \"script_path\": \"f/t/hello\"}");
  EXPECT_EQ(bad_name.status, 400);
  auto claim = call(agent_, "POST", "/api/agent/claim", R"({"worker_id": "a", "slots": 4294967297})");
  EXPECT_EQ(claim.status, 400);
  EXPECT_NE(message(claim).find("slots: expected an integer from 1 to 1024"), std::string::npos);
  auto complete = call(
      agent_, "POST", "/api/agent/complete",
      R"({"worker_id": "a", "completions": [{"id": 18446744073709551615, "attempt": 1, "status": "success"}]})");
  EXPECT_EQ(complete.status, 400);
  EXPECT_NE(message(complete).find("completions[0].id"), std::string::npos) << message(complete);
  expect_alive();
}

TEST_F(ApiLimitsTest, ABurstAtTheLargestHandlerPoolStaysWithinTheConnectionBudget) {
  start(/*handler_threads=*/1024, /*db_connections=*/16);
  deploy_hello();
  std::atomic<int> ok{0}, busy_with_retry{0}, other{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 150; ++i) {
    clients.emplace_back([&, i] {
      auto r = call(operator_, "GET", i % 2 ? "/api/jobs" : "/api/queue");
      if (r.status == 200)
        ok++;
      else if (r.status == 503 && r.headers.count("retry-after"))
        busy_with_retry++;
      else {
        other++;
        ADD_FAILURE() << "status " << r.status << " " << r.error << " " << r.body.substr(0, 300);
      }
    });
  }
  // While they run, and after: the API never holds more than its budget.
  int peak = 0;
  auto q = queue::Queue::connect(url_);
  ASSERT_TRUE(q);
  for (int i = 0; i < 20; ++i) {
    auto n = (*q)->exec_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'quern server (api)' AND datname = "
        "current_database()");
    ASSERT_TRUE(n);
    peak = std::max(peak, std::stoi(*n));
    std::this_thread::yield();
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(ok + busy_with_retry, 150);
  EXPECT_GT(ok.load(), 0);
  EXPECT_LE(peak, 16);
  auto after = (*q)->exec_scalar(
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'quern server (api)' AND datname = "
      "current_database()");
  ASSERT_TRUE(after);
  EXPECT_LE(std::stoi(*after), 16);
  // A new worker can still connect and claim.
  auto worker = queue::Queue::connect(url_);
  ASSERT_TRUE(worker) << worker.message();
  EXPECT_TRUE((*worker)->claim("new-worker", {"bash"}, 1));
}

TEST_F(ApiLimitsTest, ABudgetThatCanNeverFitIsRefusedAtStart) {
  url_ = testing::fresh_database_url("budget");
  server::ServerOptions o;
  o.port = 0;
  o.api.database_url = url_;
  o.api.db_connections = 1000;  // the test cluster allows 200
  o.run_scheduler = false;
  server::Server s(o);
  Status st = s.start();
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("this server needs up to 1003"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("max_connections 200"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace quern
