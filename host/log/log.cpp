#include "host/log/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <mutex>
#include <string>

#include <boost/core/null_deleter.hpp>
#include <boost/log/attributes/attribute_value_impl.hpp>
#include <boost/log/attributes/value_extraction.hpp>
#include <boost/log/core.hpp>
#include <boost/log/sinks/sync_frontend.hpp>
#include <boost/log/sinks/text_ostream_backend.hpp>
#include <boost/log/sources/record_ostream.hpp>
#include <boost/log/sources/severity_logger.hpp>
#include <boost/smart_ptr/make_shared_object.hpp>
#include <nlohmann/json.hpp>

#include "host/common/utf8.h"

namespace quern::log {
namespace {

namespace logging = boost::log;
using Clock = std::chrono::system_clock;
using Sink = logging::sinks::synchronous_sink<logging::sinks::text_ostream_backend>;

// Attribute names of a record ("Severity" comes from the logger, "Message"
// from the record stream), looked up once: a name made from a string takes a
// lock in Boost.Log's name repository.
struct Names {
  logging::attribute_name severity{"Severity"}, message{"Message"};
  logging::attribute_name component{"Component"}, worker{"Worker"}, job{"Job"}, time{"TimeStamp"};
};
const Names& names() {
  static const Names n;
  return n;
}

std::atomic<Severity> g_level{Severity::info};
std::atomic<bool> g_configured{false};
std::mutex g_configure_mu;       // serializes configure()
boost::shared_ptr<Sink> g_sink;  // the sink configure() installed last (under g_configure_mu)

// One logger for the process; records carry their component and fields as
// attribute values, so no logger per component is needed. Never destroyed:
// threads may still log while static objects are torn down at exit.
logging::sources::severity_logger_mt<Severity>& logger() {
  static auto* lg = new logging::sources::severity_logger_mt<Severity>();
  return *lg;
}

// 2026-12-06T20:51:27.123Z
std::string format_time(Clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // 25 bytes; room for any int the compiler cannot rule out
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms - int64_t{secs} * 1000));
  return buf;
}

