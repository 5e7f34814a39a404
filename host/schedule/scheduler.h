// The scheduler: a thread (owned by `quern server`) that fires due schedules.
//
// Exactly once per tick, however many servers run on one database: a pass
// locks due rows (NOT paused AND next_fire_at <= now()) FOR UPDATE SKIP
// LOCKED, pushes each one's job(s) into quern.queue and advances its
// next_fire_at, all in one transaction. Another scheduler skips the locked
// rows, and once the transaction commits the rows are no longer due; if it
// rolls back, nothing was pushed and the ticks are still due.
//
// A tick at most `late_grace` old is late and always fires (each of them, in
// order); older ticks were missed (no scheduler ran) and follow the
// schedule's CatchUp policy. A job's scheduled_for is its tick, and its
// payload carries {"schedule": {"name", "tick"}}; args are the schedule's.
//
// The loop sleeps until the earliest next_fire_at (by the database's clock),
// at most max_sleep, and wakes early on a NOTIFY of kSchedulesChannel (the
// store sends one with every change), so a new schedule with a near tick is
// not missed.
//
// Thread-safety: start()/stop() from one thread. run_once() uses the
// scheduler's own connection: call it only while the loop is not started
// (tests and tools).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "host/common/status.h"
#include "host/queue/queue.h"
#include "host/schedule/cron.h"
#include "host/schedule/schedule_store.h"

namespace quern::schedule {

// Builds the job one tick of a schedule pushes (the server builds it from the
// script's latest version, as a run request would). An error pushes nothing
// for that pass: it is logged (once while it repeats), recorded on the
// schedule (last_error), and the schedule advances (no retry storm).
using JobBuilder = std::function<StatusOr<queue::NewJob>(const Schedule&)>;

struct SchedulerOptions {
  std::string database_url;
  std::chrono::milliseconds max_sleep{1000};    // longest sleep between passes
  std::chrono::milliseconds late_grace{10000};  // older ticks were missed (CatchUp decides)
  int max_catch_up = 100;                       // most missed ticks CatchUp::all fires
  int batch_size = 50;                          // schedules locked per transaction
};

struct FireReport {
  int schedules = 0;  // due schedules handled (fired, skipped or failed)
  int jobs = 0;       // jobs pushed
  int errors = 0;     // schedules that pushed nothing because of an error
};

// Which ticks one due schedule fires now (oldest first) and its next due
// time (> now). `due` is its next_fire_at (<= now). Pure; exposed for tests.
struct FirePlan {
  std::vector<Clock::time_point> ticks;
  Clock::time_point next;
};
StatusOr<FirePlan> plan_fires(const CronExpr& cron, const date::time_zone& tz, CatchUp catch_up,
                              Clock::time_point due, Clock::time_point now, const SchedulerOptions& options);

class Scheduler {
 public:
  Scheduler(SchedulerOptions options, JobBuilder build_job);
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts the loop thread. An unreachable database is not an error: the
  // loop retries every max_sleep.
  Status start();
  // Wakes the loop and joins it (a pass in progress completes first).
  void stop();

  // One pass: fires every schedule due now (in batches). Not while started.
  StatusOr<FireReport> run_once();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quern::schedule
