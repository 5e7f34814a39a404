// The request parsers of the API (host/server/api_requests.h), without a
// server or a database. Most of their behaviour is covered through the routes
// (server_test, routing_api_test) and by tests/fuzz/fuzz_api_requests; these
// are the cases the fuzz target found.
#include "host/server/api_requests.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace quern::server {
namespace {

using namespace std::chrono;

int64_t epoch_s(const StatusOr<queue::Clock::time_point>& t) {
  return duration_cast<seconds>(t->time_since_epoch()).count();
}

TEST(ParseIsoUtc, AcceptsTimesThatExist) {
  EXPECT_EQ(epoch_s(parse_iso_utc("2024-01-01T00:00:00Z", "t")), 1704067200);
  EXPECT_EQ(epoch_s(parse_iso_utc("2024-02-29T12:00:00+00:00", "t")), 1709208000);  // a leap day
  EXPECT_EQ(epoch_s(parse_iso_utc("2000-02-29T00:00:00Z", "t")), 951782400);        // 2000 is a leap year
  auto fraction = parse_iso_utc("2024-01-01T00:00:00.250Z", "t");
  ASSERT_TRUE(fraction) << fraction.message();
  EXPECT_EQ(duration_cast<milliseconds>(fraction->time_since_epoch()).count(), 1704067200250);
}

// timegm would move a day the month lacks into the next month, and month 00
// into the year before.
TEST(ParseIsoUtc, RefusesDaysTheMonthLacks) {
  for (const char* t :
       {"2026-02-31T08:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
        "2026-00-10T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-00T00:00:00Z"}) {
    auto r = parse_iso_utc(t, "created_after");
    ASSERT_FALSE(r) << t;
    EXPECT_EQ(r.code(), StatusCode::invalid_argument);
    EXPECT_EQ(r.message().rfind("created_after must be an ISO 8601 UTC time", 0), 0u) << r.message();
  }
}

// The clock (64-bit nanoseconds) ends in April 2262; converting a later time
// overflowed (undefined behaviour, in practice a time in the past).
TEST(ParseIsoUtc, TimesBeyondTheClockAreItsEnd) {
  for (const char* t : {"9999-12-31T23:59:59Z", "2262-04-12T00:00:00Z", "3000-01-01T00:00:00.5Z"}) {
    auto r = parse_iso_utc(t, "t");
    ASSERT_TRUE(r) << t << ": " << r.message();
    EXPECT_EQ(*r, queue::Clock::time_point::max()) << t;
  }
  auto last = parse_iso_utc("2262-04-11T00:00:00Z", "t");
  ASSERT_TRUE(last);
  EXPECT_LT(*last, queue::Clock::time_point::max());
  EXPECT_EQ(epoch_s(last), 9223286400);

  // So a far-away scheduled_for is refused as too far ahead, not run now.
  auto run = parse_run_request(Json{{"scheduled_for", "9999-01-01T00:00:00Z"}});
  ASSERT_FALSE(run);
  EXPECT_NE(run.message().find("scheduled_for is more than"), std::string::npos) << run.message();
}

}  // namespace
}  // namespace quern::server
