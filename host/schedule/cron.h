// Cron expressions and their fire times in an IANA time zone (docs/SCHEDULES.md).
//
// Syntax: 5 fields "minute hour day-of-month month day-of-week", or 6 with a
// leading "second" field. Each field is `*` or a comma list of `N`, `A-B`,
// `*/S`, `A-B/S` or `A/S` (A up to the field's maximum). Months and weekdays
// also take names (JAN..DEC, SUN..SAT, any case); weekday 0 and 7 are Sunday
// (a range may end on Sunday: FRI-SUN).
// Macros: @yearly @annually @monthly @weekly @daily @midnight @hourly.
// Day rule (Vixie cron): when both day-of-month and day-of-week are
// restricted (neither starts with `*`), a day matches if EITHER matches;
// otherwise both must.
//
// Fire times are computed on the zone's wall clock, with the tz database of
// the system (/usr/share/zoneinfo, read by date::tz built with USE_OS_TZDB):
// - a wall-clock time that does not exist (spring forward) fires at the first
//   instant after the gap (the transition), once;
// - a wall-clock time that happens twice (fall back) fires once, at its first
//   occurrence.
//
// Thread-safety: a CronExpr is immutable after parse() and may be used from
// any thread; time zones are immutable entries of the process-wide database.
#pragma once

#include <bitset>
#include <chrono>
#include <string>
#include <string_view>

#include "host/common/status.h"

namespace date {
class time_zone;
}

namespace quern::schedule {

using Clock = std::chrono::system_clock;

// An IANA zone ("Europe/Paris", "UTC") of the system's tz database. Unknown
// names (and a missing database) are errors that say so.
StatusOr<const date::time_zone*> find_time_zone(std::string_view name);

class CronExpr {
 public:
  // Errors name the field and the bad token:
  // "cron field 2 (hour): 25 is out of range 0-23".
  static StatusOr<CronExpr> parse(std::string_view text);

  // The first fire time strictly after t. An expression that never matches
  // (e.g. 30 February) is an error after searching 50 years ahead.
  StatusOr<Clock::time_point> next_after(Clock::time_point t, const date::time_zone& tz) const;
  // The last fire time strictly before t (same rules, searching 50 years back).
  StatusOr<Clock::time_point> last_before(Clock::time_point t, const date::time_zone& tz) const;

  const std::string& text() const { return text_; }

 private:
  CronExpr() = default;
  bool day_matches(unsigned day_of_month, unsigned weekday) const;

  std::string text_;
  std::bitset<60> seconds_, minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;  // 1..31
  std::bitset<13> months_;         // 1..12
  std::bitset<7> weekdays_;        // 0 = Sunday
  bool dom_star_ = false;          // day-of-month field starts with '*'
  bool dow_star_ = false;          // day-of-week field starts with '*'
};

}  // namespace quern::schedule
