// Tests for host/autoscale/decision.h: synthetic histories replayed tick by
// tick (observe, decide, record, as the controller does), compared with the
// counts and rules expected at each tick.
#include "host/autoscale/decision.h"

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace quern::autoscale {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Not the epoch: a change recorded at the epoch would read as "never changed".
const Clock::time_point kStart = Clock::from_time_t(1'700'000'000);

constexpr int64_t kHuge = 4'000'000'000'000'000'000;  // 4e18, near int64's max

struct Tick {
  int at_s = 0;  // seconds after kStart
  Signals signals;
};

struct Replayed {
  std::vector<int> desired;
  std::vector<std::string> rules;
  std::vector<std::string> reasons;
  std::vector<int> change_times_s;  // when the count changed
  History history;

  // Printed with a failed expectation: what each tick decided and why.
  std::string trace() const {
    std::ostringstream out;
    for (size_t i = 0; i < desired.size(); ++i)
      out << "  tick " << i << ": " << desired[i] << " [" << rules[i] << "] " << reasons[i] << "\n";
    return out.str();
  }
};

// Replays `ticks` as the controller would, starting from `history`.
Replayed replay(const config::Autoscale& cfg, int slots, const std::vector<Tick>& ticks,
                History history = {}) {
  Replayed out;
  for (const Tick& tick : ticks) {
    const Clock::time_point now = kStart + seconds(tick.at_s);
    observe(history, cfg, tick.signals, now);
    Decision d = decide(cfg, slots, tick.signals, history, now);
    EXPECT_FALSE(d.reason.empty()) << "tick at " << tick.at_s << "s";
    if (d.desired != history.current) out.change_times_s.push_back(tick.at_s);
    record(history, d.desired, now);
    out.desired.push_back(d.desired);
    out.rules.push_back(d.rule);
    out.reasons.push_back(d.reason);
  }
  out.history = history;
  return out;
}

config::Autoscale config_with(int min, int max) {
  config::Autoscale cfg;
  cfg.integration = "dry-run";
  cfg.min = min;
  cfg.max = max;
  return cfg;
}

History history_at(int current) {
  History h;
  h.current = current;
  return h;
}

// A single decision after one observed tick at kStart.
Decision decide_once(const config::Autoscale& cfg, int slots, const Signals& signals, History history) {
  observe(history, cfg, signals, kStart);
  return decide(cfg, slots, signals, history, kStart);
}

TEST(Decision, ABurstScalesStraightToDemandCappedAtMaxThenStepsBackDown) {
  config::Autoscale cfg = config_with(0, 4);
  cfg.idle_before_zero = milliseconds(60'000);
  const Replayed r = replay(cfg, 4,
                            {
                                {0, {.runnable = 500}},
                                {10, {.runnable = 484, .running = 16, .busy_slots = 16, .total_slots = 16}},
                                {20, {.runnable = 100, .running = 16, .busy_slots = 16, .total_slots = 16}},
                                {30, {.running = 10, .busy_slots = 10, .total_slots = 16}},
                                {40, {.total_slots = 16}},  // drained: idle from here
                                {50, {.total_slots = 16}},
                                {60, {.total_slots = 12}},
                                {70, {.total_slots = 12}},
                                {80, {.total_slots = 12}},
                                {90, {.total_slots = 8}},
                                {100, {.total_slots = 8}},
                            });
  EXPECT_EQ(r.desired, (std::vector<int>{4, 4, 4, 4, 4, 3, 3, 3, 2, 2, 0})) << r.trace();
  EXPECT_EQ(r.rules,
            (std::vector<std::string>{"scale-from-zero", "hold", "hold", "hold", "hold", "low-occupancy",
                                      "cooldown", "cooldown", "low-occupancy", "cooldown", "idle"}))
      << r.trace();
  EXPECT_EQ(r.reasons[0], "scale from zero: 500 runnable jobs need 125 workers of 4 slots (max 4)");
  EXPECT_EQ(r.reasons[1], "hold: 4 workers for 16 running, 484 runnable (at max 4)");
  EXPECT_EQ(r.reasons[5], "occupancy 20%/43% (30s/5m) below 50%: one worker fewer");
  EXPECT_EQ(r.reasons[6], "cooldown: 20s left before another step (occupancy 0%/37% (30s/5m) below 50%)");
  EXPECT_EQ(r.reasons[10], "idle for 60s: down to min 0");
}

TEST(Decision, ATrickleThatDrainsBetweenTicksKeepsItsOneWorker) {
  // A job now and then, each done before the next tick: never a scale-out, and the last worker is not
  // taken by low occupancy (only by the idle rule, which the running jobs keep resetting).
  const config::Autoscale cfg = config_with(0, 4);
  std::vector<Tick> ticks;
  for (int i = 0; i < 300; ++i) {
    Signals s{.total_slots = 4};
    if (i % 5 == 0) s.running = 1, s.busy_slots = 1;
    ticks.push_back({i * 2, s});
  }
  const Replayed r = replay(cfg, 4, ticks, history_at(1));
  EXPECT_EQ(r.desired, std::vector<int>(ticks.size(), 1)) << r.trace();
  EXPECT_TRUE(r.change_times_s.empty());
}

TEST(Decision, ATrickleUnseenByTheTicksNeverGoesBelowMinOne) {
  // Every tick sees nothing (the jobs ran in between), for longer than idle_before_zero.
  const config::Autoscale cfg = config_with(1, 4);
  std::vector<Tick> ticks;
  for (int i = 0; i < 300; ++i) ticks.push_back({i * 2, {.total_slots = 4}});
  const Replayed r = replay(cfg, 4, ticks, history_at(1));
  EXPECT_EQ(r.desired, std::vector<int>(ticks.size(), 1)) << r.trace();
  EXPECT_EQ(r.rules.back(), "hold");
}

TEST(Decision, ABacklogBlockedByAKeyAtItsLimitDoesNotScaleOut) {
  const config::Autoscale cfg = config_with(0, 10);
  std::vector<Tick> ticks;
  for (int i = 0; i < 20; ++i)
    ticks.push_back({i * 10, {.blocked = 500, .running = 1, .busy_slots = 1, .total_slots = 4}});
  const Replayed r = replay(cfg, 4, ticks, history_at(1));
  EXPECT_EQ(r.desired, std::vector<int>(ticks.size(), 1)) << r.trace();
  EXPECT_EQ(r.reasons[0], "hold: 1 worker for 1 running, 0 runnable, 500 blocked at a limit");
}

TEST(Decision, OnlyBlockedJobsDoNotScaleFromZero) {
  const config::Autoscale cfg = config_with(0, 10);
  const Replayed r = replay(cfg, 4, {{0, {.blocked = 500}}, {10, {.blocked = 500}}, {20, {.blocked = 500}}});
  EXPECT_EQ(r.desired, (std::vector<int>{0, 0, 0})) << r.trace();
  EXPECT_EQ(r.rules, (std::vector<std::string>{"hold", "hold", "hold"}));
}

TEST(Decision, RunningJobsAreNeverInterruptedByAScaleIn) {
  config::Autoscale cfg = config_with(0, 10);
  cfg.idle_before_zero = milliseconds(0);  // would fire at once if it ignored the running jobs
  std::vector<Tick> ticks;
  // 9 running jobs of 4 slots need 3 workers, whatever the (synthetic, low) occupancy says.
  for (int i = 0; i < 12; ++i) ticks.push_back({i * 15, {.running = 9, .busy_slots = 9, .total_slots = 40}});
  const Replayed r = replay(cfg, 4, ticks, history_at(5));
  EXPECT_EQ(r.desired, (std::vector<int>{4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3})) << r.trace();
  for (const std::string& rule : r.rules) EXPECT_NE(rule, "idle");
  EXPECT_EQ(r.reasons.back(), "hold: 3 workers for 9 running, 0 runnable");
}

TEST(Decision, OneRunningJobKeepsOneWorkerWhateverTheOccupancy) {
  config::Autoscale cfg = config_with(0, 10);
  cfg.idle_before_zero = milliseconds(0);
  std::vector<Tick> ticks;
  for (int i = 0; i < 10; ++i) ticks.push_back({i * 30, {.running = 1, .busy_slots = 1, .total_slots = 100}});
  const Replayed r = replay(cfg, 4, ticks, history_at(3));
  EXPECT_EQ(r.desired, (std::vector<int>{2, 1, 1, 1, 1, 1, 1, 1, 1, 1})) << r.trace();
}

TEST(Decision, FlappingSignalsChangeTheCountAtMostOncePerCooldown) {
  // Every other tick says "scale out" (a backlog), the ticks between say "scale in" (nothing waits, and a
  // synthetic low occupancy).
  config::Autoscale cfg = config_with(0, 8);
  cfg.cooldown = milliseconds(30'000);
  std::vector<Tick> ticks;
  for (int i = 0; i < 60; ++i) {
    if (i % 2 == 0) {
      ticks.push_back({i * 5, {.runnable = 10, .running = 4, .busy_slots = 1, .total_slots = 8}});
    } else {
      ticks.push_back({i * 5, {.running = 4, .busy_slots = 1, .total_slots = 8}});
    }
  }
  const Replayed r = replay(cfg, 4, ticks, history_at(2));
  ASSERT_GE(r.change_times_s.size(), 2u) << r.trace();
  for (size_t i = 1; i < r.change_times_s.size(); ++i)
    EXPECT_GE(r.change_times_s[i] - r.change_times_s[i - 1], 30) << r.trace();
  EXPECT_EQ(r.desired[0], 4) << r.trace();  // never changed before: no cooldown, straight to demand 14 / 4
  EXPECT_EQ(r.rules[1], "cooldown") << r.trace();
}

TEST(Decision, ALargeBacklogIgnoresTheCooldownAndTheStep) {
  config::Autoscale cfg = config_with(0, 10);
  cfg.full_scale_backlog = 16;
  cfg.scale_out_step = 1;
  const Replayed r = replay(cfg, 4,
                            {
                                {0, {.runnable = 6, .running = 4, .busy_slots = 4, .total_slots = 4}},
                                {5, {.runnable = 6, .running = 4, .busy_slots = 4, .total_slots = 8}},
                                {10, {.runnable = 15, .running = 8, .busy_slots = 8, .total_slots = 8}},
                                {15, {.runnable = 40, .running = 8, .busy_slots = 8, .total_slots = 8}},
                            },
                            history_at(1));
  EXPECT_EQ(r.desired, (std::vector<int>{2, 2, 2, 10})) << r.trace();
  EXPECT_EQ(r.rules, (std::vector<std::string>{"backlog", "cooldown", "cooldown", "large-backlog"}))
      << r.trace();
  EXPECT_EQ(r.reasons[1], "cooldown: 25s left before another step (2 runnable jobs beyond the free slots)");
  EXPECT_EQ(r.reasons[3],
            "large backlog: 40 runnable jobs (>= 16), cooldown ignored: 2 -> 10 workers (max 10)");
}

TEST(Decision, TheScaleOutStepLimitsEachStep) {
  config::Autoscale cfg = config_with(0, 10);
  cfg.scale_out_step = 2;
  std::vector<Tick> ticks;
  // 34 jobs of 4 slots: demand 9; 30 runnable stays below the large backlog (10 * 4 = 40).
  for (int i = 0; i < 6; ++i) ticks.push_back({i * 30, {.runnable = 30, .running = 4}});
  const Replayed r = replay(cfg, 4, ticks, history_at(1));
  EXPECT_EQ(r.desired, (std::vector<int>{3, 5, 7, 9, 9, 9})) << r.trace();
  EXPECT_EQ(r.rules, (std::vector<std::string>{"backlog", "backlog", "backlog", "backlog", "hold", "hold"}));
  EXPECT_EQ(r.reasons[0], "backlog: 30 runnable jobs beyond the free slots: 1 -> 3 workers (step 2)");
}

TEST(Decision, ScaleOutWaitsForTheScaleOutBacklog) {
  config::Autoscale cfg = config_with(0, 10);
  cfg.scale_out_backlog = 5;
  const Replayed r = replay(cfg, 4,
                            {{0, {.runnable = 4, .running = 4, .busy_slots = 4, .total_slots = 4}},
                             {10, {.runnable = 5, .running = 4, .busy_slots = 4, .total_slots = 4}}},
                            history_at(1));
  EXPECT_EQ(r.desired, (std::vector<int>{1, 3})) << r.trace();
  EXPECT_EQ(r.reasons[0], "hold: 1 worker for 4 running, 4 runnable (scale-out backlog 5)");
}

TEST(Decision, DemandAboveMaxIsCappedAtMax) {
  config::Autoscale cfg = config_with(0, 3);
  cfg.full_scale_backlog = 1000;  // 30 runnable jobs: a backlog, not a large one
  const Decision d = decide_once(cfg, 4, {.runnable = 30, .running = 4}, history_at(1));
  EXPECT_EQ(d.desired, 3);
  EXPECT_EQ(d.rule, "backlog");
  EXPECT_EQ(d.reason, "backlog: 30 runnable jobs beyond the free slots: 1 -> 3 workers (max 3)");
}

TEST(Decision, MinWorkersStayUpWithNoWork) {
  config::Autoscale cfg = config_with(2, 5);
  cfg.idle_before_zero = milliseconds(60'000);
  std::vector<Tick> ticks;
  for (int i = 0; i < 12; ++i) ticks.push_back({i * 30, {.total_slots = 8}});
  const Replayed fresh = replay(cfg, 4, ticks);  // a group that starts with none
  EXPECT_EQ(fresh.desired, std::vector<int>(ticks.size(), 2)) << fresh.trace();
  EXPECT_EQ(fresh.rules[0], "clamp");
  EXPECT_EQ(fresh.reasons[0], "clamp: 0 workers below min 2: up to 2");
  EXPECT_EQ(fresh.rules.back(), "hold");

  ticks.resize(
      4);  // from 5 with no work: low occupancy steps, then the idle rule, down to min and no further
  const Replayed busy = replay(cfg, 4, ticks, history_at(5));
  EXPECT_EQ(busy.desired, (std::vector<int>{4, 3, 2, 2})) << busy.trace();
  EXPECT_EQ(busy.rules, (std::vector<std::string>{"low-occupancy", "low-occupancy", "idle", "hold"}));
}

TEST(Decision, ALoweredMaxKeepsTheWorkersThatRunningJobsNeed) {
  // max lowered from 8 to 2 while 16 jobs of 4 slots run on 6 workers: down to the 4 they need at once, and
  // to max as they finish.
  const config::Autoscale cfg = config_with(0, 2);
  const Replayed r = replay(cfg, 4,
                            {
                                {0, {.runnable = 20, .running = 16, .busy_slots = 16, .total_slots = 24}},
                                {10, {.runnable = 20, .running = 16, .busy_slots = 16, .total_slots = 16}},
                                {20, {.running = 8, .busy_slots = 8, .total_slots = 16}},
                                {30, {.running = 8, .busy_slots = 8, .total_slots = 8}},
                            },
                            history_at(6));
  EXPECT_EQ(r.desired, (std::vector<int>{4, 4, 2, 2})) << r.trace();
  EXPECT_EQ(r.rules, (std::vector<std::string>{"clamp", "hold", "clamp", "hold"})) << r.trace();
  EXPECT_EQ(r.reasons[0], "clamp: 6 workers above max 2: 4 kept for 16 running jobs");
  EXPECT_EQ(r.reasons[1],
            "hold: 4 workers for 16 running, 20 runnable (above max 2 until running jobs finish)");
}

TEST(Decision, DueSoonJobsAloneScaleFromZero) {
  const config::Autoscale cfg = config_with(0, 4);
  const Decision d = decide_once(cfg, 4, {.due_soon = 3}, history_at(0));
  EXPECT_EQ(d.desired, 1);
  EXPECT_EQ(d.rule, "scale-from-zero");
  EXPECT_EQ(d.reason, "scale from zero: 3 due-soon jobs need 1 worker of 4 slots");
}

TEST(Decision, BackToZeroOnlyAfterIdleBeforeZero) {
  config::Autoscale cfg = config_with(0, 4);
  cfg.idle_before_zero = milliseconds(60'000);
  const Replayed r = replay(cfg, 4,
                            {
                                {0, {.runnable = 2}},
                                {10, {.running = 2, .busy_slots = 2, .total_slots = 4}},
                                {20, {.total_slots = 4}},  // idle from here
                                {30, {.total_slots = 4}},
                                {40, {.total_slots = 4}},
                                {50, {.total_slots = 4}},
                                {60, {.total_slots = 4}},
                                {70, {.total_slots = 4}},
                                {80, {.total_slots = 4}},  // idle for 60s
                                {90, {}},
                            });
  EXPECT_EQ(r.desired, (std::vector<int>{1, 1, 1, 1, 1, 1, 1, 1, 0, 0})) << r.trace();
  EXPECT_EQ(r.rules[8], "idle");
  EXPECT_EQ(r.rules[9], "hold");
}

TEST(Decision, HugeCountsDoNotOverflow) {
  const config::Autoscale cfg = config_with(0, 10);
  const Signals huge{.runnable = kHuge, .blocked = kHuge, .due_soon = kHuge};
  EXPECT_EQ(decide_once(cfg, 1024, huge, history_at(0)).desired, 10);
  const Decision large = decide_once(cfg, 1024, huge, history_at(3));
  EXPECT_EQ(large.desired, 10);
  EXPECT_EQ(large.rule, "large-backlog");

  constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();
  const Signals all_max{
      .runnable = kMax64, .blocked = kMax64, .due_soon = kMax64, .busy_slots = kMax64, .total_slots = kMax64};
  EXPECT_EQ(decide_once(cfg, 1, all_max, history_at(0)).desired, 10);
  // Running jobs are never interrupted: a floor beyond int saturates rather than wrapping around.
  const Signals running{.runnable = kHuge, .running = kHuge};
  EXPECT_EQ(decide_once(cfg, 1024, running, history_at(5)).desired, std::numeric_limits<int>::max());
}

TEST(Decision, AverageOccupancyCoversTheWindowEndingNow) {
  History h;
  h.samples = {{kStart - seconds(40), 1.0},
               {kStart - seconds(30), 0.5},
               {kStart - seconds(10), 0.25},
               {kStart, 0.0},
               {kStart + seconds(5), 1.0}};  // after now (a clock stepped back): not counted
  EXPECT_DOUBLE_EQ(average_occupancy(h, milliseconds(30'000), kStart), 0.125);  // (-30s, now]
  EXPECT_DOUBLE_EQ(average_occupancy(h, milliseconds(31'000), kStart), 0.25);
  EXPECT_DOUBLE_EQ(average_occupancy(h, milliseconds(60'000), kStart), 0.4375);
  EXPECT_DOUBLE_EQ(average_occupancy(h, milliseconds(0), kStart), 0.0);
  EXPECT_DOUBLE_EQ(average_occupancy(History{}, milliseconds(60'000), kStart), 0.0);
}

TEST(Decision, ObserveKeepsTheLongWindowAndTracksIdleness) {
  config::Autoscale cfg = config_with(0, 4);
  cfg.occupancy_long = milliseconds(60'000);
  History h;
  observe(h, cfg, {.running = 1, .busy_slots = 1, .total_slots = 4}, kStart);
  EXPECT_EQ(h.idle_since, Clock::time_point::max());
  observe(h, cfg, {.total_slots = 4}, kStart + seconds(30));
  EXPECT_EQ(h.idle_since, kStart + seconds(30));
  observe(h, cfg, {}, kStart + seconds(60));  // no slots: occupancy 0; still idle since 30s
  EXPECT_EQ(h.idle_since, kStart + seconds(30));
  ASSERT_EQ(h.samples.size(), 3u);  // the sample at exactly now - long is not older than the window
  EXPECT_DOUBLE_EQ(h.samples[0].occupancy, 0.25);
  EXPECT_DOUBLE_EQ(h.samples[2].occupancy, 0.0);

  observe(h, cfg, {.due_soon = 1, .total_slots = 4}, kStart + seconds(61));
  EXPECT_EQ(h.idle_since, Clock::time_point::max());
  ASSERT_EQ(h.samples.size(), 3u);
  EXPECT_EQ(h.samples.front().at, kStart + seconds(30));
  EXPECT_EQ(h.samples.back().at, kStart + seconds(61));
}

TEST(Decision, RecordMovesTheCooldownOnlyOnAChange) {
  History h = history_at(2);
  record(h, 2, kStart);
  EXPECT_EQ(h.last_change, Clock::time_point{});
  record(h, 3, kStart + seconds(5));
  EXPECT_EQ(h.current, 3);
  EXPECT_EQ(h.last_change, kStart + seconds(5));
}

}  // namespace
}  // namespace quern::autoscale
