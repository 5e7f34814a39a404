// The autoscaling controller: a thread (in `quern server` and `quern up`)
// that decides, every group's tick, how many workers each autoscaled group
// should run, and acts through the group's integration.
//
// One controller decides for a group at a time across every process on the
// database: it takes the group's advisory lock (AutoscaleStore::try_lock) on
// its own connection and keeps it while the connection lives; the others
// skip the group and try again at their next tick. Each tick of a group it
// holds: reconcile the integration, read the signals, observe, decide, and
// on a changed count apply it, record an event (from, to, rule, reason,
// integration, outcome, error) and the group's row (quern.autoscale_groups).
// A failed apply keeps the old count and is retried after max(5s, cooldown)
// at the earliest (the failure is an event each time).
//
// Wake-up: besides the ticks, the controller LISTENs on the channels of the
// tags its groups serve, so that a job queued for a group at zero starts a
// worker at once instead of at the next tick (the cold start).
//
// Thread-safety: start()/stop() from one thread; everything else is the
// controller thread's.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "host/autoscale/autoscale_store.h"
#include "host/autoscale/decision.h"
#include "host/autoscale/integration.h"
#include "host/config/config.h"

namespace quern::autoscale {

struct ControllerOptions {
  std::string database_url;
  // Groups with <autoscale>; others are ignored.
  std::vector<config::WorkerGroup> groups;
  // The group's integration, made when the controller starts (host/cli
  // decides which a process may run: `quern server` has no local one).
  // nullptr: this process does not act for the group (it is skipped).
  std::function<std::unique_ptr<Integration>(const config::WorkerGroup&)> make_integration;
  // A worker counts as live when seen within this (the API's live_within).
  std::chrono::milliseconds live_within{35000};
  // Called on the controller thread after each event is recorded (metrics).
  std::function<void(const Event&)> on_event;
};

class Controller {
 public:
  explicit Controller(ControllerOptions options);
  ~Controller();  // stop()
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Starts the thread. An unreachable database is not an error: the loop
  // retries each tick.
  Status start();
  // Ends the loop, releases the locks, and shuts every integration down
  // (local workers stop gracefully).
  void stop();

 private:
  struct GroupRun;
  void loop();
  void tick_group(GroupRun& g, Clock::time_point now);

  ControllerOptions options_;
  std::string identity_;                           // host:pid, in quern.autoscale_groups.controller
  std::vector<std::unique_ptr<GroupRun>> groups_;  // controller thread only
  std::unique_ptr<AutoscaleStore> store_;          // controller thread only
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace quern::autoscale
