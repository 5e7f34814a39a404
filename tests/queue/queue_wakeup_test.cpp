// Wake-ups (migration 11) against a real PostgreSQL: a push wakes one waiting
// claimer per job, not every listener of the tag; a short claim says when the
// next job becomes due (a delay, a rate window); a keyed job that ends wakes a
// claimer for its key; interrupt() ends a wait; cancellations share the
// claimer's connection without counting as wake-ups.
#include <thread>

#include "tests/queue/queue_test_util.h"

namespace quern::queue::test {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

using QueueWakeupTest = QueueFixture;

// A claimer as a worker has one: listening on its tags and by name, and
// registered as waiting by an empty claim.
std::unique_ptr<Queue> waiting_claimer(const std::string& url, const std::string& id,
                                       const std::string& tag) {
  auto q = open_queue(url);
  must_ok(q->listen({tag}));
  must_ok(q->listen_for_wakeups(id));
  EXPECT_TRUE(must(q->claim(id, {tag}, 1)).empty());
  return q;
}

// n jobs of tag "t" under one concurrency limit.
std::vector<NewJob> keyed_jobs(int n, const ConcurrencyLimit& limit) {
  std::vector<NewJob> jobs(n, make_job("t"));
  for (NewJob& j : jobs) j.concurrency = limit;
  return jobs;
}

int64_t waiting_rows(Queue& q) {
  return std::stoll(must(q.exec_scalar("SELECT count(*) FROM quern.claimers_waiting")));
}

TEST_F(QueueWakeupTest, APushWakesOneWaitingClaimerNotTheHerd) {
  std::vector<std::unique_ptr<Queue>> claimers;
  for (int i = 0; i < 3; ++i) claimers.push_back(waiting_claimer(url_, "w" + std::to_string(i), "t"));
  EXPECT_EQ(waiting_rows(*q_), 3);

  must(q_->push(make_job("t")));
  int woken = -1;
  ASSERT_TRUE(eventually([&] {
    for (int i = 0; i < 3; ++i)
      if (must(claimers[i]->wait_for_jobs(0ms))) woken = i;
    return woken >= 0;
  }));
  // The freshest waiting claimer was taken: the last to claim.
  EXPECT_EQ(woken, 2);
  for (int i = 0; i < 3; ++i) {
    if (i != woken) {
      EXPECT_FALSE(must(claimers[i]->wait_for_jobs(200ms))) << "claimer " << i << " woken too";
    }
  }
  EXPECT_EQ(waiting_rows(*q_), 2);
  auto got = must(claimers[woken]->claim("w" + std::to_string(woken), {"t"}, 1));
  EXPECT_EQ(got.size(), 1u);

  // More jobs than waiting claimers: those are woken by name and, for the
  // rest, every listener of the tag.
  must(q_->push_batch({make_job("t"), make_job("t"), make_job("t")}));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(must(claimers[i]->wait_for_jobs(5s))) << "claimer " << i;
  EXPECT_EQ(waiting_rows(*q_), 0);

  // A claimer that fills its slots leaves the table; one that leaves the
  // registry too.
  auto a = waiting_claimer(url_, "full", "u");
  must(q_->push(make_job("u")));
  EXPECT_EQ(must(a->claim("full", {"u"}, 1)).size(), 1u);
  EXPECT_EQ(waiting_rows(*q_), 0);
  auto b = waiting_claimer(url_, "leaving", "u");
  EXPECT_EQ(waiting_rows(*q_), 1);
  must_ok(b->unregister_worker("leaving"));
  EXPECT_EQ(waiting_rows(*q_), 0);
}

TEST_F(QueueWakeupTest, AShortClaimSaysWhenTheNextJobIsDue) {
  auto c = waiting_claimer(url_, "w", "t");
  EXPECT_FALSE(c->next_due().has_value());  // nothing queued at all

  NewJob later = make_job("t");
  later.scheduled_for = Clock::now() + 2s;
  must(q_->push(later));
  // Announced on the tag's channel: next_due moves, the wait does not end.
  const auto t0 = SteadyClock::now();
  EXPECT_FALSE(must(c->wait_for_jobs(300ms)));
  ASSERT_TRUE(c->next_due().has_value());
  EXPECT_GT(*c->next_due(), t0 + 1500ms);
  EXPECT_LT(*c->next_due(), t0 + 2500ms);

  // The claim itself reports it too (a worker that started after the push).
  auto d = open_queue(url_);
  EXPECT_TRUE(must(d->claim("d", {"t"}, 4)).empty());
  ASSERT_TRUE(d->next_due().has_value());
  EXPECT_GT(*d->next_due(), t0 + 1000ms);
  EXPECT_LT(*d->next_due(), t0 + 2500ms);

  // A full claim says nothing: the claimer claims again anyway.
  must(q_->push(make_job("t")));
  EXPECT_EQ(must(d->claim("d", {"t"}, 1)).size(), 1u);
  EXPECT_FALSE(d->next_due().has_value());
}

TEST_F(QueueWakeupTest, ARateLimitedKeySaysWhenItsWindowReopens) {
  ConcurrencyLimit rate;
  rate.key = "api:r";
  rate.rate_max = 1;
  rate.rate_window = 3000ms;
  must(q_->push_batch(keyed_jobs(3, rate)));
  const auto t0 = SteadyClock::now();
  EXPECT_EQ(must(q_->claim("w", {"t"}, 5)).size(), 1u);
  EXPECT_TRUE(must(q_->claim("w", {"t"}, 5)).empty());
  ASSERT_TRUE(q_->next_due().has_value());
  EXPECT_GT(*q_->next_due(), t0 + 2000ms);
  EXPECT_LT(*q_->next_due(), t0 + 3500ms);
}

TEST_F(QueueWakeupTest, AKeyedJobThatEndsWakesAClaimerForItsKey) {
  ConcurrencyLimit one;
  one.key = "api:x";
  one.max_running = 1;
  must(q_->push_batch(keyed_jobs(2, one)));
  auto first = must(q_->claim("a", {"t"}, 5));
  ASSERT_EQ(first.size(), 1u);
  auto b = waiting_claimer(url_, "b", "t");  // the key is at its limit: nothing for b
  EXPECT_FALSE(must(b->wait_for_jobs(0ms)));
  must(q_->complete("a", {{first[0].id, first[0].attempt, JobStatus::success, nullptr, ""}}));
  EXPECT_TRUE(must(b->wait_for_jobs(5s)));
  EXPECT_EQ(must(b->claim("b", {"t"}, 1)).size(), 1u);
}

TEST_F(QueueWakeupTest, InterruptEndsTheCurrentOrNextWait) {
  auto c = waiting_claimer(url_, "w", "t");
  const auto t0 = SteadyClock::now();
  std::thread waiter([&] { EXPECT_FALSE(must(c->wait_for_jobs(30s))); });
  c->interrupt();  // before or during the wait: either way it ends
  waiter.join();
  EXPECT_LT(SteadyClock::now() - t0, 10s);
  // Consumed: the next wait runs its course.
  EXPECT_FALSE(must(c->wait_for_jobs(50ms)));
}

// A worker hears of cancellations on its claimer's connection (one
// listening backend per worker): a cancel ends a wait without claiming,
// waits for take_notifications(), and survives a change of tags.
TEST_F(QueueWakeupTest, CancellationsShareTheClaimersConnectionAndSurviveARetag) {
  auto c = waiting_claimer(url_, "w", "t");
  must_ok(c->listen_channel(kCancelChannel));
  const int64_t id = must(q_->push(make_job("t")));
  EXPECT_TRUE(must(c->wait_for_jobs(5s)));  // the push's wake-up
  ASSERT_EQ(must(c->claim("w", {"t"}, 1)).size(), 1u);
  EXPECT_TRUE(must(c->take_notifications()).empty());

  const auto t0 = SteadyClock::now();
  ASSERT_TRUE(q_->cancel(id));
  EXPECT_FALSE(must(c->wait_for_jobs(30s)));  // ended by the cancel, which is no wake-up
  EXPECT_LT(SteadyClock::now() - t0, 10s);
  auto notes = must(c->take_notifications());
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].channel, kCancelChannel);
  EXPECT_EQ(notes[0].payload, std::to_string(id));

  // New tags: the old tag's pushes no longer reach it, cancels still do.
  c->unlisten_tags();
  must_ok(c->listen({"u"}));
  EXPECT_TRUE(must(c->claim("w", {"u"}, 1)).empty());  // waiting again, for u
  must(q_->push(make_job("t")));
  EXPECT_FALSE(must(c->wait_for_jobs(300ms)));
  const int64_t other = must(q_->push(make_job("u")));
  EXPECT_TRUE(must(c->wait_for_jobs(5s)));
  ASSERT_EQ(must(c->claim("w", {"u"}, 1)).size(), 1u);
  ASSERT_TRUE(q_->cancel(other));
  EXPECT_FALSE(must(c->wait_for_jobs(30s)));
  notes = must(c->take_notifications());
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].payload, std::to_string(other));

  // A claimer that stops claiming is no longer picked for wake-ups.
  EXPECT_TRUE(must(c->claim("w", {"u"}, 1)).empty());
  EXPECT_EQ(waiting_rows(*q_), 1);
  must_ok(c->stop_waiting("w"));
  EXPECT_EQ(waiting_rows(*q_), 0);
}

}  // namespace
}  // namespace quern::queue::test
