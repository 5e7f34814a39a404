#include "host/cli/tables.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace quern::cli {

namespace {

// Characters of UTF-8 text: bytes that do not continue a sequence.
size_t width_of(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

void print_table(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  if (rows.empty()) return;
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], width_of(r[i]));
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i)
      line += r[i] +
              (i + 1 < r.size() && i < width.size() ? std::string(width[i] - width_of(r[i]) + 2, ' ') : "");
    out << line << "\n";
  }
}
namespace {

using Json = nlohmann::ordered_json;
using Rows = std::vector<std::vector<std::string>>;
using TimePoint = TablesClock::time_point;

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";  // …
constexpr std::string_view kReturn = "\xE2\x8F\x8E";    // ⏎
constexpr size_t kCell = 256;                           // names, paths (at most 255), ids
constexpr size_t kFreeText = 80;                        // errors, summaries, labels, notes
constexpr size_t kJsonChars = 200;                      // args, result
constexpr size_t kErrorChars = 1000;                    // a job's error in print_job

// The field `key` of `o`, or null when `o` is no object or lacks it.
const Json& at(const Json& o, const char* key) {
  static const Json null_value;
  if (!o.is_object()) return null_value;
  auto it = o.find(key);
  return it == o.end() ? null_value : *it;
}

std::string compact(const Json& v) { return v.dump(-1, ' ', false, Json::error_handler_t::replace); }

// A cell: strings made one line ("" is "-"), numbers as JSON writes them,
// booleans yes/no, null "-", objects and arrays as compact JSON.
std::string text(const Json& v, size_t max_chars = kCell) {
  if (v.is_null()) return "-";
  if (v.is_string()) {
    std::string s = one_line(v.get_ref<const std::string&>(), max_chars);
    return s.empty() ? "-" : s;
  }
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return one_line(compact(v), max_chars);
}

bool is_zero(const Json& v) { return v.is_number() && v.get<double>() == 0; }

// "f/a/b" for a script, "(inline)" for a job of inline code (an empty path).
std::string script_cell(const Json& path) {
  return path.is_string() && path.get_ref<const std::string&>().empty() ? "(inline)" : text(path);
}

std::string short_hash(const Json& hash) {
  std::string h = text(hash);
  return h.size() > 12 && h != "-" ? h.substr(0, 12) : h;
}

std::optional<TimePoint> time_of(const Json& v) {
  if (!v.is_string()) return std::nullopt;
  return parse_api_time(v.get_ref<const std::string&>());
}

double seconds_between(TimePoint from, TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

// "2026-12-07 10:00:00 UTC (3m ago)" for a UTC time; "-" for null.
std::string time_with_age(const Json& v, TimePoint now) {
  if (v.is_null()) return "-";
  if (!time_of(v)) return text(v);
  const std::string& s = v.get_ref<const std::string&>();
  std::string shown = s.size() >= 20 && (s.back() == 'Z' || s.back() == 'z')
                          ? s.substr(0, 10) + " " + s.substr(11, 8) + " UTC"
                          : one_line(s);
  return shown + " (" + relative_time(v, now) + ")";
}

// As cgroup::format_bytes: "512 B", "12 MiB", "1.5 GiB".
std::string format_bytes(double bytes) {
  if (!std::isfinite(bytes) || bytes < 0) return "-";
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  for (; bytes >= 1024 && u < 4; ++u) bytes /= 1024;
  char buf[400];
  if (u == 0 || bytes == std::floor(bytes))
    std::snprintf(buf, sizeof(buf), "%.0f %s", bytes, units[u]);
  else
    std::snprintf(buf, sizeof(buf), "%.1f %s", bytes, units[u]);
  return buf;
}

// 60 -> "60s", 0.5 -> "500ms": a rate window.
std::string seconds_text(const Json& v) {
  if (!v.is_number()) return text(v);
  const double s = v.get<double>();
  if (s >= 1 && s == std::floor(s) && s < 1e15) return std::to_string(static_cast<long long>(s)) + "s";
  return format_duration(s);
}

// A job's run time: the API's duration_ms, else started..completed, else
// (a running job) started..now.
std::string job_duration(const Json& j, TimePoint now) {
  if (const Json& ms = at(j, "duration_ms"); ms.is_number()) return format_duration(ms.get<double>() / 1000);
  auto started = time_of(at(j, "started_at"));
  if (!started) return "-";
  if (auto completed = time_of(at(j, "completed_at")))
    return format_duration(seconds_between(*started, *completed));
  if (at(j, "state") == "running") return format_duration(seconds_between(*started, now));
  return "-";
}

// Completion resources: {"peak_memory_bytes", "cpu_ms", "oom_kills", ...}.
std::string resources_text(const Json& r) {
  if (!r.is_object()) return text(r, kJsonChars);
  std::string out;
  for (const auto& [key, v] : r.items()) {
    std::string part;
    if (key == "peak_memory_bytes" && v.is_number())
      part = "peak memory " + format_bytes(v.get<double>());
    else if (key == "cpu_ms" && v.is_number())
      part = "cpu " + format_duration(v.get<double>() / 1000);
    else if (key == "oom_kills")
      part = "oom kills " + text(v);
    else
      part = one_line(key, 40) + " " + text(v, 60);
    out += (out.empty() ? "" : ", ") + part;
  }
  return out.empty() ? "-" : out;
}

// The elements of doc[key] that are objects (none when it is no array).
std::vector<const Json*> objects(const Json& doc, const char* key) {
  std::vector<const Json*> out;
  const Json& list = at(doc, key);
  if (!list.is_array()) return out;
  for (const Json& e : list)
    if (e.is_object()) out.push_back(&e);
  return out;
}

void emit(const Rows& rows, std::string_view empty, std::ostream& out) {
  if (rows.size() <= 1) {
    out << empty << "\n";
    return;
  }
  print_table(rows, out);
}

// Decodes the UTF-8 sequence at s[i]: its length, or 0 when it is not one.
size_t sequence_length(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  const size_t n = b < 0x80             ? 1
                   : (b & 0xE0) == 0xC0 ? 2
                   : (b & 0xF0) == 0xE0 ? 3
                   : (b & 0xF8) == 0xF0 ? 4
                                        : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  return n;
}

}  // namespace

std::string one_line(std::string_view s, size_t max_chars) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  std::string out;
  out.reserve(std::min(s.size(), max_chars * 4));
  size_t chars = 0, keep = 0;  // keep: bytes of the first max_chars - 1 characters
  for (size_t i = 0; i < s.size();) {
    if (chars + 1 == max_chars) keep = out.size();
    if (chars > max_chars) break;
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = sequence_length(s, i);
    if (b == '\r' && i + 1 < s.size() && s[i + 1] == '\n') {
      i += 1;  // "\r\n" is one line break
      continue;
    }
    if (b == '\n') {
      out += kReturn;
    } else if (b < 0x20 || b == 0x7F ||
               (n == 2 && b == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0)) {
      out += ' ';  // C0, DEL and C1 controls (terminal escapes among them)
    } else if (n == 0) {
      out += "\xEF\xBF\xBD";  // not UTF-8: U+FFFD
      n = 1;
    } else {
      out.append(s.substr(i, n));
    }
    i += std::max<size_t>(n, 1);
    ++chars;
  }
  if (chars > max_chars) {
    out.resize(max_chars == 0 ? 0 : keep);
    out += kEllipsis;
  }
  return out;
}

