// The writer's delivery (host/worker/delivery.h) against the real queue:
// a row the database refuses for good is isolated, and every other row of
// its batch goes through in the same delivery.
#include "host/worker/delivery.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "tests/support/test_postgres.h"

namespace quern::worker {
namespace {

class DeliveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto s = PgJobSource::connect(url_, {});
    ASSERT_TRUE(s) << s.message();
    source_ = std::move(s).value();
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q);
    q_ = std::move(q).value();
  }

  std::vector<queue::ClaimedJob> claim(int n) {
    for (int i = 0; i < n; ++i) {
      queue::NewJob j;
      j.tag = j.language = "noop";
      EXPECT_TRUE(q_->push(j));
    }
    auto jobs = source_->claim("w", {"noop"}, n, {});
    EXPECT_TRUE(jobs) << jobs.message();
    return jobs ? *jobs : std::vector<queue::ClaimedJob>{};
  }

  std::string url_;
  std::unique_ptr<JobSource> source_;
  std::unique_ptr<queue::Queue> q_;
};

TEST_F(DeliveryTest, APoisonCompletionDoesNotHoldBackTheOthersOfItsBatch) {
  auto jobs = claim(10);
  ASSERT_EQ(jobs.size(), 10u);
  std::vector<queue::Completion> batch;
  for (const auto& j : jobs)
    batch.push_back({j.id, j.attempt, queue::JobStatus::success, nlohmann::json{{"n", j.id}}, ""});
  // jsonb cannot hold a NUL character: the database refuses this row (22P05).
  const int64_t poison = jobs[4].id;
  batch[4].result = nlohmann::json{{"bad", std::string("x\0y", 3)}};

  std::vector<int64_t> accepted, retried;
  std::vector<std::pair<int64_t, Isolated>> isolated;
  Status s = deliver_completions(*source_, "w", batch, accepted, retried,
                                 [&](int64_t id, Isolated what, const std::string&) {
                                   isolated.push_back({id, what});
                                 });
  ASSERT_TRUE(s) << s.message();
  EXPECT_TRUE(batch.empty());       // everything handled in this one delivery
  EXPECT_EQ(accepted.size(), 10u);  // nine successes and the poison one stored as a failure
  ASSERT_EQ(isolated.size(), 1u);
  EXPECT_EQ(isolated[0], std::make_pair(poison, Isolated::completion_replaced));
  for (const auto& j : jobs) {
    auto rec = q_->get_job(j.id);
    ASSERT_TRUE(rec && *rec);
    if (j.id == poison) {
      EXPECT_EQ((*rec)->state, "failure");
      EXPECT_NE((*rec)->error.find("the job's outcome could not be stored"), std::string::npos)
          << (*rec)->error;
    } else {
      EXPECT_EQ((*rec)->state, "success");
      EXPECT_EQ((*rec)->result, (nlohmann::json{{"n", j.id}}));
    }
  }
}

TEST_F(DeliveryTest, APoisonLogChunkIsDroppedAndTheOthersAreWritten) {
  auto jobs = claim(3);
  ASSERT_EQ(jobs.size(), 3u);
  std::vector<queue::LogChunk> batch = {
      {jobs[0].id, 1, "first\n"}, {jobs[1].id, 1, std::string("bad\0line\n", 9)}, {jobs[2].id, 1, "third\n"}};
  std::vector<int64_t> poisoned;
  Status s = deliver_logs(*source_, "w", batch, [&](int64_t id, Isolated what, const std::string& why) {
    EXPECT_EQ(what, Isolated::log_chunk);
    EXPECT_NE(why.find("part of the job's log could not be stored"), std::string::npos) << why;
    poisoned.push_back(id);
  });
  ASSERT_TRUE(s) << s.message();
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(poisoned, std::vector<int64_t>{jobs[1].id});
  EXPECT_EQ(*q_->read_logs(jobs[0].id), "first\n");
  EXPECT_EQ(*q_->read_logs(jobs[2].id), "third\n");
}

