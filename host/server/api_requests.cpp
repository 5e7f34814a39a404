#include "host/server/api_requests.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <limits>

#include "host/common/json_input.h"
#include "host/common/utf8.h"
#include "host/common/validation.h"

namespace quern::server {
namespace {

using validation::json_integer;
using validation::json_number;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr size_t kMaxInlineCode = 1024 * 1024;
constexpr size_t kMaxShortText = 200;
constexpr size_t kMaxListItems = 10000;
constexpr double kMaxTokenLifetimeS = 100.0 * 366 * 24 * 3600;
constexpr int64_t kMaxAgentWaitMs = 3600 * 1000;
constexpr size_t kMaxChunkBytes = 8u << 20;  // bounded by the body size anyway

// Reads `out` from v as a string, or fails naming `field`.
Status string_field(const Json& v, const std::string& field, std::string& out) {
  if (!v.is_string()) return Status::invalid(field + " must be a string");
  out = v.get<std::string>();
  return Status::ok();
}

template <typename Int>
Status int_field(const Json& v, const std::string& field, int64_t lo, int64_t hi, Int& out) {
  auto n = json_integer(v, field, lo, hi);
  if (!n) return n.status();
  out = static_cast<Int>(*n);
  return Status::ok();
}

Status unknown_field(const std::string& key, const char* allowed) {
  return Status::invalid("unknown field '" + text::to_storable(key.substr(0, 100)) +
                         "' (allowed: " + allowed + ")");
}

queue::Clock::time_point after_seconds(double s) {
  return queue::Clock::now() +
         std::chrono::duration_cast<queue::Clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

StatusOr<queue::Clock::time_point> parse_iso_utc(const std::string& t, const std::string& field) {
  const Status bad =
      Status::invalid(field + " must be an ISO 8601 UTC time like 2026-12-01T08:00:00Z, got \"" +
                      text::to_storable(t.substr(0, 60)) + "\"");
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00), checked character by character.
  static constexpr const char* kShape = "dddd-dd-ddTdd:dd:dd";
  if (t.size() < 20) return bad;
  for (size_t i = 0; kShape[i]; ++i) {
    const bool digit = std::isdigit(static_cast<unsigned char>(t[i])) != 0;
    if (kShape[i] == 'd' ? !digit : t[i] != kShape[i]) return bad;
  }
  std::tm tm{};
  auto num = [&](size_t at, size_t len) { return std::stoi(t.substr(at, len)); };
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(5, 2) - 1;
  tm.tm_mday = num(8, 2);
  tm.tm_hour = num(11, 2);
  tm.tm_min = num(14, 2);
  tm.tm_sec = num(17, 2);
  // A day the month has (timegm would silently move 2026-02-31 to March 3rd,
  // and month 00 to the year before's December).
  static constexpr int kMonthDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int year = tm.tm_year + 1900;
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
      tm.tm_mday > kMonthDays[tm.tm_mon] + (tm.tm_mon == 1 && leap ? 1 : 0) || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return bad;
  size_t i = 19;
  int64_t nanos = 0;
  if (t[i] == '.') {
    size_t digits = 0;
    for (++i; i < t.size() && std::isdigit(static_cast<unsigned char>(t[i])); ++i, ++digits)
      if (digits < 9) nanos = nanos * 10 + (t[i] - '0');
    if (digits == 0) return bad;
    for (; digits < 9; ++digits) nanos *= 10;
  }
  const std::string zone = t.substr(i);
  if (zone != "Z" && zone != "+00:00")
    return Status::invalid(field + " must be in UTC (end with Z), got \"" +
                           text::to_storable(t.substr(0, 60)) + "\"");
  const std::time_t secs = timegm(&tm);
  // The clock counts nanoseconds in 64 bits and ends in April 2262; a later
  // time (valid up to 9999) is that end, later than any job's time.
  constexpr auto kClockEnd =
      std::chrono::duration_cast<std::chrono::seconds>(queue::Clock::duration::max()).count();
  if (secs >= kClockEnd) return queue::Clock::time_point::max();
  return queue::Clock::from_time_t(secs) +
         std::chrono::duration_cast<queue::Clock::duration>(std::chrono::nanoseconds(nanos));
}

StatusOr<RunRequest> parse_run_request(const Json& body) {
  RunRequest r;
  for (const auto& [key, value] : body.items()) {
    Status st;
    if (key == "args") {
      if (!value.is_object()) return Status::invalid("args must be a JSON object");
      st = json_input::check_storable(value, "args");
      r.args = value;
    } else if (key == "tag") {
      st = string_field(value, key, r.tag);
      if (st) st = validation::check_tag(r.tag, "tag");
    } else if (key == "priority") {
      st = int_field(value, key, queue::kMinPriority, queue::kMaxPriority, r.priority);
    } else if (key == "timeout_s") {
      st = int_field(value, key, 0, kMaxTimeoutSeconds, r.timeout_s);
    } else if (key == "scheduled_for") {
      std::string text;
      st = string_field(value, key, text);
      if (!st) return st;
      auto t = parse_iso_utc(text, key);
      if (!t) return t.status();
      if (*t > after_seconds(static_cast<double>(kMaxDelaySeconds)))
        return Status::invalid("scheduled_for is more than " + std::to_string(kMaxDelaySeconds / 86400) +
                               " days ahead");
      r.scheduled_for = *t;
    } else if (key == "delay_s") {
      auto d = json_number(value, "delay_s", 0, static_cast<double>(kMaxDelaySeconds));
      if (!d) return d.status();
      r.scheduled_for = after_seconds(*d);
    } else if (key == "concurrency") {
      auto c = queue::concurrency_from_json(value, "concurrency");
      if (!c) return Status::invalid(c.message());
      r.concurrency = *c;
    } else if (key == "retry") {
      auto p = queue::retry_from_json(value, "retry");
      if (!p) return Status::invalid(p.message());
      r.retry = *p;
    } else if (key == "limits") {
      auto l = queue::limits_from_json(value, "limits");
      if (!l) return Status::invalid(l.message());
      r.limits = *l;
    } else if (key != "language" && key != "content") {
      return unknown_field(
          key, "args, tag, priority, timeout_s, scheduled_for, delay_s, concurrency, retry, limits");
    }
    if (!st) return st;
  }
  return r;
}

StatusOr<InlineCode> parse_inline_code(const Json& body) {
  InlineCode c;
  auto lang = body.find("language");
  auto content = body.find("content");
  if (lang == body.end() || !lang->is_string() || lang->get<std::string>().empty())
    return Status::invalid("language is required (e.g. \"bash\")");
  c.language = lang->get<std::string>();
  if (c.language.size() > 64 || !std::all_of(c.language.begin(), c.language.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
      }))
    return Status::invalid("language may only hold a-z, 0-9 and _ (at most 64 characters)");
  if (content == body.end() || !content->is_string())
    return Status::invalid("content (the code) is required");
  c.content = content->get<std::string>();
  if (c.content.size() > kMaxInlineCode)
    return Status::invalid("content is " + std::to_string(c.content.size()) +
                           " bytes, more than the limit of " + std::to_string(kMaxInlineCode) + " bytes");
  if (Status st = validation::check_text(c.content, "content", kMaxInlineCode); !st) return st;
  return c;
}

namespace {

// ?limit= (1..1000) and ?before_id= of a paginated list, newest first.
Status page_field(const std::string& key, const std::string& value, int& limit, int64_t& before_id) {
  if (key == "limit") {
    auto n = validation::parse_integer(value, "limit", 1, 1000);
    if (!n) return n.status();
    limit = static_cast<int>(*n);
    return Status::ok();
  }
  auto n = validation::parse_id(value, "before_id");
  if (!n) return n.status();
  before_id = *n;
  return Status::ok();
}

}  // namespace

StatusOr<queue::JobFilter> parse_job_filter(const Query& query) {
  queue::JobFilter f;
  for (const auto& [key, value] : query) {
    Status st;
    if (key == "state") {
      f.state = value;  // queue::validate names the allowed states
    } else if (key == "tag") {
      f.tag = value;
      st = validation::check_tag(value, "tag");
    } else if (key == "script_path") {
      f.script_path = value;
      st = validation::check_text(value, "script_path", 255);
    } else if (key == "limit" || key == "before_id") {
      st = page_field(key, value, f.limit, f.before_id);
    } else if (key == "created_after" || key == "created_before") {
      auto t = parse_iso_utc(value, key);
      if (!t) return t.status();
      (key == "created_after" ? f.created_after : f.created_before) = *t;
    } else {
      return unknown_field(key, "state, tag, script_path, created_after, created_before, before_id, limit");
    }
    if (!st) return st;
  }
  if (Status s = queue::validate(f); !s) return Status::invalid(s.message());
  return f;
}

StatusOr<autoscale::EventFilter> parse_event_filter(const Query& query) {
  autoscale::EventFilter f;
  for (const auto& [key, value] : query) {
    Status st;
    if (key == "group") {
      st = validation::check_tag(value, "group");
      f.group = value;
    } else if (key == "limit" || key == "before_id") {
      st = page_field(key, value, f.limit, f.before_id);
    } else {
      return unknown_field(key, "group, before_id, limit");
    }
    if (!st) return st;
  }
  return f;
}

StatusOr<std::chrono::milliseconds> parse_wait(const Query& query, std::chrono::milliseconds max) {
  auto it = query.find("timeout_s");
  if (it == query.end()) return max;
  auto s = validation::parse_number(it->second, "timeout_s", 0.001, 86400.0);
  if (!s) return s.status();
  return std::min(max, std::chrono::milliseconds(static_cast<int64_t>(*s * 1000)));
}

StatusOr<int64_t> parse_log_offset(const Query& query) {
  auto it = query.find("offset");
  if (it == query.end()) return int64_t{0};
  return validation::parse_integer(it->second, "offset", 0, kInt64Max);
}

StatusOr<scripts::NewScript> parse_deploy(const Json& body) {
  scripts::NewScript s;
  for (const auto& [key, value] : body.items()) {
    Status st;
    if (key == "path")
      st = string_field(value, key, s.path);
    else if (key == "language")
      st = string_field(value, key, s.language);
    else if (key == "content")
      st = string_field(value, key, s.content);
    else if (key == "summary")
      st = string_field(value, key, s.summary);
    else if (key == "tag")
      st = string_field(value, key, s.settings.tag);
    else if (key == "priority")
      st = int_field(value, key, 0, queue::kMaxPriority, s.settings.priority);
    else if (key == "timeout_s")
      st = int_field(value, key, 0, kMaxTimeoutSeconds, s.settings.timeout_s);
    else if (key == "dedicated") {
      if (!value.is_boolean()) return Status::invalid("dedicated must be true or false");
      s.settings.dedicated = value.get<bool>();
    } else if (key == "concurrency") {
      auto c = queue::concurrency_from_json(value, "concurrency");
      if (!c) return Status::invalid(c.message());
      s.settings.concurrency = *c;
    } else if (key == "retry") {
      auto r = queue::retry_from_json(value, "retry");
      if (!r) return Status::invalid(r.message());
      s.settings.retry = *r;
    } else if (key == "limits") {
      auto l = queue::limits_from_json(value, "limits");
      if (!l) return Status::invalid(l.message());
      s.settings.limits = *l;
    } else {
      return unknown_field(key,
                           "path, language, content, summary, tag, priority, timeout_s, dedicated, "
                           "concurrency, retry, limits");
    }
    if (!st) return st;
  }
  return s;
}

StatusOr<auth::NewToken> parse_new_token(const Json& body) {
  auth::NewToken t;
  bool has_role = false;
  for (const auto& [key, value] : body.items()) {
    Status st;
    if (key == "role") {
      auto role = value.is_string() ? auth::role_from_string(value.get<std::string>()) : std::nullopt;
      if (!role) return Status::invalid("role must be one of admin, developer, operator, agent");
      t.role = *role;
      has_role = true;
    } else if (key == "group") {
      st = string_field(value, key, t.group);
    } else if (key == "tags") {
      if (!value.is_array() || value.size() > 1000)
        return Status::invalid("tags must be an array of at most 1000 strings");
      for (const auto& tag : value) {
        if (!tag.is_string()) return Status::invalid("tags must be an array of strings");
        t.tags.push_back(tag.get<std::string>());
      }
    } else if (key == "label") {
      st = string_field(value, key, t.label);
    } else if (key == "expires_in_s") {
      auto s = json_number(value, "expires_in_s", 0.001, kMaxTokenLifetimeS);
      if (!s) return s.status();
      t.expires_at = after_seconds(*s);
    } else {
      return unknown_field(key, "role, group, tags, label, expires_in_s");
    }
    if (!st) return st;
  }
  if (!has_role) return Status::invalid("role is required (admin, developer, operator or agent)");
  if (Status s = auth::validate(t); !s) return Status::invalid(s.message());
  return t;
}

StatusOr<schedule::Schedule> parse_schedule(const Json& body) {
  schedule::Schedule s;
  for (const auto& [key, value] : body.items()) {
    Status st;
    if (key == "name") {
      st = string_field(value, key, s.name);
    } else if (key == "cron") {
      st = string_field(value, key, s.cron);
    } else if (key == "timezone") {
      st = string_field(value, key, s.timezone);
    } else if (key == "script_path") {
      st = string_field(value, key, s.script_path);
    } else if (key == "args") {
      if (!value.is_object()) return Status::invalid("args must be a JSON object");
      st = json_input::check_storable(value, "args");
      s.args = value;
    } else if (key == "tag") {
      if (!value.is_null()) st = string_field(value, key, s.tag);
    } else if (key == "priority") {
      if (!value.is_null()) st = int_field(value, key, queue::kMinPriority, queue::kMaxPriority, s.priority);
    } else if (key == "paused") {
      if (!value.is_boolean()) return Status::invalid("paused must be true or false");
      s.paused = value.get<bool>();
    } else if (key == "catch_up") {
      auto c = value.is_string() ? schedule::catch_up_from_string(value.get<std::string>()) : std::nullopt;
      if (!c) return Status::invalid("catch_up must be \"skip\", \"latest\" or \"all\"");
      s.catch_up = *c;
    } else {
      return unknown_field(key, "name, cron, timezone, script_path, args, tag, priority, paused, catch_up");
    }
    if (!st) return st;
  }
  for (const auto& [field, value] : {std::pair<const char*, const std::string*>{"name", &s.name},
                                     {"cron", &s.cron},
                                     {"script_path", &s.script_path}}) {
    if (value->empty()) return Status::invalid(std::string(field) + " is required");
  }
  if (Status st = schedule::validate(s); !st) return Status::invalid(st.message());
  return s;
}

StatusOr<std::string> parse_agent_owner(const Json& body, const std::string& token_id) {
  auto it = body.find("worker_id");
  if (it == body.end() || !it->is_string()) return Status::invalid("worker_id (string) is required");
  const std::string id = it->get<std::string>();
  if (id.empty() || id.size() > 64) return Status::invalid("worker_id must be 1 to 64 characters");
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return Status::invalid("worker_id may hold letters, digits, '-', '_' and '.' only");
  return "agent:" + token_id + ":" + id;
}

StatusOr<AgentRegistration> parse_agent_registration(const Json& body) {
  AgentRegistration r;
  Status st;
  if (auto it = body.find("slots"); it != body.end()) st = int_field(*it, "slots", 0, 1024, r.slots);
  if (auto it = body.find("pid"); st && it != body.end()) st = int_field(*it, "pid", 0, kInt32Max, r.pid);
  for (auto [name, out] : {std::pair<const char*, std::string*>{"version", &r.version},
                           {"hostname", &r.hostname},
                           {"isolation", &r.isolation}}) {
    auto it = body.find(name);
    if (!st || it == body.end()) continue;
    st = string_field(*it, name, *out);
    if (st) st = validation::check_text(*out, name, kMaxShortText);
  }
  if (!st) return st;
  return r;
}

StatusOr<ClaimRequest> parse_claim_request(const Json& body) {
  ClaimRequest c;
  if (auto it = body.find("slots"); it != body.end()) {
    if (Status st = int_field(*it, "slots", 1, 1024, c.slots); !st) return st;
  }
  if (auto it = body.find("wait_ms"); it != body.end()) {
    int64_t ms = 0;
    if (Status st = int_field(*it, "wait_ms", 0, kMaxAgentWaitMs, ms); !st) return st;
    c.wait = std::chrono::milliseconds(ms);
  }
  auto it = body.find("gpus");
  if (it == body.end()) return c;
  const Json& g = *it;
  const Status shape = Status::invalid("gpus must be {\"free\": <int>, \"devices_mb\": [<int>, ...]}");
  if (!g.is_object() || !g.contains("free") || !g.contains("devices_mb") || !g["devices_mb"].is_array() ||
      g["devices_mb"].size() > 1024)
    return shape;
  for (const Json& m : g["devices_mb"]) {
    int mb = 0;
    if (Status st = int_field(m, "gpus.devices_mb[]", 0, 1 << 30, mb); !st) return st;
    c.capacity.device_memory_mb.push_back(mb);
  }
  if (Status st = int_field(g["free"], "gpus.free", 0,
                            static_cast<int64_t>(c.capacity.device_memory_mb.size()), c.capacity.free_gpus);
      !st)
    return st;
  return c;
}

namespace {

// {id, attempt} of an element of leases / chunks / completions.
Status lease_of(const Json& e, const std::string& where, queue::Lease& out) {
  if (!e.is_object()) return Status::invalid(where + ": expected an object with id and attempt");
  if (!e.contains("id") || !e.contains("attempt"))
    return Status::invalid(where + ": needs integer id and attempt");
  if (Status st = int_field(e["id"], where + ".id", 1, kInt64Max, out.id); !st) return st;
  return int_field(e["attempt"], where + ".attempt", 1, kInt32Max, out.attempt);
}

const Json* list_field(const Json& body, const char* name, bool required, Status& st) {
  auto it = body.find(name);
  if (it == body.end()) {
    if (required) st = Status::invalid(std::string(name) + " must be an array");
    return nullptr;
  }
  if (!it->is_array() || it->size() > kMaxListItems)
    st = Status::invalid(std::string(name) + " must be an array of at most " + std::to_string(kMaxListItems) +
                         " items");
  return st ? &*it : nullptr;
}

}  // namespace

StatusOr<std::vector<queue::Lease>> parse_leases(const Json& body) {
  std::vector<queue::Lease> leases;
  Status st;
  const Json* list = list_field(body, "leases", false, st);
  if (!st) return st;
  if (!list) return leases;
  for (size_t i = 0; i < list->size(); ++i) {
    queue::Lease l;
    if (Status e = lease_of((*list)[i], "leases[" + std::to_string(i) + "]", l); !e) return e;
    leases.push_back(l);
  }
  return leases;
}

StatusOr<std::vector<queue::LogChunk>> parse_log_chunks(const Json& body, bool required) {
  std::vector<queue::LogChunk> chunks;
  Status st;
  const Json* list = list_field(body, "chunks", required, st);
  if (!st) return st;
  if (!list) return chunks;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& c = (*list)[i];
    const std::string where = "chunks[" + std::to_string(i) + "]";
    queue::Lease l;
    if (Status e = lease_of(c, where, l); !e) return e;
    if (!c.contains("text") || !c["text"].is_string())
      return Status::invalid(where + ".text must be a string");
    const std::string& text = c["text"].get_ref<const std::string&>();
    if (Status e = validation::check_text(text, where + ".text", kMaxChunkBytes); !e) return e;
    chunks.push_back({l.id, l.attempt, text});
  }
  return chunks;
}

