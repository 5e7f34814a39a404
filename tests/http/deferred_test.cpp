// Deferred responses (Response::defer) over real sockets: parked requests
// hold no handler thread, a wake-up resumes them at once, the re-check and
// the deadline answer without one, and a client that leaves or a server that
// stops frees them.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "tests/http/http_test_client.h"
#include "tests/http/raw_connection.h"
#include "tests/http/test_server.h"
#include "tests/support/child_process.h"

namespace quern::testing {
namespace {

using http::json_response;
using http::Request;
using http::Response;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// What the deferrals wait for: "jobs" taken one at a time, and the wakers of
// every deferral made (held as the contract says: weakly).
struct Board {
  std::atomic<int> jobs{0};
  std::atomic<int> made{0}, destroyed{0}, resumes{0};
  std::mutex mu;
  std::vector<std::function<void()>> wakers;  // guarded by mu

  bool take() {
    int n = jobs.load();
    while (n > 0) {
      if (jobs.compare_exchange_weak(n, n - 1)) return true;
    }
    return false;
  }
  // One more job; with `wake`, every deferral hears of it (a herd, like a tag's NOTIFY).
  void push(bool wake) {
    ++jobs;
    if (!wake) return;
    std::vector<std::function<void()>> copy;
    {
      std::lock_guard lock(mu);
      copy = wakers;
    }
    for (auto& w : copy) w();
  }
};

Response job_answer() { return json_response(200, R"({"job": 1})"); }
Response empty_answer() { return json_response(200, R"({"jobs": []})"); }

class Wait : public http::Deferred {
 public:
  Wait(Board& b, Clock::time_point deadline, bool answer_on_resume)
      : Deferred(deadline), b_(b), answer_on_resume_(answer_on_resume) {
    ++b_.made;
  }
  ~Wait() override { ++b_.destroyed; }
  std::optional<Response> resume() override {
    ++b_.resumes;
    if (answer_on_resume_) return json_response(200, R"({"resumed": true})");
    if (b_.take()) return job_answer();
    return std::nullopt;
  }
  Response expire() override { return empty_answer(); }

 private:
  Board& b_;
  const bool answer_on_resume_;
};

std::string poll_request(int wait_ms, const std::string& path = "/poll") {
  return "POST " + path + "?wait_ms=" + std::to_string(wait_ms) +
         " HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
}

class DeferredTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // POST /poll?wait_ms=N: a job now, or a deferral until one comes (or {"jobs": []} after N ms).
    ts.router.add({"POST", "/poll", "", "", [this](const Request& req) {
                     if (board.take()) return job_answer();
                     const int wait_ms = std::stoi(req.query.at("wait_ms"));
                     auto d = std::make_shared<Wait>(board, Clock::now() + std::chrono::milliseconds(wait_ms),
                                                     false);
                     {
                       std::lock_guard lock(board.mu);
                       board.wakers.push_back(d->waker());
                     }
                     Response r;
                     r.defer = d;
                     return r;
                   }});
    // POST /early: woken before the handler even returns it; its resume() answers.
    ts.router.add({"POST", "/early", "", "", [this](const Request&) {
                     auto d = std::make_shared<Wait>(board, Clock::now() + 10s, true);
                     d->wake();
                     Response r;
                     r.defer = d;
                     return r;
                   }});
    ts.router.add({"GET", "/healthz", "", "", [](const Request&) { return json_response(200, "{}"); }});
  }

  void start(int handler_threads = 4) {
    http::ServerLimits limits;
    limits.handler_threads = handler_threads;
    ts.start(limits);
  }

  // n connections, each with one poll sent; waits until all are parked.
  std::vector<std::unique_ptr<RawConnection>> park(int n, int wait_ms) {
    std::vector<std::unique_ptr<RawConnection>> conns;
    const size_t before = ts.server->deferred_requests();
    for (int i = 0; i < n; ++i) {
      conns.push_back(std::make_unique<RawConnection>(ts.port()));
      EXPECT_TRUE(conns.back()->is_open());
      EXPECT_TRUE(conns.back()->send_all(poll_request(wait_ms), 5s));
    }
    EXPECT_TRUE(wait_until([&] { return ts.server->deferred_requests() == before + n; }, 10s))
        << ts.server->deferred_requests() << " parked of " << before + n;
    return conns;
  }

  Board board;
  TestServer ts;  // declared after board: stopped (and its deferrals freed) first
};

