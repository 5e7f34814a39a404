#include "host/metrics/job_metrics.h"

#include <algorithm>

namespace quern::metrics {
namespace {

constexpr int64_t kKeepSeconds = 30 * 60;  // the longest window

prometheus::Family<prometheus::Gauge>& slot_family(Metrics& m) {
  return m.gauge("quern_worker_slots", "Slots of this process's workers, by group and state (busy, idle).");
}

}  // namespace

Occupancy::Occupancy(Clock::time_point now) : start_(now), last_(now) {}

void Occupancy::advance(Clock::time_point now) {
  if (now <= last_) return;
  // Spread [last_, now) over whole seconds since start_; a gap longer than
  // the longest window only needs its last kKeepSeconds.
  auto from = std::max(last_, now - std::chrono::seconds(kKeepSeconds + 1));
  while (from < now) {
    const int64_t index = std::chrono::duration_cast<std::chrono::seconds>(from - start_).count();
    const auto second_end = start_ + std::chrono::seconds(index + 1);
    const auto to = std::min(now, second_end);
    const double span = std::chrono::duration<double>(to - from).count();
    if (slots_ > 0) {
      if (seconds_.empty() || seconds_.back().index != index) seconds_.push_back({index, 0, 0});
      seconds_.back().busy += span * busy_;
      seconds_.back().capacity += span * slots_;
    }
    from = to;
  }
  last_ = now;
  const int64_t now_index = std::chrono::duration_cast<std::chrono::seconds>(now - start_).count();
  while (!seconds_.empty() && seconds_.front().index <= now_index - kKeepSeconds - 1) seconds_.pop_front();
}

void Occupancy::set(int busy, int slots, Clock::time_point now) {
  std::lock_guard lock(mu_);
  advance(now);
  busy_ = std::clamp(busy, 0, std::max(slots, 0));
  slots_ = std::max(slots, 0);
}

double Occupancy::ratio(std::chrono::seconds window, Clock::time_point now) {
  std::lock_guard lock(mu_);
  advance(now);
  const int64_t now_index = std::chrono::duration_cast<std::chrono::seconds>(now - start_).count();
  double busy = 0, capacity = 0;
  // The last `window` whole seconds plus the current, partial one: off by at
  // most a second of the window's length.
  for (auto it = seconds_.rbegin(); it != seconds_.rend() && it->index >= now_index - window.count(); ++it) {
    busy += it->busy;
    capacity += it->capacity;
  }
  return capacity > 0 ? busy / capacity : 0;
}

WorkerMetrics::WorkerMetrics(Metrics& m, std::string group)
    : m_(m),
      group_(std::move(group)),
      live_(std::make_shared<Live>()),
      claims_(m.counter("quern_worker_claims_total", "Claim statements run, by worker group.")
                  .Add({{"group", group_}})),
      jobs_claimed_(m.counter("quern_worker_jobs_claimed_total", "Jobs claimed, by worker group.")
                        .Add({{"group", group_}})),
      claim_seconds_(m.histogram("quern_worker_claim_duration_seconds",
                                 "Round trip of one claim statement, by worker group.")
                         .Add({{"group", group_}}, latency_buckets())),
      retries_(
          m.counter("quern_job_retries_total",
                    "Completions that put the job back in the queue under its retry policy, by worker group.")
              .Add({{"group", group_}})),
      handed_back_(
          m.counter("quern_jobs_handed_back_total",
                    "Running jobs handed back to the queue when their worker stopped, by worker group.")
              .Add({{"group", group_}})),
      busy_(slot_family(m).Add({{"group", group_}, {"state", "busy"}})),
      idle_(slot_family(m).Add({{"group", group_}, {"state", "idle"}})),
      completed_(
          m.counter("quern_jobs_completed_total", "Jobs completed, by worker group, tag and outcome.")),
      durations_(m.histogram("quern_job_duration_seconds",
                             "Time from claim to completion of completed jobs, by worker group and tag.")),
      waits_(m.histogram("quern_job_queue_wait_seconds",
                         "Time from a job being due to its start, by worker group and tag.")) {
  count_recoveries(m, 0, 0, 0);  // the series exist from the start
  auto& occupancy =
      m.gauge("quern_worker_occupancy_ratio",
              "Busy slot-time over slot-time in a trailing window (15s, 5m, 30m), by worker group.");
  auto& heartbeat = m.gauge("quern_worker_heartbeat_age_seconds",
                            "Seconds since this process's workers of a group last heartbeat successfully.")
                        .Add({{"group", group_}});
  struct Window {
    const char* name;
    std::chrono::seconds length;
    prometheus::Gauge* gauge;
  };
  std::vector<Window> windows;
  for (auto [name, length] : {std::pair{"15s", 15}, {"5m", 300}, {"30m", 1800}})
    windows.push_back(
        {name, std::chrono::seconds(length), &occupancy.Add({{"group", group_}, {"window", name}})});
  m.add_refresh([live = live_, windows, &heartbeat] {
    const auto now = Occupancy::Clock::now();
    for (const Window& w : windows) w.gauge->Set(live->occupancy.ratio(w.length, now));
    std::lock_guard lock(live->mu);
    if (live->heartbeat_seen)
      heartbeat.Set(std::chrono::duration<double>(now - live->last_heartbeat).count());
  });
}

void WorkerMetrics::claimed(int jobs, std::chrono::duration<double> took) {
  claims_.Increment();
  if (jobs > 0) jobs_claimed_.Increment(jobs);
  claim_seconds_.Observe(took.count());
}

void WorkerMetrics::job_started(const std::string& tag, std::chrono::duration<double> queue_wait) {
  waits_.Add({{"group", group_}, {"tag", tags_.admit(tag)}}, duration_buckets())
      .Observe(std::max(0.0, queue_wait.count()));
}

void WorkerMetrics::job_finished(const std::string& tag, const std::string& outcome,
                                 std::chrono::duration<double> took) {
  const std::string t = tags_.admit(tag);
  completed_.Add({{"group", group_}, {"tag", t}, {"outcome", outcome}}).Increment();
  durations_.Add({{"group", group_}, {"tag", t}}, duration_buckets()).Observe(took.count());
}

void WorkerMetrics::retried(int jobs) {
  if (jobs > 0) retries_.Increment(jobs);
}
void WorkerMetrics::handed_back(int jobs) {
  if (jobs > 0) handed_back_.Increment(jobs);
}

void WorkerMetrics::slots(int busy, int total) {
  busy_.Set(busy);
  idle_.Set(std::max(0, total - busy));
  live_->occupancy.set(busy, total);
}

void WorkerMetrics::recovered(int requeued, int failed, int canceled) {
  count_recoveries(m_, requeued, failed, canceled);
}

void WorkerMetrics::heartbeat_ok() {
  std::lock_guard lock(live_->mu);
  live_->last_heartbeat = Occupancy::Clock::now();
  live_->heartbeat_seen = true;
}

void count_recoveries(Metrics& m, int requeued, int failed, int canceled) {
  auto& f = m.counter("quern_lease_recoveries_total",
                      "Leases of lost workers recovered by this process, by outcome: requeued, failed (over "
                      "max restarts) or canceled.");
  f.Add({{"outcome", "requeued"}}).Increment(requeued);
  f.Add({{"outcome", "failed"}}).Increment(failed);
  f.Add({{"outcome", "canceled"}}).Increment(canceled);
}

}  // namespace quern::metrics
