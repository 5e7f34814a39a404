// The API end to end: a real server (in this process), real PostgreSQL, real
// workers, real HTTP through libcurl.
#include "host/server/server.h"

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "host/agent/api_client.h"
#include "host/auth/permissions.h"
#include "host/auth/tokens.h"
#include "host/queue/queue.h"
#include "host/worker/worker.h"
#include "tests/http/http_test_client.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;
using testing::wait_until;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    server::ServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;
    o.api.database_url = url_;
    o.api.max_wait = 20s;
    o.api.max_timeout_s = 3600;
    o.api.limits = {queue::ConcurrencyLimit{"api:fixed", 2, 0, 0ms}};  // as <limits> in the config
    o.limits.handler_threads = 8;
    o.api.db_connections = 8;
    server_ = std::make_unique<server::Server>(o);
    ASSERT_TRUE(server_->start());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    auto store = auth::TokenStore::connect(url_);
    ASSERT_TRUE(store) << store.message();
    tokens_ = std::move(store).value();
    admin_ = make_token(auth::Role::admin);
    developer_ = make_token(auth::Role::developer);
    operator_ = make_token(auth::Role::operator_);
    agent_ = make_token(auth::Role::agent, "edge", {"edge"});
  }

  void TearDown() override {
    if (worker_) worker_->stop();
    worker_.reset();
    server_->stop();
  }

  std::string make_token(auth::Role role, std::string group = "", std::vector<std::string> tags = {}) {
    auth::NewToken t;
    t.role = role;
    t.group = std::move(group);
    t.tags = std::move(tags);
    auto issued = tokens_->create(t);
    EXPECT_TRUE(issued) << issued.message();
    return issued ? issued->token : "";
  }

  void start_worker(std::vector<std::string> tags, std::vector<int> gpus_mb = {},
                    std::map<std::string, std::string> plugin_configs = {}) {
    if (registry_.plugins().empty()) {
      ASSERT_TRUE(registry_.load_directory(testing::plugin_dir()));
    }
    worker::WorkerOptions o;
    o.database_url = url_;
    o.tags = std::move(tags);
    o.gpu_devices_mb = std::move(gpus_mb);
    o.plugin_configs = std::move(plugin_configs);
    o.slots = 4;
    o.poll_interval = 200ms;
    o.heartbeat_interval = 200ms;
    worker_ = std::make_unique<worker::Worker>(o, registry_);
    ASSERT_TRUE(worker_->start());
  }

  agent::ApiResponse call(const std::string& token, const std::string& method, const std::string& path,
                          const Json& body = nullptr) {
    agent::ApiClient c(base_, token);
    auto r = c.request(method, path, body.is_null() ? "" : body.dump());
    EXPECT_TRUE(r) << r.message();
    return r ? *r : agent::ApiResponse{};
  }

  std::string url_;
  std::string base_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<auth::TokenStore> tokens_;
  std::string admin_, developer_, operator_, agent_;
  plugin::PluginRegistry registry_;
  std::unique_ptr<worker::Worker> worker_;
};

