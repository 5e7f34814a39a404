// Fuzz target: cron expressions and their fire times (host/schedule/cron.h).
//
// Input: "<cron expression>\n<time zone>\n<seconds since 1970>", the last two
// lines optional (zone "UTC"; time 2024-01-01T00:00:00Z). The time is taken
// modulo 2200-01-01, with its last digits as milliseconds, so every input
// names a time the scheduler could meet.
//
// Properties: parse and the searches never crash and finish in bounded time
// (libFuzzer's -timeout catches a hang); errors are invalid_argument, in
// valid UTF-8 when the input is (an API client reads them), and an unknown
// zone's is storable text whatever its name;
// next_after(t) > t and last_before(t) < t, in UTC and in the input's zone;
// in UTC (no gaps or repeats), the fires around t agree with each other:
// last_before(next_after(t)) <= t, and next_after(that) is next_after(t)
// again; a parsed expression keeps its text.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <date/tz.h>

#include "fuzz_check.h"
#include "host/common/utf8.h"
#include "host/schedule/cron.h"

namespace {

using namespace quern;
using schedule::Clock;
using schedule::CronExpr;

std::string_view next_line(std::string_view& rest) {
  const size_t nl = rest.find('\n');
  const std::string_view line = rest.substr(0, nl);
  rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  return line;
}

Clock::time_point time_of(std::string_view digits) {
  using namespace std::chrono;
  constexpr int64_t kEnd = 7258118400LL * 1000;                       // 2200-01-01T00:00:00Z, in ms
  if (digits.empty()) return Clock::time_point(seconds(1704067200));  // 2024-01-01
  uint64_t ms = 0;
  for (char c : digits) ms = ms * 10 + static_cast<unsigned char>(c) % 10;
  return Clock::time_point(milliseconds(static_cast<int64_t>(ms % kEnd)));
}

void check_search(const CronExpr& e, Clock::time_point t, const date::time_zone& tz, bool exact) {
  auto next = e.next_after(t, tz);
  if (next) {
    FUZZ_CHECK(*next > t);
  } else {
    FUZZ_CHECK_MSG(next.code() == StatusCode::invalid_argument, next.message());
  }
  auto last = e.last_before(t, tz);
  if (last) {
    FUZZ_CHECK(*last < t);
  } else {
    FUZZ_CHECK_MSG(last.code() == StatusCode::invalid_argument, last.message());
  }
  if (!exact || !next) return;
  // No fire lies strictly between t and next: the one before next is at or
  // before t, and the one after it is next.
  auto before_next = e.last_before(*next, tz);
  if (!before_next) return;  // a fire more than 50 years back: nothing to compare
  FUZZ_CHECK(*before_next <= t);
  if (last) FUZZ_CHECK(*before_next == *last || *before_next == date::floor<std::chrono::seconds>(t));
  auto again = e.next_after(*before_next, tz);
  FUZZ_CHECK_MSG(again.is_ok(), again.message());
  FUZZ_CHECK(*again == *next);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  const std::string_view text = next_line(rest);
  const std::string_view zone_name = next_line(rest);
  const Clock::time_point t = time_of(next_line(rest));

  auto expr = CronExpr::parse(text);
  if (!expr) {
    FUZZ_CHECK_MSG(expr.code() == StatusCode::invalid_argument, expr.message());
    FUZZ_CHECK(!expr.message().empty());
    if (text::is_valid_utf8(text)) FUZZ_CHECK_MSG(text::is_valid_utf8(expr.message()), expr.message());
    return 0;
  }
  FUZZ_CHECK(expr->text() == text);

  auto utc = schedule::find_time_zone("UTC");
  FUZZ_CHECK_MSG(utc.is_ok(), utc.message());
  check_search(*expr, t, **utc, /*exact=*/true);

  if (!zone_name.empty()) {
    auto zone = schedule::find_time_zone(zone_name);
    if (zone) {
      check_search(*expr, t, **zone, /*exact=*/false);
    } else {
      FUZZ_CHECK_MSG(zone.code() == StatusCode::invalid_argument, zone.message());
      FUZZ_CHECK_MSG(text::is_storable(zone.message()), zone.message());
    }
  }
  return 0;
}
