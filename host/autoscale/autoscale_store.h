// The autoscaler's tables (quern.autoscale_groups, quern.autoscale_events,
// migration 10) and the queue signals it decides on.
//
// The controller writes through its own store; the API reads through one
// over each pooled session, so that any server answers KEDA and the queue's
// "scaling up from 0" whichever server's controller decides.
//
// Thread-safety: none (like the pg::Session it runs over).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host/autoscale/decision.h"
#include "host/common/status.h"
#include "host/pg/session.h"

namespace quern::autoscale {

// A group's row in quern.autoscale_groups: the controller's latest word.
struct GroupState {
  std::string group;
  std::string integration;
  std::vector<std::string> tags;  // the tags the group serves
  int min = 0, max = 0;
  int desired = 0;     // the count decided
  int from_count = 0;  // the count it changed from (at requested_at)
  std::string rule, reason;
  std::optional<Clock::time_point> requested_at;  // when desired last changed
  Clock::time_point decided_at{};                 // the last tick that evaluated it
  std::string controller;                         // host:pid of the deciding process
};

// One row of quern.autoscale_events.
struct Event {
  int64_t id = 0;
  Clock::time_point at{};
  std::string group;
  int from_count = 0, to_count = 0;
  std::string rule, reason, integration;
  std::string outcome;  // ok | failed | dry-run
  std::string error;
};

struct EventFilter {
  std::string group;      // "" = every group
  int64_t before_id = 0;  // pagination: only ids below (0 = from the newest)
  int limit = 100;        // 1..1000
};

// For a tag no live worker serves: what the autoscaler is doing about it,
// from the groups' rows — "scaling group X up from 0 (requested at T)" — or
// "" when no autoscaled group serves the tag.
std::string scaling_note(const std::vector<GroupState>& groups, const std::string& tag);

class AutoscaleStore;

// What `quern run` and the API's run answer say of a job whose tag no live
// worker serves (the caller has checked that): the autoscaler scaling a
// group up from 0, else which of the config's groups (`groups`: name → tags;
// `config_name` names the file) would serve it.
std::string unserved_note(AutoscaleStore& store, const std::string& tag,
                          const std::vector<std::pair<std::string, std::vector<std::string>>>& groups,
                          const std::string& config_name);

class AutoscaleStore {
 public:
  static StatusOr<std::unique_ptr<AutoscaleStore>> connect(const std::string& database_url);
  static std::unique_ptr<AutoscaleStore> over(std::shared_ptr<pg::Session> session);
  ~AutoscaleStore();
  AutoscaleStore(const AutoscaleStore&) = delete;
  AutoscaleStore& operator=(const AutoscaleStore&) = delete;

  // The group's signals now, over the tags it serves (one statement): due
  // waiting jobs split into runnable and blocked (a concurrency key at
  // max_running or a rate limit full, as /metrics counts them), running
  // jobs, jobs and schedule ticks due within `lookahead` (a schedule's tag
  // is its own or its script's language), and the group's workers seen
  // within `live_within`.
  StatusOr<Signals> signals(const std::string& group, const std::vector<std::string>& tags,
                            std::chrono::milliseconds lookahead, std::chrono::milliseconds live_within);
  // How many jobs each of these workers runs now (absent: not registered).
  StatusOr<std::vector<std::pair<std::string, int>>> running_of(const std::vector<std::string>& worker_ids);

  StatusOr<std::optional<GroupState>> get_group(const std::string& group);
  StatusOr<std::vector<GroupState>> list_groups();  // by name
  // Inserts or replaces the group's row (decided_at = now()).
  Status save_group(const GroupState& state);
  // Appends an event; returns its id.
  StatusOr<int64_t> add_event(const Event& event);
  // Newest first. A bad limit is an invalid_argument naming it.
  StatusOr<std::vector<Event>> list_events(const EventFilter& filter);

  // Session-level advisory lock on the group's name: one controller decides
  // for a group at a time, however many servers run. Held until release or
  // until the connection goes (the session's drop forgets it too: check
  // holds() each tick).
  StatusOr<bool> try_lock(const std::string& group);
  bool holds(const std::string& group) const;
  void unlock_all();

 private:
  AutoscaleStore();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quern::autoscale