TEST_F(ServerTest, DeployRunAndWaitResultRoundTrip) {
  start_worker({"bash"});
  auto deployed = call(
      developer_, "POST", "/api/scripts",
      {{"path", "f/test/hello"}, {"language", "bash"}, {"content", "echo \"{\\\"hi\\\": \\\"$1\\\"}\""}});
  ASSERT_EQ(deployed.status, 201) << deployed.body;
  const std::string v1 = deployed.json()["hash"];

  auto result =
      call(operator_, "POST", "/api/jobs/run_wait_result/p/f/test/hello", {{"args", {{"name", "ada"}}}});
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(result.json(), Json({{"hi", "ada"}}));

  // A new deploy is a new version; runs by path take it, the old one stays runnable by hash.
  auto redeployed = call(developer_, "POST", "/api/scripts",
                         {{"path", "f/test/hello"}, {"language", "bash"}, {"content", "echo '{\"v\": 2}'"}});
  ASSERT_EQ(redeployed.status, 201);
  EXPECT_NE(redeployed.json()["hash"], v1);
  EXPECT_EQ(call(operator_, "POST", "/api/jobs/run_wait_result/p/f/test/hello").json(), Json({{"v", 2}}));
  EXPECT_EQ(call(operator_, "POST", "/api/jobs/run_wait_result/h/" + v1, {{"args", {{"n", "old"}}}}).json(),
            Json({{"hi", "old"}}));

  // Asynchronous run: the id at once, then the job record.
  auto queued = call(operator_, "POST", "/api/jobs/run/p/f/test/hello");
  ASSERT_EQ(queued.status, 201) << queued.body;
  const std::string id = std::to_string(queued.json()["id"].get<int64_t>());
  ASSERT_TRUE(wait_until(
      [&] { return call(operator_, "GET", "/api/jobs/" + id).json()["state"] == "success"; }, 20s));
  auto job = call(operator_, "GET", "/api/jobs/" + id).json();
  EXPECT_EQ(job["script_path"], "f/test/hello");
  EXPECT_EQ(job["result"], Json({{"v", 2}}));
  auto listed = call(operator_, "GET", "/api/jobs?state=success&script_path=f/test/hello").json();
  EXPECT_GE(listed["jobs"].size(), 2u);

  // A failing job answers 422 with the error in the one shape, and its id.
  auto failing = call(developer_, "POST", "/api/jobs/run_wait_result_inline",
                      {{"language", "bash"}, {"content", "echo broken >&2; exit 2"}});
  EXPECT_EQ(failing.status, 422) << failing.body;
  EXPECT_NE(failing.error_message().find("broken"), std::string::npos) << failing.body;
}

