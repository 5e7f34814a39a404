// The lease protocol: heartbeats, lost leases, recovery of expired leases.
#include <pqxx/pqxx>

#include "host/queue/migrations.h"
#include "tests/queue/queue_test_util.h"

namespace quern::queue::test {
namespace {

using namespace std::chrono_literals;

class QueueLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = quern::testing::fresh_database_url(test_name());
    QueueOptions o;
    o.default_max_restarts = 1;
    q_ = open_queue(url_, o);
  }
  // Makes the job's lease look old instead of waiting for it to age.
  void age_heartbeat(int64_t id) {
    must(q_->exec_scalar("UPDATE quern.queue SET heartbeat_at = now() - interval '1 hour' WHERE id = " +
                         std::to_string(id)));
  }
  std::string url_;
  std::unique_ptr<Queue> q_;
};

TEST_F(QueueLeaseTest, HeartbeatReportsCanceledAndLost) {
  auto ids = must(q_->push_batch({make_job(), make_job(), make_job()}));
  auto claimed = must(q_->claim("w", {"default"}, 3));
  ASSERT_EQ(claimed.size(), 3u);
  const std::string before = must(q_->exec_scalar("SELECT max(heartbeat_at)::text FROM quern.queue"));

  EXPECT_EQ(must(q_->cancel(ids[1])), CancelOutcome::requested);
  must(q_->complete("w", {{ids[2], 1, JobStatus::success, nullptr, ""}}));
  auto hb = must(q_->heartbeat("w", {{ids[0], 1}, {ids[1], 1}, {ids[2], 1}, {ids[0] + 99, 1}}));
  EXPECT_EQ(hb.canceled, std::vector<int64_t>{ids[1]});
  EXPECT_EQ(hb.lost, (std::vector<int64_t>{ids[2], ids[0] + 99}));
  EXPECT_GE(must(q_->exec_scalar("SELECT min(heartbeat_at)::text FROM quern.queue")), before);

  // Wrong attempt or another worker: lost.
  hb = must(q_->heartbeat("w", {{ids[0], 2}}));
  EXPECT_EQ(hb.lost, std::vector<int64_t>{ids[0]});
  hb = must(q_->heartbeat("other", {{ids[0], 1}}));
  EXPECT_EQ(hb.lost, std::vector<int64_t>{ids[0]});
  EXPECT_TRUE(must(q_->heartbeat("w", {})).lost.empty());
}

TEST_F(QueueLeaseTest, ExpiredLeaseIsRequeuedThenFailedAfterMaxRestarts) {
  const int64_t id = must(q_->push(make_job()));
  auto first = must(q_->claim("w1", {"default"}, 1));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].attempt, 1);

  // A fresh lease is not touched.
  auto none = must(q_->recover_expired(1min));
  EXPECT_EQ(none.requeued + none.failed, 0);

  age_heartbeat(id);
  auto r = must(q_->recover_expired(1min));
  EXPECT_EQ(r.requeued, 1);
  EXPECT_EQ(r.failed, 0);
  auto rec = must(q_->get_job(id));
  EXPECT_EQ(rec->state, "queued");
  EXPECT_EQ(rec->worker_id, "");

  // The stale worker can neither heartbeat nor complete any more.
  EXPECT_EQ(must(q_->heartbeat("w1", {{id, 1}})).lost, std::vector<int64_t>{id});
  EXPECT_TRUE(must(q_->complete("w1", {{id, 1, JobStatus::success, nullptr, ""}})).empty());

  auto second = must(q_->claim("w2", {"default"}, 1));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].attempt, 2);
  EXPECT_TRUE(must(q_->complete("w1", {{id, 1, JobStatus::success, nullptr, ""}})).empty());

  age_heartbeat(id);
  r = must(q_->recover_expired(1min));
  EXPECT_EQ(r.requeued, 0);
  EXPECT_EQ(r.failed, 1);  // default_max_restarts = 1: the second loss fails it
  rec = must(q_->get_job(id));
  EXPECT_EQ(rec->state, "failure");
  EXPECT_EQ(rec->error.rfind("lost worker: lease expired 2 times in a row (max-restarts 1)", 0), 0u)
      << rec->error;
  EXPECT_TRUE(must(q_->complete("w2", {{id, 2, JobStatus::success, nullptr, ""}})).empty());
  EXPECT_EQ(must(q_->exec_scalar("SELECT count(*) FROM quern.completed_jobs")), "1");
}

