// Queue basics against a real PostgreSQL: migrations, push, claim order and
// filters, complete, cancel, logs, lookups.
#include <algorithm>
#include <set>

#include "host/pg/session.h"
#include "host/queue/migrations.h"
#include "tests/queue/queue_test_util.h"

namespace quern::queue::test {
namespace {

using namespace std::chrono_literals;

using QueueTest = QueueFixture;

TEST_F(QueueTest, MigrateTwiceKeepsVersion) {
  const int latest = migrations().back().version;
  EXPECT_EQ(must(q_->migrate()), latest);
  EXPECT_EQ(must(q_->migrate()), latest);
  EXPECT_EQ(must(q_->exec_scalar("SELECT count(*) FROM quern.schema_migrations")), std::to_string(latest));
  // The hot table carries its own autovacuum settings (docs/ARCHITECTURE.md §2).
  const std::string opts =
      must(q_->exec_scalar("SELECT reloptions::text FROM pg_class WHERE oid = 'quern.queue'::regclass"));
  EXPECT_NE(opts.find("autovacuum_vacuum_threshold=5000"), std::string::npos) << opts;
  EXPECT_NE(opts.find("autovacuum_vacuum_cost_delay=0"), std::string::npos) << opts;
  EXPECT_EQ(must(q_->exec_scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                 "WHERE attrelid = 'quern.queue'::regclass AND attname = 'payload'")),
            "json");
}

TEST_F(QueueTest, PushValidatesBeforeWriting) {
  NewJob j = make_job();
  j.priority = 0;
  auto r = q_->push(j);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.message().find("priority 0"), std::string::npos) << r.message();
  j.priority = 101;
  EXPECT_FALSE(q_->push(j).is_ok());
  j = make_job("");
  r = q_->push(j);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.message().find("tag"), std::string::npos) << r.message();
  j = make_job();
  j.language.clear();
  r = q_->push(j);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.message().find("language"), std::string::npos) << r.message();

  std::vector<NewJob> batch = {make_job(), make_job(), make_job("t", 500), make_job()};
  auto b = q_->push_batch(batch);
  ASSERT_FALSE(b.is_ok());
  EXPECT_NE(b.message().find("job 2"), std::string::npos) << b.message();
  EXPECT_NE(b.message().find("priority 500"), std::string::npos) << b.message();
  EXPECT_EQ(must(q_->count_waiting()), 0);  // all-or-nothing
}

TEST_F(QueueTest, PushBatchOfTenThousandInOneCall) {
  std::vector<NewJob> jobs;
  for (int i = 0; i < 10000; ++i) {
    NewJob j = make_job(i % 2 ? "odd" : "even", 1 + i % 100);
    j.payload = nlohmann::ordered_json::object();
    j.payload["code"] = "echo " + std::to_string(i);
    j.payload["args"] = nlohmann::ordered_json::object();
    j.payload["args"]["zeta"] = i;  // key order must survive (not alphabetical)
    j.payload["args"]["alpha"] = "a";
    jobs.push_back(std::move(j));
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto ids = must(q_->push_batch(jobs));
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("push_batch of 10000 jobs: %.1f ms\n", ms);
  ASSERT_EQ(ids.size(), 10000u);
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), 10000u);
  EXPECT_EQ(must(q_->count_waiting()), 10000);
  EXPECT_EQ(must(q_->count_waiting({"odd"})), 5000);
  // ids line up with the input: check a few.
  for (int i : {0, 1, 4567, 9999}) {
    auto rec = must(q_->get_job(ids[i]));
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->payload.dump(), jobs[i].payload.dump());
    EXPECT_EQ(rec->tag, jobs[i].tag);
    EXPECT_EQ(rec->priority, jobs[i].priority);
    EXPECT_EQ(rec->state, "queued");
  }
}