// Script settings carry a concurrency limit and a retry policy; the job
// record shows the key and the failed attempt; bad policies are 400s.
TEST_F(ServerTest, ScriptLimitsRetriesAndTimeoutMaximum) {
  start_worker({"bash"});
  const auto marker = std::filesystem::temp_directory_path() / ("quern-flaky-" + std::to_string(getpid()));
  std::filesystem::remove(marker);
  auto deployed =
      call(developer_, "POST", "/api/scripts",
           {{"path", "f/test/flaky"},
            {"language", "bash"},
            {"content", "if [ -e \"$1\" ]; then echo '{\"ok\": true}'; else touch \"$1\"; exit 3; fi"},
            {"concurrency", {{"max_running", 1}}},
            {"retry", {{"max_attempts", 3}, {"backoff_s", 0.05}, {"on", {"failure"}}}},
            {"limits", {{"memory_max", "512M"}, {"cpu_max", 1.5}}}});
  ASSERT_EQ(deployed.status, 201) << deployed.body;
  EXPECT_EQ(deployed.json()["settings"]["retry"]["max_attempts"], 3);
  EXPECT_EQ(deployed.json()["settings"]["limits"]["memory_max"], 512 << 20);
  EXPECT_EQ(deployed.json()["settings"]["limits"]["cpu_max"], 1.5);
  auto unlimited = call(developer_, "POST", "/api/scripts",
                        {{"path", "f/test/flaky2"},
                         {"language", "bash"},
                         {"content", "true"},
                         {"limits", {{"memory_max", "lots"}}}});
  EXPECT_EQ(unlimited.status, 400);
  EXPECT_EQ(
      unlimited.error_message(),
      "limits.memory_max: expected a size like 256M, 1.5G or 512K (K, M, G, T: powers of 1024), at least "
      "4194304 bytes");

  auto result = call(operator_, "POST", "/api/jobs/run_wait_result/p/f/test/flaky",
                     {{"args", {{"marker", marker.string()}}}});
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(result.json(), Json({{"ok", true}}));
  auto listed = call(operator_, "GET", "/api/jobs?script_path=f/test/flaky").json();
  ASSERT_EQ(listed["jobs"].size(), 1u);
  const auto id = std::to_string(listed["jobs"][0]["id"].get<int64_t>());
  auto job = call(operator_, "GET", "/api/jobs/" + id).json();
  EXPECT_EQ(job["concurrency_key"], "script:f/test/flaky");
  ASSERT_EQ(job["attempts"].size(), 1u) << job.dump();
  EXPECT_EQ(job["attempts"][0]["status"], "failure");
  EXPECT_NE(job["attempts"][0]["error"].get<std::string>().find("exit code 3"), std::string::npos)
      << job.dump();
  auto limits = call(operator_, "GET", "/api/queue/limits").json();
  ASSERT_EQ(limits["keys"].size(), 1u);
  EXPECT_EQ(limits["keys"][0]["key"], "script:f/test/flaky");
  EXPECT_EQ(limits["keys"][0]["max_running"], 1);
  std::filesystem::remove(marker);

  auto bad = call(developer_, "POST", "/api/jobs/run/p/f/test/flaky", {{"retry", {{"max_attempts", 0}}}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.error_message(), "retry.max_attempts: expected an integer from 1 to 100");
  auto slow = call(developer_, "POST", "/api/jobs/run/p/f/test/flaky", {{"timeout_s", 7200}});
  EXPECT_EQ(slow.status, 400);
  EXPECT_EQ(slow.error_message(), "timeout_s 7200 exceeds this server's maximum of 3600 s");
}

// A gpu job's request is visible to the claim: a worker without GPUs (or
// with too few) never claims it, and it waits for one that has them.
// Keys are substituted at submission; the operator's <limits> replace a job's numbers.
TEST_F(ServerTest, ConcurrencyKeySubstitutionAndConfigLimits) {
  auto keyed = call(developer_, "POST", "/api/jobs/run_inline",
                    {{"language", "bash"},
                     {"content", "true"},
                     {"args", {{"acct", 42}}},
                     {"concurrency", {{"key", "acct:$language:$args[acct]"}, {"max_running", 1}}}});
  ASSERT_EQ(keyed.status, 201) << keyed.body;
  auto job = call(operator_, "GET", "/api/jobs/" + std::to_string(keyed.json()["id"].get<int64_t>())).json();
  EXPECT_EQ(job["concurrency_key"], "acct:bash:42");

  auto missing = call(developer_, "POST", "/api/jobs/run_inline",
                      {{"language", "bash"},
                       {"content", "true"},
                       {"concurrency", {{"key", "acct:$args[acct]"}, {"max_running", 1}}}});
  EXPECT_EQ(missing.status, 400);
  EXPECT_NE(missing.error_message().find("concurrency.key"), std::string::npos) << missing.body;

  auto fixed = call(developer_, "POST", "/api/jobs/run_inline",
                    {{"language", "bash"},
                     {"content", "true"},
                     {"concurrency", {{"key", "api:fixed"}, {"max_running", 7}}}});
  ASSERT_EQ(fixed.status, 201) << fixed.body;
  auto limits = call(operator_, "GET", "/api/queue/limits").json();
  ASSERT_EQ(limits["keys"].size(), 2u) << limits.dump();
  EXPECT_EQ(limits["keys"][1]["key"], "api:fixed");
  EXPECT_EQ(limits["keys"][1]["max_running"], 2) << "the config's number, not the job's 7";
}

TEST_F(ServerTest, GpuJobWaitsForAWorkerWithTheDevices) {
  auto bad = call(developer_, "POST", "/api/jobs/run_inline",
                  {{"language", "gpu"}, {"content", "true"}, {"args", {{"gpus", 0}}}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.error_message().find("gpu job args"), std::string::npos) << bad.body;

  auto queued = call(developer_, "POST", "/api/jobs/run_inline",
                     {{"language", "gpu"}, {"content", "echo '{\"ran\": true}'"}, {"args", {{"gpus", 2}}}});
  ASSERT_EQ(queued.status, 201) << queued.body;
  const std::string id = std::to_string(queued.json()["id"].get<int64_t>());
  start_worker({"gpu"}, {81920});  // one GPU: can never meet a 2-GPU request
  ASSERT_TRUE(wait_until([&] { return worker_->stats().claim_queries >= 3; }, 10s));
  EXPECT_EQ(call(operator_, "GET", "/api/jobs/" + id).json()["state"], "queued");
  worker_->stop();
  worker_.reset();

  const std::string inventory = R"({"inventory": [{"uuid": "GPU-a", "memory_mb": 81920},
                                                  {"uuid": "GPU-b", "memory_mb": 81920}]})";
  start_worker({"gpu"}, {81920, 81920}, {{"gpu", inventory}});
  ASSERT_TRUE(
      wait_until([&] { return call(operator_, "GET", "/api/jobs/" + id).json()["state"] != "queued"; }, 20s));
  ASSERT_TRUE(
      wait_until([&] { return call(operator_, "GET", "/api/jobs/" + id).json()["state"] == "success"; }, 20s))
      << call(operator_, "GET", "/api/jobs/" + id).body;
}

