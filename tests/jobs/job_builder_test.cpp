// The one job builder (host/jobs): each step on its own, then the three
// submission paths — the API's run routes, a schedule's tick, and `quern
// run` pushing to the database itself — building the same job from the
// same config: routing, <limits>, the maximum timeout and the GPU request.
#include "host/jobs/job_builder.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "host/auth/tokens.h"
#include "host/config/config.h"
#include "host/server/api.h"
#include "host/server/server.h"
#include "tests/http/http_test_client.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern::jobs {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;

// One config for every path: a routing rule on an argument, a <limits>
// entry for the key that rule's jobs carry, a maximum timeout.
const char* kConfig = R"(<quern>
  <queue default-timeout="30s" max-timeout="60s"/>
  <routing>
    <rule arg="region" matches="eu-*" tag="$args[region]-$language" priority="70"/>
  </routing>
  <limits>
    <limit key="api:eu-west" max-running="2"/>
  </limits>
</quern>
)";

config::Config config() {
  auto cfg = config::parse_config(kConfig, "test.xml");
  EXPECT_TRUE(cfg) << cfg.message();
  return cfg ? *cfg : config::Config{};
}

Rules rules_of(const config::Config& cfg) {
  return Rules{cfg.routing_rules, cfg.limits, cfg.max_timeout_s, nullptr};
}

scripts::ScriptVersion script(const std::string& language = "bash") {
  scripts::ScriptVersion v;
  v.path = "f/t/job";
  v.hash = "abc";
  v.language = language;
  v.content = "echo hi";
  v.settings.concurrency = queue::ConcurrencyLimit{"api:$args[region]", 9, 0, 0ms};
  return v;
}

TEST(BuildJob, EachStep) {
  const Rules rules = rules_of(config());
  Submission sub{script(), {}, "", ""};
  sub.request.args = {{"region", "eu-west"}};
  auto job = build_job(rules, sub);
  ASSERT_TRUE(job) << job.message();
  EXPECT_EQ(job->tag, "eu-west-bash");             // routing
  EXPECT_EQ(job->priority, 70);                    // routing
  EXPECT_EQ(job->concurrency.key, "api:eu-west");  // $args substituted
  EXPECT_EQ(job->concurrency.max_running, 2);      // <limits> replaces the script's 9
  EXPECT_EQ(job->payload["script_hash"], "abc");
  EXPECT_FALSE(job->payload.contains("limits"));
  // A script's resource limits go into the job document; a request's replace them.
  Submission limited = sub;
  limited.script.settings.limits = queue::JobLimits{256 << 20, 0, 0};
  EXPECT_EQ(build_job(rules, limited)->payload["limits"], Json({{"memory_max", 256 << 20}}));
  limited.request.limits = queue::JobLimits{0, 10, 0};
  EXPECT_EQ(build_job(rules, limited)->payload["limits"], Json({{"pids_max", 10}}));
  // The request's tag wins over a rule that does not force.
  sub.request.tag = "mine";
  EXPECT_EQ(build_job(rules, sub)->tag, "mine");
  sub.request.tag.clear();
  // A live dedicated worker takes every run whose request names no tag.
  Rules dedicated = rules;
  dedicated.dedicated_alive = [](const std::string& path) { return path == "f/t/job"; };
  sub.request.args = {{"region", "us"}};
  EXPECT_EQ(build_job(dedicated, sub)->tag, "dedicated:f/t/job");
  // The maximum timeout and the queue's checks are input errors.
  sub.request.timeout_s = 61;
  auto over = build_job(rules, sub);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.code(), StatusCode::invalid_argument);
  EXPECT_EQ(over.message(), "timeout_s 61 exceeds this server's maximum of 60 s");
  // A key whose $args[name] the job lacks.
  sub.request.timeout_s = 0;
  sub.request.args = Json::object();
  EXPECT_EQ(build_job(rules, sub).code(), StatusCode::invalid_argument);
  // A gpu job's request becomes the claim's columns.
  Submission gpu{script("gpu"), {}, "", ""};
  gpu.script.settings.concurrency.reset();
  gpu.request.args = {{"gpus", 2}, {"memory_mb", 1000}};
  auto g = build_job(rules, gpu);
  ASSERT_TRUE(g) << g.message();
  EXPECT_EQ(g->gpus, 2);
  EXPECT_EQ(g->gpu_memory_mb, 1000);
  gpu.request.args = {{"gpus", 0}};
  EXPECT_EQ(build_job(rules, gpu).message(), "gpu job args: \"gpus\" must be at least 1");
}

