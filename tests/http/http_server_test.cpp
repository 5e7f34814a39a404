// The HTTP server over real sockets: routing, errors, keep-alive, handler pool.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>

#include "tests/http/http_test_client.h"
#include "tests/http/raw_connection.h"
#include "tests/http/test_server.h"
#include "tests/support/child_process.h"

namespace quern::testing {
namespace {

using http::json_error;
using http::json_response;
using http::Request;
using http::Response;
using nlohmann::json;
using namespace std::chrono_literals;

Response echo(const Request& req) {
  json j;
  j["method"] = req.method;
  j["target"] = req.target;
  j["path"] = req.path;
  j["params"] = req.path_params;
  j["query"] = req.query;
  j["body"] = req.body;
  j["x_test"] = req.header("x-test");
  j["remote"] = req.remote;
  return json_response(200, j.dump());
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* p : {"/api/jobs", "/api/jobs/{id}", "/api/scripts/p/{path+}"}) {
      ts.router.add({"GET", p, "", "", echo});
    }
    ts.router.add({"POST", "/api/jobs", "", "", echo});
    ts.router.add({"DELETE", "/api/jobs/{id}", "", "", echo});
    ts.router.add(
        {"GET", "/throw", "", "", [](const Request&) -> Response { throw std::runtime_error("boom"); }});
  }
  TestServer ts;
};

void expect_error(const HttpResult& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.error << r.body;
  EXPECT_EQ(r.headers.count("content-type") ? r.headers.at("content-type") : "", "application/json");
  auto body = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r.body;
  ASSERT_EQ(body.size(), 1u) << r.body;
  EXPECT_EQ(body["error"]["code"], code) << r.body;
  EXPECT_TRUE(body["error"]["message"].is_string()) << r.body;
  EXPECT_EQ(body["error"].size(), 2u) << r.body;
}

TEST_F(HttpServerTest, RoutesLiteralParameterAndRestSegments) {
  ts.start();
  auto r = http_request("GET", ts.url("/api/jobs"), "", {{"X-Test", "hello"}});
  ASSERT_EQ(r.status, 200) << r.error;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["path"], "/api/jobs");
  EXPECT_EQ(j["x_test"], "hello");
  EXPECT_EQ(j["remote"].get<std::string>().rfind("127.0.0.1:", 0), 0u);

  j = json::parse(http_request("GET", ts.url("/api/jobs/4%202")).body);
  EXPECT_EQ(j["params"]["id"], "4 2");
  EXPECT_EQ(j["path"], "/api/jobs/4 2");

  j = json::parse(http_request("GET", ts.url("/api/scripts/p/f/team/name")).body);
  EXPECT_EQ(j["params"]["path"], "f/team/name");

  r = http_request("POST", ts.url("/api/jobs"), R"({"a": 1})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["body"], R"({"a": 1})");
}

TEST_F(HttpServerTest, QueryIsDecoded) {
  ts.start();
  auto r = http_request("GET", ts.url("/api/jobs?status=running&tag=a+b%2Fc&empty=&x=1&x=2"));
  ASSERT_EQ(r.status, 200) << r.error;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["query"], json({{"status", "running"}, {"tag", "a b/c"}, {"empty", ""}, {"x", "2"}}));
  EXPECT_EQ(j["path"], "/api/jobs");
  EXPECT_EQ(j["target"], "/api/jobs?status=running&tag=a+b%2Fc&empty=&x=1&x=2");
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  ts.start();
  expect_error(http_request("GET", ts.url("/nowhere")), 404, "not_found");
  auto r = http_request("PUT", ts.url("/api/jobs/7"));
  expect_error(r, 405, "method_not_allowed");
  EXPECT_EQ(r.headers["allow"], "DELETE, GET, HEAD");
  expect_error(http_request("GET", ts.url("/api/jobs/%zz")), 400, "bad_request");
}

TEST_F(HttpServerTest, HeadAnswersWithTheGetRouteWithoutBody) {
  ts.start();
  auto get = http_request("GET", ts.url("/api/jobs"));
  auto head = http_request("HEAD", ts.url("/api/jobs"));
  ASSERT_EQ(head.status, 200) << head.error;
  EXPECT_TRUE(head.body.empty());
  // The remote port differs between the two requests, so compare loosely.
  EXPECT_NEAR(std::stoi(head.headers["content-length"]), static_cast<int>(get.body.size()), 2);
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  ts.start();
  RawConnection c(ts.port());
  ASSERT_TRUE(c.is_open());
  std::string remote;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send_all("GET /api/jobs/" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n", 5s));
    auto r = c.read_response(5s);
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
    auto j = json::parse(r->body);
    EXPECT_EQ(j["params"]["id"], std::to_string(i));
    if (i == 0) remote = j["remote"];
    EXPECT_EQ(j["remote"], remote);  // the same connection
  }
  // Pipelined: two requests in one write, answered in order.
  ASSERT_TRUE(
      c.send_all("GET /api/jobs/a HTTP/1.1\r\nHost: t\r\n\r\nPOST /api/jobs HTTP/1.1\r\nHost: t\r\n"
                 "Content-Length: 3\r\n\r\nxyz",
                 5s));
  auto a = c.read_response(5s);
  auto b = c.read_response(5s);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(json::parse(a->body)["params"]["id"], "a");
  EXPECT_EQ(json::parse(b->body)["body"], "xyz");
  // Connection: close is honoured.
  ASSERT_TRUE(c.send_all("GET /api/jobs HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 5s));
  auto last = c.read_response(5s);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->headers["connection"], "close");
  EXPECT_TRUE(c.wait_closed(5s));
}

TEST_F(HttpServerTest, ThrowingHandlerGets500AndTheServerKeepsServing) {
  ts.start();
  RawConnection c(ts.port());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c.send_all("GET /throw HTTP/1.1\r\nHost: t\r\n\r\n", 5s));
    auto r = c.read_response(5s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 500);
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "internal");
    EXPECT_EQ(r->body.find("boom"), std::string::npos);  // no internals leak to the client
  }
  ASSERT_TRUE(c.send_all("GET /api/jobs HTTP/1.1\r\nHost: t\r\n\r\n", 5s));
  auto ok = c.read_response(5s);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  expect_error(http_request("GET", ts.url("/throw")), 500, "internal");
}