TEST_F(QueueTest, ClaimOrdersByPriorityThenScheduledTimeThenId) {
  const auto now = Clock::now();
  auto at = [&](const std::string& name, int prio, std::chrono::seconds ago) {
    NewJob j = make_job("t", prio);
    j.payload = {{"name", name}};
    j.scheduled_for = now - ago;
    return j;
  };
  // Single pushes and one batch, deliberately out of order.
  must(q_->push(at("low", 10, 100s)));
  must(q_->push(at("mid-new", 50, 10s)));
  must(q_->push_batch({at("mid-old", 50, 20s), at("high", 90, 1s), at("mid-new-2", 50, 10s)}));
  auto jobs = must(q_->claim("w1", {"t"}, 10));
  std::vector<std::string> names;
  for (const auto& j : jobs) names.push_back(j.payload["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"high", "mid-old", "mid-new", "mid-new-2", "low"}));
  for (const auto& j : jobs) {
    EXPECT_EQ(j.attempt, 1);
    EXPECT_EQ(j.language, "bash");
  }
  EXPECT_EQ(must(q_->count_running()), 5);
  EXPECT_TRUE(must(q_->claim("w1", {"t"}, 10)).empty());
}

TEST_F(QueueTest, ClaimRespectsLimitTagsAndSchedule) {
  must(q_->push_batch({make_job("cpu"), make_job("cpu"), make_job("cpu"), make_job("gpu")}));
  NewJob later = make_job("cpu", 100);
  later.scheduled_for = Clock::now() + 1h;
  const int64_t later_id = must(q_->push(later));

  EXPECT_TRUE(must(q_->claim("w", {"cpu"}, 0)).empty());
  EXPECT_TRUE(must(q_->claim("w", {}, 5)).empty());
  EXPECT_EQ(must(q_->claim("w", {"cpu"}, 2)).size(), 2u);
  auto rest = must(q_->claim("w", {"cpu", "other"}, 10));
  ASSERT_EQ(rest.size(), 1u);  // the future job is not due
  EXPECT_NE(rest[0].id, later_id);
  EXPECT_EQ(must(q_->count_waiting({"gpu"})), 1);  // nobody asked for gpu
  EXPECT_EQ(must(q_->get_job(later_id))->state, "queued");
  auto gpu = must(q_->claim("w2", {"gpu"}, 10));
  ASSERT_EQ(gpu.size(), 1u);
  EXPECT_EQ(gpu[0].tag, "gpu");

  // A tag outside the charset is refused at push, naming the field; every
  // character of the charset goes through; the claim's array literal quotes
  // whatever tags a claimer names.
  const std::string odd = "we\"ird, {tag} \\ ünï";
  auto refused = q_->push(make_job(odd));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.code(), StatusCode::invalid_argument);
  EXPECT_EQ(refused.message().rfind("push: tag: ", 0), 0u) << refused.message();
  const std::string full = "Az09_.:/-tag";
  const int64_t full_id = must(q_->push(make_job(full)));
  auto got = must(q_->claim("w3", {"x", odd, full}, 10));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, full_id);
  EXPECT_EQ(got[0].tag, full);
}

// A claim commits without waiting for its WAL flush (synchronous_commit off
// for its own transaction), but a session shared with pushes and
// completions (the server's pool) keeps them durable: the setting must not
// outlive the claim's statement.
TEST_F(QueueTest, AClaimsRelaxedCommitDoesNotLeakIntoItsSession) {
  auto session = std::make_shared<pg::Session>(url_);
  auto shared = Queue::over(session);
  must(shared->push(make_job("cpu")));
  const auto setting = [&] {
    return must(session->run("show", [](pqxx::connection& c) {
      return pqxx::nontransaction(c).exec("SHOW synchronous_commit")[0][0].as<std::string>();
    }));
  };
  // The test cluster runs with it off (speed): the session says on, as a
  // production cluster does.
  must(session->run("set", [](pqxx::connection& c) {
    pqxx::nontransaction(c).exec("SET synchronous_commit = on");
    return true;
  }));
  ASSERT_EQ(setting(), "on");
  EXPECT_EQ(must(shared->claim("w", {"cpu"}, 1)).size(), 1u);
  EXPECT_EQ(setting(), "on");
  EXPECT_TRUE(must(shared->claim("w", {"cpu"}, 1)).empty());  // an empty claim too
  EXPECT_EQ(setting(), "on");
}

TEST(QueueConnect, UnreachableDatabaseIsAStatus) {
  auto q = Queue::connect("postgresql:///nowhere?host=/nonexistent-quern-socket-dir&user=postgres");
  ASSERT_FALSE(q.is_ok());
  EXPECT_NE(q.message().find("connect"), std::string::npos) << q.message();
}

