// The web UI's server side (host/server/api_ui.cpp): its files under a
// Content-Security-Policy that allows no inline code (and files that need
// none), the login cookie and what it may do, CSRF, forged cookies, and the
// rerun route the UI's button calls. The pages themselves are driven in a
// real browser by tests/ui.
#include <gtest/gtest.h>

#include <regex>

#include <nlohmann/json.hpp>

#include "host/auth/tokens.h"
#include "host/queue/queue.h"
#include "host/server/server.h"
#include "host/ui/ui_assets.h"
#include "tests/http/http_test_client.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using Json = nlohmann::ordered_json;
using Headers = std::map<std::string, std::string>;

class UiSession : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    server::ServerOptions o;
    o.port = 0;
    o.api.database_url = url_;
    o.api.db_connections = 4;
    server_ = std::make_unique<server::Server>(o);
    ASSERT_TRUE(server_->start());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    auto tokens = auth::TokenStore::connect(url_).value();
    auto make = [&](auth::Role role) {
      auth::NewToken t;
      t.role = role;
      if (role == auth::Role::agent) {
        t.group = "edge";
        t.tags = {"edge"};
      }
      return tokens->create(t).value().token;
    };
    admin_ = make(auth::Role::admin);
    operator_ = make(auth::Role::operator_);
    agent_ = make(auth::Role::agent);
  }
  void TearDown() override { server_->stop(); }

  testing::HttpResult call(const std::string& method, const std::string& path, const std::string& body = "",
                           const Headers& headers = {}) {
    return testing::http_request(method, base_ + path, body, headers);
  }
  // Logs in; returns the cookie header value to send back ("quern_session=...").
  std::string login(const std::string& token) {
    auto r = call("POST", "/ui/login", Json{{"token", token}}.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    const std::string set = r.headers["set-cookie"];
    return set.substr(0, set.find(';'));
  }

  std::string url_, base_, admin_, operator_, agent_;
  std::unique_ptr<server::Server> server_;
};