TEST_F(DeferredTest, ManyParkedPollsHoldNoHandlerThreadAndAWakeUpAnswersOnePromptly) {
  start(4);
  auto conns = park(64, 10000);
  // Sixteen times more waiting requests than handler threads, and a plain
  // request still answers at once.
  const auto t0 = Clock::now();
  auto health = http_request("GET", ts.url("/healthz"), "", {}, 5s);
  EXPECT_EQ(health.status, 200) << health.error;
  EXPECT_LT(Clock::now() - t0, 1s);
  EXPECT_EQ(ts.server->pending_requests(), 0u);
  for (auto& c : conns) EXPECT_FALSE(c->readable_now());

  // One job, every deferral woken: exactly one answers with it, well before
  // the 1 s re-check would have found it.
  const auto pushed = Clock::now();
  board.push(true);
  RawConnection* winner = testing::first_readable(conns, 5s);
  ASSERT_NE(winner, nullptr);
  EXPECT_LT(Clock::now() - pushed, 700ms);
  auto r = winner->read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body), json::parse(R"({"job": 1})"));
  // Every other one resumed, found nothing, and parked again.
  EXPECT_TRUE(wait_until([&] { return board.resumes.load() >= 64; }, 5s)) << board.resumes.load();
  EXPECT_TRUE(wait_until([&] { return ts.server->deferred_requests() == 63; }, 5s));
  int answered = 0;
  for (auto& c : conns)
    if (c.get() != winner && c->readable_now()) ++answered;
  EXPECT_EQ(answered, 0);
  EXPECT_EQ(board.jobs.load(), 0);
}

TEST_F(DeferredTest, AWakeUpBeforeTheRequestParksIsKept) {
  start(2);
  RawConnection c(ts.port());
  const auto t0 = Clock::now();
  ASSERT_TRUE(c.send_all(poll_request(0, "/early"), 5s));
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body), json::parse(R"({"resumed": true})"));
  EXPECT_LT(Clock::now() - t0, 700ms);  // not the 1 s re-check
}

TEST_F(DeferredTest, TheRecheckFindsWhatNoWakeUpAnnounced) {
  start(2);
  auto conns = park(1, 10000);
  const auto t0 = Clock::now();
  board.push(false);  // a lost notification
  auto r = conns[0]->read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body), json::parse(R"({"job": 1})"));
  EXPECT_LT(Clock::now() - t0, http::Deferred::kMaxRecheck + 1s);
}

TEST_F(DeferredTest, TheDeadlineAnswersAndTheConnectionServesAPipelinedRequest) {
  start(2);
  RawConnection c(ts.port());
  const auto t0 = Clock::now();
  // A poll and, behind it on the same connection, a second request.
  ASSERT_TRUE(c.send_all(poll_request(300) + "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 5s));
  auto first = c.read_response(5s);
  ASSERT_TRUE(first);
  EXPECT_GE(Clock::now() - t0, 250ms);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(json::parse(first->body), json::parse(R"({"jobs": []})"));
  auto second = c.read_response(5s);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(second->body, "{}");
  EXPECT_TRUE(wait_until([&] { return board.destroyed.load() == board.made.load(); }, 5s));
  EXPECT_EQ(ts.server->deferred_requests(), 0u);
}

TEST_F(DeferredTest, AClientThatLeavesFreesItsDeferral) {
  start(4);
  auto conns = park(8, 20000);
  EXPECT_EQ(board.destroyed.load(), 0);
  for (auto& c : conns) c->close();
  EXPECT_TRUE(wait_until(
      [&] {
        return ts.server->deferred_requests() == 0 && ts.server->active_connections() == 0 &&
               board.destroyed.load() == board.made.load();
      },
      5s))
      << ts.server->deferred_requests() << " still parked; " << board.destroyed.load() << " of "
      << board.made.load() << " freed";
  // Wake-ups of requests that ended do nothing; the server goes on.
  board.push(true);
  EXPECT_EQ(http_request("GET", ts.url("/healthz"), "", {}, 5s).status, 200);
  auto r = http_request("POST", ts.url("/poll?wait_ms=5000"), "", {}, 10s);
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"job": 1})"));
}

TEST_F(DeferredTest, StopEndsParkedRequestsPromptly) {
  start(4);
  auto conns = park(16, 60000);
  const auto t0 = Clock::now();
  ts.server->stop();
  EXPECT_LT(Clock::now() - t0, 1500ms);
  EXPECT_EQ(board.destroyed.load(), board.made.load());
  EXPECT_EQ(ts.server->deferred_requests(), 0u);
  for (auto& c : conns) EXPECT_TRUE(c->wait_closed(2s));
  board.push(true);  // wakers of a stopped server's requests: nothing happens
}

}  // namespace
}  // namespace quern::testing