TEST_F(QueueTest, CompleteMovesJobExactlyOnce) {
  NewJob j = make_job();
  j.script_path = "f/hello.sh";
  j.timeout_s = 7;
  const int64_t id = must(q_->push(j));
  auto claimed = must(q_->claim("w1", {"default"}, 1));
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].script_path, "f/hello.sh");
  EXPECT_EQ(claimed[0].timeout_s, 7);
  auto running = must(q_->get_job(id));
  EXPECT_EQ(running->state, "running");
  EXPECT_EQ(running->worker_id, "w1");
  ASSERT_TRUE(running->started_at.has_value());

  // Another worker, or a wrong attempt, cannot complete it.
  EXPECT_TRUE(must(q_->complete("w2", {{id, 1, JobStatus::success, nullptr, ""}})).empty());
  EXPECT_TRUE(must(q_->complete("w1", {{id, 2, JobStatus::success, nullptr, ""}})).empty());

  Completion c{id, claimed[0].attempt, JobStatus::success, {{"answer", 42}}, ""};
  EXPECT_EQ(must(q_->complete("w1", {c})), std::vector<int64_t>{id});
  EXPECT_TRUE(must(q_->complete("w1", {c})).empty());  // a repeat changes nothing, no error
  EXPECT_EQ(
      must(q_->exec_scalar("SELECT count(*) FROM quern.completed_jobs WHERE id = " + std::to_string(id))),
      "1");
  EXPECT_EQ(must(q_->exec_scalar("SELECT count(*) FROM quern.queue")), "0");

  auto rec = must(q_->get_job(id));
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->state, "success");
  EXPECT_EQ(rec->result, (nlohmann::json{{"answer", 42}}));
  EXPECT_EQ(rec->script_path, "f/hello.sh");
  ASSERT_TRUE(rec->completed_at.has_value());
  EXPECT_GE(*rec->completed_at, *rec->started_at);
  EXPECT_FALSE(must(q_->get_job(id + 1000)).has_value());
}

TEST_F(QueueTest, CompleteBatchMixesStatusesAndStaleEntries) {
  auto ids = must(q_->push_batch({make_job(), make_job(), make_job()}));
  auto claimed = must(q_->claim("w", {"default"}, 3));
  ASSERT_EQ(claimed.size(), 3u);
  std::vector<Completion> batch = {
      {ids[0], 1, JobStatus::failure, nullptr, "exit code 3"},
      {ids[1], 1, JobStatus::timeout, nullptr, "timed out after 7 s"},
      {ids[2], 9, JobStatus::success, nullptr, ""},  // stale attempt
  };
  auto done = must(q_->complete("w", batch));
  EXPECT_EQ(done, (std::vector<int64_t>{ids[0], ids[1]}));
  EXPECT_EQ(must(q_->get_job(ids[0]))->state, "failure");
  EXPECT_EQ(must(q_->get_job(ids[0]))->error, "exit code 3");
  EXPECT_EQ(must(q_->get_job(ids[1]))->state, "timeout");
  EXPECT_EQ(must(q_->get_job(ids[2]))->state, "running");
}

TEST_F(QueueTest, CancelQueuedRunningFinishedAndUnknown) {
  auto ids = must(q_->push_batch({make_job(), make_job()}));
  EXPECT_EQ(must(q_->cancel(ids[0], "not needed")), CancelOutcome::canceled);
  auto rec = must(q_->get_job(ids[0]));
  EXPECT_EQ(rec->state, "canceled");
  EXPECT_EQ(rec->error, "not needed");

  auto claimed = must(q_->claim("w", {"default"}, 5));
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, ids[1]);
  EXPECT_EQ(must(q_->cancel(ids[1])), CancelOutcome::requested);
  EXPECT_TRUE(must(q_->get_job(ids[1]))->cancel_requested);
  auto hb = must(q_->heartbeat("w", {{ids[1], 1}}));
  EXPECT_EQ(hb.canceled, std::vector<int64_t>{ids[1]});
  EXPECT_TRUE(hb.lost.empty());
  must(q_->complete("w", {{ids[1], 1, JobStatus::canceled, nullptr, "canceled by user"}}));
  EXPECT_EQ(must(q_->cancel(ids[1])), CancelOutcome::already_finished);
  EXPECT_EQ(must(q_->cancel(ids[0])), CancelOutcome::already_finished);
  EXPECT_EQ(must(q_->cancel(ids[1] + 100)), CancelOutcome::not_found);
}