TEST_F(QueueLeaseTest, JobMaxRestartsOverridesDefaultAndCancelWins) {
  NewJob no_retry = make_job();
  no_retry.max_restarts = 0;
  const int64_t a = must(q_->push(no_retry));
  const int64_t b = must(q_->push(make_job()));
  ASSERT_EQ(must(q_->claim("w", {"default"}, 2)).size(), 2u);
  EXPECT_EQ(must(q_->cancel(b, "stop it")), CancelOutcome::requested);
  age_heartbeat(a);
  age_heartbeat(b);
  auto r = must(q_->recover_expired(1min));
  EXPECT_EQ(r.requeued, 0);
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.canceled, 1);
  EXPECT_EQ(
      must(q_->get_job(a))->error.rfind("lost worker: lease expired 1 times in a row (max-restarts 0)", 0),
      0u);
  EXPECT_EQ(must(q_->get_job(b))->state, "canceled");
}

TEST_F(QueueLeaseTest, ShortLeaseExpiresInRealTime) {
  const int64_t id = must(q_->push(make_job()));
  ASSERT_EQ(must(q_->claim("w", {"default"}, 1)).size(), 1u);
  int requeued = 0;
  EXPECT_TRUE(eventually([&] {
    requeued += must(q_->recover_expired(20ms)).requeued;
    return requeued == 1;
  }));
  EXPECT_EQ(must(q_->get_job(id))->state, "queued");
}

TEST_F(QueueLeaseTest, RecoveryReturnsZerosWhileAnotherSweeps) {
  const int64_t id = must(q_->push(make_job()));
  ASSERT_EQ(must(q_->claim("w", {"default"}, 1)).size(), 1u);
  age_heartbeat(id);
  pqxx::connection other(url_);
  pqxx::work tx(other);
  tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kRecoveryLockKey) + ")");
  auto r = must(q_->recover_expired(1min));
  EXPECT_EQ(r.requeued + r.failed + r.canceled, 0);
  tx.commit();
  EXPECT_EQ(must(q_->recover_expired(1min)).requeued, 1);
}

TEST_F(QueueLeaseTest, ReleaseHandsJobsBackWithoutARestart) {
  auto listener = open_queue(url_);
  must_ok(listener->listen({"default"}));
  auto ids = must(q_->push_batch({make_job(), make_job(), make_job()}));
  ASSERT_EQ(must(q_->claim("w", {"default"}, 3)).size(), 3u);
  EXPECT_TRUE(must(listener->wait_for_jobs(5s)));  // the push
  EXPECT_EQ(must(q_->cancel(ids[2])), CancelOutcome::requested);

  // Another worker's or a stale lease is ignored; an empty list is a no-op.
  must_ok(q_->release("other", {{ids[0], 1}}));
  must_ok(q_->release("w", {{ids[1], 7}}));
  must_ok(q_->release("w", {}));
  EXPECT_EQ(must(q_->count_running()), 3);

  must_ok(q_->release("w", {{ids[0], 1}, {ids[2], 1}}));
  EXPECT_TRUE(must(listener->wait_for_jobs(5s)));  // released jobs wake workers
  auto rec = must(q_->get_job(ids[0]));
  EXPECT_EQ(rec->state, "queued");
  EXPECT_EQ(rec->worker_id, "");
  EXPECT_EQ(must(q_->get_job(ids[2]))->state, "canceled");  // cancel requested: not requeued
  EXPECT_TRUE(must(q_->complete("w", {{ids[0], 1, JobStatus::success, nullptr, ""}})).empty());
  auto again = must(q_->claim("w2", {"default"}, 5));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, ids[0]);
  EXPECT_EQ(again[0].attempt, 2);
  EXPECT_EQ(must(q_->exec_scalar("SELECT restarts FROM quern.queue WHERE id = " + std::to_string(ids[0]))),
            "0");
}

TEST_F(QueueLeaseTest, RequeueNotifiesListeners) {
  auto listener = open_queue(url_);
  must_ok(listener->listen({"default"}));
  const int64_t id = must(q_->push(make_job()));
  EXPECT_TRUE(must(listener->wait_for_jobs(5s)));  // the push
  ASSERT_EQ(must(q_->claim("w", {"default"}, 1)).size(), 1u);
  EXPECT_FALSE(must(listener->wait_for_jobs(0ms)));
  age_heartbeat(id);
  ASSERT_EQ(must(q_->recover_expired(1min)).requeued, 1);
  EXPECT_TRUE(must(listener->wait_for_jobs(5s)));  // the requeue
}

}  // namespace
}  // namespace quern::queue::test
