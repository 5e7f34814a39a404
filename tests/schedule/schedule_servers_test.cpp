// Schedules end to end: real `quern server` processes on one database, real
// HTTP, real PostgreSQL. Two servers fire an every-second schedule exactly
// once per tick (also while one of them stops); pause and resume; the API's
// errors, permissions and the CLI; a schedule whose script is archived.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "host/agent/api_client.h"
#include "host/auth/tokens.h"
#include "host/queue/queue.h"
#include "host/scripts/script_store.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;
using testing::ChildProcess;
using testing::wait_until;

constexpr const char* kEverySecond = "f/test/every-second";

class ScheduleServersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    url_ = testing::fresh_database_url(name_);
    q_ = std::move(queue::Queue::connect(url_)).value();
    config_ = std::filesystem::temp_directory_path() / (name_ + "-" + std::to_string(getpid()) + ".xml");
    // A routing rule, to see that ticks are routed like any run.
    std::ofstream(config_)
        << "<quern>\n  <server listen=\"127.0.0.1:0\"/>\n"
           "  <routing><rule path=\"f/test/*\" arg=\"who\" tag=\"routed.$args[who]\"/></routing>\n</quern>\n";
    auto tokens = std::move(auth::TokenStore::connect(url_)).value();
    for (auto [role, out] :
         {std::pair{auth::Role::developer, &developer_}, {auth::Role::operator_, &operator_}}) {
      auth::NewToken t;
      t.role = role;
      *out = tokens->create(t).value().token;
    }
    auto scripts = std::move(scripts::ScriptStore::connect(url_)).value();
    scripts::NewScript s;
    s.path = "f/test/hello";
    s.language = "bash";
    s.content = "echo hi";
    ASSERT_TRUE(scripts->deploy(s));
  }

  void TearDown() override { std::filesystem::remove(config_); }

  // A `quern server` process; returns its base URL once it listens.
  std::string start_server(std::unique_ptr<ChildProcess>& p, int n) {
    p = std::make_unique<ChildProcess>(
        std::vector<std::string>{testing::quern_binary(), "server", "--config", config_, "--database-url",
                                 url_},
        std::filesystem::temp_directory_path() / (name_ + "-server" + std::to_string(n) + ".log"));
    // The whole line, up to its newline: output is read as it is written, possibly mid-line.
    const std::regex listening(R"(listening on (http://\S+:\d+)\n)");
    std::smatch m;
    std::string out;
    EXPECT_TRUE(wait_until(
        [&] {
          out = p->output();
          return std::regex_search(out, m, listening) || !p->running();
        },
        30s));
    out = p->output();
    if (!std::regex_search(out, m, listening)) {
      ADD_FAILURE() << "the server did not start:\n" << out;
      return "";
    }
    return m[1];
  }

  agent::ApiResponse call(const std::string& base, const std::string& token, const std::string& method,
                          const std::string& path, const Json& body = nullptr) {
    agent::ApiClient c(base, token);
    auto r = c.request(method, path, body.is_null() ? "" : body.dump());
    EXPECT_TRUE(r) << r.message();
    return r ? *r : agent::ApiResponse{};
  }

  std::string sql(const std::string& statement) { return q_->exec_scalar(statement).value(); }
  int64_t jobs() { return std::stoll(sql("SELECT count(*) FROM quern.queue")); }
  // Ticks with a job count other than one, and missing seconds between the
  // first and last tick (both 0 when every tick fired exactly once).
  std::string duplicates() {
    return sql(
        "SELECT count(*) FROM (SELECT scheduled_for FROM quern.queue GROUP BY 1 HAVING count(*) <> 1) d");
  }
  std::string gaps() {
    return sql(
        "SELECT extract(epoch FROM max(scheduled_for) - min(scheduled_for))::bigint + 1 - "
        "count(DISTINCT scheduled_for) FROM quern.queue");
  }

  std::string name_, url_, config_, developer_, operator_;
  std::unique_ptr<queue::Queue> q_;
};