TEST_F(ServerTest, LogStreamShowsLinesWhileTheJobRuns) {
  start_worker({"bash"});
  const auto gate = std::filesystem::temp_directory_path() / ("quern-gate-" + std::to_string(getpid()));
  std::filesystem::remove(gate);
  auto queued = call(developer_, "POST", "/api/jobs/run_inline",
                     {{"language", "bash"},
                      {"content", "echo first line; while [ ! -e " + gate.string() +
                                      " ]; do sleep 0.05; done; echo second line"}});
  ASSERT_EQ(queued.status, 201) << queued.body;
  const std::string id = std::to_string(queued.json()["id"].get<int64_t>());
  std::vector<std::string> seen;
  bool saw_first_while_running = false;
  auto status = testing::read_sse(
      base_ + "/api/jobs/" + id + "/logs/stream", {{"Authorization", "Bearer " + operator_}},
      [&](const std::string& event, const std::string& data) {
        seen.push_back(event + ":" + data);
        if (event == "log" && data.find("first line") != std::string::npos &&
            !std::filesystem::exists(gate)) {
          saw_first_while_running = true;
          std::ofstream(gate) << "go";  // only now may the job finish
        }
        return event != "done";
      },
      30s);
  std::filesystem::remove(gate);
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(saw_first_while_running);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().rfind("done:", 0), 0u) << seen.back();
  std::string all;
  for (auto& s : seen) all += s + "\n";
  EXPECT_NE(all.find("second line"), std::string::npos) << all;
}

TEST_F(ServerTest, OperatorRunsButCannotDeployOrRunInlineCode) {
  auto deploy = call(operator_, "POST", "/api/scripts",
                     {{"path", "f/test/x"}, {"language", "bash"}, {"content", "true"}});
  EXPECT_EQ(deploy.status, 403) << deploy.body;
  EXPECT_EQ(deploy.json()["error"]["code"], "forbidden");
  EXPECT_EQ(
      call(operator_, "POST", "/api/jobs/run_inline", {{"language", "bash"}, {"content", "true"}}).status,
      403);
  ASSERT_EQ(call(developer_, "POST", "/api/scripts",
                 {{"path", "f/test/x"}, {"language", "bash"}, {"content", "true"}})
                .status,
            201);
  EXPECT_EQ(call(operator_, "POST", "/api/jobs/run/p/f/test/x").status, 201);
}

