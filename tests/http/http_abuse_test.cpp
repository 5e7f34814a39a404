// The server under hostile or broken clients: it refuses, times out or sheds
// them and keeps answering everyone else.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <vector>

#include "tests/http/http_test_client.h"
#include "tests/http/raw_connection.h"
#include "tests/http/test_server.h"
#include "tests/support/child_process.h"

namespace quern::testing {
namespace {

using http::json_response;
using http::Request;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

class HttpAbuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ts.router.add(
        {"GET", "/ok", "", "", [](const Request&) { return json_response(200, R"({"ok":true})"); }});
    ts.router.add({"POST", "/upload", "", "", [](const Request& r) {
                     return json_response(200, json({{"size", r.body.size()}}).dump());
                   }});
  }
  void expect_normal_client_served() {
    auto r = http_request("GET", ts.url("/ok"), "", {}, 10s);
    EXPECT_EQ(r.status, 200) << r.error << r.body;
  }
  TestServer ts;
};

// Sends `piece` repeatedly (up to `total` bytes) until the server answers or
// closes. Returns the bytes sent.
size_t send_until_answered(RawConnection& c, const std::string& piece, size_t total) {
  size_t sent = 0;
  while (sent < total) {
    if (c.readable_now()) break;
    if (!c.send_all(piece, 5s)) break;  // reset or stalled
    sent += piece.size();
  }
  return sent;
}

TEST_F(HttpAbuseTest, HundredMegabyteHeaderIsRefusedWith431) {
  http::ServerLimits limits;
  limits.max_header_bytes = 16 * 1024;
  ts.start(limits);
  RawConnection c(ts.port());
  ASSERT_TRUE(c.send_all("GET /ok HTTP/1.1\r\nHost: t\r\n", 5s));
  std::string piece = "X-Pad: " + std::string(8 * 1024, 'a') + "\r\n";
  size_t sent = send_until_answered(c, piece, 100u * 1024 * 1024);
  RecordProperty("header_bytes_sent_before_refusal", std::to_string(sent));
  EXPECT_LT(sent, 20u * 1024 * 1024) << "the server did not stop the header early";
  auto r = c.read_response(5s);
  if (r) {
    EXPECT_EQ(r->status, 431);
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "request_header_too_large");
    EXPECT_EQ(r->headers["connection"], "close");
  }
  EXPECT_TRUE(c.wait_closed(5s));  // a 431 or, at least, a close
  expect_normal_client_served();
}

TEST_F(HttpAbuseTest, BodyOverLimitWithContentLengthGets413BeforeItIsSent) {
  http::ServerLimits limits;
  limits.max_body_bytes = 1024 * 1024;
  ts.start(limits);
  const std::string head = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 104857600\r\n\r\n";
  {
    // Refused on the Content-Length alone: not one body byte needs to be sent.
    RawConnection early(ts.port());
    ASSERT_TRUE(early.send_all(head, 5s));
    auto r = early.read_response(5s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
  }
  RawConnection c(ts.port());
  ASSERT_TRUE(c.send_all(head, 5s));
  size_t sent = send_until_answered(c, std::string(64 * 1024, 'b'), 100u * 1024 * 1024);
  RecordProperty("body_bytes_sent_before_413", std::to_string(sent));
  EXPECT_LT(sent, 100u * 1024 * 1024);
  auto r = c.read_response(5s);
  ASSERT_TRUE(r) << "no 413; " << sent << " bytes sent";
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "payload_too_large");
  EXPECT_TRUE(c.wait_closed(5s));
  expect_normal_client_served();
  // Just under the limit is fine.
  auto ok = http_request("POST", ts.url("/upload"), std::string(limits.max_body_bytes, 'c'));
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(json::parse(ok.body)["size"], limits.max_body_bytes);
}

TEST_F(HttpAbuseTest, ChunkedBodyOverLimitGets413WhileStreaming) {
  http::ServerLimits limits;
  limits.max_body_bytes = 1024 * 1024;
  ts.start(limits);
  RawConnection c(ts.port());
  ASSERT_TRUE(c.send_all("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", 5s));
  std::string chunk = "10000\r\n" + std::string(0x10000, 'd') + "\r\n";
  size_t sent = send_until_answered(c, chunk, 100u * 1024 * 1024);
  RecordProperty("chunked_bytes_sent_before_413", std::to_string(sent));
  EXPECT_GE(sent, limits.max_body_bytes);
  EXPECT_LT(sent, 20u * 1024 * 1024);
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "payload_too_large");
  expect_normal_client_served();
}