StatusOr<std::vector<queue::Completion>> parse_completions(const Json& body) {
  std::vector<queue::Completion> completions;
  Status st;
  const Json* list = list_field(body, "completions", true, st);
  if (!st) return st;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& c = (*list)[i];
    const std::string where = "completions[" + std::to_string(i) + "]";
    queue::Lease l;
    if (Status e = lease_of(c, where, l); !e) return e;
    auto status = c.value("status", Json()).is_string()
                      ? queue::job_status_from_string(c["status"].get<std::string>())
                      : std::nullopt;
    if (!status) return Status::invalid(where + ".status must be success, failure, timeout or canceled");
    queue::Completion done;
    done.id = l.id;
    done.attempt = l.attempt;
    done.status = *status;
    if (c.contains("result")) {
      if (Status e = json_input::check_storable(c["result"], where + ".result"); !e) return e;
      done.result = nlohmann::json(c["result"]);
    }
    if (c.contains("error") && !c["error"].is_null()) {
      if (Status e = string_field(c["error"], where + ".error", done.error); !e) return e;
      if (Status e = validation::check_text(done.error, where + ".error", kMaxChunkBytes); !e) return e;
    }
    if (c.contains("resources") && !c["resources"].is_null()) {
      const Json& r = c["resources"];
      if (!r.is_object()) return Status::invalid(where + ".resources must be an object");
      for (const auto& [key, value] : r.items()) {
        if (key != "peak_memory_bytes" && key != "cpu_ms" && key != "oom_kills")
          return Status::invalid(where + ".resources." + key +
                                 " is not known (peak_memory_bytes, cpu_ms, oom_kills)");
        if (!value.is_number_unsigned())
          return Status::invalid(where + ".resources." + key + " must be a non-negative integer");
        done.resources[key] = value.get<uint64_t>();
      }
    }
    completions.push_back(std::move(done));
  }
  return completions;
}

}  // namespace quern::server