TEST_F(DeliveryTest, LogsGoWithTheCompletionsInOneCallForLeasesHeld) {
  auto jobs = claim(2);
  ASSERT_EQ(jobs.size(), 2u);
  queue::NewJob unclaimed;
  unclaimed.tag = unclaimed.language = "other";
  const int64_t stranger = *q_->push(unclaimed);
  std::vector<queue::LogChunk> logs = {
      {jobs[0].id, 1, "last\n"}, {jobs[1].id, 1, "running\n"}, {stranger, 1, "not held\n"}};
  std::vector<queue::Completion> completions = {
      {jobs[0].id, 1, queue::JobStatus::success, nlohmann::json{{"n", 1}}, ""}};
  std::map<int64_t, std::string> poisoned;
  std::vector<int64_t> accepted, retried;
  bool isolated = false;
  Status s = deliver_outputs(*source_, "w", logs, completions, poisoned, accepted, retried,
                             [&](int64_t, Isolated, const std::string&) { isolated = true; });
  ASSERT_TRUE(s) << s.message();
  EXPECT_TRUE(logs.empty());
  EXPECT_TRUE(completions.empty());
  EXPECT_FALSE(isolated);
  EXPECT_EQ(accepted, std::vector<int64_t>{jobs[0].id});
  EXPECT_EQ((*q_->get_job(jobs[0].id))->state, "success");
  EXPECT_EQ(*q_->read_logs(jobs[0].id), "last\n");
  EXPECT_EQ(*q_->read_logs(jobs[1].id), "running\n");
  // Sent together, the chunk of a job this worker does not hold is dropped
  // (sent apart, append_logs would have stored it).
  EXPECT_EQ(*q_->read_logs(stranger), "");
}

TEST_F(DeliveryTest, APoisonChunkSentWithCompletionsIsIsolatedApartAndFailsItsJob) {
  auto jobs = claim(3);
  ASSERT_EQ(jobs.size(), 3u);
  std::vector<queue::LogChunk> logs = {
      {jobs[0].id, 1, "first\n"}, {jobs[1].id, 1, std::string("bad\0line\n", 9)}, {jobs[2].id, 1, "third\n"}};
  std::vector<queue::Completion> completions;
  for (const auto& j : jobs) completions.push_back({j.id, 1, queue::JobStatus::success, nullptr, ""});
  std::map<int64_t, std::string> poisoned;
  std::vector<int64_t> accepted, retried;
  Status s = deliver_outputs(*source_, "w", logs, completions, poisoned, accepted, retried,
                             [&](int64_t id, Isolated what, const std::string& why) {
                               EXPECT_EQ(what, Isolated::log_chunk);
                               poisoned.emplace(id, why);  // as the writer does
                             });
  ASSERT_TRUE(s) << s.message();
  EXPECT_TRUE(logs.empty());
  EXPECT_TRUE(completions.empty());
  EXPECT_TRUE(poisoned.empty());  // taken by the completion it failed
  EXPECT_EQ(accepted.size(), 3u);
  EXPECT_EQ(*q_->read_logs(jobs[0].id), "first\n");
  EXPECT_EQ(*q_->read_logs(jobs[2].id), "third\n");
  EXPECT_EQ((*q_->get_job(jobs[0].id))->state, "success");
  EXPECT_EQ((*q_->get_job(jobs[2].id))->state, "success");
  auto bad = *q_->get_job(jobs[1].id);
  EXPECT_EQ(bad->state, "failure");
  EXPECT_NE(bad->error.find("part of the job's log could not be stored"), std::string::npos) << bad->error;
}

TEST_F(DeliveryTest, ALostConnectionKeepsTheWholeBatchForARetry) {
  auto jobs = claim(2);
  ASSERT_EQ(jobs.size(), 2u);
  queue::QueueOptions o;
  o.application_name = "quern delivery test";
  auto s = PgJobSource::connect(url_, o);
  ASSERT_TRUE(s);
  auto& doomed = **s;
  // The server ends the session (as a restart would): the next call fails as unavailable.
  ASSERT_TRUE(
      q_->exec_scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE application_name = 'quern delivery test' AND datname = current_database()"));
  std::vector<queue::Completion> batch = {{jobs[0].id, 1, queue::JobStatus::success, nullptr, ""},
                                          {jobs[1].id, 1, queue::JobStatus::success, nullptr, ""}};
  std::vector<int64_t> accepted, retried;
  bool isolated = false;
  Status st = deliver_completions(doomed, "w", batch, accepted, retried,
                                  [&](int64_t, Isolated, const std::string&) { isolated = true; });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.code(), StatusCode::unavailable) << st.message();
  EXPECT_FALSE(isolated);
  EXPECT_EQ(batch.size(), 2u);  // nothing dropped: the writer retries it whole
  // The retry (the source reconnects) delivers both.
  ASSERT_TRUE(deliver_completions(doomed, "w", batch, accepted, retried,
                                  [&](int64_t, Isolated, const std::string&) { isolated = true; }));
  EXPECT_EQ(accepted.size(), 2u);
  EXPECT_TRUE(batch.empty());
}

}  // namespace
}  // namespace quern::worker