TEST_F(ScheduleServersTest, TwoServersFireEachTickExactlyOnce) {
  std::unique_ptr<ChildProcess> a, b;
  const std::string url_a = start_server(a, 1);
  const std::string url_b = start_server(b, 2);
  ASSERT_FALSE(url_a.empty());
  ASSERT_FALSE(url_b.empty());
  auto created = call(url_a, developer_, "POST", "/api/schedules",
                      {{"name", kEverySecond},
                       {"cron", "* * * * * *"},
                       {"script_path", "f/test/hello"},
                       {"args", {{"who", "cron"}}}});
  ASSERT_EQ(created.status, 201) << created.body;

  // Both servers run their scheduler for a few ticks.
  ASSERT_TRUE(wait_until([&] { return jobs() >= 5; }, 20s)) << jobs() << "\n" << a->output() << b->output();
  EXPECT_EQ(duplicates(), "0");
  EXPECT_EQ(gaps(), "0");

  // One server stops; the other keeps firing, without a gap.
  a->signal(SIGTERM);
  ASSERT_EQ(a->wait_exit(30s), 0) << a->output();
  const int64_t after_stop = jobs();
  ASSERT_TRUE(wait_until([&] { return jobs() >= after_stop + 3; }, 20s)) << b->output();
  EXPECT_EQ(duplicates(), "0");
  EXPECT_EQ(gaps(), "0");
  EXPECT_EQ(
      sql("SELECT count(*) FROM quern.queue WHERE script_path <> 'f/test/hello' OR tag <> 'routed.cron' OR "
          "payload->'args'->>'who' IS DISTINCT FROM 'cron' OR payload->'schedule'->>'name' <> '" +
          std::string(kEverySecond) + "'"),
      "0");

  // Pause: no more jobs. Resume: firing goes on (from the next tick).
  auto paused = call(url_b, developer_, "POST", std::string("/api/schedules/pause/") + kEverySecond);
  ASSERT_EQ(paused.status, 200) << paused.body;
  EXPECT_EQ(paused.json()["paused"], true);
  const int64_t at_pause = jobs();
  EXPECT_FALSE(wait_until([&] { return jobs() > at_pause; }, 2500ms)) << "a paused schedule fired";
  auto resumed = call(url_b, developer_, "POST", std::string("/api/schedules/resume/") + kEverySecond);
  ASSERT_EQ(resumed.status, 200) << resumed.body;
  EXPECT_TRUE(wait_until([&] { return jobs() >= at_pause + 2; }, 10s));
  EXPECT_EQ(duplicates(), "0");
  auto got = call(url_b, operator_, "GET", std::string("/api/schedules/") + kEverySecond).json();
  EXPECT_EQ(got["last_job_id"].get<int64_t>(), std::stoll(sql("SELECT max(id) FROM quern.queue")));
  EXPECT_TRUE(got["last_error"].is_null());
  b->signal(SIGTERM);
  EXPECT_EQ(b->wait_exit(30s), 0) << b->output();
}