TEST_F(ServerTest, AgentTokenReachesOnlyAgentEndpointsAndOnlyItsTags) {
  EXPECT_EQ(call(agent_, "GET", "/api/jobs").status, 403);
  EXPECT_EQ(call(agent_, "POST", "/api/jobs/run_inline", {{"language", "bash"}, {"content", "true"}}).status,
            403);
  EXPECT_EQ(call(developer_, "POST", "/api/agent/claim", {{"worker_id", "x"}, {"slots", 1}}).status, 403);
  for (const char* tag : {"other", "edge", "other"})
    ASSERT_EQ(call(developer_, "POST", "/api/jobs/run_inline",
                   {{"language", "noop"}, {"content", ""}, {"tag", tag}})
                  .status,
              201);
  auto claimed =
      call(agent_, "POST", "/api/agent/claim", {{"worker_id", "a1"}, {"slots", 10}, {"wait_ms", 0}});
  ASSERT_EQ(claimed.status, 200) << claimed.body;
  auto jobs = claimed.json()["jobs"];
  ASSERT_EQ(jobs.size(), 1u) << claimed.body;
  EXPECT_EQ(jobs[0]["tag"], "edge");
}

TEST_F(ServerTest, ResultPostedTwiceIsAcceptedOnce) {
  ASSERT_EQ(call(developer_, "POST", "/api/jobs/run_inline",
                 {{"language", "noop"}, {"content", ""}, {"tag", "edge"}})
                .status,
            201);
  auto claimed = call(agent_, "POST", "/api/agent/claim", {{"worker_id", "a1"}, {"slots", 1}});
  auto job = claimed.json()["jobs"][0];
  Json completion{
      {"worker_id", "a1"},
      {"completions",
       {{{"id", job["id"]}, {"attempt", job["attempt"]}, {"status", "success"}, {"result", {{"n", 1}}}}}}};
  auto first = call(agent_, "POST", "/api/agent/complete", completion);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.json()["accepted"].size(), 1u);
  completion["completions"][0]["result"] = {{"n", 2}};
  auto second = call(agent_, "POST", "/api/agent/complete", completion);
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(second.json()["accepted"].size(), 0u);
  EXPECT_EQ(second.json()["refused"].size(), 1u);
  auto rec = call(admin_, "GET", "/api/jobs/" + std::to_string(job["id"].get<int64_t>())).json();
  EXPECT_EQ(rec["result"], Json({{"n", 1}}));
  // Another agent id under the same token cannot complete it either.
  completion["worker_id"] = "a2";
  EXPECT_EQ(call(agent_, "POST", "/api/agent/complete", completion).json()["accepted"].size(), 0u);
}

TEST_F(ServerTest, ExpiredAndRevokedTokensGet401) {
  EXPECT_EQ(call("", "GET", "/api/jobs").status, 401);
  EXPECT_EQ(call("qrn_nonsense", "GET", "/api/jobs").status, 401);
  auth::NewToken t;
  t.role = auth::Role::operator_;
  t.expires_at = std::chrono::system_clock::now() + 1500ms;
  auto expiring = tokens_->create(t);
  ASSERT_TRUE(expiring);
  EXPECT_EQ(call(expiring->token, "GET", "/api/jobs").status, 200);
  EXPECT_TRUE(wait_until([&] { return call(expiring->token, "GET", "/api/jobs").status == 401; }, 10s));

  auto issued = call(admin_, "POST", "/api/tokens", {{"role", "operator"}, {"label", "to revoke"}});
  ASSERT_EQ(issued.status, 201) << issued.body;
  const std::string token = issued.json()["token"];
  EXPECT_EQ(call(token, "GET", "/api/queue").status, 200);
  EXPECT_EQ(call(admin_, "DELETE", "/api/tokens/" + issued.json()["id"].get<std::string>()).status, 200);
  EXPECT_EQ(call(token, "GET", "/api/queue").status, 401);
  // Listing tokens never shows a secret.
  auto listed = call(admin_, "GET", "/api/tokens");
  EXPECT_EQ(listed.body.find(token), std::string::npos);
}

