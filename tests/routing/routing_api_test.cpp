// Routing rules applied by the API where it builds jobs: the submitting
// token's role, the script path, the request's args, explicit tags of the
// request and of the script, force, and a rule evaluation error as a 400.
// A real server in this process and real PostgreSQL; no worker is needed
// (the decision is the job's tag and priority).
#include <gtest/gtest.h>

#include "host/agent/api_client.h"
#include "host/auth/tokens.h"
#include "host/config/config.h"
#include "host/server/server.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kConfig = R"(<quern><routing>
  <rule role="developer" arg="region" equals="eu" tag="eu-$language" priority="77"/>
  <rule path="f/ml/*" tag="gpu"/>
  <rule arg="zone" tag="zone-$args[zone]"/>
  <rule path="f/forced/*" tag="forced" force="true"/>
</routing></quern>)";

class RoutingApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto cfg = config::parse_config(kConfig, "routing.xml");
    ASSERT_TRUE(cfg) << cfg.message();
    server::ServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;
    o.api.database_url = url_;
    o.api.routing_rules = cfg->routing_rules;
    o.limits.handler_threads = 4;
    o.api.db_connections = 4;
    server_ = std::make_unique<server::Server>(o);
    ASSERT_TRUE(server_->start());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    auto store = auth::TokenStore::connect(url_);
    ASSERT_TRUE(store) << store.message();
    for (auto role : {auth::Role::admin, auth::Role::developer, auth::Role::operator_}) {
      auth::NewToken t;
      t.role = role;
      auto issued = (*store)->create(t);
      ASSERT_TRUE(issued) << issued.message();
      tokens_[auth::to_string(role)] = issued->token;
    }
  }
  void TearDown() override { server_->stop(); }

  agent::ApiResponse call(const std::string& role, const std::string& method, const std::string& path,
                          const Json& body = nullptr) {
    agent::ApiClient c(base_, tokens_[role]);
    auto r = c.request(method, path, body.is_null() ? "" : body.dump());
    EXPECT_TRUE(r) << r.message();
    return r ? *r : agent::ApiResponse{};
  }

  // Submits and returns the job record (tag, priority).
  Json run(const std::string& role, const std::string& path, const Json& body) {
    auto r = call(role, "POST", path, body);
    EXPECT_EQ(r.status, 201) << r.body;
    if (r.status != 201) return Json::object();
    auto job = call(role, "GET", "/api/jobs/" + std::to_string(r.json()["id"].get<int64_t>()));
    EXPECT_EQ(job.json()["tag"], r.json()["tag"]);  // the answer names the routed tag
    return job.json();
  }

  void deploy(const std::string& path, const Json& extra = Json::object()) {
    Json body{{"path", path}, {"language", "bash"}, {"content", "echo '{}'"}};
    body.update(extra);
    auto r = call("developer", "POST", "/api/scripts", body);
    ASSERT_EQ(r.status, 201) << r.body;
  }

  std::string url_, base_;
  std::unique_ptr<server::Server> server_;
  std::map<std::string, std::string> tokens_;
};

TEST_F(RoutingApiTest, RulesPickTagAndPriorityAtSubmission) {
  const Json eu{{"language", "bash"}, {"content", "true"}, {"args", {{"region", "eu"}}}};
  // The token's role: the developer's run matches rule 1, the admin's does not.
  Json job = run("developer", "/api/jobs/run_inline", eu);
  EXPECT_EQ(job["tag"], "eu-bash");
  EXPECT_EQ(job["priority"], 77);
  job = run("admin", "/api/jobs/run_inline", eu);
  EXPECT_EQ(job["tag"], "bash");
  EXPECT_EQ(job["priority"], queue::kDefaultPriority);
  // The request's own tag and priority win over a rule that does not force.
  Json explicit_body = eu;
  explicit_body["tag"] = "mine";
  explicit_body["priority"] = 5;
  job = run("developer", "/api/jobs/run_inline", explicit_body);
  EXPECT_EQ(job["tag"], "mine");
  EXPECT_EQ(job["priority"], 5);

  // Script path globs; the script's own tag is explicit too; force beats both.
  deploy("f/ml/train");
  deploy("f/ml/tagged", {{"tag", "script-tag"}});
  deploy("f/forced/x", {{"tag", "script-tag"}});
  EXPECT_EQ(run("operator", "/api/jobs/run/p/f/ml/train", Json::object())["tag"], "gpu");
  EXPECT_EQ(run("operator", "/api/jobs/run/p/f/ml/tagged", Json::object())["tag"], "script-tag");
  EXPECT_EQ(run("operator", "/api/jobs/run/p/f/forced/x", Json::object())["tag"], "forced");
  EXPECT_EQ(run("operator", "/api/jobs/run/p/f/forced/x", Json{{"tag", "req"}})["tag"], "forced");

  // A script's own tag is explicit whatever its args (the path rule that
  // matches first does not force).
  EXPECT_EQ(run("operator", "/api/jobs/run/p/f/ml/tagged", Json{{"args", {{"zone", "b7"}}}})["tag"],
            "script-tag");
  // $args substitution, and its evaluation error as a 400 naming the rule.
  job = run("admin", "/api/jobs/run_inline",
            Json{{"language", "bash"}, {"content", "true"}, {"args", {{"zone", 7}}}});
  EXPECT_EQ(job["tag"], "zone-7");
  auto bad = call("admin", "POST", "/api/jobs/run_inline",
                  Json{{"language", "bash"}, {"content", "true"}, {"args", {{"zone", "a b"}}}});
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.error_message().find("routing rule 3 (routing.xml:4): tag \"zone-a b\""), std::string::npos)
      << bad.body;
}

}  // namespace
}  // namespace quern
