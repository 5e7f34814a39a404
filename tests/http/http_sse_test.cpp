// Server-sent events: events leave one by one while the handler runs, a
// client leaving is seen by send(), and stop() ends streams promptly.
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <vector>

#include "host/http/http_session.h"
#include "tests/http/http_test_client.h"
#include "tests/http/raw_connection.h"
#include "tests/http/test_server.h"
#include "tests/support/child_process.h"

namespace quern::testing {
namespace {

using http::EventSink;
using http::Request;
using http::Response;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

Response stream_response(std::function<void(EventSink&)> fn) {
  Response r;
  r.stream = std::move(fn);
  return r;
}

TEST(SseFormat, MultiLineDataBecomesSeveralDataLines) {
  EXPECT_EQ(http::detail::format_sse_event("tick", "a\r\nb\rc\nd"),
            "event: tick\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
  EXPECT_EQ(http::detail::format_sse_event("", ""), "data: \n\n");
  EXPECT_EQ(http::detail::format_sse_event("bad\nname", "x"), "event: badname\ndata: x\n\n");
}

TEST(Sse, EventsArriveOneByOneWhileTheHandlerRuns) {
  TestServer ts;
  std::mutex mu;
  std::condition_variable cv;
  int received = 0;
  std::vector<bool> send_results;
  bool handler_timed_out = false;
  ts.router.add({"GET", "/events", "", "", [&](const Request&) {
                   return stream_response([&](EventSink& sink) {
                     for (int i = 0; i < 5; ++i) {
                       bool ok = sink.send("tick", "n=" + std::to_string(i) + "\nsecond line");
                       std::unique_lock lock(mu);
                       send_results.push_back(ok);
                       // The next event only once the client has this one: proves no buffering.
                       if (!cv.wait_for(lock, 10s, [&] { return received > i; })) {
                         handler_timed_out = true;
                         return;
                       }
                     }
                   });
                 }});
  ts.start();
  std::vector<SseEvent> events;
  auto result = read_sse(
      ts.url("/events"),
      [&](const SseEvent& e) {
        events.push_back(e);
        {
          std::lock_guard lock(mu);
          ++received;
        }
        cv.notify_all();
        return true;
      },
      20s);
  EXPECT_EQ(result.status, 200) << result.error;
  EXPECT_EQ(result.headers["content-type"], "text/event-stream");
  EXPECT_EQ(result.headers["cache-control"], "no-cache");
  EXPECT_EQ(result.headers.count("content-length"), 0u);
  EXPECT_TRUE(result.ended) << result.error;
  EXPECT_FALSE(handler_timed_out);
  ASSERT_EQ(events.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(events[i].event, "tick");
    EXPECT_EQ(events[i].data, "n=" + std::to_string(i) + "\nsecond line");
  }
  EXPECT_EQ(send_results, std::vector<bool>(5, true));
}

TEST(Sse, SendReturnsFalseOnceTheClientDisconnects) {
  TestServer ts;
  std::mutex mu;
  std::condition_variable cv;
  bool saw_false = false;
  int sent_after_first = 0;
  ts.router.add({"GET", "/events", "", "", [&](const Request&) {
                   return stream_response([&](EventSink& sink) {
                     if (!sink.send("first", "1")) return;
                     auto deadline = Clock::now() + 20s;
                     while (Clock::now() < deadline) {
                       // Pace the keep-alives; the client's leaving is what ends the loop.
                       std::unique_lock lock(mu);
                       cv.wait_for(lock, 20ms);
                       lock.unlock();
                       if (!sink.keepalive()) {
                         std::lock_guard l(mu);
                         saw_false = true;
                         break;
                       }
                       ++sent_after_first;
                     }
                     cv.notify_all();
                   });
                 }});
  ts.start();
  auto result = read_sse(
      ts.url("/events"), [](const SseEvent&) { return false; }, 10s);
  EXPECT_TRUE(result.stopped);
  auto left = Clock::now();
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard l(mu);
        return saw_false;
      },
      10s));
  RecordProperty("send_false_after_disconnect_ms", std::to_string(ms_since(left)));
  // The server keeps serving (short form of the client, as the API tests use it).
  int status = read_sse(
      ts.url("/events"), {}, [](const std::string& event, const std::string&) { return event != "first"; },
      10s);
  EXPECT_EQ(status, 200);
  ts.server->stop();  // the second stream's handler uses mu and cv: end it before they go
}

TEST(Sse, StopWithOpenConnectionsAndAnActiveStreamReturnsPromptly) {
  TestServer ts;
  std::atomic<bool> stream_ended{false};
  std::mutex mu;
  std::condition_variable cv;
  ts.router.add({"GET", "/events", "", "", [&](const Request&) {
                   return stream_response([&](EventSink& sink) {
                     while (sink.send("tick", "x")) {
                       std::unique_lock lock(mu);
                       cv.wait_for(lock, 50ms);  // pacing, not synchronization
                     }
                     stream_ended = true;
                   });
                 }});
  ts.router.add({"GET", "/ok", "", "", [](const Request&) { return http::json_response(200, "{}"); }});
  ts.start();
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 20; ++i) idle.push_back(std::make_unique<RawConnection>(ts.port()));
  RawConnection half(ts.port());  // a request half sent
  ASSERT_TRUE(half.send_all("GET /ok HTTP/1.1\r\n", 5s));
  std::atomic<int> got{0};
  auto client = std::async(std::launch::async, [&] {
    return read_sse(
        ts.url("/events"),
        [&](const SseEvent&) {
          ++got;
          return true;
        },
        30s);
  });
  ASSERT_TRUE(wait_until([&] { return got.load() >= 2; }, 10s));
  ASSERT_TRUE(wait_until([&] { return ts.server->active_connections() == 22; }, 10s));
  auto start = Clock::now();
  ts.server->stop();
  double stop_ms = ms_since(start);
  RecordProperty("stop_ms", std::to_string(stop_ms));
  EXPECT_LT(stop_ms, 1000);
  EXPECT_TRUE(stream_ended.load());
  ts.server->stop();  // twice is fine
  ASSERT_EQ(client.wait_for(10s), std::future_status::ready);
  auto result = client.get();
  EXPECT_FALSE(result.timed_out);
  for (auto& c : idle) EXPECT_TRUE(c->wait_closed(5s));
  EXPECT_TRUE(half.wait_closed(5s));
}

}  // namespace
}  // namespace quern::testing