TEST_F(HttpServerTest, BeforeHookRunsBeforeHandlersAndCanShortCircuit) {
  ts.router.add({"GET", "/secret", "secrets.read", "", echo});
  std::atomic<int> calls{0};
  ts.router.before = [&](const http::Route& route, const Request& req) -> std::optional<Response> {
    ++calls;
    if (!route.permission.empty() && req.header("authorization") != "Bearer ok") {
      return json_error(401, "missing_token", "no");
    }
    return std::nullopt;
  };
  ts.start();
  expect_error(http_request("GET", ts.url("/secret")), 401, "missing_token");
  EXPECT_EQ(http_request("GET", ts.url("/secret"), "", {{"Authorization", "Bearer ok"}}).status, 200);
  EXPECT_EQ(http_request("GET", ts.url("/api/jobs")).status, 200);
  EXPECT_EQ(calls.load(), 3);
  http_request("GET", ts.url("/nowhere"));  // no route: no hook
  EXPECT_EQ(calls.load(), 3);
}

TEST_F(HttpServerTest, MalformedRequestGets400) {
  ts.start();
  RawConnection c(ts.port());
  ASSERT_TRUE(c.send_all("GET /api/jobs HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 5s));
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "bad_request");
  EXPECT_TRUE(c.wait_closed(5s));
}

TEST_F(HttpServerTest, ExpectContinueIsAnswered) {
  ts.start();
  RawConnection c(ts.port());
  ASSERT_TRUE(c.send_all(
      "POST /api/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", 5s));
  ASSERT_TRUE(wait_until(
      [&] {
        c.read_some(10ms);
        return c.buffer().find("\r\n\r\n") != std::string::npos;
      },
      5s));
  EXPECT_EQ(c.buffer(), "HTTP/1.1 100 Continue\r\n\r\n");
  c.buffer().clear();
  ASSERT_TRUE(c.send_all("hello", 5s));
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["body"], "hello");
}

TEST_F(HttpServerTest, FullHandlerPoolAnswers503) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> entered{0};
  ts.router.add({"GET", "/block", "", "", [&](const Request&) {
                   ++entered;
                   std::unique_lock lock(mu);
                   cv.wait_for(lock, 30s, [&] { return release; });
                   return json_response(200, "{}");
                 }});
  http::ServerLimits limits;
  limits.handler_threads = 1;
  limits.max_pending_requests = 1;
  limits.io_threads = 1;
  ts.start(limits);
  auto first = std::async(std::launch::async, [&] { return http_request("GET", ts.url("/block")); });
  ASSERT_TRUE(wait_until([&] { return entered.load() == 1; }, 10s));
  // One more fits in the queue, the other gets 503 at once (which of the two
  // arrives first is up to the scheduler).
  auto second = std::async(std::launch::async, [&] { return http_request("GET", ts.url("/block")); });
  auto third = std::async(std::launch::async, [&] { return http_request("GET", ts.url("/block")); });
  HttpResult rejected;
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto* f : {&second, &third}) {
          if (f->valid() && f->wait_for(0s) == std::future_status::ready) {
            rejected = f->get();
            return true;
          }
        }
        return false;
      },
      10s));
  expect_error(rejected, 503, "overloaded");
  EXPECT_EQ(rejected.headers["retry-after"], "1");
  EXPECT_EQ(ts.server->pending_requests(), 1u);
  // The io thread is free: requests that need no handler are answered meanwhile.
  expect_error(http_request("GET", ts.url("/nowhere")), 404, "not_found");
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(first.get().status, 200);
  auto& queued = second.valid() ? second : third;
  EXPECT_EQ(queued.get().status, 200);
}

TEST_F(HttpServerTest, StartFailsCleanlyOnABusyPortAndStopIsIdempotent) {
  ts.start();
  http::HttpServer other(ts.router, {});
  Status st = other.start("127.0.0.1", ts.port());
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("127.0.0.1"), std::string::npos) << st.message();
  http::HttpServer bad(ts.router, {});
  EXPECT_FALSE(bad.start("not an address", 0).is_ok());
  ts.server->stop();
  ts.server->stop();
  EXPECT_NE(http_request("GET", ts.url("/api/jobs"), "", {}, 2s).status, 200);
}

}  // namespace
}  // namespace quern::testing
