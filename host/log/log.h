// quern::log: the one log facility of every Quern process (docs/OPERATIONS.md,
// "Logs"). Each record has a severity, a component (which part of Quern
// speaks: "http", "server", "worker", "scheduler", "retention", "agent",
// "up", "metrics"), a message and optional fields (the worker's id, the job's
// id), and goes to stderr as one line:
//
//   text (default)  2026-12-06T20:51:27.123Z warning worker w-1 job 42: message
//   json            {"time":"...","level":"warning","component":"worker",
//                    "worker":"w-1","job":42,"message":"..."}
//
// Time is UTC with milliseconds. One record is always one line: in text,
// control characters of the message and the fields are escaped (`\n`,
// `\t`, `\x1b`) and invalid UTF-8 becomes U+FFFD; in JSON, nlohmann's
// escaping does the same. Built on Boost.Log: a severity logger, per-record
// attribute values ("Component", "Worker", "Job", "TimeStamp") and one
// synchronous sink.
//
// Before configure() is called (library users, tests), records go to stderr
// in the text format at level info.
//
// Thread-safety: write() and its helpers may be called from any thread at
// once; the sink is synchronous and holds a lock while it writes a record, so
// lines of concurrent writers never interleave. configure() may be called
// again at any time (tests reconfigure); a record written concurrently with
// it goes to the old output, the new one or, during the switch, both.
#pragma once

#include <cstdint>
#include <ostream>
#include <string_view>

#include "host/common/status.h"

namespace quern::log {

enum class Severity { debug, info, warning, error };

// "debug", "info", "warning", "error".
const char* to_string(Severity severity);
// The inverse of to_string; the error names the value and the allowed ones.
StatusOr<Severity> parse_severity(std::string_view text);

struct Options {
  Severity level = Severity::info;  // records below it are dropped
  bool json = false;                // JSON lines instead of text
};

// "text" or "json" into options.json; the error names the value and the
// allowed ones.
Status parse_format(std::string_view text, Options& options);

// Replaces the output: records at options.level and above go to `out`
// (stderr when null) in the chosen format. A stream passed here must outlive
// the next configure() call; Quern's processes configure stderr once, in
// main(), before their threads start.
void configure(const Options& options, std::ostream* out = nullptr);

// What a record is about besides its component; empty / 0 leave a field out.
struct Fields {
  std::string_view worker;  // the worker's (or agent's) id
  int64_t job = 0;          // the job's id; 0: none
};

// Whether a record of this severity would be written: callers skip building
// an expensive message when it would not.
bool enabled(Severity severity);

void write(Severity severity, std::string_view component, std::string_view message,
           const Fields& fields = {});

inline void debug(std::string_view component, std::string_view message, const Fields& fields = {}) {
  write(Severity::debug, component, message, fields);
}
inline void info(std::string_view component, std::string_view message, const Fields& fields = {}) {
  write(Severity::info, component, message, fields);
}
inline void warning(std::string_view component, std::string_view message, const Fields& fields = {}) {
  write(Severity::warning, component, message, fields);
}
inline void error(std::string_view component, std::string_view message, const Fields& fields = {}) {
  write(Severity::error, component, message, fields);
}

}  // namespace quern::log
