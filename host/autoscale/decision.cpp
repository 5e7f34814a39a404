// Implementation of decision.h: the rules of its header comment, in that
// order, then the clamp. Counts come from the queue and may be anything an
// int64 holds, so every sum saturates and every result is clamped to int.
#include "host/autoscale/decision.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace quern::autoscale {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();

// a + b for a, b >= 0, saturating instead of overflowing.
int64_t add(int64_t a, int64_t b) { return a > kMax64 - b ? kMax64 : a + b; }

// ceil(a / b) for a >= 0, b >= 1, without the (a + b - 1) that overflows near kMax64.
int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

int to_int(int64_t n) { return static_cast<int>(std::clamp<int64_t>(n, 0, std::numeric_limits<int>::max())); }

std::string num(int64_t n) { return std::to_string(n); }

std::string workers(int64_t n) { return num(n) + (n == 1 ? " worker" : " workers"); }

std::string percent(double fraction) { return num(static_cast<int64_t>(std::floor(fraction * 100))) + "%"; }

// "250ms", "12s", "5m", "1h": config durations as an operator writes them.
std::string duration_text(milliseconds d) {
  const int64_t ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return num(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return num(ms / 60'000) + "m";
  if (ms % 1000 == 0) return num(ms / 1000) + "s";
  return num(ms) + "ms";
}

// Times that passed or are left ("idle for 90s"): whole seconds, comparable from one tick to the next.
std::string seconds_text(std::chrono::seconds d) { return num(d.count()) + "s"; }

// "9 running, 500 runnable jobs": what a scale from zero starts for.
std::string jobs_text(const Signals& s) {
  std::string text;
  auto part = [&](int64_t n, const char* what) {
    if (n == 0) return;
    text += (text.empty() ? "" : ", ") + num(n) + " " + what;
  };
  part(s.running, "running");
  part(s.runnable, "runnable");
  part(s.due_soon, "due-soon");
  return text + " jobs";
}

}  // namespace

void observe(History& history, const config::Autoscale& cfg, const Signals& signals, Clock::time_point now) {
  const double occupancy = signals.total_slots > 0 ? static_cast<double>(signals.busy_slots) /
                                                         static_cast<double>(signals.total_slots)
                                                   : 0;
  history.samples.push_back({now, occupancy});
  const Clock::time_point oldest = now - cfg.occupancy_long;
  // erase_if rather than popping the front: a clock stepped back leaves the deque out of order.
  std::erase_if(history.samples, [&](const OccupancySample& s) { return s.at < oldest; });
  const bool work = signals.running > 0 || signals.runnable > 0 || signals.due_soon > 0;
  if (work) {
    history.idle_since = Clock::time_point::max();
  } else if (history.idle_since == Clock::time_point::max()) {
    history.idle_since = now;
  }
}

double average_occupancy(const History& history, milliseconds window, Clock::time_point now) {
  double sum = 0;
  int64_t count = 0;
  for (const OccupancySample& s : history.samples) {
    if (s.at <= now - window || s.at > now) continue;
    sum += s.occupancy;
    ++count;
  }
  return count == 0 ? 0 : sum / static_cast<double>(count);
}

void record(History& history, int desired, Clock::time_point now) {
  if (desired == history.current) return;
  history.current = desired;
  history.last_change = now;
}

Decision decide(const config::Autoscale& cfg, int slots, const Signals& signals, const History& history,
                Clock::time_point now) {
  Signals s = signals;  // negative counts would be a bug upstream; read them as none
  for (int64_t* n : {&s.runnable, &s.blocked, &s.running, &s.due_soon}) *n = std::max<int64_t>(*n, 0);
  const int64_t per_worker = std::max(slots, 1);
  const int current = std::max(history.current, 0);
  const int lo = std::max(cfg.min, 0);
  const int hi = std::max(cfg.max, lo);
  const int64_t waiting = add(s.runnable, s.due_soon);
  const int64_t work = add(s.running, waiting);
  const int demand = to_int(ceil_div(work, per_worker));
  const int floor = to_int(ceil_div(s.running, per_worker));
  // Jobs the current workers have no slot for (current * per_worker < 2^31 * 2^31 fits).
  const int64_t beyond = std::max<int64_t>(work - current * per_worker, 0);
  // Where any count ends up: inside [min, max], then raised to what the running jobs need.
  auto bounded = [&](int64_t n) { return std::max(to_int(std::clamp<int64_t>(n, lo, hi)), floor); };

  Clock::duration cooldown_left = Clock::duration::zero();
  if (history.last_change != Clock::time_point{}) cooldown_left = cfg.cooldown - (now - history.last_change);
  const bool cooled = cooldown_left <= Clock::duration::zero();
  const std::string cooldown_reason =
      "cooldown: " + seconds_text(std::chrono::ceil<std::chrono::seconds>(cooldown_left)) +
      " left before another step";

  std::string rule;
  std::string reason;
  int64_t proposal = current;

  // 1. Scale out. A step that the clamp would undo (already at max) is none: such a tick holds.
  if (demand > current && waiting >= cfg.scale_out_backlog) {
    const int64_t full = cfg.full_scale_backlog > 0 ? cfg.full_scale_backlog : hi * per_worker;
    const bool from_zero = current == 0;
    const bool large = s.runnable >= full;
    int64_t target = demand;
    if (!from_zero && !large && cfg.scale_out_step > 0)
      target = std::min<int64_t>(demand, int64_t{current} + cfg.scale_out_step);  // no step past the need
    const int reached = bounded(target);
    std::string capped;
    if (reached < target) capped = " (max " + num(hi) + ")";
    if (reached > target)
      capped = reached == floor ? " (" + num(s.running) + " running)" : " (min " + num(lo) + ")";
    const std::string behind = num(beyond) + (s.due_soon > 0 ? " runnable and due-soon" : " runnable") +
                               " jobs beyond the free slots";
    if (reached <= current) {
      // Falls through to hold.
    } else if (from_zero) {
      rule = "scale-from-zero";
      reason = "scale from zero: " + jobs_text(s) + " need " + workers(demand) + " of " + num(per_worker) +
               " slots" + capped;
      proposal = target;
    } else if (large) {
      rule = "large-backlog";
      reason = "large backlog: " + num(s.runnable) + " runnable jobs (>= " + num(full) +
               "), cooldown ignored: " + num(current) + " -> " + workers(reached) + capped;
      proposal = target;
    } else if (!cooled) {
      rule = "cooldown";
      reason = cooldown_reason + " (" + behind + ")";
    } else {
      rule = "backlog";
      reason = "backlog: " + behind + ": " + num(current) + " -> " + workers(reached) +
               (target < demand ? " (step " + num(cfg.scale_out_step) + ")" : "") + capped;
      proposal = target;
    }
  }

  // 2. Idle: at once, whatever the cooldown. A count below min is the clamp's.
  const bool idle_long_enough = history.idle_since != Clock::time_point::max() && now >= history.idle_since &&
                                now - history.idle_since >= cfg.idle_before_zero;
  if (rule.empty() && work == 0 && idle_long_enough && current > lo) {
    rule = "idle";
    reason = "idle for " + seconds_text(std::chrono::floor<std::chrono::seconds>(now - history.idle_since)) +
             ": down to min " + num(lo);
    proposal = lo;
  }

  // 3. Low occupancy, one step at a time. Never to zero: the last worker goes only by rule 2, after
  // idle_before_zero, so that a trickle of jobs that drains between ticks keeps its worker.
  if (rule.empty() && waiting == 0) {
    const double limit = cfg.scale_in_occupancy_pct / 100.0;
    const double short_avg = average_occupancy(history, cfg.occupancy_short, now);
    const double long_avg = average_occupancy(history, cfg.occupancy_long, now);
    const int64_t target = std::max<int64_t>(int64_t{current} - cfg.scale_in_step, 1);
    const int reached = bounded(target);
    const std::string occupancy = "occupancy " + percent(short_avg) + "/" + percent(long_avg) + " (" +
                                  duration_text(cfg.occupancy_short) + "/" +
                                  duration_text(cfg.occupancy_long) + ") below " +
                                  num(cfg.scale_in_occupancy_pct) + "%";
    if (short_avg < limit && long_avg < limit && reached < current) {
      if (!cooled) {
        rule = "cooldown";
        reason = cooldown_reason + " (" + occupancy + ")";
      } else {
        rule = "low-occupancy";
        const int fewer = current - reached;
        reason = occupancy + ": " + (fewer == 1 ? std::string("one worker") : workers(fewer)) + " fewer";
        proposal = target;
      }
    }
  }

  // 4. Hold, and the clamp: a count outside [min, max] (the config changed) or below the running jobs' need.
  const int desired = bounded(proposal);
  if (rule.empty() || rule == "cooldown" || (rule == "low-occupancy" && desired < proposal)) {
    if (desired != current) {
      rule = "clamp";
      if (desired > hi) {
        reason = "clamp: " + workers(current) + " above max " + num(hi) + ": " + num(desired) + " kept for " +
                 num(s.running) + " running jobs";
      } else if (current > hi) {
        reason = "clamp: " + workers(current) + " above max " + num(hi) + ": down to " + num(desired);
      } else if (current < lo && desired == lo) {
        reason = "clamp: " + workers(current) + " below min " + num(lo) + ": up to " + num(desired);
      } else {
        reason = "clamp: " + workers(current) + " for " + num(s.running) + " running jobs of " +
                 num(per_worker) + " slots: up to " + num(desired);
      }
    } else if (rule.empty()) {
      rule = "hold";
      reason = "hold: " + workers(current) + " for " + num(s.running) + " running, " + num(s.runnable) +
               " runnable";
      if (s.due_soon > 0) reason += ", " + num(s.due_soon) + " due soon";
      if (s.blocked > 0) reason += ", " + num(s.blocked) + " blocked at a limit";
      if (current > hi) {
        reason += " (above max " + num(hi) + " until running jobs finish)";
      } else if (demand > current && waiting > 0 && waiting < cfg.scale_out_backlog) {
        reason += " (scale-out backlog " + num(cfg.scale_out_backlog) + ")";
      } else if (demand > current) {
        reason += " (at max " + num(hi) + ")";
      }
    }
  }
  return Decision{desired, reason, rule};
}

}  // namespace quern::autoscale
