// The listing commands' tables for people (`quern queue`, `quern job list`,
// `quern job get`, `quern script`, `quern schedule`, `quern token`): each
// function takes the API's JSON answer exactly as the server sends it and
// writes aligned columns (print_table, below) to `out`. `--json` prints
// the document itself instead.
//
// Nothing here throws on an odd document: a missing field, a null or a value
// of an unexpected type prints as "-", and fields the API adds later are
// ignored. Text from the server is made one line (control characters become
// spaces, a newline "⏎") and long free text is cut with "…", so that one
// row stays one line. An empty list prints one sentence ("no jobs").
//
// Times are the API's RFC 3339 strings ("2026-12-07T10:00:00.123456Z"),
// shown relative to `now` ("12s ago", "in 5m"); `now` defaults to the system
// clock and is a parameter so that tests are deterministic.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace quern::cli {

using TablesClock = std::chrono::system_clock;

// Rows (the first is the header) as columns two spaces apart, each as wide
// as its widest cell in characters (UTF-8 code points; wide CJK characters
// count as one).
void print_table(const std::vector<std::vector<std::string>>& rows, std::ostream& out);

// GET /api/queue ({"tags": [...]}): TAG WAITING SCHEDULED RUNNING OLDEST-WAIT
// SERVED (yes, no, or the autoscaler's note), then — when some tag has more
// than one priority waiting — TAG PRIORITY WAITING OLDEST-WAIT.
void print_queue(const nlohmann::ordered_json& doc, std::ostream& out);

// GET /api/queue/limits ({"keys": [...]}): KEY MAX-RUNNING RATE RUNNING
// WAITING STARTED (in the current rate window).
void print_queue_limits(const nlohmann::ordered_json& doc, std::ostream& out);

// GET /api/jobs ({"jobs": [...]}): ID STATE TAG SCRIPT CREATED DURATION WORKER.
void print_jobs(const nlohmann::ordered_json& doc, std::ostream& out,
                TablesClock::time_point now = TablesClock::now());

// GET /api/jobs/{id}: one "key: value" line per field, then the earlier
// attempts as a table when the job has any.
void print_job(const nlohmann::ordered_json& doc, std::ostream& out,
               TablesClock::time_point now = TablesClock::now());

// GET /api/scripts ({"scripts": [...]}): PATH LANGUAGE TAG HASH DEPLOYED-BY
// CREATED SUMMARY (and ARCHIVED when the list holds an archived script).
void print_scripts(const nlohmann::ordered_json& doc, std::ostream& out,
                   TablesClock::time_point now = TablesClock::now());

// GET /api/scripts/versions/{path} ({"versions": [...]}): HASH CREATED
// LANGUAGE TAG DEPLOYED-BY SUMMARY.
void print_script_versions(const nlohmann::ordered_json& doc, std::ostream& out,
                           TablesClock::time_point now = TablesClock::now());

// GET /api/schedules ({"schedules": [...]}): NAME CRON TZ SCRIPT NEXT PAUSED
// LAST-FIRED LAST-JOB LAST-ERROR.
void print_schedules(const nlohmann::ordered_json& doc, std::ostream& out,
                     TablesClock::time_point now = TablesClock::now());

// GET /api/tokens ({"tokens": [...]}): ID ROLE GROUP TAGS LABEL CREATED
// EXPIRES REVOKED LAST-USED.
void print_tokens(const nlohmann::ordered_json& doc, std::ostream& out,
                  TablesClock::time_point now = TablesClock::now());

// GET /api/autoscaling/events ({"events": [...]}): ID AT (UTC) GROUP FROM
// TO OUTCOME (with its error) REASON.
void print_autoscale_events(const nlohmann::ordered_json& doc, std::ostream& out);
// GET /api/autoscaling/groups ({"groups": [...]}): GROUP INTEGRATION MIN MAX
// DESIRED CHANGED (UTC) DECIDED (UTC) REASON.
void print_autoscale_groups(const nlohmann::ordered_json& doc, std::ostream& out);

// The pieces, for other commands' messages.

// An RFC 3339 time ("2026-12-07T10:00:00.123456Z", "…+02:00"); nullopt when
// it is not one.
std::optional<TablesClock::time_point> parse_api_time(std::string_view text);

// A JSON time as an age against `now`: "12s ago", "3m ago", "2h ago", "4d ago",
// or "in 5m" for a time to come; "-" for null or a missing value, the text
// itself (made one line) when it is not a time.
std::string relative_time(const nlohmann::ordered_json& when, TablesClock::time_point now);

// A length of time: "340ms", "4.2s", "12s", "3m04s", "2h05m", "4d03h"; "-"
// when negative or not a number.
std::string format_duration(double seconds);

// `text` on one line, cut to at most `max_chars` characters (code points)
// with a final "…": "\n" becomes "⏎" ("\r\n" too), every other control
// character (C0, DEL, C1) a space; other UTF-8 is kept whole.
std::string one_line(std::string_view text, size_t max_chars = 80);

}  // namespace quern::cli
