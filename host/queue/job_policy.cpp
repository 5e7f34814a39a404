#include "host/queue/job_policy.h"

#include <cmath>
#include <initializer_list>
#include <set>

#include "host/common/utf8.h"
#include "host/common/validation.h"

namespace quern::queue {
namespace {

using Json = nlohmann::json;

constexpr int64_t kDayMs = 24LL * 3600 * 1000;

// Reads one object's fields, checking names and ranges; the first problem is kept.
class FieldReader {
 public:
  FieldReader(const Json& j, std::string_view where, std::initializer_list<const char*> allowed)
      : j_(j), where_(where) {
    if (!j.is_object()) {
      fail(where_ + ": expected an object");
      return;
    }
    const std::set<std::string> names(allowed.begin(), allowed.end());
    for (const auto& [key, value] : j.items()) {
      if (names.count(key)) continue;
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      fail(where_ + ": unknown field '" + text::to_storable(key.substr(0, 100)) + "' (allowed: " + list +
           ")");
      return;
    }
  }

  const Json* get(const char* name) const {
    if (!status_.is_ok() || !j_.contains(name) || j_[name].is_null()) return nullptr;
    return &j_[name];
  }

  void integer(const char* name, int lo, int hi, int& out) {
    const Json* v = get(name);
    if (!v) return;
    if (!v->is_number_integer() || v->get<int64_t>() < lo || v->get<int64_t>() > hi)
      return fail(field(name) + ": expected an integer from " + std::to_string(lo) + " to " +
                  std::to_string(hi));
    out = v->get<int>();
  }

  void number(const char* name, double lo, double hi, double& out) {
    const Json* v = get(name);
    if (!v) return;
    if (!v->is_number() || v->get<double>() < lo || v->get<double>() > hi || std::isnan(v->get<double>()))
      return fail(field(name) + ": expected a number from " + trim_number(lo) + " to " + trim_number(hi));
    out = v->get<double>();
  }

  // Seconds (a number) → milliseconds, within [lo_ms, hi_ms].
  void seconds(const char* name, int64_t lo_ms, int64_t hi_ms, std::chrono::milliseconds& out) {
    double s = -1;
    number(name, static_cast<double>(lo_ms) / 1000, static_cast<double>(hi_ms) / 1000, s);
    if (s >= 0) out = std::chrono::milliseconds(std::llround(s * 1000));
  }

  std::string field(const char* name) const { return where_ + "." + name; }
  void fail(std::string message) {
    if (status_.is_ok()) status_ = Status::invalid(std::move(message));
  }
  const Status& status() const { return status_; }

 private:
  static std::string trim_number(double d) {
    std::string s = std::to_string(d);
    while (s.find('.') != std::string::npos && (s.back() == '0' || s.back() == '.')) {
      const bool dot = s.back() == '.';
      s.pop_back();
      if (dot) break;
    }
    return s;
  }

