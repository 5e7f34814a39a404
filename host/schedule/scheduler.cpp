// Scheduler: the firing transaction, catch-up planning and the loop (see
// scheduler.h for the guarantees).
#include "host/schedule/scheduler.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <date/date.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "host/log/log.h"
#include "host/pg/session.h"
#include "host/schedule/schedule_sql.h"

namespace quern::schedule {
namespace {

using namespace std::chrono_literals;

// A schedule whose cron or zone no longer works (edited by hand, zone gone
// from tzdata) is retried this much later, with the error on its row.
constexpr auto kBrokenRetry = std::chrono::hours(1);

std::string iso_utc(Clock::time_point t) {
  return date::format("%FT%TZ", date::floor<std::chrono::seconds>(t));
}

// What firing one due schedule did; written back by kAdvance.
struct Outcome {
  Clock::time_point next;
  std::optional<Clock::time_point> last_tick;
  int64_t last_job_id = 0;
  int jobs = 0;
  std::string error;
};

}  // namespace

StatusOr<FirePlan> plan_fires(const CronExpr& cron, const date::time_zone& tz, CatchUp catch_up,
                              Clock::time_point due, Clock::time_point now, const SchedulerOptions& options) {
  FirePlan plan;
  const size_t cap = static_cast<size_t>(std::max(1, options.max_catch_up));
  const Clock::time_point lower = now - options.late_grace;
  Clock::time_point t = due;
  if (due < lower) {
    // Missed ticks lie in [due, lower): the newest one or ones, or none.
    if (catch_up != CatchUp::skip) {
      const size_t want = catch_up == CatchUp::latest ? 1 : cap;
      std::vector<Clock::time_point> missed;
      for (auto p = cron.last_before(lower, tz); p && *p >= due && missed.size() < want;
           p = cron.last_before(*p, tz))
        missed.push_back(*p);
      if (missed.empty()) missed.push_back(due);  // a next_fire_at set off the cron's grid by hand
      plan.ticks.assign(missed.rbegin(), missed.rend());
    }
    auto first_late = cron.next_after(lower - Clock::duration(1), tz);
    if (!first_late) return first_late.status();
    t = *first_late;
  }
  // Late ticks (at most late_grace old) all fire.
  for (size_t late = 0; t <= now && late < cap; ++late) {
    plan.ticks.push_back(t);
    auto n = cron.next_after(t, tz);
    if (!n) return n.status();
    t = *n;
  }
  if (t <= now) {
    auto n = cron.next_after(now, tz);
    if (!n) return n.status();
    t = *n;
  }
  plan.next = t;
  return plan;
}

struct Scheduler::Impl {
  Impl(SchedulerOptions o, JobBuilder b)
      : options(std::move(o)),
        build_job(std::move(b)),
        db(options.database_url, pg::SessionOptions{false, "quern server (scheduler)"}) {
    static const pg::Statement kStatements[] = {{"scheduler_lock_due", sql::kLockDue},
                                                {"scheduler_advance", sql::kAdvance},
                                                {"scheduler_until_due", sql::kUntilDue}};
    db.add_statements(kStatements);
  }

  SchedulerOptions options;
  JobBuilder build_job;
  pg::Session db;
  std::thread thread;
  std::atomic<bool> stopping{false};
  int wake_fd = -1;       // eventfd: stop() wakes the loop's poll
  int listening_pid = 0;  // backend that has our LISTEN (a reconnect needs a new one)

  // Fires one locked, due schedule inside tx.
  Outcome fire(pqxx::transaction_base& tx, const Schedule& s, Clock::time_point now) {
    Outcome out;
    auto cron = CronExpr::parse(s.cron);
    auto zone = cron ? find_time_zone(s.timezone) : StatusOr<const date::time_zone*>(cron.status());
    auto plan = zone ? plan_fires(*cron, **zone, s.catch_up, s.next_fire_at, now, options)
                     : StatusOr<FirePlan>(zone.status());
    if (!plan) {
      out.error = plan.message();
      out.next = now + kBrokenRetry;
      return out;
    }
    out.next = plan->next;
    if (plan->ticks.empty()) return out;
    auto job = build_job(s);
    if (!job) {
      out.error = job.message();
      return out;
    }
    for (const Clock::time_point tick : plan->ticks) {
      queue::NewJob j = *job;
      j.scheduled_for = tick;
      j.payload["schedule"] = {{"name", s.name}, {"tick", iso_utc(tick)}};
      auto id = queue::push_in_transaction(tx, j);
      if (!id) {  // invalid job: nothing was sent
        out.error = id.message();
        break;
      }
      out.last_tick = tick;
      out.last_job_id = *id;
      out.jobs++;
    }
    return out;
  }