TEST_F(ScheduleServersTest, ApiErrorsPermissionsCliAndArchivedScript) {
  std::unique_ptr<ChildProcess> server;
  const std::string base = start_server(server, 1);
  ASSERT_FALSE(base.empty());
  const Json good{{"name", "f/team/nightly"}, {"cron", "0 2 * * *"}, {"script_path", "f/test/hello"}};
  auto with = [&](const char* key, const Json& value) {
    Json b = good;
    b[key] = value;
    return b;
  };
  const std::pair<Json, const char*> bad[] = {
      {with("cron", "0 25 * * *"), "cron field 2 (hour): 25 is out of range 0-23"},
      {with("timezone", "Mars/Base"),
       "timezone: unknown time zone 'Mars/Base' (expected an IANA name like Europe/Paris, America/New_York "
       "or "
       "UTC)"},
      {with("script_path", "f/test/missing"),
       "script_path: no script at 'f/test/missing' (or it is archived)"},
      {with("catch_up", "sometimes"), "catch_up must be \"skip\", \"latest\" or \"all\""},
      {with("priority", 0), "priority: expected an integer from 1 to 100"},
      {with("args", Json::array()), "args must be a JSON object"},
      {with("every", "day"),
       "unknown field 'every' (allowed: name, cron, timezone, script_path, args, tag, priority, paused, "
       "catch_up)"},
      {Json{{"name", "f/team/x"}, {"script_path", "f/test/hello"}}, "cron is required"},
  };
  for (const auto& [body, message] : bad) {
    auto r = call(base, developer_, "POST", "/api/schedules", body);
    EXPECT_EQ(r.status, 400) << body.dump();
    EXPECT_EQ(r.error_message(), message) << body.dump();
  }
  EXPECT_EQ(call(base, operator_, "POST", "/api/schedules", good).status, 403);
  EXPECT_EQ(call(base, "", "GET", "/api/schedules").status, 401);

  ASSERT_EQ(call(base, developer_, "POST", "/api/schedules", good).status, 201);
  auto replaced = call(base, developer_, "POST", "/api/schedules", with("timezone", "Europe/Paris"));
  ASSERT_EQ(replaced.status, 200) << replaced.body;
  EXPECT_EQ(replaced.json()["timezone"], "Europe/Paris");
  auto listed = call(base, operator_, "GET", "/api/schedules").json()["schedules"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["cron"], "0 2 * * *");
  EXPECT_EQ(listed[0]["catch_up"], "skip");
  EXPECT_EQ(call(base, operator_, "GET", "/api/schedules/f/team/none").status, 404);
  EXPECT_EQ(call(base, developer_, "POST", "/api/schedules/pause/f/team/none").status, 404);

  // The CLI, through the same API.
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {testing::quern_binary(), "schedule"});
    args.insert(args.end(), {"--server", base, "--token", developer_});
    ChildProcess p(args, std::filesystem::temp_directory_path() / (name_ + "-cli.log"));
    const int code = p.wait_exit(30s);
    return std::make_pair(code, p.output());
  };
  auto [code, out] = cli({"create", "u/ada/weekly", "--cron", "@weekly", "--script", "f/test/hello", "--tz",
                          "America/New_York", "--args", "{\"x\": 1}", "--catch-up", "latest"});
  EXPECT_EQ(code, 0) << out;
  std::tie(code, out) = cli({"get", "u/ada/weekly"});  // a table for people
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("u/ada/weekly  @weekly  America/New_York  f/test/hello"), std::string::npos) << out;
  std::tie(code, out) = cli({"get", "u/ada/weekly", "--json"});  // the API's document
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"timezone\": \"America/New_York\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"catch_up\": \"latest\""), std::string::npos) << out;
  std::tie(code, out) = cli({"pause", "u/ada/weekly"});
  EXPECT_NE(out.find("\"paused\": true"), std::string::npos) << out;
  std::tie(code, out) = cli({"delete", "u/ada/weekly"});
  EXPECT_EQ(code, 0) << out;
  std::tie(code, out) = cli({"get", "u/ada/weekly"});
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("no schedule 'u/ada/weekly'"), std::string::npos) << out;

  // An archived script: the schedule records why nothing ran, and advances
  // (one error, no jobs, no storm).
  EXPECT_EQ(call(base, developer_, "POST", "/api/schedules", with("cron", "* * * * * *")).status, 200);
  ASSERT_EQ(call(base, developer_, "DELETE", "/api/scripts/p/f/test/hello").status, 200);
  ASSERT_TRUE(wait_until(
      [&] {
        return call(base, operator_, "GET", "/api/schedules/f/team/nightly").json()["last_error"].is_string();
      },
      10s));
  auto s = call(base, operator_, "GET", "/api/schedules/f/team/nightly").json();
  EXPECT_EQ(s["last_error"], "no script at path 'f/test/hello' (or it is archived)");
  const int64_t before = jobs();
  EXPECT_FALSE(wait_until([&] { return jobs() > before; }, 1500ms));
  EXPECT_EQ(sql("SELECT next_fire_at > now() - interval '1 second' FROM quern.schedules"), "t")
      << "the schedule advanced";
  const std::string log = server->output();
  size_t logged = 0;
  for (size_t at = log.find("no script at path"); at != std::string::npos;
       at = log.find("no script at path", at + 1))
    logged++;
  EXPECT_EQ(logged, 1u) << "logged once while it repeats:\n" << log;
  EXPECT_EQ(call(base, developer_, "DELETE", "/api/schedules/f/team/nightly").status, 200);
  EXPECT_EQ(call(base, developer_, "DELETE", "/api/schedules/f/team/nightly").status, 404);
}

}  // namespace
}  // namespace quern