  const Json& j_;
  std::string where_;
  Status status_ = Status::ok();
};

}  // namespace

StatusOr<ConcurrencyLimit> concurrency_from_json(const Json& j, std::string_view where) {
  ConcurrencyLimit c;
  FieldReader r(j, where, {"key", "max_running", "rate"});
  if (const Json* key = r.get("key")) {
    if (!key->is_string() || key->get<std::string>().empty() || key->get<std::string>().size() > 256 ||
        !text::is_storable(key->get<std::string>()))
      r.fail(r.field("key") + ": expected a non-empty string of at most 256 bytes (UTF-8, no NUL)");
    else
      c.key = key->get<std::string>();
  }
  r.integer("max_running", 0, 100000, c.max_running);
  if (const Json* rate = r.get("rate")) {
    FieldReader rr(*rate, r.field("rate"), {"max", "window_s"});
    rr.integer("max", 1, 1000000, c.rate_max);
    rr.seconds("window_s", 1, kDayMs, c.rate_window);
    if (rr.status().is_ok() && (c.rate_max == 0 || c.rate_window.count() == 0))
      rr.fail(r.field("rate") + ": needs both max and window_s");
    if (!rr.status().is_ok()) r.fail(rr.status().message());
  }
  if (r.status().is_ok() && c.max_running == 0 && c.rate_max == 0)
    r.fail(std::string(where) + ": set max_running, rate, or both");
  if (!r.status().is_ok()) return r.status();
  return c;
}

StatusOr<RetryPolicy> retry_from_json(const Json& j, std::string_view where) {
  RetryPolicy p;
  FieldReader r(j, where, {"max_attempts", "backoff_s", "backoff_max_s", "multiplier", "jitter", "on"});
  r.integer("max_attempts", 1, 100, p.max_attempts);
  r.seconds("backoff_s", 0, kDayMs, p.backoff);
  r.seconds("backoff_max_s", 0, 7 * kDayMs, p.backoff_max);
  r.number("multiplier", 1, 10, p.multiplier);
  r.number("jitter", 0, 1, p.jitter);
  if (const Json* on = r.get("on")) {
    p.on_failure = p.on_timeout = p.on_lost = false;
    bool ok = on->is_array() && !on->empty();
    if (ok) {
      for (const Json& o : *on) {
        const std::string s = o.is_string() ? o.get<std::string>() : "";
        if (s == "failure")
          p.on_failure = true;
        else if (s == "timeout")
          p.on_timeout = true;
        else if (s == "lost")
          p.on_lost = true;
        else
          ok = false;
      }
    }
    if (!ok) r.fail(r.field("on") + ": expected a non-empty array of \"failure\", \"timeout\", \"lost\"");
  }
  if (r.status().is_ok() && !j.contains("backoff_max_s") && p.backoff_max < p.backoff)
    p.backoff_max = p.backoff;
  if (r.status().is_ok() && p.backoff_max < p.backoff)
    r.fail(std::string(where) + ": backoff_max_s is less than backoff_s");
  if (!r.status().is_ok()) return r.status();
  return p;
}

StatusOr<JobLimits> limits_from_json(const Json& j, std::string_view where) {
  JobLimits l;
  FieldReader r(j, where, {"memory_max", "pids_max", "cpu_max"});
  if (const Json* m = r.get("memory_max")) {
    const std::string field = r.field("memory_max");
    auto v = m->is_string() ? validation::parse_size(m->get<std::string>(), field, 4 << 20)
                            : validation::json_integer(*m, field, 4 << 20, int64_t{1} << 50);
    if (!v)
      r.fail(field + ": " + validation::size_expectation(4 << 20));
    else
      l.memory_max = *v;
  }
  if (const Json* p = r.get("pids_max")) {
    auto v = validation::json_integer(*p, r.field("pids_max"), 1, 4194304);
    if (!v)
      r.fail(v.message());
    else
      l.pids_max = *v;
  }
  if (const Json* c = r.get("cpu_max")) {
    const std::string field = r.field("cpu_max");
    auto v = c->is_string() ? validation::parse_cpus(c->get<std::string>(), field)
             : c->is_number() && c->get<double>() >= 0.01 && c->get<double>() <= 1024
                 ? StatusOr<int64_t>(static_cast<int64_t>(c->get<double>() * 1000 + 0.5))
                 : StatusOr<int64_t>(Status::invalid(field + ": " + validation::kCpusExpectation));
    if (!v)
      r.fail(v.message());
    else
      l.cpu_max_milli = *v;
  }
  if (r.status().is_ok() && l.empty()) r.fail(std::string(where) + ": set memory_max, pids_max or cpu_max");
  if (!r.status().is_ok()) return r.status();
  return l;
}

Status validate(const ConcurrencyLimit& c) {
  if (!c.enabled()) return Status::ok();
  if (c.key.size() > 256) return Status::invalid("concurrency key is longer than 256 bytes");
  if (c.max_running < 0 || c.rate_max < 0 || c.rate_window.count() < 0)
    return Status::invalid("concurrency limits must not be negative");
  if (c.max_running == 0 && c.rate_max == 0)
    return Status::invalid("concurrency key '" + c.key + "' has neither max_running nor a rate");
  if (c.rate_max > 0 && c.rate_window.count() == 0)
    return Status::invalid("concurrency key '" + c.key + "': a rate needs a window");
  return Status::ok();
}

Status validate(const RetryPolicy& r) {
  if (r.max_attempts < 1 || r.max_attempts > 100) return Status::invalid("retry max_attempts must be 1..100");
  if (r.backoff.count() < 0 || r.backoff_max < r.backoff)
    return Status::invalid("retry backoff must be >= 0 and backoff_max >= backoff");
  if (r.multiplier < 1 || r.jitter < 0 || r.jitter > 1)
    return Status::invalid("retry multiplier must be >= 1 and jitter within 0..1");
  if (r.enabled() && !r.on_failure && !r.on_timeout && !r.on_lost)
    return Status::invalid("retry policy retries no outcome");
  return Status::ok();
}

namespace {
Json outcomes(const RetryPolicy& r) {
  Json on = Json::array();
  if (r.on_failure) on.push_back("failure");
  if (r.on_timeout) on.push_back("timeout");
  if (r.on_lost) on.push_back("lost");
  return on;
}
}  // namespace

Json to_json(const ConcurrencyLimit& c) {
  Json j = {{"max_running", c.max_running}};
  if (!c.key.empty()) j["key"] = c.key;  // absent = the script's own key
  if (c.rate_max > 0) j["rate"] = {{"max", c.rate_max}, {"window_s", c.rate_window.count() / 1000.0}};
  return j;
}

Json to_json(const RetryPolicy& r) {
  return {{"max_attempts", r.max_attempts},
          {"backoff_s", r.backoff.count() / 1000.0},
          {"backoff_max_s", r.backoff_max.count() / 1000.0},
          {"multiplier", r.multiplier},
          {"jitter", r.jitter},
          {"on", outcomes(r)}};
}

Json to_json(const JobLimits& l) {
  Json j = Json::object();
  if (l.memory_max > 0) j["memory_max"] = l.memory_max;
  if (l.pids_max > 0) j["pids_max"] = l.pids_max;
  if (l.cpu_max_milli > 0) j["cpu_max"] = l.cpu_max_milli / 1000.0;
  return j;
}

Json retry_to_db_json(const RetryPolicy& r) {
  return {{"max_attempts", r.max_attempts},
          {"backoff_ms", r.backoff.count()},
          {"backoff_max_ms", r.backoff_max.count()},
          {"multiplier", r.multiplier},
          {"jitter", r.jitter},
          {"on", outcomes(r)}};
}

}  // namespace quern::queue
