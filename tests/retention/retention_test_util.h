// Helpers shared by the retention tests: jobs in each state, made through the
// queue's own calls (push, claim, append_logs, complete) and then aged by
// moving their timestamps back with SQL, since a test cannot wait 30 days.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "tests/queue/queue_test_util.h"

namespace quern::retention::test {

using queue::test::must;
using queue::test::must_ok;

struct JobShape {
  int logs = 3;      // log chunks
  int attempts = 0;  // rows in quern.job_attempts (earlier attempts)
  std::chrono::hours logs_age{0};
};

class RetentionFixture : public queue::test::QueueFixture {
 protected:
  // A job waiting in the queue (e.g. one that is being retried: its logs and
  // earlier attempts exist while it waits).
  int64_t queued(JobShape shape = {}) {
    const int64_t id = push();
    add_history(id, shape);
    return id;
  }
  // A claimed job.
  int64_t running(JobShape shape = {}) {
    const int64_t id = push();
    claim(id);
    add_history(id, shape);
    return id;
  }
  // A job that finished `age` ago; its logs are as old unless shape.logs_age says otherwise.
  int64_t completed(std::chrono::hours age, JobShape shape = {}) {
    const int64_t id = push();
    claim(id);
    if (shape.logs_age.count() == 0) shape.logs_age = age;
    add_history(id, shape);
    queue::Completion c;
    c.id = id;
    c.attempt = 1;
    c.result = {{"ok", true}};
    EXPECT_EQ(must(q_->complete("w-" + std::to_string(id), {c})).size(), 1u);
    sql("UPDATE quern.completed_jobs SET completed_at = now() - " + hours(age) +
        " WHERE id = " + std::to_string(id));
    return id;
  }

  int64_t count(const std::string& table, const std::string& where = "true") {
    return std::stoll(must(q_->exec_scalar("SELECT count(*) FROM quern." + table + " WHERE " + where)));
  }
  int64_t count_of(const std::string& table, int64_t id) {
    return count(
        table, (table == "completed_jobs" || table == "queue" ? "id = " : "job_id = ") + std::to_string(id));
  }
  void sql(const std::string& statement) { must(q_->exec_scalar(statement)); }
  static std::string hours(std::chrono::hours h) {
    return "interval '" + std::to_string(h.count()) + " hours'";
  }

 private:
  int64_t push() {
    queue::NewJob j = queue::test::make_job("t" + std::to_string(next_tag_++));
    return must(q_->push(j));
  }
  void claim(int64_t id) {
    const std::string tag =
        must(q_->exec_scalar("SELECT tag FROM quern.queue WHERE id = " + std::to_string(id)));
    auto jobs = must(q_->claim("w-" + std::to_string(id), {tag}, 1));
    ASSERT_EQ(jobs.size(), 1u);
    ASSERT_EQ(jobs[0].id, id);
  }
  void add_history(int64_t id, const JobShape& shape) {
    for (int i = 0; i < shape.logs; ++i)
      must_ok(q_->append_logs({{id, 1, "line " + std::to_string(i) + "\n"}}));
    for (int a = 1; a <= shape.attempts; ++a)
      sql("INSERT INTO quern.job_attempts (job_id, attempt, status) VALUES (" + std::to_string(id) + ", " +
          std::to_string(a) + ", 'failure')");
    if (shape.logs_age.count() > 0)
      sql("UPDATE quern.job_logs SET created_at = now() - " + hours(shape.logs_age) +
          " WHERE job_id = " + std::to_string(id));
  }
  int next_tag_ = 0;
};

}  // namespace quern::retention::test