TEST_F(UiSession, ThePageIsServedUnderAPolicyThatAllowsNoInlineCode) {
  auto root = call("GET", "/");
  EXPECT_EQ(root.status, 302);
  EXPECT_EQ(root.headers["location"], "/ui/");
  auto page = call("GET", "/ui/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.headers["content-type"], "text/html; charset=utf-8");
  const std::string csp = page.headers["content-security-policy"];
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  EXPECT_EQ(page.headers["x-content-type-options"], "nosniff");
  // Every file the UI is made of is served, and none needs what the policy forbids.
  ASSERT_FALSE(ui::assets().empty());
  size_t total = 0;
  for (const ui::Asset& a : ui::assets()) {
    auto r = call("GET", "/ui/" + std::string(a.path));
    EXPECT_EQ(r.status, 200) << a.path;
    EXPECT_EQ(r.body.size(), a.content.size()) << a.path;
    total += a.content.size();
    const std::string text(a.content);
    if (a.path.size() > 5 && a.path.substr(a.path.size() - 5) == ".html") {
      EXPECT_FALSE(std::regex_search(text, std::regex("<script(?![^>]*\\bsrc=)[^>]*>", std::regex::icase)))
          << a.path << ": an inline <script>";
      EXPECT_FALSE(std::regex_search(text, std::regex("\\son[a-z]+\\s*=", std::regex::icase)))
          << a.path << ": an inline event handler";
      EXPECT_FALSE(std::regex_search(text, std::regex("<style|\\sstyle\\s*=", std::regex::icase)))
          << a.path << ": inline style";
    }
    EXPECT_EQ(text.find("eval("), std::string::npos) << a.path;
    EXPECT_EQ(text.find("new Function("), std::string::npos) << a.path;
  }
  EXPECT_LT(total, 300u * 1024) << "the UI's files, uncompressed";
  EXPECT_EQ(call("GET", "/ui/nope.js").status, 404);
  EXPECT_EQ(call("GET", "/ui/%2e%2e/%2e%2e/etc/passwd").status, 404);
}

TEST_F(UiSession, ALoginCookieIsHttpOnlyStrictAndWorksForTheApi) {
  auto r = call("POST", "/ui/login", Json{{"token", operator_}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["role"], "operator");
  const std::string set = r.headers["set-cookie"];
  EXPECT_NE(set.find("HttpOnly"), std::string::npos) << set;
  EXPECT_NE(set.find("SameSite=Strict"), std::string::npos) << set;
  EXPECT_NE(set.find("Path=/"), std::string::npos) << set;
  const std::string cookie = set.substr(0, set.find(';'));
  auto me = call("GET", "/api/me", "", {{"Cookie", cookie}});
  ASSERT_EQ(me.status, 200) << me.body;
  const Json who = Json::parse(me.body);
  EXPECT_EQ(who["role"], "operator");
  const auto perms = who["permissions"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(perms.begin(), perms.end(), "jobs.cancel"), perms.end());
  EXPECT_EQ(std::find(perms.begin(), perms.end(), "tokens.manage"), perms.end());
  // The operator's session reaches what an operator may, nothing more.
  EXPECT_EQ(call("GET", "/api/queue", "", {{"Cookie", cookie}}).status, 200);
  EXPECT_EQ(call("GET", "/api/tokens", "", {{"Cookie", cookie}}).status, 403);
  // Logging out clears it.
  auto out = call("POST", "/ui/logout");
  EXPECT_EQ(out.status, 200);
  EXPECT_NE(out.headers["set-cookie"].find("Max-Age=0"), std::string::npos);
}

TEST_F(UiSession, ForgedOrAgentOrMissingCredentialsAreRefused) {
  EXPECT_EQ(call("GET", "/api/me").status, 401);
  EXPECT_EQ(call("GET", "/api/me", "", {{"Cookie", "quern_session=qrn_forged.notatoken"}}).status, 401);
  EXPECT_EQ(call("GET", "/api/me", "", {{"Cookie", "other=1; quern_session="}}).status, 401);
  EXPECT_EQ(call("POST", "/ui/login", Json{{"token", "qrn_forged"}}.dump()).status, 401);
  EXPECT_EQ(call("POST", "/ui/login", Json{{"token", agent_}}.dump()).status, 403);
  EXPECT_EQ(call("POST", "/ui/login", "{}").status, 400);
  EXPECT_EQ(call("POST", "/ui/login", "[").status, 400);
  // An agent's bearer token reads no session either.
  EXPECT_EQ(call("GET", "/api/me", "", {{"Authorization", "Bearer " + agent_}}).status, 403);
}

// A cookie is sent by the browser whatever page asks: a state-changing call
// authenticated by it must show it comes from the UI (a header no cross-site
// form can set).
TEST_F(UiSession, CookieAuthenticatedChangesNeedTheUiHeader) {
  const std::string cookie = login(admin_);
  const std::string body = Json{{"language", "noop"}, {"content", ""}}.dump();
  auto bare = call("POST", "/api/jobs/run_inline", body, {{"Cookie", cookie}});
  EXPECT_EQ(bare.status, 403) << bare.body;
  EXPECT_NE(bare.body.find("X-Quern-UI"), std::string::npos) << bare.body;
  auto ui = call("POST", "/api/jobs/run_inline", body, {{"Cookie", cookie}, {"X-Quern-UI", "1"}});
  EXPECT_EQ(ui.status, 201) << ui.body;
  // A bearer token needs no such header (scripts and CLIs).
  EXPECT_EQ(call("POST", "/api/jobs/run_inline", body, {{"Authorization", "Bearer " + admin_}}).status, 201);
}

TEST_F(UiSession, RerunQueuesTheSameCodeArgumentsTagAndPriority) {
  const Headers admin{{"Authorization", "Bearer " + admin_}};
  auto first = call("POST", "/api/jobs/run_inline",
                    Json{{"language", "noop"},
                         {"content", "x"},
                         {"args", {{"b", 2}, {"a", 1}}},
                         {"tag", "t1"},
                         {"priority", 70}}
                        .dump(),
                    admin);
  ASSERT_EQ(first.status, 201) << first.body;
  const int64_t id = Json::parse(first.body)["id"];
  auto again = call("POST", "/api/jobs/" + std::to_string(id) + "/rerun", "", admin);
  ASSERT_EQ(again.status, 201) << again.body;
  const int64_t id2 = Json::parse(again.body)["id"];
  EXPECT_NE(id2, id);
  const Json a = Json::parse(call("GET", "/api/jobs/" + std::to_string(id), "", admin).body);
  const Json b = Json::parse(call("GET", "/api/jobs/" + std::to_string(id2), "", admin).body);
  for (const char* field : {"tag", "language", "priority", "args"}) EXPECT_EQ(a[field], b[field]) << field;
  EXPECT_EQ(b["args"].dump(), R"({"b":2,"a":1})");  // key order kept
  // Inline code needs jobs.run_inline, which an operator lacks.
  EXPECT_EQ(call("POST", "/api/jobs/" + std::to_string(id) + "/rerun", "",
                 {{"Authorization", "Bearer " + operator_}})
                .status,
            403);
  EXPECT_EQ(call("POST", "/api/jobs/999999/rerun", "", admin).status, 404);
  EXPECT_EQ(call("POST", "/api/jobs/abc/rerun", "", admin).status, 400);
}

// The run answer says at once when no live worker serves the job's tag (the
// UI's run form and `quern run --server` show it); the job is queued anyway.
TEST_F(UiSession, ARunForATagNoWorkerServesAnswersWithAWarning) {
  auto r = call("POST", "/api/jobs/run_inline",
                Json{{"language", "noop"}, {"content", ""}, {"tag", "nowhere"}}.dump(),
                {{"Authorization", "Bearer " + admin_}});
  ASSERT_EQ(r.status, 201) << r.body;
  const Json answer = Json::parse(r.body);
  EXPECT_EQ(
      answer.value("warning", ""),
      "no live worker serves tag nowhere; it waits until one does (no group of the server's config serves "
      "it: add the tag to a group's tags)");
  auto job = call("GET", "/api/jobs/" + std::to_string(answer["id"].get<int64_t>()), "",
                  {{"Authorization", "Bearer " + admin_}});
  EXPECT_EQ(Json::parse(job.body)["state"], "queued");
}

}  // namespace
}  // namespace quern
