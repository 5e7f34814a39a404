// The schedule store and the Scheduler against a real PostgreSQL: CRUD and
// validation, catch-up policies after (simulated) downtime, errors recorded
// without a storm, pause, several schedulers firing each tick once, and the
// loop waking on a NOTIFY.
#include "host/schedule/scheduler.h"

#include <gtest/gtest.h>

#include <date/date.h>

#include <atomic>
#include <thread>

#include "host/schedule/schedule_store.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern::schedule {
namespace {

using namespace std::chrono_literals;

template <typename T>
T must(StatusOr<T> v) {
  if (!v.is_ok()) {
    ADD_FAILURE() << v.message();
    throw std::runtime_error(v.message());
  }
  return std::move(v).value();
}

Schedule make(const std::string& name, const std::string& cron, CatchUp catch_up = CatchUp::skip) {
  Schedule s;
  s.name = name;
  s.cron = cron;
  s.script_path = "f/test/script";
  s.args = {{"b", 1}, {"a", 2}};
  s.catch_up = catch_up;
  return s;
}

// A job that needs no script: the schedule's name and args.
StatusOr<queue::NewJob> noop_job(const Schedule& s) {
  queue::NewJob j;
  j.tag = "sched-test";
  j.language = "noop";
  j.script_path = s.script_path;
  j.payload["args"] = s.args;
  return j;
}

std::string iso(Clock::time_point t) { return date::format("%FT%TZ", date::floor<std::chrono::seconds>(t)); }

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    store_ = must(ScheduleStore::connect(url_));
    q_ = must(queue::Queue::connect(url_));
    options_.database_url = url_;
    options_.late_grace = 0ms;  // deterministic: every tick before now() was missed
  }

  std::string sql(const std::string& statement) { return must(q_->exec_scalar(statement)); }
  int64_t jobs_of(const std::string& name) {
    return std::stoll(
        sql("SELECT count(*) FROM quern.queue WHERE payload->'schedule'->>'name' = '" + name + "'"));
  }
  // Simulated downtime: the schedule was due long ago.
  void due_at(const std::string& name, Clock::time_point t) {
    sql("UPDATE quern.schedules SET next_fire_at = 'epoch'::timestamptz + " +
        std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count()) +
        " * interval '1 microsecond' WHERE name = '" + name + "'");
  }

  std::string url_;
  std::unique_ptr<ScheduleStore> store_;
  std::unique_ptr<queue::Queue> q_;
  SchedulerOptions options_;
};

TEST_F(SchedulerTest, StoreCreatesReplacesPausesAndDeletes) {
  const auto before = Clock::now();
  auto created = must(store_->upsert(make("f/team/nightly", "0 2 * * *")));
  EXPECT_TRUE(created.created);
  EXPECT_GT(created.schedule.next_fire_at, before);
  EXPECT_LE(created.schedule.next_fire_at, before + 24h + 1s);
  EXPECT_EQ(created.schedule.args.dump(), R"({"b":1,"a":2})") << "args keep their order";

  Schedule changed = make("f/team/nightly", "*/5 * * * * *", CatchUp::all);
  changed.timezone = "Europe/Paris";
  changed.tag = "reports";
  changed.priority = 80;
  auto replaced = must(store_->upsert(changed));
  EXPECT_FALSE(replaced.created);
  EXPECT_EQ(replaced.schedule.cron, "*/5 * * * * *");
  EXPECT_EQ(replaced.schedule.timezone, "Europe/Paris");
  EXPECT_EQ(replaced.schedule.tag, "reports");
  EXPECT_EQ(replaced.schedule.priority, 80);
  EXPECT_EQ(replaced.schedule.catch_up, CatchUp::all);
  EXPECT_LE(replaced.schedule.next_fire_at, Clock::now() + 5s);
  EXPECT_EQ(replaced.schedule.created_at, created.schedule.created_at);

  ASSERT_TRUE(must(store_->upsert(make("u/ada/daily", "@daily"))).created);
  auto list = must(store_->list());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "f/team/nightly");
  EXPECT_EQ(list[1].name, "u/ada/daily");

  auto paused = must(store_->set_paused("u/ada/daily", true));
  ASSERT_TRUE(paused);
  EXPECT_TRUE(paused->paused);
  due_at("u/ada/daily", Clock::now() - 48h);
  auto resumed = must(store_->set_paused("u/ada/daily", false));
  ASSERT_TRUE(resumed);
  EXPECT_FALSE(resumed->paused);
  EXPECT_GT(resumed->next_fire_at, Clock::now()) << "resuming does not catch up the paused time";
  EXPECT_FALSE(must(store_->set_paused("u/nobody/x", true)));

  EXPECT_TRUE(must(store_->remove("u/ada/daily")));
  EXPECT_FALSE(must(store_->remove("u/ada/daily")));
  EXPECT_FALSE(must(store_->get("u/ada/daily")));
}

