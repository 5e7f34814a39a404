// CronExpr: parsing (fields, lists, ranges, steps, names, macros) and the
// wall-clock search for fire times. See cron.h for the rules.
#include "host/schedule/cron.h"

#include <date/tz.h>

#include <algorithm>
#include <cctype>
#include <vector>

#include "host/common/utf8.h"

namespace quern::schedule {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr int kSearchYears = 50;

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct FieldSpec {
  const char* name;
  int min, max;
  const char* const* names = nullptr;  // names[i] stands for name_base + i
  int name_count = 0;
  int name_base = 0;
  const char* names_hint = "";
};

constexpr FieldSpec kSecond{"second", 0, 59};
constexpr FieldSpec kMinute{"minute", 0, 59};
constexpr FieldSpec kHour{"hour", 0, 23};
constexpr FieldSpec kDayOfMonth{"day-of-month", 1, 31};
constexpr FieldSpec kMonth{"month", 1, 12, kMonthNames, 12, 1, " or a month name (JAN..DEC)"};
constexpr FieldSpec kDayOfWeek{"day-of-week", 0, 7, kDayNames, 7, 0, " or a day name (SUN..SAT)"};

struct Macro {
  const char* name;
  const char* fields;
};
constexpr Macro kMacros[] = {{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
                             {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
                             {"@hourly", "0 * * * *"}};

// Parses fields one at a time; errors carry "cron field N (name): ".
class FieldParser {
 public:
  FieldParser(const FieldSpec& spec, int position)
      : spec_(spec), where_("cron field " + std::to_string(position) + " (" + spec.name + "): ") {}

  // Sets bit v for every value v the field allows.
  Status parse(std::string_view text, std::bitset<64>& bits) const {
    size_t start = 0;
    while (true) {
      const size_t comma = text.find(',', start);
      const std::string_view item =
          text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      if (Status s = parse_item(item, bits); !s) return s;
      if (comma == std::string_view::npos) return Status::ok();
      start = comma + 1;
    }
  }

 private:
  Status error(const std::string& message) const { return Status::invalid(where_ + message); }

  Status parse_item(std::string_view item, std::bitset<64>& bits) const {
    if (item.empty()) return error("empty list item (two commas in a row, or one at an end)");
    int step = 1;
    std::string_view base = item;
    if (const size_t slash = item.find('/'); slash != std::string_view::npos) {
      base = item.substr(0, slash);
      const std::string_view step_text = item.substr(slash + 1);
      if (!is_number(step_text)) return error(std::string(item) + ": the step must be a number");
      if (step_text.size() > 4) return error(std::string(item) + ": the step is too large");
      if (std::stoi(std::string(step_text)) < 1)
        return error(std::string(item) + ": the step must be at least 1");
      step = std::stoi(std::string(step_text));
    }
    int lo = spec_.min, hi = spec_.max;
    if (base == "*") {
      // the whole range
    } else if (const size_t dash = base.find('-', 1); dash != std::string_view::npos) {
      auto a = value(base.substr(0, dash));
      if (!a) return a.status();
      auto b = value(base.substr(dash + 1));
      if (!b) return b.status();
      // Sunday ends a weekday range as 7 ("FRI-SUN" is Friday to Sunday).
      if (spec_.names == kDayNames && *b == 0 && *a > 0) *b = 7;
      if (*a > *b) return error(std::string(base) + ": the range's start is after its end");
      lo = *a;
      hi = *b;
    } else {
      auto v = value(base);
      if (!v) return v.status();
      lo = *v;
      // "A/S" means A to the maximum in steps of S; a bare "A" is just A.
      if (base.size() == item.size()) hi = *v;
    }
    for (int v = lo; v <= hi; v += step) bits.set(static_cast<size_t>(v));
    return Status::ok();
  }

  StatusOr<int> value(std::string_view token) const {
    if (is_number(token)) {
      const int v = token.size() > 4 ? 99999 : std::stoi(std::string(token));
      if (v < spec_.min || v > spec_.max)
        return error(std::string(token) + " is out of range " + std::to_string(spec_.min) + "-" +
                     std::to_string(spec_.max));
      return v;
    }
    std::string upper(token);
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (int i = 0; i < spec_.name_count; ++i) {
      if (upper == spec_.names[i]) return spec_.name_base + i;
    }
    return error("'" + std::string(token) + "' is not a number" + spec_.names_hint);
  }

  static bool is_number(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  }

  const FieldSpec& spec_;
  std::string where_;
};

template <size_t N>
std::bitset<N> narrow(const std::bitset<64>& wide) {
  std::bitset<N> out;
  for (size_t i = 0; i < N; ++i) out[i] = wide[i];
  return out;
}

std::vector<std::string_view> split_fields(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    const size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

// The instant a matching wall-clock time fires at: its only instant, the
// first of two (fall back), or the end of the gap it falls in (spring forward).
date::sys_seconds fire_instant(date::local_seconds wall, const date::time_zone& tz) {
  const date::local_info info = tz.get_info(wall);
  if (info.result == date::local_info::nonexistent) return info.first.end;
  return date::sys_seconds{wall.time_since_epoch() - info.first.offset};
}

struct Fields {
  date::local_days day;
  date::year_month_day ymd;
  unsigned weekday;
  int hour, minute, second;
};

Fields split(date::local_seconds wall) {
  Fields f;
  f.day = date::floor<date::days>(wall);
  f.ymd = date::year_month_day(f.day);
  f.weekday = date::weekday(f.day).c_encoding();
  const auto secs = (wall - f.day).count();
  f.hour = static_cast<int>(secs / 3600);
  f.minute = static_cast<int>(secs / 60 % 60);
  f.second = static_cast<int>(secs % 60);
  return f;
}

date::local_days first_of_month(const date::year_month_day& ymd) {
  return date::local_days(ymd.year() / ymd.month() / 1);
}

Status never_fires(const std::string& text) {
  return Status::invalid("cron expression '" + text + "' never fires (no matching time within " +
                         std::to_string(kSearchYears) + " years)");
}

}  // namespace

StatusOr<const date::time_zone*> find_time_zone(std::string_view name) {
  if (name.empty())
    return Status::invalid("time zone is empty (expected an IANA name like Europe/Paris, or UTC)");
  try {
    date::get_tzdb();
  } catch (const std::exception& e) {
    return Status::invalid(
        std::string("the system time zone database (/usr/share/zoneinfo) cannot be read: ") + e.what());
  }
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return Status::invalid("unknown time zone '" + text::to_storable(name.substr(0, 100)) +
                           "' (expected an IANA name like Europe/Paris, America/New_York or UTC)");
  }
}

StatusOr<CronExpr> CronExpr::parse(std::string_view text) {
  CronExpr e;
  e.text_ = std::string(text);
  std::vector<std::string_view> fields = split_fields(text);
  if (fields.empty()) return Status::invalid("cron expression is empty");
  if (fields.size() == 1 && fields[0][0] == '@') {
    std::string lower(fields[0]);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto m =
        std::find_if(std::begin(kMacros), std::end(kMacros), [&](const Macro& x) { return lower == x.name; });
    if (m == std::end(kMacros))
      return Status::invalid(
          "cron macro '" + std::string(fields[0]) +
          "' is unknown (known: @yearly @annually @monthly @weekly @daily @midnight @hourly)");
    fields = split_fields(m->fields);
  }
  if (fields.size() != 5 && fields.size() != 6)
    return Status::invalid("cron expression '" + std::string(text) + "' has " +
                           std::to_string(fields.size()) +
                           " fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (second "
                           "first)");
  const bool with_seconds = fields.size() == 6;
  const FieldSpec* specs[] = {&kSecond, &kMinute, &kHour, &kDayOfMonth, &kMonth, &kDayOfWeek};
  std::bitset<64> bits[6];
  if (!with_seconds) bits[0].set(0);  // 5 fields: second 0
  for (size_t i = 0; i < fields.size(); ++i) {
    const size_t slot = with_seconds ? i : i + 1;
    FieldParser parser(*specs[slot], static_cast<int>(i) + 1);
    if (Status s = parser.parse(fields[i], bits[slot]); !s) return s;
  }
  const size_t dom = with_seconds ? 3 : 2, dow = with_seconds ? 5 : 4;
  e.dom_star_ = fields[dom][0] == '*';
  e.dow_star_ = fields[dow][0] == '*';
  if (bits[5][7]) bits[5].set(0);  // 7 is Sunday too
  e.seconds_ = narrow<60>(bits[0]);
  e.minutes_ = narrow<60>(bits[1]);
  e.hours_ = narrow<24>(bits[2]);
  e.days_of_month_ = narrow<32>(bits[3]);
  e.months_ = narrow<13>(bits[4]);
  e.weekdays_ = narrow<7>(bits[5]);
  return e;
}

bool CronExpr::day_matches(unsigned day_of_month, unsigned weekday) const {
  const bool dom = days_of_month_[day_of_month];
  const bool dow = weekdays_[weekday];
  if (dom_star_ || dow_star_) return dom && dow;
  return dom || dow;
}

StatusOr<Clock::time_point> CronExpr::next_after(Clock::time_point t, const date::time_zone& tz) const {
  try {
    const date::sys_seconds base = date::floor<seconds>(t);
    // Wall-clock candidates in increasing order map to non-decreasing
    // instants (see fire_instant), so the first one after t is the answer.
    date::local_seconds wall = tz.to_local(base) + seconds(1);
    const date::year last_year = split(wall).ymd.year() + date::years(kSearchYears);
    while (true) {
      const Fields f = split(wall);
      if (f.ymd.year() > last_year) return never_fires(text_);
      if (!months_[static_cast<unsigned>(f.ymd.month())]) {
        wall = date::local_days((f.ymd.year() / f.ymd.month() + date::months(1)) / 1);
      } else if (!day_matches(static_cast<unsigned>(f.ymd.day()), f.weekday)) {
        wall = f.day + date::days(1);
      } else if (!hours_[f.hour]) {
        wall = f.day + hours(f.hour + 1);
      } else if (!minutes_[f.minute]) {
        wall = f.day + hours(f.hour) + minutes(f.minute + 1);
      } else if (!seconds_[f.second]) {
        wall += seconds(1);
      } else {
        const date::sys_seconds fire = fire_instant(wall, tz);
        if (fire > t) return Clock::time_point(fire);
        wall += seconds(1);  // the second occurrence of an ambiguous time, already past
      }
    }
  } catch (const std::exception& e) {
    return Status::invalid("computing the next fire time of '" + text_ + "': " + e.what());
  }
}

StatusOr<Clock::time_point> CronExpr::last_before(Clock::time_point t, const date::time_zone& tz) const {
  try {
    const date::sys_seconds base = date::ceil<seconds>(t);
    // Start late enough: when t falls in the second occurrence of a repeated
    // hour, the first occurrences of that hour's later wall times are still
    // before t. Starting `shift` later costs at most a few candidates.
    seconds shift{0};
    const date::sys_info now_info = tz.get_info(base);
    if (base - now_info.begin < hours(48)) {
      const date::sys_info before = tz.get_info(now_info.begin - seconds(1));
      shift = std::max(seconds(0), before.offset - now_info.offset);
    }
    date::local_seconds wall = tz.to_local(base) + shift - seconds(1);
    const date::year first_year = split(wall).ymd.year() - date::years(kSearchYears);
    while (true) {
      const Fields f = split(wall);
      if (f.ymd.year() < first_year) return never_fires(text_);
      if (!months_[static_cast<unsigned>(f.ymd.month())]) {
        wall = first_of_month(f.ymd) - seconds(1);
      } else if (!day_matches(static_cast<unsigned>(f.ymd.day()), f.weekday)) {
        wall = f.day - seconds(1);
      } else if (!hours_[f.hour]) {
        wall = f.day + hours(f.hour) - seconds(1);
      } else if (!minutes_[f.minute]) {
        wall = f.day + hours(f.hour) + minutes(f.minute) - seconds(1);
      } else if (!seconds_[f.second]) {
        wall -= seconds(1);
      } else {
        const date::sys_seconds fire = fire_instant(wall, tz);
        if (fire < t) return Clock::time_point(fire);
        wall -= seconds(1);
      }
    }
  } catch (const std::exception& e) {
    return Status::invalid("computing the last fire time of '" + text_ + "': " + e.what());
  }
}

}  // namespace quern::schedule
