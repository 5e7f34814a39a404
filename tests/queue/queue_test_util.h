// Helpers shared by the queue tests (real PostgreSQL via tests/support).
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "host/queue/queue.h"
#include "tests/support/test_postgres.h"

namespace quern::queue::test {

// The value of a StatusOr, or a test failure (thrown, so the test stops).
template <typename T>
T must(StatusOr<T> r, const char* what = "call") {
  if (!r.is_ok()) {
    ADD_FAILURE() << what << " failed: " << r.message();
    throw std::runtime_error(r.message());
  }
  return std::move(r).value();
}

inline void must_ok(const Status& s, const char* what = "call") {
  if (!s.is_ok()) {
    ADD_FAILURE() << what << " failed: " << s.message();
    throw std::runtime_error(s.message());
  }
}

inline std::unique_ptr<Queue> open_queue(const std::string& url, QueueOptions options = {}) {
  return must(Queue::connect(url, options), "Queue::connect");
}

inline std::string test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string(info->test_suite_name()) + "_" + info->name();
}

// A fresh migrated database per test, with one open Queue.
class QueueFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = quern::testing::fresh_database_url(test_name());
    q_ = open_queue(url_);
  }
  std::string url_;
  std::unique_ptr<Queue> q_;
};

inline NewJob make_job(const std::string& tag = "default", int priority = kDefaultPriority) {
  NewJob j;
  j.tag = tag;
  j.language = "bash";
  j.priority = priority;
  j.payload = {{"code", "echo hi"}};
  return j;
}

// Polls `cond` until it holds or the deadline passes (conditions, not sleeps).
template <typename F>
bool eventually(F&& cond, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll interval, not synchronization
  }
  return cond();
}

}  // namespace quern::queue::test