TEST_F(HttpAbuseTest, SlowClientGets408AfterReadTimeout) {
  http::ServerLimits limits;
  limits.read_timeout = 500ms;
  ts.start(limits);
  RawConnection c(ts.port());
  const std::string request = "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
  auto start = Clock::now();
  size_t i = 0;
  // One byte at a time; between bytes, wait (up to 250 ms) for the server's answer.
  while (i < request.size() && !c.peer_closed() && c.buffer().empty()) {
    if (!c.send_all(request.substr(i++, 1), 1s)) break;
    c.read_some(250ms);
  }
  auto r = c.read_response(5s);
  double elapsed = ms_since(start);
  RecordProperty("slow_client_answered_after_ms", std::to_string(static_cast<int>(elapsed)));
  ASSERT_TRUE(r) << "no 408 after " << elapsed << " ms";
  EXPECT_EQ(r->status, 408);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "request_timeout");
  EXPECT_LT(i, request.size());  // it never got the whole request in
  EXPECT_GE(elapsed, 450);
  EXPECT_LT(elapsed, 3000);
  EXPECT_TRUE(c.wait_closed(5s));
  expect_normal_client_served();
}

TEST_F(HttpAbuseTest, IdleConnectionIsClosedSilentlyAfterIdleTimeout) {
  http::ServerLimits limits;
  limits.idle_timeout = 300ms;
  limits.read_timeout = 5s;
  ts.start(limits);
  RawConnection fresh(ts.port());
  RawConnection used(ts.port());
  ASSERT_TRUE(used.send_all("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n", 5s));
  ASSERT_TRUE(used.read_response(5s));
  auto start = Clock::now();
  EXPECT_TRUE(fresh.wait_closed(5s));
  EXPECT_TRUE(used.wait_closed(5s));
  EXPECT_LT(ms_since(start), 3000);
  EXPECT_TRUE(fresh.buffer().empty()) << fresh.buffer();
  EXPECT_TRUE(used.buffer().empty()) << used.buffer();
}

void raise_fd_limit(rlim_t want) {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = std::min(want, rl.rlim_max);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  ASSERT_GE(rl.rlim_cur, want) << "RLIMIT_NOFILE hard limit too low for this test";
}

std::vector<std::unique_ptr<RawConnection>> open_connections(uint16_t port, int n) {
  std::vector<std::unique_ptr<RawConnection>> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(std::make_unique<RawConnection>(port));
    if (!out.back()->is_open()) ADD_FAILURE() << "connection " << i << " failed";
  }
  return out;
}

TEST_F(HttpAbuseTest, ThousandIdleConnectionsDoNotStopANormalClient) {
  raise_fd_limit(4096);
  http::ServerLimits limits;
  limits.max_connections = 2000;
  ts.start(limits);
  auto idle = open_connections(ts.port(), 1000);
  ASSERT_TRUE(wait_until([&] { return ts.server->active_connections() == 1000; }, 20s))
      << ts.server->active_connections();
  auto start = Clock::now();
  expect_normal_client_served();
  RecordProperty("request_ms_with_1000_idle", std::to_string(ms_since(start)));
  // The normal client's connection goes away again; the idle ones stay.
  EXPECT_TRUE(wait_until([&] { return ts.server->active_connections() == 1000; }, 10s));
  for (auto& c : idle) EXPECT_FALSE(c->readable_now());
}

TEST_F(HttpAbuseTest, ConnectionsBeyondTheLimitGet503) {
  raise_fd_limit(4096);
  http::ServerLimits limits;
  limits.max_connections = 500;
  ts.start(limits);
  auto conns = open_connections(ts.port(), 1000);
  ASSERT_TRUE(wait_until([&] { return ts.server->active_connections() == 500; }, 20s));
  int rejected = 0;
  for (size_t i = 500; i < conns.size(); ++i) {
    auto r = conns[i]->read_response(5s);
    if (r && r->status == 503 && json::parse(r->body)["error"]["code"] == "overloaded") ++rejected;
    conns[i]->close();
  }
  EXPECT_EQ(rejected, 500);
  for (size_t i = 0; i < 500; ++i) EXPECT_FALSE(conns[i]->readable_now()) << i;
  // At the limit a new client is still answered, with 503...
  auto r = http_request("GET", ts.url("/ok"), "", {}, 10s);
  EXPECT_EQ(r.status, 503) << r.error;
  // ...and served once connections go away.
  for (size_t i = 0; i < 100; ++i) conns[i]->close();
  ASSERT_TRUE(wait_until([&] { return ts.server->active_connections() <= 400; }, 10s));
  expect_normal_client_served();
  // The ones kept open are still served.
  ASSERT_TRUE(conns[200]->send_all("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n", 5s));
  auto kept = conns[200]->read_response(5s);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->status, 200);
}

}  // namespace
}  // namespace quern::testing