TEST_F(QueueTest, LogsAppendAndReadFromOffset) {
  auto ids = must(q_->push_batch({make_job(), make_job()}));
  must_ok(q_->append_logs(
      {{ids[0], 0, "line 1\n"}, {ids[1], 0, "other\n"}, {ids[0], 0, "line 2\n"}, {ids[0], 0, ""}}));
  EXPECT_EQ(must(q_->read_logs(ids[0])), "line 1\nline 2\n");
  EXPECT_EQ(must(q_->read_logs(ids[1])), "other\n");
  EXPECT_EQ(must(q_->read_logs(ids[0], 3)), "e 1\nline 2\n");
  EXPECT_EQ(must(q_->read_logs(ids[0], 7)), "line 2\n");
  EXPECT_EQ(must(q_->read_logs(ids[0], 14)), "");
  EXPECT_EQ(must(q_->read_logs(ids[0], 1000)), "");
  must_ok(q_->append_logs({{ids[0], 0, "héllo ✓\n"}}));  // offsets are bytes
  const std::string all = must(q_->read_logs(ids[0]));
  EXPECT_EQ(all, "line 1\nline 2\nhéllo ✓\n");
  EXPECT_EQ(must(q_->read_logs(ids[0], 14)), "héllo ✓\n");
  EXPECT_EQ(must(q_->read_logs(ids[0], static_cast<int64_t>(all.size()) - 1)), "\n");
  EXPECT_EQ(must(q_->read_logs(ids[1] + 50)), "");
  // Each chunk is one row with its starting byte offset.
  EXPECT_EQ(must(q_->exec_scalar("SELECT string_agg(start_offset::text, ',' ORDER BY start_offset) "
                                 "FROM quern.job_logs WHERE job_id = " +
                                 std::to_string(ids[0]))),
            "0,7,14");
}

TEST_F(QueueTest, CompleteStoresLogsOfHeldLeasesWithTheOutcomeAllOrNothing) {
  auto ids = must(q_->push_batch({make_job(), make_job(), make_job()}));
  auto claimed = must(q_->claim("w", {"default"}, 2));
  ASSERT_EQ(claimed.size(), 2u);
  const int64_t held = claimed[0].id, other = claimed[1].id;
  const int64_t waiting = ids[0] + ids[1] + ids[2] - held - other;  // never claimed: not held
  must_ok(q_->append_logs({{held, 1, "running\n"}}));

  // A completion the database refuses (jsonb holds no NUL): neither it nor the
  // logs sent with it are stored.
  std::vector<LogChunk> logs = {{held, 1, "last\n"}, {other, 1, "still running\n"}};
  auto refused = q_->complete(
      "w", {{held, 1, JobStatus::success, nlohmann::json{{"x", std::string("a\0b", 3)}}, ""}}, nullptr, logs);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.status().code(), StatusCode::invalid_argument) << refused.message();
  EXPECT_EQ(must(q_->read_logs(held)), "running\n");
  EXPECT_EQ(must(q_->get_job(held))->state, "running");

  // Accepted: the chunks of leases this worker holds are appended after the
  // stored ones, in order; a chunk of a job it does not hold (wrong attempt,
  // never claimed, another worker's) is dropped.
  logs.push_back({held, 2, "wrong attempt\n"});
  logs.push_back({waiting, 1, "not claimed\n"});
  logs.push_back({held, 1, "after\n"});
  auto ok =
      must(q_->complete("w", {{held, 1, JobStatus::success, nlohmann::json{{"n", 1}}, ""}}, nullptr, logs));
  EXPECT_EQ(ok, std::vector<int64_t>{held});
  EXPECT_EQ(must(q_->get_job(held))->state, "success");
  EXPECT_EQ(must(q_->read_logs(held)), "running\nlast\nafter\n");
  EXPECT_EQ(must(q_->read_logs(other)), "still running\n");
  EXPECT_EQ(must(q_->read_logs(waiting)), "");
  // Once completed, the lease is no longer held: a late chunk sent with a
  // stale completion is dropped with it.
  EXPECT_TRUE(must(q_->complete("w", {{held, 1, JobStatus::failure, nullptr, "late"}}, nullptr,
                                {{held, 1, "late\n"}}))
                  .empty());
  EXPECT_EQ(must(q_->read_logs(held)), "running\nlast\nafter\n");
  EXPECT_EQ(must(q_->get_job(held))->state, "success");
}

TEST_F(QueueTest, ChannelNamesFitPostgresLimit) {
  EXPECT_EQ(channel_for_tag("gpu"), "quern_jobs:gpu");
  const std::string long_tag(200, 'x');
  const std::string ch = channel_for_tag(long_tag);
  EXPECT_LE(ch.size(), 63u);
  EXPECT_NE(ch, channel_for_tag(long_tag + "y"));
  // The SQL function (used by the NOTIFY trigger) agrees with the C++ one.
  for (const std::string& tag : {std::string("gpu"), std::string(52, 'a'), std::string(53, 'a'), long_tag,
                                 std::string("ünïcødé-") + std::string(60, 'z')}) {
    EXPECT_EQ(must(q_->exec_scalar("SELECT quern.channel_for_tag('" + tag + "')")), channel_for_tag(tag))
        << tag;
  }
}

}  // namespace
}  // namespace quern::queue::test
