// How a decision reaches the world: one Integration per autoscaled group
// (config <autoscale integration="...">), driven by the controller's thread.
//
//   local    starts and stops `quern worker` processes of the group on this
//            machine (local_workers.h): quern up, the embedded default.
//   script   runs the operator's command with the group and the counts in
//            its environment, killed at script-timeout; exit 0 = ok.
//   keda     changes nothing itself: KEDA reads the desired count from the
//            API (or the Prometheus gauge) and scales the Deployment.
//   dry-run  changes nothing; its events say "dry-run".
//
// Thread-safety: an Integration is used by the controller thread only.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "host/autoscale/decision.h"
#include "host/common/status.h"
#include "host/config/config.h"

namespace quern::autoscale {

class AutoscaleStore;

class Integration {
 public:
  virtual ~Integration() = default;
  // The count in effect when this process takes the group over: `recorded`
  // is the last count the database holds (nullopt: none), `signals` what the
  // queue says now.
  virtual int initial_count(std::optional<int> recorded, const Signals& signals) = 0;
  // Acts on a changed count. An error is the event's "failed" outcome, with
  // its message; the controller keeps the old count and retries later.
  virtual Status apply(int from, int to, const Decision& decision) = 0;
  // Each tick, with the count in effect: keeps what this integration runs in
  // line (local: reaps stopped workers, replaces crashed ones). `store` is
  // the controller's, for what it needs to read.
  virtual void reconcile(int desired, AutoscaleStore& store) {
    (void)desired;
    (void)store;
  }
  // The outcome recorded for a successful apply(): "ok", or "dry-run".
  virtual const char* success_outcome() const { return "ok"; }
  // Stops everything this integration started (local: its workers,
  // gracefully). Called once, when the controller stops.
  virtual void shutdown() {}
};

// integration="script": `script` with QUERN_AUTOSCALE_GROUP, _FROM, _TO,
// _SLOTS, _RULE and _REASON in its environment (and the PATH), no arguments,
// stdin /dev/null, its own process group (killed whole at the timeout;
// what it starts must not hold its stdout/stderr, or it counts as running);
// the last 2 KiB of its output go into a failed event's error.
std::unique_ptr<Integration> make_script_integration(const config::WorkerGroup& group);
// integration="keda" and "dry-run".
std::unique_ptr<Integration> make_passive_integration(const config::WorkerGroup& group);

}  // namespace quern::autoscale