// Every route × every role: 403 exactly when the permission table says no;
// no token at all: 401 everywhere but the anonymous routes (probes, the UI's
// files and login).
TEST_F(ServerTest, EveryRouteChecksPermissions) {
  const std::map<auth::Role, std::string> tokens = {{auth::Role::admin, admin_},
                                                    {auth::Role::developer, developer_},
                                                    {auth::Role::operator_, operator_},
                                                    {auth::Role::agent, agent_}};
  int checked = 0;
  for (const auto& route : server_->router().routes()) {
    std::string path = std::regex_replace(route.pattern, std::regex(R"(\{[a-z_]+\+\})"), "f/none/x");
    path = std::regex_replace(path, std::regex(R"(\{[a-z_]+\})"), "999999");
    // Long polls and waits must not hold the test: ask for no wait.
    if (path.find("run_wait_result") != std::string::npos) path += "?timeout_s=0.1";
    const int anonymous = call("", route.method, path, Json::object()).status;
    if (route.permission.empty()) {
      // The UI's anonymous routes answer what their input asks: a redirect to
      // the page, no such file, a login without a token.
      const std::map<std::string, int> expected = {{"/", 302}, {"/ui/{path+}", 404}, {"/ui/login", 400}};
      const auto it = expected.find(route.pattern);
      EXPECT_EQ(anonymous, it == expected.end() ? 200 : it->second) << route.method << " " << route.pattern;
      continue;
    }
    EXPECT_EQ(anonymous, 401) << route.method << " " << route.pattern;
    for (const auto& [role, token] : tokens) {
      const int status = call(token, route.method, path, Json::object()).status;
      if (auth::allowed(role, route.permission)) {
        EXPECT_NE(status, 401) << auth::to_string(role) << " " << route.method << " " << route.pattern;
        EXPECT_NE(status, 403) << auth::to_string(role) << " " << route.method << " " << route.pattern;
      } else {
        EXPECT_EQ(status, 403) << auth::to_string(role) << " " << route.method << " " << route.pattern;
      }
      checked++;
    }
  }
  EXPECT_GE(checked, 4 * 25);
}

// docs/openapi.yaml (served at /api/openapi.yaml) lists exactly the router's routes.
TEST_F(ServerTest, OpenApiDocumentMatchesTheRouteTable) {
  auto doc = call(developer_, "GET", "/api/openapi.yaml");
  ASSERT_EQ(doc.status, 200);
  std::set<std::string> documented;
  std::string current_path;
  std::istringstream lines(doc.body);
  std::string line;
  bool in_paths = false;
  const std::regex path_line(R"(^  (/\S*):\s*$)"), method_line(R"(^    (get|post|put|delete|patch):\s*$)");
  std::smatch m;
  while (std::getline(lines, line)) {
    if (line == "paths:")
      in_paths = true;
    else if (!line.empty() && line[0] != ' ')
      in_paths = false;
    if (!in_paths) continue;
    if (std::regex_match(line, m, path_line))
      current_path = m[1];
    else if (std::regex_match(line, m, method_line)) {
      std::string method = m[1];
      for (auto& c : method) c = static_cast<char>(std::toupper(c));
      documented.insert(method + " " + current_path);
    }
  }
  std::set<std::string> routed;
  for (const auto& route : server_->router().routes())
    routed.insert(route.method + " " + std::regex_replace(route.pattern, std::regex(R"(\+\})"), "}"));
  EXPECT_EQ(documented, routed);
}

