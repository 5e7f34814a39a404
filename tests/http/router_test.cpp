// Router matching and URL decoding, without a server.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/http/http_server.h"
#include "host/http/url_codec.h"

namespace quern::http {
namespace {

Handler named(const std::string& name) {
  return [name](const Request&) { return json_response(200, "\"" + name + "\""); };
}

Router make_router() {
  Router r;
  r.add({"GET", "/api/jobs", "", "", named("list")});
  r.add({"POST", "/api/jobs", "", "", named("create")});
  r.add({"GET", "/api/jobs/{id}", "", "", named("get")});
  r.add({"GET", "/api/jobs/stats", "", "", named("stats")});  // added after {id}: still wins
  r.add({"GET", "/api/jobs/{id}/logs", "", "", named("logs")});
  r.add({"DELETE", "/api/jobs/{id}", "", "", named("delete")});
  r.add({"GET", "/api/scripts/p/{path+}", "", "", named("script")});
  r.add({"GET", "/", "", "", named("root")});
  return r;
}

std::string which(const Router& r, const std::string& method, const std::string& path,
                  std::map<std::string, std::string>* params = nullptr, bool* known = nullptr) {
  std::map<std::string, std::string> p;
  bool k = false;
  const Route* route = r.match(method, path, p, &k);
  if (params) *params = p;
  if (known) *known = k;
  return route ? route->handler(Request{}).body : "";
}

TEST(Router, LiteralAndParameterSegments) {
  Router r = make_router();
  std::map<std::string, std::string> params;
  EXPECT_EQ(which(r, "GET", "/api/jobs"), "\"list\"");
  EXPECT_EQ(which(r, "POST", "/api/jobs"), "\"create\"");
  EXPECT_EQ(which(r, "GET", "/api/jobs/42", &params), "\"get\"");
  EXPECT_EQ(params.at("id"), "42");
  EXPECT_EQ(which(r, "GET", "/api/jobs/42/logs", &params), "\"logs\"");
  EXPECT_EQ(params.at("id"), "42");
  EXPECT_EQ(which(r, "GET", "/"), "\"root\"");
}

TEST(Router, LiteralBeatsParameterWhateverTheOrder) {
  Router r = make_router();
  std::map<std::string, std::string> params;
  EXPECT_EQ(which(r, "GET", "/api/jobs/stats", &params), "\"stats\"");
  EXPECT_TRUE(params.empty());
}

TEST(Router, ParameterIsOneDecodedSegment) {
  Router r = make_router();
  std::map<std::string, std::string> params;
  // An encoded slash stays inside the segment; '+' is not a space in a path.
  EXPECT_EQ(which(r, "GET", "/api/jobs/a%2Fb+c%20d", &params), "\"get\"");
  EXPECT_EQ(params.at("id"), "a/b+c d");
  EXPECT_EQ(which(r, "GET", "/api/jobs/"), "");     // empty segment: no match
  EXPECT_EQ(which(r, "GET", "/api/jobs/%zz"), "");  // malformed escape: no match
}

TEST(Router, RestSegmentCapturesSlashes) {
  Router r = make_router();
  std::map<std::string, std::string> params;
  EXPECT_EQ(which(r, "GET", "/api/scripts/p/f/team/name", &params), "\"script\"");
  EXPECT_EQ(params.at("path"), "f/team/name");
  EXPECT_EQ(which(r, "GET", "/api/scripts/p/one", &params), "\"script\"");
  EXPECT_EQ(params.at("path"), "one");
  EXPECT_EQ(which(r, "GET", "/api/scripts/p/a%20b/c", &params), "\"script\"");
  EXPECT_EQ(params.at("path"), "a b/c");
  EXPECT_EQ(which(r, "GET", "/api/scripts/p/"), "");
  EXPECT_EQ(which(r, "GET", "/api/scripts/p"), "");
}

TEST(Router, UnknownPathVersusWrongMethod) {
  Router r = make_router();
  bool known = true;
  EXPECT_EQ(which(r, "GET", "/nope", nullptr, &known), "");
  EXPECT_FALSE(known);
  EXPECT_EQ(which(r, "PUT", "/api/jobs/7", nullptr, &known), "");
  EXPECT_TRUE(known);
  EXPECT_EQ(r.allowed_methods("/api/jobs/7"), (std::vector<std::string>{"DELETE", "GET", "HEAD"}));
  EXPECT_EQ(r.allowed_methods("/api/jobs"), (std::vector<std::string>{"GET", "HEAD", "POST"}));
  EXPECT_TRUE(r.allowed_methods("/nope").empty());
}

TEST(Router, MalformedPatternsAreRefused) {
  Router r;
  EXPECT_THROW(r.add({"GET", "api", "", "", named("x")}), std::invalid_argument);
  EXPECT_THROW(r.add({"GET", "/a/{}", "", "", named("x")}), std::invalid_argument);
  EXPECT_THROW(r.add({"GET", "/a/{rest+}/b", "", "", named("x")}), std::invalid_argument);
  EXPECT_TRUE(r.routes().empty());
}

TEST(UrlCodec, PercentDecodingAndQueries) {
  using detail::parse_query;
  using detail::percent_decode;
  EXPECT_EQ(percent_decode("a%20b+c", false), "a b+c");
  EXPECT_EQ(percent_decode("a%20b+c", true), "a b c");
  EXPECT_EQ(percent_decode("%e2%82%AC", false), "\xe2\x82\xac");
  EXPECT_FALSE(percent_decode("%4", false));
  EXPECT_FALSE(percent_decode("%g0", false));
  auto q = parse_query("a=1&b=x+y%26z&&flag&a=2&e%3D=%3D");
  ASSERT_TRUE(q);
  EXPECT_EQ(*q, (std::map<std::string, std::string>{{"a", "2"}, {"b", "x y&z"}, {"flag", ""}, {"e=", "="}}));
  EXPECT_FALSE(parse_query("a=%"));
}

TEST(JsonError, HasTheOneErrorShape) {
  Response r = json_error(404, "not_found", "no \"such\" thing\n");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "application/json");
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body,
            nlohmann::json::parse(R"({"error": {"code": "not_found", "message": "no \"such\" thing\n"}})"));
  // Invalid UTF-8 from client input must not make the error itself fail.
  EXPECT_NO_THROW(nlohmann::json::parse(json_error(400, "bad_request", "bad \xff byte").body));
}

}  // namespace
}  // namespace quern::http