// Appends `in` so that it cannot end or break the line: valid UTF-8 (bad
// bytes become U+FFFD), control characters as \n, \r, \t or \xNN.
void append_escaped(std::string& out, std::string_view in) {
  std::string repaired;
  if (!text::is_valid_utf8(in)) {
    // NUL is valid UTF-8 and no part of a multibyte sequence: repair the
    // text between NULs, so that a NUL is escaped below like any control
    // character rather than turned into U+FFFD.
    for (size_t at = 0;;) {
      const size_t nul = in.find('\0', at);
      text::append_storable(repaired, in.substr(at, nul == std::string_view::npos ? nul : nul - at));
      if (nul == std::string_view::npos) break;
      repaired += '\0';
      at = nul + 1;
    }
    in = repaired;
  }
  for (const char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7f) {
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      char buf[5];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
}

// What a record carries, read back from its attribute values.
struct Parts {
  std::string time;
  const char* level = "info";
  std::string_view component, worker, message;
  int64_t job = 0;
};

Parts parts_of(const logging::record_view& rec) {
  const Names& n = names();
  Parts p;
  if (auto t = logging::extract<Clock::time_point>(n.time, rec)) p.time = format_time(*t);
  if (auto s = logging::extract<Severity>(n.severity, rec)) p.level = to_string(*s);
  if (auto c = logging::extract<std::string>(n.component, rec)) p.component = *c;
  if (auto w = logging::extract<std::string>(n.worker, rec)) p.worker = *w;
  if (auto j = logging::extract<int64_t>(n.job, rec)) p.job = *j;
  if (auto m = logging::extract<std::string>(n.message, rec)) p.message = *m;
  return p;
}

void format_text(const logging::record_view& rec, logging::formatting_ostream& out) {
  const Parts p = parts_of(rec);
  std::string line = p.time + " " + p.level + " ";
  append_escaped(line, p.component);
  if (!p.worker.empty()) {
    line += ' ';
    append_escaped(line, p.worker);
  }
  if (p.job != 0) line += " job " + std::to_string(p.job);
  line += ": ";
  append_escaped(line, p.message);
  out << line;
}

void format_json(const logging::record_view& rec, logging::formatting_ostream& out) {
  const Parts p = parts_of(rec);
  nlohmann::ordered_json j;
  j["time"] = p.time;
  j["level"] = p.level;
  j["component"] = p.component;
  if (!p.worker.empty()) j["worker"] = p.worker;
  if (p.job != 0) j["job"] = p.job;
  j["message"] = p.message;
  // replace: invalid UTF-8 becomes U+FFFD instead of an exception.
  out << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void configure_locked(const Options& options, std::ostream* out) {
  auto backend = boost::make_shared<logging::sinks::text_ostream_backend>();
  backend->add_stream(
      boost::shared_ptr<std::ostream>(out != nullptr ? out : &std::cerr, boost::null_deleter()));
  backend->auto_flush(true);  // a record is on its way out when write() returns
  auto sink = boost::make_shared<Sink>(backend);
  if (options.json) {
    sink->set_formatter(&format_json);
  } else {
    sink->set_formatter(&format_text);
  }
  const Severity level = options.level;
  sink->set_filter([level](const logging::attribute_value_set& values) {
    auto s = logging::extract<Severity>(names().severity, values);
    return s && *s >= level;
  });
  g_level.store(level, std::memory_order_relaxed);
  // The new sink first, then the old one out: a concurrent record is never
  // lost. Any sink at all also turns off Boost.Log's default sink.
  auto core = logging::core::get();
  core->add_sink(sink);
  if (g_sink) core->remove_sink(g_sink);
  g_sink = sink;
  g_configured.store(true, std::memory_order_release);
}

// The default output (text, info, stderr) when nobody configured one.
void ensure_configured() {
  if (g_configured.load(std::memory_order_acquire)) return;
  std::lock_guard lock(g_configure_mu);
  if (!g_configured.load(std::memory_order_relaxed)) configure_locked(Options{}, nullptr);
}

}  // namespace

const char* to_string(Severity severity) {
  switch (severity) {
    case Severity::debug:
      return "debug";
    case Severity::info:
      return "info";
    case Severity::warning:
      return "warning";
    case Severity::error:
      return "error";
  }
  return "info";
}

StatusOr<Severity> parse_severity(std::string_view text) {
  for (Severity s : {Severity::debug, Severity::info, Severity::warning, Severity::error})
    if (text == to_string(s)) return s;
  return Status::invalid("unknown log level '" + std::string(text) +
                         "': expected one of debug, info, warning, error");
}

Status parse_format(std::string_view text, Options& options) {
  if (text == "text" || text == "json") {
    options.json = text == "json";
    return Status::ok();
  }
  return Status::invalid("unknown log format '" + std::string(text) + "': expected text or json");
}

void configure(const Options& options, std::ostream* out) {
  std::lock_guard lock(g_configure_mu);
  configure_locked(options, out);
}

bool enabled(Severity severity) { return severity >= g_level.load(std::memory_order_relaxed); }

void write(Severity severity, std::string_view component, std::string_view message, const Fields& fields) {
  if (!enabled(severity)) return;
  ensure_configured();
  // Logging must never take down the thread that logs (bad_alloc aside,
  // Boost.Log reports sink errors as exceptions).
  try {
    auto& lg = logger();
    logging::record rec = lg.open_record(logging::keywords::severity = severity);
    if (!rec) return;
    const Names& n = names();
    auto& values = rec.attribute_values();
    values.insert(n.time, logging::attributes::make_attribute_value(Clock::now()));
    values.insert(n.component, logging::attributes::make_attribute_value(std::string(component)));
    if (!fields.worker.empty())
      values.insert(n.worker, logging::attributes::make_attribute_value(std::string(fields.worker)));
    if (fields.job != 0) values.insert(n.job, logging::attributes::make_attribute_value(fields.job));
    {
      logging::record_ostream stream(rec);
      stream << message;
      stream.flush();
    }
    lg.push_record(std::move(rec));
  } catch (...) {
  }
}

}  // namespace quern::log