class ThreePaths : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url("three_paths");
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q);
    q_ = std::move(q).value();
    dir_ = std::filesystem::temp_directory_path() / ("quern-three-paths-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "quern.xml") << kConfig;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  server::ApiOptions api_options() {
    const config::Config cfg = config();
    server::ApiOptions o;
    o.database_url = url_;
    o.routing_rules = cfg.routing_rules;
    o.limits = cfg.limits;
    o.max_timeout_s = cfg.max_timeout_s;
    return o;
  }

  // `quern run` without --server: exit code and, with --no-wait, the job id on stdout.
  std::pair<int, std::string> quern_run(std::vector<std::string> args) {
    std::vector<std::string> argv = {
        testing::quern_binary(), "run", "--config", (dir_ / "quern.xml").string(),
        "--database-url",        url_,  "--no-wait"};
    argv.insert(argv.end(), args.begin(), args.end());
    testing::ChildProcess p(argv, (dir_ / ("run-" + std::to_string(runs_++) + ".log")).string());
    const int rc = p.wait_exit(30s);
    return {rc, p.output()};
  }
  queue::JobRecord job(int64_t id) {
    auto r = q_->get_job(id);
    EXPECT_TRUE(r && *r);
    return r && *r ? **r : queue::JobRecord{};
  }
  std::string column(int64_t id, const std::string& name) {
    return *q_->exec_scalar("SELECT " + name + " FROM quern.queue WHERE id = " + std::to_string(id));
  }

  std::string url_;
  std::unique_ptr<queue::Queue> q_;
  std::filesystem::path dir_;
  int runs_ = 0;
};

TEST_F(ThreePaths, TheApiATickAndQuernRunBuildTheSameJob) {
  server::ServerOptions so;
  so.port = 0;
  so.api = api_options();
  so.run_scheduler = false;
  server::Server server(so);
  ASSERT_TRUE(server.start());
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  auto tokens = auth::TokenStore::connect(url_);
  ASSERT_TRUE(tokens);
  auth::NewToken t;
  t.role = auth::Role::admin;
  const std::map<std::string, std::string> auth = {
      {"Authorization", "Bearer " + (*tokens)->create(t)->token}};
  auto post = [&](const std::string& path, const Json& body) {
    return testing::http_request("POST", base + path, body.dump(), auth);
  };
  ASSERT_EQ(post("/api/scripts", {{"path", "f/t/job"},
                                  {"language", "bash"},
                                  {"content", "echo hi"},
                                  {"concurrency", {{"key", "api:$args[region]"}, {"max_running", 9}}}})
                .status,
            201);

  // 1. The API, by path.
  auto api = post("/api/jobs/run/p/f/t/job", {{"args", {{"region", "eu-west"}}}});
  ASSERT_EQ(api.status, 201) << api.body;
  const queue::JobRecord by_api = job(nlohmann::json::parse(api.body)["id"].get<int64_t>());
  // 2. A schedule's tick of the same script.
  server::Api ticks(api_options());
  schedule::Schedule s;
  s.name = "f/t/tick";
  s.script_path = "f/t/job";
  s.args = {{"region", "eu-west"}};
  auto tick = ticks.schedule_job_builder()(s);
  ASSERT_TRUE(tick) << tick.message();
  // 3. `quern run` of the same code, pushed to the database by the CLI.
  auto [rc, out] =
      quern_run({"--language", "bash", "--code", "echo hi", "--args", R"({"region": "eu-west"})"});
  ASSERT_EQ(rc, 0) << out;
  const queue::JobRecord by_cli = job(std::stoll(out.substr(out.find_last_of(')') + 1)));

  for (const auto& [name, tag, priority] : {std::tuple{"api", by_api.tag, by_api.priority},
                                            {"tick", tick->tag, tick->priority},
                                            {"cli", by_cli.tag, by_cli.priority}}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(tag, "eu-west-bash");
    EXPECT_EQ(priority, 70);
  }
  // <limits> replaced the script's number for the key, by the API and by a tick alike.
  EXPECT_EQ(by_api.concurrency_key, "api:eu-west");
  EXPECT_EQ(
      column(by_api.id, "(SELECT max_running FROM quern.concurrency_limits l WHERE l.key = concurrency_key)"),
      "2");
  EXPECT_EQ(tick->concurrency.key, "api:eu-west");
  EXPECT_EQ(tick->concurrency.max_running, 2);

  // The maximum timeout: refused alike, with the same words.
  auto too_long =
      post("/api/jobs/run_inline", {{"language", "bash"}, {"content", "true"}, {"timeout_s", 3600}});
  EXPECT_EQ(too_long.status, 400);
  EXPECT_NE(too_long.body.find("timeout_s 3600 exceeds this server's maximum of 60 s"), std::string::npos);
  auto [rc2, out2] = quern_run({"--language", "bash", "--code", "true", "--timeout", "3600"});
  EXPECT_EQ(rc2, 2);
  EXPECT_NE(out2.find("timeout_s 3600 exceeds this server's maximum of 60 s"), std::string::npos) << out2;

  // A GPU request reaches the claim's columns from the CLI as from the API.
  auto gpu_api = post("/api/jobs/run_inline",
                      {{"language", "gpu"}, {"content", ""}, {"args", {{"gpus", 2}, {"memory_mb", 1000}}}});
  ASSERT_EQ(gpu_api.status, 201) << gpu_api.body;
  auto [rc3, out3] =
      quern_run({"--language", "gpu", "--code", "{}", "--args", R"({"gpus": 2, "memory_mb": 1000})"});
  ASSERT_EQ(rc3, 0) << out3;
  for (int64_t id : {nlohmann::json::parse(gpu_api.body)["id"].get<int64_t>(),
                     static_cast<int64_t>(std::stoll(out3.substr(out3.find_last_of(')') + 1)))}) {
    EXPECT_EQ(column(id, "gpus"), "2");
    EXPECT_EQ(column(id, "gpu_memory_mb"), "1000");
  }
  server.stop();
}

}  // namespace
}  // namespace quern::jobs
