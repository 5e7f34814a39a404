// JobWaiters' tag watches against a real PostgreSQL: a notification on a
// tag's channel wakes one watcher, taking turns, skipping watchers that have
// ended; an announcement of a job due later wakes none; wake_tags() wakes as
// many others as asked; a channel watch (the token feed) hears every
// notification. Each check is synchronised by a sentinel channel NOTIFYed
// after the notification under test: notifications arrive in commit order,
// so when the sentinel is heard, the one before it has been handled.
#include "host/server/job_waiters.h"

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <atomic>
#include <memory>
#include <vector>

#include "host/queue/queue.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern::server {
namespace {

using namespace std::chrono_literals;
using quern::testing::wait_until;

class JobWaitersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ =
        quern::testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    waiters_ = std::make_unique<JobWaiters>(url_);
  }
  void TearDown() override {
    watches_.clear();
    waiters_.reset();
  }

  // A tag watcher that counts its wake-ups and says `alive` when woken.
  void add_watcher(const std::string& tag, bool alive = true) {
    auto count = std::make_shared<std::atomic<int>>(0);
    counts_.push_back(count);
    watches_.push_back(waiters_->watch_tags({tag}, [count, alive] {
      ++*count;
      return alive;
    }));
  }
  // Registers the sentinel last and waits until it is heard: every channel
  // watched before it is LISTENed.
  void listen() {
    watches_.push_back(
        waiters_->watch_channel("quern_test_sentinel", [this](const std::string&) { ++sentinel_; }));
    ASSERT_TRUE(wait_until(
        [&] {
          if (sentinel_ > 0) return true;
          notify("quern_test_sentinel", "");
          return false;
        },
        10s));
  }
  // NOTIFYs channel (payload), then the sentinel, and waits for the sentinel.
  void notify_and_settle(const std::string& channel, const std::string& payload) {
    const int seen = sentinel_;
    pqxx::connection c(url_);
    pqxx::work tx(c);
    tx.exec("SELECT pg_notify(" + tx.quote(channel) + ", " + tx.quote(payload) + ")");
    tx.commit();
    notify("quern_test_sentinel", "");
    ASSERT_TRUE(wait_until([&] { return sentinel_ > seen; }, 10s));
  }
  void notify(const std::string& channel, const std::string& payload) {
    pqxx::connection c(url_);
    pqxx::nontransaction(c).exec("SELECT pg_notify(" + c.quote(channel) + ", " + c.quote(payload) + ")");
  }
  std::vector<int> counts() const {
    std::vector<int> out;
    for (const auto& c : counts_) out.push_back(c->load());
    return out;
  }

  std::string url_;
  std::unique_ptr<JobWaiters> waiters_;
  std::vector<std::unique_ptr<JobWaiters::TagWatch>> watches_;
  std::vector<std::shared_ptr<std::atomic<int>>> counts_;
  std::atomic<int> sentinel_{0};
};

TEST_F(JobWaitersTest, ANotificationWakesOneWatcherOfItsTagTakingTurns) {
  for (int i = 0; i < 4; ++i) add_watcher("t");
  add_watcher("other");
  listen();
  const std::string channel = queue::channel_for_tag("t");
  notify_and_settle(channel, "");
  EXPECT_EQ(counts(), (std::vector<int>{1, 0, 0, 0, 0}));
  for (int i = 0; i < 3; ++i) notify_and_settle(channel, "");
  EXPECT_EQ(counts(), (std::vector<int>{1, 1, 1, 1, 0}));
  notify_and_settle(channel, "");
  EXPECT_EQ(counts(), (std::vector<int>{2, 1, 1, 1, 0}));
  // A job due later: nobody would find it now.
  notify_and_settle(channel, "+1500000");
  EXPECT_EQ(counts(), (std::vector<int>{2, 1, 1, 1, 0}));
}

TEST_F(JobWaitersTest, AWatcherThatHasEndedPassesTheWakeUpToTheNext) {
  add_watcher("t", /*alive=*/false);
  add_watcher("t", /*alive=*/false);
  add_watcher("t");
  listen();
  notify_and_settle(queue::channel_for_tag("t"), "");
  EXPECT_EQ(counts(), (std::vector<int>{1, 1, 1}));  // asked in turn; the third took it
}

TEST_F(JobWaitersTest, WakeTagsWakesAsManyOthersAsAsked) {
  for (int i = 0; i < 5; ++i) add_watcher("t");
  add_watcher("u");
  EXPECT_EQ(waiters_->wake_tags({"t"}, 2, watches_[0].get()), 2);
  EXPECT_EQ(counts(), (std::vector<int>{0, 1, 1, 0, 0, 0}));
  EXPECT_EQ(waiters_->wake_tags({"t"}, 2, watches_[0].get()), 2);  // the next two
  EXPECT_EQ(counts(), (std::vector<int>{0, 1, 1, 1, 1, 0}));
  // Across tags, each watcher at most once per call; never `except`.
  EXPECT_EQ(waiters_->wake_tags({"t", "u"}, 10, watches_[0].get()), 5);
  EXPECT_EQ(counts(), (std::vector<int>{0, 2, 2, 2, 2, 1}));
  EXPECT_EQ(waiters_->wake_tags({"none"}, 3, nullptr), 0);
}

TEST_F(JobWaitersTest, AChannelWatchHearsEveryNotificationWithItsPayload) {
  std::vector<std::string> heard_a, heard_b;  // on the listener thread, read after settling
  watches_.push_back(
      waiters_->watch_channel("quern_test_feed", [&](const std::string& p) { heard_a.push_back(p); }));
  watches_.push_back(
      waiters_->watch_channel("quern_test_feed", [&](const std::string& p) { heard_b.push_back(p); }));
  listen();
  const auto epoch = waiters_->epoch();
  ASSERT_TRUE(epoch.has_value());
  notify_and_settle("quern_test_feed", "tok_1");
  notify_and_settle("quern_test_feed", "");
  EXPECT_EQ(heard_a, (std::vector<std::string>{"tok_1", ""}));
  EXPECT_EQ(heard_b, heard_a);
  EXPECT_EQ(waiters_->epoch(), epoch);  // nothing new was LISTENed
  // A new channel moves the epoch on once it is LISTENed.
  add_watcher("fresh");
  EXPECT_TRUE(wait_until([&] { return waiters_->epoch().has_value() && waiters_->epoch() != epoch; }, 10s));
  watches_.clear();  // before heard_a and heard_b go
}

}  // namespace
}  // namespace quern::server
