// The listing commands as people and scripts use them, through the real
// binary against a real server: a table by default (headers and the seeded
// rows), the API's JSON with --json; and `quern run x.py` with the shipped
// config/quern.xml under `quern up` returning the script's result.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "host/auth/tokens.h"
#include "host/server/server.h"
#include "tests/http/http_test_client.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

class CliListing : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    url_ = testing::fresh_database_url(name_);
    server::ServerOptions o;
    o.port = 0;
    o.api.database_url = url_;
    o.api.db_connections = 4;
    server_ = std::make_unique<server::Server>(o);
    ASSERT_TRUE(server_->start());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    auth::NewToken t;
    t.role = auth::Role::admin;
    admin_ = auth::TokenStore::connect(url_).value()->create(t).value().token;
    dir_ = fs::temp_directory_path() / ("quern-cli-listing-" + std::to_string(::getpid()) + "-" + name_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    server_->stop();
    fs::remove_all(dir_);
  }

  // `quern ARGS --server ... --token ...`: exit status and output.
  testing::Finished quern(std::vector<std::string> args) {
    args.insert(args.begin(), testing::quern_binary());
    args.insert(args.end(), {"--server", base_, "--token", admin_});
    return testing::run_to_end(args, (dir_ / "cli.log").string(), 30s);
  }
  Json api(const std::string& method, const std::string& path, const Json& body = nullptr) {
    auto r = testing::http_request(method, base_ + path, body.is_null() ? "" : body.dump(),
                                   {{"Authorization", "Bearer " + admin_}});
    EXPECT_LT(r.status, 300) << method << " " << path << ": " << r.body;
    return Json::parse(r.body);
  }

  std::string name_, url_, base_, admin_;
  std::unique_ptr<server::Server> server_;
  fs::path dir_;
};

TEST_F(CliListing, EachListingCommandPrintsATableAndItsJsonWithJson) {
  api("POST", "/api/scripts", {{"path", "f/team/hello"}, {"language", "bash"}, {"content", "echo 1"}});
  api("POST", "/api/scripts", {{"path", "f/team/hello"}, {"language", "bash"}, {"content", "echo 2"}});
  const int64_t job = api("POST", "/api/jobs/run/p/f/team/hello", {{"args", {{"name", "Ada"}}}})["id"];
  api("POST", "/api/schedules",
      {{"name", "f/team/nightly"}, {"cron", "@daily"}, {"script_path", "f/team/hello"}});
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> table_has;  // the header and a seeded row
    std::string json_key;                // a key of the API's document
  };
  const std::string id = std::to_string(job);
  const std::vector<Case> cases = {
      {{"queue"}, {"TAG", "WAITING", "bash"}, "tags"},
      {{"job", "list"}, {"ID", "STATE", id, "queued", "f/team/hello"}, "jobs"},
      {{"job", "get", id}, {"queued", "f/team/hello", "Ada"}, "args"},
      {{"script", "list"}, {"PATH", "f/team/hello"}, "scripts"},
      {{"script", "versions", "f/team/hello"}, {"HASH", "LANGUAGE", "bash"}, "versions"},
      {{"schedule", "list"}, {"NAME", "CRON", "f/team/nightly", "@daily"}, "schedules"},
      {{"workers"}, {"ID", "GROUP"}, "workers"},
  };
  for (const Case& c : cases) {
    const std::string what = c.args[0] + (c.args.size() > 1 ? " " + c.args[1] : "");
    auto table = quern(c.args);
    EXPECT_EQ(table.status, 0) << what << ": " << table.output;
    for (const std::string& s : c.table_has)
      EXPECT_NE(table.output.find(s), std::string::npos) << what << " lacks '" << s << "':\n" << table.output;
    EXPECT_NE(table.output.rfind('{', 0), 0u) << what << " printed JSON:\n" << table.output;
    auto args = c.args;
    args.push_back("--json");
    auto json = quern(args);
    EXPECT_EQ(json.status, 0) << what << " --json: " << json.output;
    const Json doc = Json::parse(json.output, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << what << " --json is not JSON:\n" << json.output;
    EXPECT_TRUE(doc.contains(c.json_key)) << what << ": " << doc.dump();
  }
  // `quern token` reads the database itself.
  for (bool json : {false, true}) {
    std::vector<std::string> args = {testing::quern_binary(), "token", "list", "--database-url", url_};
    if (json) args.push_back("--json");
    auto tokens = testing::run_to_end(args, (dir_ / "token.log").string(), 30s);
    EXPECT_EQ(tokens.status, 0) << tokens.output;
    if (json)
      EXPECT_EQ(Json::parse(tokens.output)["tokens"][0]["role"], "admin") << tokens.output;
    else
      EXPECT_NE(tokens.output.find("ROLE"), std::string::npos) << tokens.output;
    EXPECT_EQ(tokens.output.find(admin_), std::string::npos) << "a secret was printed";
  }
  // A failing call says why and exits 1, table or not.
  auto missing = quern({"job", "get", "999999"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("quern job get: "), std::string::npos) << missing.output;
}

// The "new user" case: `quern up` with the shipped config serves
// Python, and `quern run hello.py` infers python3 from the extension.
TEST_F(CliListing, QuernRunOfAPythonFileWithTheShippedConfigReturnsItsResult) {
  const fs::path script = dir_ / "hello.py";
  std::ofstream(script) << "def main():\n    return {'answer': 6 * 7}\n";
  const std::string shipped = testing::source_dir() + "/config/quern.xml";
  testing::ChildProcess up(
      {testing::quern_binary(), "up", "--config", shipped, "--database-url", url_, "--no-server",
       "--plugin-dir", testing::plugin_dir(), "--data-dir", (dir_ / "data").string()},
      (dir_ / "up.log").string());
  ASSERT_TRUE(testing::wait_until(
      [&] { return up.output().find("ready.") != std::string::npos || !up.running(); }, 60s))
      << up.output();
  auto run = testing::run_to_end(
      {testing::quern_binary(), "run", script.string(), "--config", shipped, "--database-url", url_},
      (dir_ / "run.log").string(), 60s);
  EXPECT_EQ(run.status, 0) << run.output << "\n" << up.output();
  EXPECT_NE(run.output.find("(tag python3)"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("{\"answer\":42}"), std::string::npos) << run.output;
  up.signal(SIGTERM);
  EXPECT_EQ(up.wait_exit(60s), 0) << up.output();
}

}  // namespace
}  // namespace quern