TEST_F(ServerTest, DedicatedWorkerKeepsTheScriptWarmAndPicksUpRedeploys) {
  const std::string v1 =
      "import os\ncount = 0\ndef main():\n    global count\n    count += 1\n"
      "    return {'pid': os.getpid(), 'count': count, 'v': 1}\n";
  ASSERT_EQ(call(developer_, "POST", "/api/scripts",
                 {{"path", "f/test/warm"}, {"language", "python3"}, {"content", v1}})
                .status,
            201);
  ASSERT_TRUE(registry_.load_directory(testing::plugin_dir()));
  worker::WorkerOptions o;
  o.database_url = url_;
  o.tags = {"python3"};
  o.slots = 1;
  o.poll_interval = 200ms;
  o.dedicated_scripts = {"f/test/warm"};
  worker_ = std::make_unique<worker::Worker>(o, registry_);
  ASSERT_TRUE(worker_->start());

  std::set<int64_t> pids;
  for (int i = 1; i <= 5; ++i) {
    auto r = call(operator_, "POST", "/api/jobs/run_wait_result/p/f/test/warm");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["count"], i) << "the module was imported once and kept";
    pids.insert(r.json()["pid"].get<int64_t>());
  }
  EXPECT_EQ(pids.size(), 1u) << "one warm interpreter served every job";
  auto jobs = call(operator_, "GET", "/api/jobs?script_path=f/test/warm&limit=1").json()["jobs"];
  EXPECT_EQ(jobs[0]["tag"], "dedicated:f/test/warm");

  // A redeploy: the next job runs the new code in a fresh warm interpreter.
  std::string v2 = v1;
  v2.replace(v2.find("'v': 1"), 6, "'v': 2");
  ASSERT_EQ(call(developer_, "POST", "/api/scripts",
                 {{"path", "f/test/warm"}, {"language", "python3"}, {"content", v2}})
                .status,
            201);
  auto r = call(operator_, "POST", "/api/jobs/run_wait_result/p/f/test/warm");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["v"], 2);
  EXPECT_EQ(r.json()["count"], 1);
  EXPECT_FALSE(pids.count(r.json()["pid"].get<int64_t>()));
}

TEST_F(ServerTest, QueueStatsAndWorkersList) {
  start_worker({"bash"});
  ASSERT_EQ(call(developer_, "POST", "/api/jobs/run_inline",
                 {{"language", "noop"}, {"content", ""}, {"tag", "nobody-serves-this"}})
                .status,
            201);
  ASSERT_TRUE(
      wait_until([&] { return !call(operator_, "GET", "/api/workers").json()["workers"].empty(); }, 10s));
  auto workers = call(operator_, "GET", "/api/workers").json()["workers"];
  EXPECT_EQ(workers[0]["tags"], Json({"bash"}));
  EXPECT_EQ(workers[0]["slots"], 4);
  auto stats = call(operator_, "GET", "/api/queue").json()["tags"];
  bool found_unserved = false, found_bash = false;
  for (const auto& t : stats) {
    if (t["tag"] == "nobody-serves-this") {
      found_unserved = true;
      EXPECT_EQ(t["waiting"], 1);
      EXPECT_EQ(t["served"], false);
    }
    if (t["tag"] == "bash") found_bash = t["served"] == true;
  }
  EXPECT_TRUE(found_unserved);
  EXPECT_TRUE(found_bash);
}

}  // namespace
}  // namespace quern

