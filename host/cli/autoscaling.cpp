#include "host/cli/autoscaling.h"

#include <algorithm>

#include "host/autoscale/local_workers.h"
#include "host/log/log.h"
#include "host/worker/worker.h"

namespace quern::cli {
namespace {

void say_local_needs_up(const config::WorkerGroup& g) {
  log::warning("autoscale",
               "group " + g.name +
                   " autoscales with integration=\"local\": run `quern up` to start its workers; "
                   "`quern server` does not run workers");
}

}  // namespace

bool acts_for_autoscaling(const config::Config& cfg, bool can_run_workers) {
  return std::any_of(cfg.groups.begin(), cfg.groups.end(), [&](const config::WorkerGroup& g) {
    return g.autoscale && (can_run_workers || g.autoscale->integration != "local");
  });
}

bool workers_come_from_autoscaler(const config::WorkerGroup& group) {
  return group.autoscale && group.autoscale->integration != "dry-run";
}

std::unique_ptr<autoscale::Controller> start_autoscaler(const config::Config& cfg, const std::string& url,
                                                        const CommonOptions& common, bool can_run_workers,
                                                        metrics::Metrics* metrics,
                                                        std::chrono::milliseconds live_within) {
  if (!acts_for_autoscaling(cfg, can_run_workers)) {
    for (const auto& g : cfg.groups)
      if (g.autoscale) say_local_needs_up(g);
    return nullptr;
  }
  autoscale::ControllerOptions o;
  o.database_url = url;
  o.groups = cfg.groups;
  o.live_within = live_within;
  o.make_integration = [source = cfg.source, url, common, can_run_workers](
                           const config::WorkerGroup& g) -> std::unique_ptr<autoscale::Integration> {
    const std::string& kind = g.autoscale->integration;
    if (kind == "script") return autoscale::make_script_integration(g);
    if (kind == "keda" || kind == "dry-run") return autoscale::make_passive_integration(g);
    if (!can_run_workers) {
      say_local_needs_up(g);
      return nullptr;
    }
    autoscale::LocalWorkersOptions lo;
    lo.config_file = source;
    lo.database_url = url;
    lo.data_dir = common.data_dir;
    lo.plugin_dir = common.plugin_dir;
    lo.on_worker_gone = [](const std::string& id) {
      if (int n = worker::clean_up_after(id); n > 0)
        log::warning("autoscale", "ended " + std::to_string(n) + " job cgroup(s) worker " + id + " left");
    };
    return autoscale::make_local_workers(g, lo);
  };
  if (metrics != nullptr) {
    auto& events =
        metrics->counter("quern_autoscale_events_total",
                         "Autoscaling decisions that changed a group's count, by group, direction "
                         "(up, down) and outcome (ok, failed, dry-run), recorded by this process.");
    o.on_event = [&events](const autoscale::Event& e) {
      events
          .Add({{"group", e.group},
                {"direction", e.to_count > e.from_count ? "up" : "down"},
                {"outcome", e.outcome}})
          .Increment();
    };
  }
  auto controller = std::make_unique<autoscale::Controller>(std::move(o));
  if (Status s = controller->start(); !s) {
    log::error("autoscale", s.message());
    return nullptr;
  }
  return controller;
}

}  // namespace quern::cli