  // One transaction over at most batch_size due schedules. Returns how many
  // were due (a full batch means there may be more).
  StatusOr<int> fire_batch(FireReport& report) {
    std::vector<std::string> lines;  // logged after commit only
    FireReport batch;
    auto due = db.run("fire schedules", [&](pqxx::connection& c) {
      lines.clear();
      batch = FireReport{};
      pqxx::work tx(c);
      // A process stopped mid-pass must not keep its rows locked (other
      // schedulers skip them) for longer than this.
      tx.exec("SET LOCAL idle_in_transaction_session_timeout = '60s'");
      auto rows = tx.exec_prepared("scheduler_lock_due", options.batch_size);
      for (const auto& row : rows) {
        const Schedule s = sql::schedule_from_row(row);
        const Outcome o = fire(tx, s, pg::from_epoch_us(row["now_us"].as<int64_t>()));
        const std::string tick = o.last_tick ? std::to_string(pg::to_epoch_us(*o.last_tick)) : "";
        const std::string job = o.last_job_id ? std::to_string(o.last_job_id) : "";
        tx.exec_prepared("scheduler_advance", s.name, pg::to_epoch_us(o.next),
                         tick.empty() ? nullptr : tick.c_str(), job.empty() ? nullptr : job.c_str(),
                         o.error.empty() ? nullptr : o.error.c_str());
        batch.schedules++;
        batch.jobs += o.jobs;
        if (!o.error.empty()) {
          batch.errors++;
          if (o.error != s.last_error)  // once while the same error repeats
            lines.push_back("schedule " + s.name + ": " + o.error + " (next fire at " + iso_utc(o.next) +
                            ")");
        }
      }
      tx.commit();
      return static_cast<int>(rows.size());
    });
    if (!due) return due.status();
    for (const std::string& line : lines) log::warning("scheduler", line);
    report.schedules += batch.schedules;
    report.jobs += batch.jobs;
    report.errors += batch.errors;
    return *due;
  }

  StatusOr<FireReport> run_once() {
    FireReport report;
    while (true) {
      auto n = fire_batch(report);
      if (!n) return n.status();
      if (*n < options.batch_size) return report;
    }
  }

  // How long to sleep: until the earliest due schedule, within
  // [1 ms, max_sleep]. A schedule already due is locked by another
  // scheduler (this pass fired the rest): look again shortly.
  std::chrono::milliseconds sleep_time() {
    auto ms = db.run("look up the next due schedule", [&](pqxx::connection& c) -> std::optional<int64_t> {
      pqxx::nontransaction tx(c);
      auto r = tx.exec_prepared1("scheduler_until_due");
      const pqxx::field until = r["until_due_ms"];
      if (until.is_null()) return std::nullopt;
      return until.as<int64_t>();
    });
    if (!ms || !*ms) return options.max_sleep;
    if (**ms <= 0) return std::min<std::chrono::milliseconds>(25ms, options.max_sleep);
    return std::clamp<std::chrono::milliseconds>(std::chrono::milliseconds(**ms), 1ms, options.max_sleep);
  }

  // Waits up to timeout for a NOTIFY of kSchedulesChannel or stop().
  void wait(std::chrono::milliseconds timeout) {
    auto waited = db.run("wait for schedule changes", [&](pqxx::connection& c) {
      if (c.backendpid() != listening_pid) {
        pqxx::nontransaction tx(c);
        tx.exec(std::string("LISTEN ") + kSchedulesChannel);
        listening_pid = c.backendpid();
      }
      if (c.get_notifs() > 0) return true;  // arrived while a pass ran
      pollfd fds[2] = {{c.sock(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
      ::poll(fds, 2, static_cast<int>(timeout.count()));
      c.get_notifs();
      return true;
    });
    if (!waited) {  // no connection: just sleep (the next pass reconnects)
      pollfd fd{wake_fd, POLLIN, 0};
      ::poll(&fd, 1, static_cast<int>(timeout.count()));
    }
  }

  void loop() {
    std::string last_failure;
    while (!stopping) {
      auto report = run_once();
      if (!report && report.message() != last_failure) log::error("scheduler", report.message());
      last_failure = report ? "" : report.message();
      if (stopping) break;
      // A failed pass leaves its rows due, and sleep_time() would say "look
      // again in 25 ms": wait the full bound instead of spinning.
      wait(report ? sleep_time() : options.max_sleep);
    }
  }
};

Scheduler::Scheduler(SchedulerOptions options, JobBuilder build_job)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(build_job))) {}

Scheduler::~Scheduler() {
  stop();
  if (impl_->wake_fd >= 0) ::close(impl_->wake_fd);
}

Status Scheduler::start() {
  if (impl_->thread.joinable()) return Status::error("the scheduler is already running");
  if (impl_->wake_fd < 0) impl_->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl_->wake_fd < 0) return Status::error("scheduler: eventfd failed");
  impl_->stopping = false;
  impl_->thread = std::thread([this] { impl_->loop(); });
  return Status::ok();
}

void Scheduler::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stopping = true;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(impl_->wake_fd, &one, sizeof(one));
  impl_->thread.join();
  uint64_t drained = 0;
  [[maybe_unused]] ssize_t m = ::read(impl_->wake_fd, &drained, sizeof(drained));
}

StatusOr<FireReport> Scheduler::run_once() { return impl_->run_once(); }

}  // namespace quern::schedule