std::optional<TimePoint> parse_api_time(std::string_view s) {
  const auto digits = [&](size_t pos, size_t count, int& value) {
    if (pos + count > s.size()) return false;
    value = 0;
    for (size_t k = pos; k < pos + count; ++k) {
      if (s[k] < '0' || s[k] > '9') return false;
      value = value * 10 + (s[k] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, sec;
  if (s.size() < 20 || !digits(0, 4, y) || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' ||
      !digits(8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(11, 2, h) ||
      s[13] != ':' || !digits(14, 2, mi) || s[16] != ':' || !digits(17, 2, sec))
    return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(static_cast<unsigned>(mo)),
                                        std::chrono::day(static_cast<unsigned>(d))};
  // Years a system_clock of nanoseconds holds (1678..2262) with a margin.
  if (y < 1900 || y > 2200 || !ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  size_t pos = 19;
  int64_t micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    size_t n = 0;
    for (++pos; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos, ++n)
      if (n < 6) micros = micros * 10 + (s[pos] - '0');
    if (n == 0) return std::nullopt;
    for (; n < 6; ++n) micros *= 10;
  }
  int offset_min = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digits(pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(pos + 4, 2, om) ||
        oh > 23 || om > 59)
      return std::nullopt;
    offset_min = (s[pos] == '-' ? -1 : 1) * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const auto t = std::chrono::sys_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(mi - offset_min) +
                 std::chrono::seconds(sec) + std::chrono::microseconds(micros);
  return std::chrono::time_point_cast<TablesClock::duration>(t);
}

std::string relative_time(const Json& when, TimePoint now) {
  if (when.is_null()) return "-";
  auto t = time_of(when);
  if (!t) return text(when);
  const double diff = seconds_between(*t, now);
  const auto s = static_cast<long long>(std::fabs(diff));
  const std::string amount = s < 60      ? std::to_string(s) + "s"
                             : s < 3600  ? std::to_string(s / 60) + "m"
                             : s < 86400 ? std::to_string(s / 3600) + "h"
                                         : std::to_string(s / 86400) + "d";
  return diff <= -1 ? "in " + amount : amount + " ago";
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-";
  char buf[64];
  if (seconds < 1) {
    std::snprintf(buf, sizeof(buf), "%dms", static_cast<int>(seconds * 1000));
  } else if (seconds < 10) {
    std::snprintf(buf, sizeof(buf), "%.1fs", std::floor(seconds * 10) / 10);
  } else {
    const auto s = static_cast<long long>(std::min(seconds, 1e15));
    if (s < 60)
      std::snprintf(buf, sizeof(buf), "%llds", s);
    else if (s < 3600)
      std::snprintf(buf, sizeof(buf), "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
      std::snprintf(buf, sizeof(buf), "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
      std::snprintf(buf, sizeof(buf), "%lldd%02lldh", s / 86400, s % 86400 / 3600);
  }
  return buf;
}

void print_queue(const Json& doc, std::ostream& out) {
  Rows rows{{"TAG", "WAITING", "SCHEDULED", "RUNNING", "OLDEST-WAIT", "SERVED"}};
  Rows priorities{{"TAG", "PRIORITY", "WAITING", "OLDEST-WAIT"}};
  const auto oldest = [](const Json& o) {
    const Json& wait = at(o, "oldest_wait_s");
    return is_zero(at(o, "waiting")) || !wait.is_number() ? std::string("-")
                                                          : format_duration(wait.get<double>());
  };
  for (const Json* t : objects(doc, "tags")) {
    const Json& served = at(*t, "served");
    const Json& note = at(*t, "autoscale");
    std::string serving = served == false && note.is_string() && !note.get_ref<const std::string&>().empty()
                              ? one_line(note.get_ref<const std::string&>(), kFreeText)
                              : text(served);
    rows.push_back({text(at(*t, "tag")), text(at(*t, "waiting")), text(at(*t, "scheduled")),
                    text(at(*t, "running")), oldest(*t), serving});
    const Json& by_priority = at(*t, "by_priority");
    if (by_priority.is_array() && by_priority.size() > 1)
      for (const Json& p : by_priority)
        priorities.push_back(
            {text(at(*t, "tag")), text(at(p, "priority")), text(at(p, "waiting")), oldest(p)});
  }
  emit(rows, "no jobs waiting, scheduled or running", out);
  if (rows.size() > 1 && priorities.size() > 1) {
    out << "\n";
    print_table(priorities, out);
  }
}

void print_queue_limits(const Json& doc, std::ostream& out) {
  Rows rows{{"KEY", "MAX-RUNNING", "RATE", "RUNNING", "WAITING", "STARTED"}};
  for (const Json* k : objects(doc, "keys")) {
    const Json& max = at(*k, "max_running");
    const Json& rate = at(*k, "rate_max");
    const bool limited = rate.is_number() && !is_zero(rate);
    rows.push_back({text(at(*k, "key")), is_zero(max) ? "-" : text(max),
                    limited ? text(rate) + "/" + seconds_text(at(*k, "rate_window_s")) : "-",
                    text(at(*k, "running")), text(at(*k, "waiting")),
                    limited ? text(at(*k, "started_in_window")) : "-"});
  }
  emit(rows, "no concurrency keys", out);
}

void print_jobs(const Json& doc, std::ostream& out, TimePoint now) {
  Rows rows{{"ID", "STATE", "TAG", "SCRIPT", "CREATED", "DURATION", "WORKER"}};
  for (const Json* j : objects(doc, "jobs"))
    rows.push_back({text(at(*j, "id")), text(at(*j, "state")), text(at(*j, "tag")),
                    script_cell(at(*j, "script_path")), relative_time(at(*j, "created_at"), now),
                    job_duration(*j, now), text(at(*j, "worker_id"))});
  emit(rows, "no jobs", out);
}

void print_job(const Json& doc, std::ostream& out, TimePoint now) {
  std::string state = text(at(doc, "state"));
  if (at(doc, "cancel_requested") == true) state += " (cancel requested)";
  std::string script = script_cell(at(doc, "script_path"));
  if (const Json& hash = at(doc, "script_hash"); hash.is_string()) script += " @ " + text(hash);
  Rows rows{{"id:", text(at(doc, "id"))},
            {"state:", state},
            {"tag:", text(at(doc, "tag"))},
            {"language:", text(at(doc, "language"))},
            {"script:", script},
            {"priority:", text(at(doc, "priority"))},
            {"attempt:", text(at(doc, "attempt"))},
            {"worker:", text(at(doc, "worker_id"))}};
  if (const Json& key = at(doc, "concurrency_key"); !key.is_null())
    rows.push_back({"concurrency key:", text(key)});
  rows.push_back({"created:", time_with_age(at(doc, "created_at"), now)});
  rows.push_back({"started:", time_with_age(at(doc, "started_at"), now)});
  rows.push_back({"completed:", time_with_age(at(doc, "completed_at"), now)});
  rows.push_back({"duration:", job_duration(doc, now)});
  rows.push_back({"args:", text(at(doc, "args"), kJsonChars)});
  const Json& result = at(doc, "result");
  rows.push_back({"result:", result.is_null() ? "-" : one_line(compact(result), kJsonChars)});
  rows.push_back({"error:", text(at(doc, "error"), kErrorChars)});
  if (const Json& r = at(doc, "resources"); !r.is_null()) rows.push_back({"resources:", resources_text(r)});
  print_table(rows, out);

  Rows attempts{{"  ATTEMPT", "STATUS", "WORKER", "STARTED", "ENDED", "RETRY", "ERROR"}};
  for (const Json* a : objects(doc, "attempts"))
    attempts.push_back({"  " + text(at(*a, "attempt")), text(at(*a, "status")), text(at(*a, "worker_id")),
                        relative_time(at(*a, "started_at"), now), relative_time(at(*a, "ended_at"), now),
                        relative_time(at(*a, "retry_at"), now), text(at(*a, "error"), kFreeText)});
  if (attempts.size() > 1) {
    out << "earlier attempts:\n";
    print_table(attempts, out);
  }
}

void print_scripts(const Json& doc, std::ostream& out, TimePoint now) {
  const auto list = objects(doc, "scripts");
  bool any_archived = false;
  for (const Json* s : list) any_archived = any_archived || at(*s, "archived") == true;
  Rows rows{{"PATH", "LANGUAGE", "TAG", "HASH", "DEPLOYED-BY", "CREATED"}};
  if (any_archived) rows[0].push_back("ARCHIVED");
  rows[0].push_back("SUMMARY");
  for (const Json* s : list) {
    rows.push_back({text(at(*s, "path")), text(at(*s, "language")), text(at(at(*s, "settings"), "tag")),
                    short_hash(at(*s, "hash")), text(at(*s, "deployed_by")),
                    relative_time(at(*s, "created_at"), now)});
    if (any_archived) rows.back().push_back(text(at(*s, "archived")));
    rows.back().push_back(text(at(*s, "summary"), kFreeText));
  }
  emit(rows, "no scripts", out);
}

void print_script_versions(const Json& doc, std::ostream& out, TimePoint now) {
  Rows rows{{"HASH", "CREATED", "LANGUAGE", "TAG", "DEPLOYED-BY", "SUMMARY"}};
  for (const Json* s : objects(doc, "versions"))
    rows.push_back({short_hash(at(*s, "hash")), relative_time(at(*s, "created_at"), now),
                    text(at(*s, "language")), text(at(at(*s, "settings"), "tag")),
                    text(at(*s, "deployed_by")), text(at(*s, "summary"), kFreeText)});
  emit(rows, "no versions", out);
}

void print_schedules(const Json& doc, std::ostream& out, TimePoint now) {
  Rows rows{{"NAME", "CRON", "TZ", "SCRIPT", "NEXT", "PAUSED", "LAST-FIRED", "LAST-JOB", "LAST-ERROR"}};
  for (const Json* s : objects(doc, "schedules"))
    rows.push_back({text(at(*s, "name")), text(at(*s, "cron")), text(at(*s, "timezone")),
                    text(at(*s, "script_path")), relative_time(at(*s, "next_fire_at"), now),
                    text(at(*s, "paused")), relative_time(at(*s, "last_fired_at"), now),
                    text(at(*s, "last_job_id")), text(at(*s, "last_error"), kFreeText)});
  emit(rows, "no schedules", out);
}

void print_tokens(const Json& doc, std::ostream& out, TimePoint now) {
  Rows rows{{"ID", "ROLE", "GROUP", "TAGS", "LABEL", "CREATED", "EXPIRES", "REVOKED", "LAST-USED"}};
  for (const Json* t : objects(doc, "tokens")) {
    const Json& tags = at(*t, "tags");
    std::string tag_list;  // tags are [A-Za-z0-9_.:-]+: a comma separates them
    if (tags.is_array())
      for (const Json& tag : tags) tag_list += (tag_list.empty() ? "" : ",") + text(tag);
    rows.push_back({text(at(*t, "id")), text(at(*t, "role")), text(at(*t, "group")),
                    tags.is_array() ? (tag_list.empty() ? "-" : tag_list) : text(tags),
                    text(at(*t, "label"), kFreeText), relative_time(at(*t, "created_at"), now),
                    relative_time(at(*t, "expires_at"), now), relative_time(at(*t, "revoked_at"), now),
                    relative_time(at(*t, "last_used_at"), now)});
  }
  emit(rows, "no tokens", out);
}

// "2026-12-07T10:00:00.123456Z" -> "2026-12-07 10:00:00" (UTC, as the API sends it).
std::string utc_second(const Json& v) {
  if (!v.is_string()) return "-";
  std::string t = one_line(v.get_ref<const std::string&>(), kCell);
  return t.size() >= 19 ? t.substr(0, 10) + " " + t.substr(11, 8) : t;
}

void print_autoscale_events(const Json& doc, std::ostream& out) {
  Rows rows{{"ID", "AT (UTC)", "GROUP", "FROM", "TO", "OUTCOME", "REASON"}};
  for (const Json* e : objects(doc, "events")) {
    std::string outcome = text(at(*e, "outcome"));
    if (const Json& error = at(*e, "error");
        error.is_string() && !error.get_ref<const std::string&>().empty())
      outcome += ": " + error.get<std::string>();
    rows.push_back({text(at(*e, "id")), utc_second(at(*e, "at")), text(at(*e, "group")), text(at(*e, "from")),
                    text(at(*e, "to")), one_line(outcome, kFreeText), text(at(*e, "reason"), kFreeText)});
  }
  emit(rows, "no autoscaling events", out);
}

void print_autoscale_groups(const Json& doc, std::ostream& out) {
  Rows rows{{"GROUP", "INTEGRATION", "MIN", "MAX", "DESIRED", "CHANGED (UTC)", "DECIDED (UTC)", "REASON"}};
  for (const Json* g : objects(doc, "groups"))
    rows.push_back({text(at(*g, "group")), text(at(*g, "integration")), text(at(*g, "min")),
                    text(at(*g, "max")), text(at(*g, "desired")), utc_second(at(*g, "requested_at")),
                    utc_second(at(*g, "decided_at")), text(at(*g, "reason"), kFreeText)});
  emit(rows, "no autoscaled groups (none has <autoscale>, or no controller has run yet)", out);
}

}  // namespace quern::cli