TEST_F(SchedulerTest, ValidationNamesTheField) {
  const std::pair<Schedule, const char*> cases[] = {
      {make("nightly", "@daily"),
       "name \"nightly\" must start with f/ (folder) or u/ (user), as in f/<folder>/<name>"},
      {make("f/team/x", "0 25 * * *"), "cron field 2 (hour): 25 is out of range 0-23"},
      {make("f/team/x", "0 0 30 2 *"),
       "cron expression '0 0 30 2 *' never fires (no matching time within 50 years)"},
      {[] {
         Schedule s = make("f/team/x", "@daily");
         s.timezone = "Europe/Pariss";
         return s;
       }(),
       "timezone: unknown time zone 'Europe/Pariss' (expected an IANA name like Europe/Paris, "
       "America/New_York "
       "or UTC)"},
      {[] {
         Schedule s = make("f/team/x", "@daily");
         s.priority = 101;
         return s;
       }(),
       "priority must be from 1 to 100 (or 0 for the script's), got 101"},
      {[] {
         Schedule s = make("f/team/x", "@daily");
         s.tag = "has space";
         return s;
       }(),
       "tag: tag \"has space\" may only hold [A-Za-z0-9_.:/-] characters"},
  };
  for (const auto& [s, message] : cases) {
    EXPECT_EQ(validate(s).message(), message) << s.name << " " << s.cron;
    EXPECT_EQ(store_->upsert(s).message(), message);
  }
  Schedule bad_path = make("f/team/x", "@daily");
  bad_path.script_path = "scripts/x";
  EXPECT_EQ(validate(bad_path).message().rfind("script_path: script path \"scripts/x\"", 0), 0u)
      << validate(bad_path).message();
  EXPECT_EQ(sql("SELECT count(*) FROM quern.schedules"), "0");
}

// Downtime of 200 days for a daily schedule: skip fires nothing, latest fires
// the newest missed tick, all fires the newest 100; each then waits for the
// next tick.
TEST_F(SchedulerTest, CatchUpPoliciesAfterDowntime) {
  for (const auto& [name, policy] :
       {std::pair{"f/c/skip", CatchUp::skip}, {"f/c/latest", CatchUp::latest}, {"f/c/all", CatchUp::all}}) {
    must(store_->upsert(make(name, "0 0 * * *", policy)));
  }
  const auto midnight = Clock::time_point(date::floor<date::days>(Clock::now()));
  for (const char* name : {"f/c/skip", "f/c/latest", "f/c/all"}) due_at(name, midnight - date::days(200));

  Scheduler scheduler(options_, noop_job);
  auto report = must(scheduler.run_once());
  EXPECT_EQ(report.schedules, 3);
  EXPECT_EQ(report.jobs, 101);
  EXPECT_EQ(report.errors, 0);

  EXPECT_EQ(jobs_of("f/c/skip"), 0);
  EXPECT_EQ(jobs_of("f/c/latest"), 1);
  EXPECT_EQ(jobs_of("f/c/all"), 100);
  auto ticks = [&](const char* name, const char* agg) {
    return sql(std::string("SELECT to_char(") + agg +
               "(scheduled_for) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM quern.queue WHERE "
               "payload->'schedule'->>'name' = '" +
               name + "'");
  };
  EXPECT_EQ(ticks("f/c/latest", "max"), iso(midnight));
  EXPECT_EQ(ticks("f/c/all", "max"), iso(midnight));
  EXPECT_EQ(ticks("f/c/all", "min"), iso(midnight - date::days(99)));
  EXPECT_EQ(sql("SELECT count(DISTINCT scheduled_for) FROM quern.queue WHERE payload->'schedule'->>'name' = "
                "'f/c/all'"),
            "100");
  EXPECT_EQ(sql("SELECT DISTINCT payload->'args'->>'a' FROM quern.queue"), "2") << "args untouched";

  for (const char* name : {"f/c/skip", "f/c/latest", "f/c/all"}) {
    auto s = must(store_->get(name));
    ASSERT_TRUE(s);
    EXPECT_EQ(s->next_fire_at, midnight + date::days(1)) << name;
    EXPECT_TRUE(s->last_error.empty()) << name;
  }
  auto all = must(store_->get("f/c/all"));
  ASSERT_TRUE(all->last_fired_at);
  EXPECT_EQ(*all->last_fired_at, midnight);
  EXPECT_EQ(std::to_string(all->last_job_id),
            sql("SELECT max(id) FROM quern.queue WHERE payload->'schedule'->>'name' = 'f/c/all'"));
  EXPECT_FALSE(must(store_->get("f/c/skip"))->last_fired_at);

  // Nothing is due any more: a second pass fires nothing.
  EXPECT_EQ(must(scheduler.run_once()).jobs, 0);
}

