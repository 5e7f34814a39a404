// The autoscaling controller of `quern server` and `quern up`
// (host/autoscale): which integrations each may run, and its metrics.
#pragma once

#include <memory>
#include <string>

#include "host/autoscale/controller.h"
#include "host/cli/common.h"
#include "host/config/config.h"
#include "host/metrics/metrics.h"

namespace quern::cli {

// Whether any group of the config has <autoscale> this process acts for:
// `quern up` acts for every integration; `quern server` for all but local
// (it never runs workers: those groups need `quern up`, and it says so).
bool acts_for_autoscaling(const config::Config& cfg, bool can_run_workers);

// Whether `quern up` leaves the group's workers to its autoscaler instead of
// running one in its own process: every integration but dry-run (which
// changes nothing, so the group runs as it would without <autoscale>).
bool workers_come_from_autoscaler(const config::WorkerGroup& group);

// Starts the controller (nullptr when no group needs one). Local workers are
// `quern worker` processes of this binary with the config file and the
// data and plugin folders of `common`. `metrics` (may be null) gets
// quern_autoscale_events_total. The controller uses one more database
// connection than the caller's budget otherwise counts.
std::unique_ptr<autoscale::Controller> start_autoscaler(const config::Config& cfg, const std::string& url,
                                                        const CommonOptions& common, bool can_run_workers,
                                                        metrics::Metrics* metrics,
                                                        std::chrono::milliseconds live_within);

}  // namespace quern::cli
