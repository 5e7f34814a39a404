// Cron parsing and fire times: tables of expressions with the expected next
// (and previous) fire time, across DST changes in Paris and New York, leap
// years and the day-of-month / day-of-week OR rule; and the parse errors.
#include "host/schedule/cron.h"

#include <gtest/gtest.h>

#include <date/date.h>
#include <date/tz.h>

#include <cstdio>

#include "host/common/utf8.h"
#include "host/schedule/scheduler.h"

namespace quern::schedule {
namespace {

using namespace std::chrono_literals;

// "2024-03-31T01:00:00Z" (or "...:00.250Z") as a time point.
Clock::time_point utc(const std::string& iso) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, ms = 0;
  double s = 0;
  EXPECT_EQ(std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%lfZ", &y, &mo, &d, &h, &mi, &s), 6) << iso;
  ms = static_cast<int>(s * 1000 + 0.5);
  return Clock::time_point(date::sys_days(date::year(y) / mo / d) + std::chrono::hours(h) +
                           std::chrono::minutes(mi) + std::chrono::milliseconds(ms));
}

std::string iso(Clock::time_point t) { return date::format("%FT%TZ", date::floor<std::chrono::seconds>(t)); }

const date::time_zone& zone(const std::string& name) {
  auto z = find_time_zone(name);
  EXPECT_TRUE(z) << z.message();
  return **z;
}

struct Case {
  const char* expr;
  const char* tz;
  const char* after;
  const char* expected;
};

// Runs next_after or last_before over a table.
template <size_t N>
void check(const Case (&cases)[N],
           StatusOr<Clock::time_point> (CronExpr::*find)(Clock::time_point, const date::time_zone&) const,
           const char* relation) {
  for (const Case& c : cases) {
    auto e = CronExpr::parse(c.expr);
    ASSERT_TRUE(e) << c.expr << ": " << e.message();
    auto found = ((*e).*find)(utc(c.after), zone(c.tz));
    ASSERT_TRUE(found) << c.expr << ": " << found.message();
    EXPECT_EQ(iso(*found), c.expected)
        << "'" << c.expr << "' in " << c.tz << " " << relation << " " << c.after;
  }
}

TEST(Cron, NextFireTimes) {
  const Case cases[] = {
      {"* * * * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"},
      {"* * * * *", "UTC", "2024-01-01T00:00:30.250Z", "2024-01-01T00:01:00Z"},
      {"*/15 * * * *", "UTC", "2024-01-01T00:07:00Z", "2024-01-01T00:15:00Z"},
      {"0 */6 * * *", "UTC", "2024-01-01T06:00:00Z", "2024-01-01T12:00:00Z"},  // strictly after
      {"5,35 9-17 * * *", "UTC", "2024-01-01T17:35:00Z", "2024-01-02T09:05:00Z"},
      {"0 9 * * MON-FRI", "UTC", "2024-01-05T09:00:00Z", "2024-01-08T09:00:00Z"},  // Friday -> Monday
      {"0 0 * * 7", "UTC", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z"},        // 7 is Sunday
      {"0 0 * * 0", "UTC", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z"},
      {"0 0 * * fri-sun", "UTC", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z"},
      {"0 0 1 jan *", "UTC", "2024-06-01T00:00:00Z", "2025-01-01T00:00:00Z"},
      {"0 0 1 Jun-Aug/2 *", "UTC", "2024-06-01T00:00:00Z", "2024-08-01T00:00:00Z"},
      {"0 10/20 * * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T10:00:00Z"},  // A/S: from A to the end
      // Six fields: seconds first.
      {"* * * * * *", "UTC", "2024-01-01T12:00:00Z", "2024-01-01T12:00:01Z"},
      {"* * * * * *", "UTC", "2024-01-01T12:00:00.999Z", "2024-01-01T12:00:01Z"},
      {"*/5 * * * * *", "UTC", "2024-01-01T12:00:03Z", "2024-01-01T12:00:05Z"},
      {"30 1-10/2 * * * *", "UTC", "2024-01-01T12:09:30Z", "2024-01-01T13:01:30Z"},
      // Leap years: 29 February.
      {"0 12 29 2 *", "UTC", "2023-01-01T00:00:00Z", "2024-02-29T12:00:00Z"},
      {"0 12 29 2 *", "UTC", "2024-03-01T00:00:00Z", "2028-02-29T12:00:00Z"},
      // Both days restricted: either matches (the 13th OR a Friday).
      {"0 0 13 * FRI", "UTC", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z"},
      {"0 0 13 * FRI", "UTC", "2024-01-12T00:00:00Z", "2024-01-13T00:00:00Z"},
      // Only one restricted (a field starting with * counts as not): both must.
      {"0 0 13 * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-13T00:00:00Z"},
      {"0 0 */2 * MON", "UTC", "2024-01-01T00:00:00Z", "2024-01-15T00:00:00Z"},  // odd day AND Monday
      // Macros.
      {"@hourly", "UTC", "2024-01-01T10:30:00Z", "2024-01-01T11:00:00Z"},
      {"@daily", "UTC", "2024-01-01T10:30:00Z", "2024-01-02T00:00:00Z"},
      {"@midnight", "UTC", "2024-01-01T10:30:00Z", "2024-01-02T00:00:00Z"},
      {"@weekly", "UTC", "2024-01-01T10:30:00Z", "2024-01-07T00:00:00Z"},
      {"@monthly", "UTC", "2024-01-15T00:00:00Z", "2024-02-01T00:00:00Z"},
      {"@yearly", "UTC", "2024-01-15T00:00:00Z", "2025-01-01T00:00:00Z"},
      {"@ANNUALLY", "UTC", "2024-01-15T00:00:00Z", "2025-01-01T00:00:00Z"},
      // Time zones: 09:00 in Paris is 08:00 UTC in winter, 07:00 in summer.
      {"0 9 * * *", "Europe/Paris", "2024-01-10T00:00:00Z", "2024-01-10T08:00:00Z"},
      {"0 9 * * *", "Europe/Paris", "2024-07-10T00:00:00Z", "2024-07-10T07:00:00Z"},
      {"0 0 * * *", "America/New_York", "2024-01-10T00:00:00Z", "2024-01-10T05:00:00Z"},
      // Paris, 31 March 2024: 02:00 CET jumps to 03:00 CEST (01:00 UTC). A
      // time in the gap fires at the first instant after it, once.
      {"30 2 * * *", "Europe/Paris", "2024-03-30T12:00:00Z", "2024-03-31T01:00:00Z"},
      {"30 2 * * *", "Europe/Paris", "2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z"},
      {"*/15 * * * *", "Europe/Paris", "2024-03-31T00:45:00Z", "2024-03-31T01:00:00Z"},
      {"*/15 * * * *", "Europe/Paris", "2024-03-31T01:00:00Z", "2024-03-31T01:15:00Z"},
      // Paris, 27 October 2024: 03:00 CEST falls back to 02:00 CET (01:00
      // UTC). 02:30 happens twice; it fires at the first only.
      {"30 2 * * *", "Europe/Paris", "2024-10-26T12:00:00Z", "2024-10-27T00:30:00Z"},
      {"30 2 * * *", "Europe/Paris", "2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z"},
      // New York, 10 March 2024: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
      {"30 2 * * *", "America/New_York", "2024-03-09T12:00:00Z", "2024-03-10T07:00:00Z"},
      {"0 3 * * *", "America/New_York", "2024-03-09T12:00:00Z", "2024-03-10T07:00:00Z"},
      // New York, 3 November 2024: 02:00 EDT falls back to 01:00 EST (06:00 UTC).
      {"30 1 * * *", "America/New_York", "2024-11-03T00:00:00Z", "2024-11-03T05:30:00Z"},
      {"30 1 * * *", "America/New_York", "2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"},
      {"*/30 * * * *", "America/New_York", "2024-11-03T05:30:00Z", "2024-11-03T07:00:00Z"},
      {"*/30 * * * *", "America/New_York", "2024-11-03T06:10:00Z", "2024-11-03T07:00:00Z"},
  };
  check(cases, &CronExpr::next_after, "after");
}

TEST(Cron, LastFireTimes) {
  const Case cases[] = {
      // {expr, tz, before, expected}
      {"0 0 1 1 *", "UTC", "2024-06-01T00:00:00Z", "2024-01-01T00:00:00Z"},
      {"0 0 1 1 *", "UTC", "2024-01-01T00:00:00Z", "2023-01-01T00:00:00Z"},  // strictly before
      {"* * * * * *", "UTC", "2024-01-01T00:00:00.500Z", "2024-01-01T00:00:00Z"},
      {"0 0 29 2 *", "UTC", "2027-01-01T00:00:00Z", "2024-02-29T00:00:00Z"},
      {"0 0 13 * FRI", "UTC", "2024-01-13T00:00:00Z", "2024-01-12T00:00:00Z"},
      {"30 2 * * *", "Europe/Paris", "2024-03-31T12:00:00Z", "2024-03-31T01:00:00Z"},  // in the gap
      // New York fall back: at 06:10 UTC (01:10 EST, the second 01:10) the
      // last fire was 01:30 EDT (05:30 UTC): the repeated hour fires once.
      {"*/30 * * * *", "America/New_York", "2024-11-03T06:10:00Z", "2024-11-03T05:30:00Z"},
      {"*/30 * * * *", "America/New_York", "2024-11-03T07:00:00Z", "2024-11-03T05:30:00Z"},
      {"*/30 * * * *", "America/New_York", "2024-11-03T07:00:01Z", "2024-11-03T07:00:00Z"},
  };
  check(cases, &CronExpr::last_before, "before");
}

// Every tick of a day with a DST change, walked with next_after: each
// wall-clock time fires exactly once, none twice.
TEST(Cron, WalkingADstDayFiresEachWallTimeOnce) {
  auto e = CronExpr::parse("*/10 * * * *");
  ASSERT_TRUE(e);
  const auto& ny = zone("America/New_York");
  // Fall back: 25 hours, 144 ten-minute wall times, the repeated hour's 6 once.
  std::vector<Clock::time_point> fires;
  for (auto t = utc("2024-11-03T04:00:00Z") - 1s; t < utc("2024-11-04T05:00:00Z");) {
    t = *e->next_after(t, ny);
    if (t < utc("2024-11-04T05:00:00Z")) fires.push_back(t);
  }
  EXPECT_EQ(fires.size(), 144u);
  EXPECT_TRUE(std::adjacent_find(fires.begin(), fires.end()) == fires.end());
  // Spring forward: 23 hours; the 6 wall times of the gap all land on 03:00 EDT, once.
  fires.clear();
  for (auto t = utc("2024-03-10T05:00:00Z") - 1s; t < utc("2024-03-11T04:00:00Z");) {
    t = *e->next_after(t, ny);
    if (t < utc("2024-03-11T04:00:00Z")) fires.push_back(t);
  }
  EXPECT_EQ(fires.size(), 23u * 6);
}

TEST(Cron, NeverMatchingExpressionIsAnError) {
  auto e = CronExpr::parse("0 0 30 2 *");
  ASSERT_TRUE(e);
  auto next = e->next_after(utc("2024-01-01T00:00:00Z"), zone("UTC"));
  ASSERT_FALSE(next);
  EXPECT_NE(next.message().find("never fires"), std::string::npos) << next.message();
}

TEST(Cron, ParseErrorsNameTheFieldAndToken) {
  const std::pair<const char*, const char*> cases[] = {
      {"60 * * * *", "cron field 1 (minute): 60 is out of range 0-59"},
      {"0 25 * * *", "cron field 2 (hour): 25 is out of range 0-23"},
      {"0 0 0 * *", "cron field 3 (day-of-month): 0 is out of range 1-31"},
      {"0 0 * 13 *", "cron field 4 (month): 13 is out of range 1-12"},
      {"0 0 * * 8", "cron field 5 (day-of-week): 8 is out of range 0-7"},
      {"61 * * * * *", "cron field 1 (second): 61 is out of range 0-59"},
      {"0 0 99 * * *", "cron field 3 (hour): 99 is out of range 0-23"},
      {"0 0 * FOO *", "cron field 4 (month): 'FOO' is not a number or a month name (JAN..DEC)"},
      {"0 0 * * MON-FUN", "cron field 5 (day-of-week): 'FUN' is not a number or a day name (SUN..SAT)"},
      {"0 x * * *", "cron field 2 (hour): 'x' is not a number"},
      {"*/0 * * * *", "cron field 1 (minute): */0: the step must be at least 1"},
      {"*/x * * * *", "cron field 1 (minute): */x: the step must be a number"},
      {"10-2 * * * *", "cron field 1 (minute): 10-2: the range's start is after its end"},
      {"1,,2 * * * *", "cron field 1 (minute): empty list item (two commas in a row, or one at an end)"},
      {"", "cron expression is empty"},
      {"* * * *",
       "cron expression '* * * *' has 4 fields; expected 5 (minute hour day-of-month month day-of-week) or 6 "
       "(second first)"},
      {"@every5m",
       "cron macro '@every5m' is unknown (known: @yearly @annually @monthly @weekly @daily @midnight "
       "@hourly)"},
  };
  for (const auto& [expr, message] : cases) {
    auto e = CronExpr::parse(expr);
    ASSERT_FALSE(e) << expr;
    EXPECT_EQ(e.message(), message) << expr;
  }
}

TEST(Cron, TimeZonesComeFromTheSystemDatabase) {
  EXPECT_TRUE(find_time_zone("Europe/Paris"));
  EXPECT_TRUE(find_time_zone("UTC"));
  auto bad = find_time_zone("Mars/Olympus_Mons");
  ASSERT_FALSE(bad);
  EXPECT_EQ(
      bad.message(),
      "unknown time zone 'Mars/Olympus_Mons' (expected an IANA name like Europe/Paris, America/New_York "
      "or UTC)");
  EXPECT_FALSE(find_time_zone(""));
  EXPECT_FALSE(find_time_zone("../../etc/passwd"));
  // The name is quoted up to 100 bytes, never half a character (found by
  // tests/fuzz/fuzz_api_requests).
  auto cut = find_time_zone(std::string(99, 'A') + "\xC3\xA9");
  ASSERT_FALSE(cut);
  EXPECT_TRUE(text::is_storable(cut.message())) << cut.message();
}

// Catch-up planning (no database): which ticks a due schedule fires.
TEST(Cron, PlanFiresLateTicksAndFollowsCatchUpForMissedOnes) {
  SchedulerOptions o;
  o.late_grace = 10s;
  const auto& tz = zone("UTC");
  auto every_second = *CronExpr::parse("* * * * * *");
  auto plan = plan_fires(every_second, tz, CatchUp::skip, utc("2024-01-01T12:00:00Z"),
                         utc("2024-01-01T12:00:03.500Z"), o);
  ASSERT_TRUE(plan) << plan.message();
  ASSERT_EQ(plan->ticks.size(), 4u);  // late, not missed: 12:00:00 .. 12:00:03
  EXPECT_EQ(iso(plan->ticks.back()), "2024-01-01T12:00:03Z");
  EXPECT_EQ(iso(plan->next), "2024-01-01T12:00:04Z");

  // An hour of downtime for a minutely schedule.
  auto minutely = *CronExpr::parse("* * * * *");
  const auto due = utc("2024-01-01T11:00:00Z"), now = utc("2024-01-01T12:00:30Z");
  plan = plan_fires(minutely, tz, CatchUp::skip, due, now, o);
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->ticks.empty());
  EXPECT_EQ(iso(plan->next), "2024-01-01T12:01:00Z");
  plan = plan_fires(minutely, tz, CatchUp::latest, due, now, o);
  ASSERT_EQ(plan->ticks.size(), 1u);
  EXPECT_EQ(iso(plan->ticks[0]), "2024-01-01T12:00:00Z");
  EXPECT_EQ(iso(plan->next), "2024-01-01T12:01:00Z");
  plan = plan_fires(minutely, tz, CatchUp::all, due, now, o);
  ASSERT_EQ(plan->ticks.size(), 61u);  // 11:00 .. 12:00
  EXPECT_EQ(iso(plan->ticks.front()), "2024-01-01T11:00:00Z");
  EXPECT_EQ(iso(plan->ticks.back()), "2024-01-01T12:00:00Z");
  o.max_catch_up = 10;
  plan = plan_fires(minutely, tz, CatchUp::all, due, now, o);
  ASSERT_EQ(plan->ticks.size(), 10u);  // the newest 10
  EXPECT_EQ(iso(plan->ticks.front()), "2024-01-01T11:51:00Z");
  EXPECT_EQ(iso(plan->next), "2024-01-01T12:01:00Z");
}

}  // namespace
}  // namespace quern::schedule
