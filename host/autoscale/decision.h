// The autoscaler's decision: how many workers a group should run, as a pure
// function of (config, signals, history, now). The controller
// (controller.h) gathers the signals each tick, calls observe() then
// decide(), acts on a changed count through the group's integration, and
// then record()s it. Everything here is deterministic and does no I/O, so
// that the table tests (tests/autoscale/decision_test.cpp) can replay
// synthetic histories tick by tick.
//
// Rules (docs/AUTOSCALING.md gives them to operators), in this order:
//   demand   = ceil((running + runnable + due_soon) / slots): workers that
//              would run everything that can start now or soon.
//   floor    = ceil(running / slots): never fewer workers than the running
//              jobs need (a scale-in never interrupts work).
//   1. Scale out when demand > current and runnable + due_soon >=
//      scale_out_backlog (jobs that more workers would start; jobs blocked
//      by a concurrency key or rate limit at its limit are not runnable):
//        - from zero (current == 0), or with runnable >= full_scale_backlog
//          (0 = max * slots): straight to demand, ignoring cooldown and
//          step ("scale from zero", "large backlog");
//        - else, once the cooldown since the last change has passed: to
//          demand, or current + scale_out_step when a step is set;
//          during the cooldown: hold.
//   2. Else scale to min at once when nothing is running, runnable or due
//      soon and the group has been idle for idle_before_zero ("idle").
//   3. Else scale in by scale_in_step when nothing runnable or due soon
//      waits, occupancy averaged over both the short and the long window is
//      below scale_in_occupancy_pct, and the cooldown has passed — not below
//      floor, nor below 1: the last worker goes only by rule 2, after
//      idle_before_zero, so a trickle that drains between ticks keeps its
//      worker ("low occupancy").
//   4. Else hold.
//   The result is clamped to [min, max], then raised to floor when running
//   jobs need more (a lowered max never stops busy workers), and to min.
// A group whose current count is outside [min, max] (config changed) is
// brought inside at the next tick.
//
// Thread-safety: free functions over values; History is owned by its caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>

#include "host/config/config.h"

namespace quern::autoscale {

using Clock = std::chrono::system_clock;

// What the queue says about one group's work, over the tags it serves.
struct Signals {
  int64_t runnable = 0;      // due, waiting, and not blocked by a limit at its limit
  int64_t blocked = 0;       // due and waiting, but its concurrency key / rate limit is full
  int64_t running = 0;       // running jobs of the group's tags
  int64_t due_soon = 0;      // waiting jobs and schedule ticks due within lookahead
  int64_t live_workers = 0;  // workers of the group that heartbeat (informative)
  int64_t busy_slots = 0;    // of those workers
  int64_t total_slots = 0;   // of those workers
};

struct OccupancySample {
  Clock::time_point at;
  double occupancy = 0;  // busy / total slots, 0 when there are no slots
};

// What the controller remembers of a group between ticks.
struct History {
  int current = 0;  // the count last decided (and acted upon)
  // When `current` last changed; the epoch = never (no cooldown applies).
  Clock::time_point last_change{};
  // Since when nothing has been running, runnable or due soon; nullopt-like
  // Clock::time_point::max() while there is work.
  Clock::time_point idle_since = Clock::time_point::max();
  // Occupancy samples, oldest first, covering at most the long window.
  std::deque<OccupancySample> samples;
};

struct Decision {
  int desired = 0;
  // Why, for people: "scale from zero: 500 runnable jobs need 125 workers,
  // capped at max 4". Always set, also when holding.
  std::string reason;
  // Which rule decided: "scale-from-zero", "large-backlog", "backlog",
  // "cooldown", "idle", "low-occupancy", "clamp", "hold".
  std::string rule;
};

// Adds this tick's occupancy sample (dropping those older than the long
// window) and updates idle_since. Call once per tick, before decide().
void observe(History& history, const config::Autoscale& cfg, const Signals& signals, Clock::time_point now);

// The decision for this tick. `slots` is the group's slots per worker (>= 1).
Decision decide(const config::Autoscale& cfg, int slots, const Signals& signals, const History& history,
                Clock::time_point now);

// Records the count now in effect: a change sets last_change to now.
void record(History& history, int desired, Clock::time_point now);

// Average occupancy of the samples within `window` before now (0 when none).
double average_occupancy(const History& history, std::chrono::milliseconds window, Clock::time_point now);

}  // namespace quern::autoscale