// A builder error (the server's: the script is missing) is recorded on the
// schedule and logged once; the schedule advances, so no storm of retries.
TEST_F(SchedulerTest, BuilderErrorIsRecordedAndTheScheduleAdvances) {
  must(store_->upsert(make("f/e/broken", "* * * * *")));
  due_at("f/e/broken", Clock::now() - 1s);
  options_.late_grace = 10s;  // a late tick, not a missed one
  std::atomic<int> calls{0};
  Scheduler scheduler(options_, [&](const Schedule& s) -> StatusOr<queue::NewJob> {
    calls++;
    return Status::error("no script at path '" + s.script_path + "' (or it is archived)");
  });
  auto report = must(scheduler.run_once());
  EXPECT_EQ(report.errors, 1);
  EXPECT_EQ(report.jobs, 0);
  EXPECT_EQ(calls, 1);
  auto s = must(store_->get("f/e/broken"));
  EXPECT_EQ(s->last_error, "no script at path 'f/test/script' (or it is archived)");
  EXPECT_GT(s->next_fire_at, Clock::now());
  EXPECT_EQ(must(scheduler.run_once()).schedules, 0);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(sql("SELECT count(*) FROM quern.queue"), "0");
}

TEST_F(SchedulerTest, PausedSchedulesDoNotFire) {
  Schedule s = make("f/p/paused", "* * * * *");
  s.paused = true;
  must(store_->upsert(s));
  due_at("f/p/paused", Clock::now() - 1h);
  Scheduler scheduler(options_, noop_job);
  EXPECT_EQ(must(scheduler.run_once()).schedules, 0);
  EXPECT_EQ(sql("SELECT count(*) FROM quern.queue"), "0");
}

// Four schedulers (own connections) pass over the same 20 due schedules at
// once, repeatedly: every (schedule, tick) has exactly one job.
TEST_F(SchedulerTest, ConcurrentSchedulersFireEachTickOnce) {
  for (int i = 0; i < 20; ++i) must(store_->upsert(make("f/many/s" + std::to_string(i), "* * * * * *")));
  options_.late_grace = 10s;
  std::vector<std::unique_ptr<Scheduler>> schedulers;
  for (int i = 0; i < 4; ++i) schedulers.push_back(std::make_unique<Scheduler>(options_, noop_job));
  std::atomic<int> jobs{0};
  const auto until = std::chrono::steady_clock::now() + 3500ms;
  std::vector<std::thread> threads;
  for (auto& sch : schedulers) {
    threads.emplace_back([&, s = sch.get()] {
      while (std::chrono::steady_clock::now() < until) {
        auto r = s->run_once();
        if (!r) ADD_FAILURE() << r.message();
        jobs += r ? r->jobs : 0;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(jobs, 20 * 3);
  EXPECT_EQ(sql("SELECT count(*) FROM quern.queue"), std::to_string(jobs.load()));
  EXPECT_EQ(sql("SELECT count(*) FROM (SELECT 1 FROM quern.queue GROUP BY payload->'schedule'->>'name', "
                "scheduled_for HAVING count(*) > 1) d"),
            "0");
  // No gaps: per schedule, consecutive seconds from its first tick to its last.
  EXPECT_EQ(sql("SELECT count(*) FROM (SELECT payload->'schedule'->>'name' AS n FROM quern.queue GROUP BY 1 "
                "HAVING extract(epoch FROM max(scheduled_for) - min(scheduled_for)) + 1 <> count(*)) g"),
            "0");
}

// The loop sleeps up to max_sleep (here far longer than the test) but wakes
// on the store's NOTIFY when a schedule is created, and fires its ticks.
TEST_F(SchedulerTest, LoopWakesOnNotifyAndFires) {
  options_.max_sleep = 60s;
  options_.late_grace = 10s;
  Scheduler scheduler(options_, noop_job);
  ASSERT_TRUE(scheduler.start());
  // Let the loop reach its first (long) sleep with nothing to do.
  ASSERT_TRUE(testing::wait_until(
      [&] {
        return sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE "
                   "'LISTEN%'") != "0";
      },
      10s));
  must(store_->upsert(make("f/w/every-second", "* * * * * *")));
  EXPECT_TRUE(testing::wait_until([&] { return jobs_of("f/w/every-second") >= 2; }, 10s));
  scheduler.stop();
  const auto fired = jobs_of("f/w/every-second");
  EXPECT_EQ(sql("SELECT count(DISTINCT scheduled_for) FROM quern.queue"), std::to_string(fired));
}

}  // namespace
}  // namespace quern::schedule
