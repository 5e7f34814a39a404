// The worker's conversation with the queue besides claims and results
// (worker_loops.h): heartbeat rounds — leases refreshed, the registry row and
// its telemetry rewritten, cancels and lost leases learnt — and the
// cancellations the claimer hears of, which stop a job the moment its
// cancellation is requested.
#include <chrono>
#include <utility>

#include "host/log/log.h"
#include "host/metrics/metrics.h"
#include "host/worker/worker_loops.h"
#include "host/worker/worker_state.h"

namespace quern::worker::detail {

queue::WorkerTelemetry Loops::telemetry() {
  using std::chrono::minutes, std::chrono::seconds;
  queue::WorkerTelemetry t;
  if (auto u = metrics::process_usage()) {
    t.rss_bytes = static_cast<int64_t>(u->rss_bytes);
    t.cpu_seconds = u->cpu_seconds;
  }
  t.occupancy_15s = st.occupancy.ratio(seconds(15));
  t.occupancy_5m = st.occupancy.ratio(minutes(5));
  t.occupancy_30m = st.occupancy.ratio(minutes(30));
  t.heartbeat_interval_ms = opt.heartbeat_interval.count();
  std::lock_guard lock(st.mu);
  t.plugins = st.plugin_health;
  return t;
}

void Loops::heartbeat(JobSource& q) {
  std::vector<queue::Lease> leases;
  {
    std::lock_guard lock(st.mu);
    for (auto& [id, run] : st.running) leases.push_back({id, run->job().attempt});
  }
  // The registry row says the worker is alive (GET /api/workers, "served"
  // tags), and how it fares.
  Status touched = q.touch_worker(opt.worker_id, static_cast<int>(leases.size()), telemetry());
  st.set_source_status(touched);
  if (!touched) {
    log::warning("worker", "updating the worker registry failed: " + touched.message(), log_fields());
  } else {
    if (opt.metrics) opt.metrics->heartbeat_ok();
    if (opt.on_heartbeat) opt.on_heartbeat();
  }
  if (leases.empty()) return;
  auto reply = q.heartbeat(opt.worker_id, leases);
  if (!reply) {
    log::warning("worker", "heartbeat failed: " + reply.message(), log_fields());
    return;
  }
  std::lock_guard lock(st.mu);
  for (int64_t id : reply->canceled) {
    auto it = st.running.find(id);
    if (it != st.running.end()) stop_job(*it->second, QUERN_CANCEL_REQUESTED);
  }
  for (int64_t id : reply->lost) {
    auto it = st.running.find(id);
    if (it == st.running.end()) continue;  // finished meanwhile
    log::warning("worker",
                 "lease lost (attempt " + std::to_string(it->second->job().attempt) + "): stopping it",
                 log_fields(id));
    it->second->mark_lost();
    stop_job(*it->second, QUERN_SHUTDOWN);
  }
  st.watchdog_cv.notify_all();
}

// Stops a job the moment its cancellation is requested (the queue NOTIFYs
// kCancelChannel, which the claimer's connection LISTENs on): the watchdog
// then signals its process group and interrupts the plugin within a tick.
void Loops::take_cancels(JobSource& q) {
  auto ids = q.take_cancels();
  if (!ids || ids->empty()) return;  // a lost connection: heartbeats still deliver cancels
  std::lock_guard lock(st.mu);
  bool any = false;
  for (int64_t id : *ids) {
    auto it = st.running.find(id);
    if (it != st.running.end()) any = stop_job(*it->second, QUERN_CANCEL_REQUESTED) || any;
  }
  if (any) st.watchdog_cv.notify_all();
}

}  // namespace quern::worker::detail
