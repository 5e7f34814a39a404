#include "host/server/server_metrics.h"

#include "host/metrics/job_metrics.h"

#include <chrono>
#include <mutex>

namespace quern::server {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr std::chrono::seconds kQueueReadEvery{1};

// Reads the queue at most once per kQueueReadEvery and renders the families.
class QueueCollector {
 public:
  explicit QueueCollector(Api& api) : api_(api) {}

  std::vector<MetricFamily> operator()() {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (!read_ || now - read_at_ >= kQueueReadEvery) {
      read_ = api_.queue_metrics();
      scaled_ = api_.autoscale_groups();
      read_at_ = now;
    }
    std::vector<MetricFamily> out;
    out.push_back(metrics::make_family("quern_database_up",
                                       "1 when the server's last read of the queue succeeded, else 0."));
    metrics::add_sample(out.back(), read_ && read_->is_ok() ? 1 : 0);
    if (!read_ || !read_->is_ok()) return out;
    const queue::QueueMetrics& q = **read_;
    MetricFamily waiting =
        metrics::make_family("quern_queue_waiting_jobs", "Jobs waiting (not running), due or not, by tag.");
    MetricFamily due = metrics::make_family("quern_queue_due_jobs", "Waiting jobs that are due now, by tag.");
    MetricFamily blocked = metrics::make_family("quern_queue_blocked_jobs",
                                                "Due waiting jobs whose concurrency key is at its limit "
                                                "(more workers would not start them), by tag.");
    MetricFamily running = metrics::make_family("quern_queue_running_jobs", "Jobs running now, by tag.");
    MetricFamily oldest = metrics::make_family("quern_queue_oldest_due_age_seconds",
                                               "Age of the oldest due waiting job, by tag (0 when none).");
    for (const auto& t : q.tags) {
      const std::vector<prometheus::ClientMetric::Label> l{{"tag", tags_.admit(t.tag)}};
      metrics::add_sample(waiting, t.waiting, l);
      metrics::add_sample(due, t.due, l);
      metrics::add_sample(blocked, t.blocked, l);
      metrics::add_sample(running, t.running, l);
      metrics::add_sample(oldest, t.oldest_due_s, l);
    }
    MetricFamily live =
        metrics::make_family("quern_workers_live", "Workers and agents seen recently, by group and kind.");
    MetricFamily slots = metrics::make_family(
        "quern_workers_slots", "Slots of the live workers, by group, kind and state (busy, idle).");
    MetricFamily age = metrics::make_family(
        "quern_workers_heartbeat_age_seconds",
        "Time since the least recently seen live worker of a group reported, by group and kind.");
    MetricFamily agents = metrics::make_family("quern_agents_connected", "Agents seen recently.");
    int64_t agent_count = 0;
    for (const auto& g : q.groups) {
      const std::string group = groups_.admit(g.group);
      metrics::add_sample(live, g.live, {{"group", group}, {"kind", g.kind}});
      metrics::add_sample(slots, g.busy, {{"group", group}, {"kind", g.kind}, {"state", "busy"}});
      metrics::add_sample(slots, g.slots - g.busy, {{"group", group}, {"kind", g.kind}, {"state", "idle"}});
      metrics::add_sample(age, g.heartbeat_age_s, {{"group", group}, {"kind", g.kind}});
      if (g.kind == "agent") agent_count += g.live;
    }
    metrics::add_sample(agents, agent_count);
    for (auto* f : {&waiting, &due, &blocked, &running, &oldest, &live, &slots, &age, &agents})
      out.push_back(std::move(*f));
    if (scaled_ && scaled_->is_ok()) {
      // KEDA's prometheus scaler reads this (docs/AUTOSCALING.md).
      MetricFamily desired =
          metrics::make_family("quern_autoscale_desired_workers",
                               "Workers the autoscaler decided an autoscaled group should run.");
      for (const auto& g : **scaled_)
        metrics::add_sample(desired, g.desired, {{"group", groups_.admit(g.group)}});
      out.push_back(std::move(desired));
    }
    return out;
  }

 private:
  Api& api_;
  std::mutex mu_;  // guards read_, scaled_ and read_at_
  std::optional<StatusOr<queue::QueueMetrics>> read_;
  std::optional<StatusOr<std::vector<autoscale::GroupState>>> scaled_;
  std::chrono::steady_clock::time_point read_at_;
  metrics::LabelLimit tags_{1000};
  metrics::LabelLimit groups_{256};
};

}  // namespace

ServerMetrics::ServerMetrics(metrics::Metrics& m, Api& api)
    : http_(m),
      metrics_(m),
      pruned_(
          m.counter("quern_retention_pruned_rows_total",
                    "Rows deleted by data retention, by table (completed_jobs, job_logs, job_attempts).")) {
  metrics::count_recoveries(m, 0, 0, 0);  // the series exist from the start
  pruned(retention::PruneReport{});
  auto collector = std::make_shared<QueueCollector>(api);
  m.add_collector([collector] { return (*collector)(); });
}

void ServerMetrics::pruned(const retention::PruneReport& r) {
  if (r.dry_run) return;
  pruned_.Add({{"table", "completed_jobs"}}).Increment(static_cast<double>(r.jobs));
  pruned_.Add({{"table", "job_logs"}}).Increment(static_cast<double>(r.logs));
  pruned_.Add({{"table", "job_attempts"}}).Increment(static_cast<double>(r.attempts));
}

void ServerMetrics::recovered(const queue::RecoveryReport& r) {
  metrics::count_recoveries(metrics_, r.requeued, r.failed, r.canceled);
}

}  // namespace quern::server