namespace quern {
namespace {

// Each heartbeat carries the worker's telemetry into the registry; the list
// marks a worker whose heartbeat is late by its own interval.
TEST_F(ServerTest, WorkersReportTelemetryAndLateHeartbeatsAreMarked) {
  start_worker({"bash"});
  auto ran =
      call(developer_, "POST", "/api/jobs/run_inline", {{"language", "bash"}, {"content", "echo '{}'"}});
  ASSERT_EQ(ran.status, 201) << ran.body;
  const std::string id = std::to_string(ran.json()["id"].get<int64_t>());
  ASSERT_TRUE(wait_until(
      [&] { return call(operator_, "GET", "/api/jobs/" + id).json()["state"] == "success"; }, 20s));

  // After the job, the slot asked its bash instance for health(); a later
  // heartbeat (every 200 ms here) says so.
  Json mine;
  ASSERT_TRUE(wait_until(
      [&] {
        const Json doc = call(operator_, "GET", "/api/workers").json();
        for (const auto& w : doc["workers"])
          if (w.contains("telemetry") && w["telemetry"]["plugins"].value("bash", "") == "ok") mine = w;
        return !mine.is_null();
      },
      10s))
      << call(operator_, "GET", "/api/workers").body;
  const Json& t = mine["telemetry"];
  EXPECT_GT(t["rss_bytes"].get<int64_t>(), 1 << 20);
  EXPECT_GE(t["cpu_seconds"].get<double>(), 0.0);
  EXPECT_EQ(t["heartbeat_interval_ms"], 200);
  for (const char* window : {"15s", "5m", "30m"}) {
    EXPECT_GE(t["occupancy"][window].get<double>(), 0.0) << window;
    EXPECT_LE(t["occupancy"][window].get<double>(), 1.0) << window;
  }
  EXPECT_GT(t["occupancy"]["15s"].get<double>(), 0.0) << "a slot was busy for the job's run";
  EXPECT_EQ(t["plugins"]["noop"], "unchecked") << "no instance of it has run a job";
  EXPECT_EQ(mine["late"], false);
  EXPECT_LT(mine["heartbeat_age_s"].get<double>(), 5.0);

  // A worker that said it beats every second and was last seen 10 s ago is
  // late, though still live (seen within the server's live window).
  auto q = queue::Queue::connect(url_);
  ASSERT_TRUE(q) << q.message();
  queue::WorkerInfo ghost;
  ghost.id = "ghost";
  ghost.group = "default";
  ASSERT_TRUE((*q)->register_worker(ghost));
  queue::WorkerTelemetry beat;
  beat.heartbeat_interval_ms = 1000;
  ASSERT_TRUE((*q)->touch_worker("ghost", 0, &beat));
  {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    tx.exec("UPDATE quern.workers SET last_seen_at = now() - interval '10 seconds' WHERE id = 'ghost'");
  }
  bool seen = false;
  const Json listed = call(operator_, "GET", "/api/workers").json();
  for (const auto& w : listed["workers"]) {
    if (w["id"] != "ghost") continue;
    seen = true;
    EXPECT_EQ(w["late"], true);
    EXPECT_EQ(w["live"], true);
    EXPECT_GE(w["heartbeat_age_s"].get<double>(), 10.0);
  }
  EXPECT_TRUE(seen);
}

// An agent's telemetry is client input: refused whole, naming the field,
// and the registry row keeps what it had.
TEST_F(ServerTest, AnAgentsBadTelemetryIsRefusedNamingTheField) {
  auto bad = call(
      agent_, "POST", "/api/agent/heartbeat",
      {{"worker_id", "edge-1"}, {"leases", Json::array()}, {"telemetry", {{"occupancy", {{"15s", 7}}}}}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("telemetry.occupancy.15s"), std::string::npos) << bad.body;
  auto unknown = call(agent_, "POST", "/api/agent/heartbeat",
                      {{"worker_id", "edge-1"}, {"telemetry", {{"cmd", "rm -rf /"}}}});
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("unknown field 'cmd'"), std::string::npos) << unknown.body;

  ASSERT_EQ(call(agent_, "POST", "/api/agent/register", {{"worker_id", "edge-1"}, {"slots", 2}}).status, 200);
  auto good = call(
      agent_, "POST", "/api/agent/heartbeat",
      {{"worker_id", "edge-1"},
       {"telemetry", {{"rss_bytes", 1000}, {"occupancy", {{"5m", 0.5}}}, {"plugins", {{"bash", "ok"}}}}}});
  ASSERT_EQ(good.status, 200) << good.body;
  ASSERT_EQ(call(agent_, "POST", "/api/agent/heartbeat", {{"worker_id", "edge-1"}}).status, 200);
  Json edge;
  const Json listed = call(operator_, "GET", "/api/workers").json();
  for (const auto& w : listed["workers"])
    if (w["kind"] == "agent") edge = w;
  ASSERT_TRUE(edge.contains("telemetry")) << edge.dump();
  EXPECT_EQ(edge["telemetry"]["rss_bytes"], 1000) << "a heartbeat without telemetry keeps the last";
  EXPECT_EQ(edge["telemetry"]["occupancy"]["5m"], 0.5);
  EXPECT_EQ(edge["telemetry"]["plugins"]["bash"], "ok");
}

}  // namespace
}  // namespace quern
