// The request bodies and query strings of every route family, parsed and
// checked without the database: each parser returns the typed request or
// Status::invalid naming the field and what was expected (the route answers
// 400). Numbers are range-checked (never wrapped), durations are finite and
// bounded, tags follow validation::is_tag. Limits: docs/LIMITS.md.
//
// Pure functions, thread-safe (the fuzz targets in tests/fuzz drive them).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/auth/tokens.h"
#include "host/autoscale/autoscale_store.h"
#include "host/jobs/job_builder.h"
#include "host/queue/queue.h"
#include "host/schedule/schedule_store.h"
#include "host/scripts/script_store.h"

namespace quern::server {

using Json = nlohmann::ordered_json;
using Query = std::map<std::string, std::string>;

// Longest a job may be delayed (delay_s, scheduled_for) and longest timeout
// a request may ask for (a server's <queue max-timeout> may lower it).
inline constexpr int64_t kMaxDelaySeconds = 10LL * 366 * 24 * 3600;
inline constexpr int64_t kMaxTimeoutSeconds = 366LL * 24 * 3600;

// --- jobs ---

using jobs::RunRequest;
StatusOr<RunRequest> parse_run_request(const Json& body);

// Inline code of run_inline: language and content (with the request above).
struct InlineCode {
  std::string language;
  std::string content;
};
StatusOr<InlineCode> parse_inline_code(const Json& body);

// An ISO 8601 UTC time ("2026-12-01T08:00:00Z", fractions allowed) between
// 1970 and 9999, of a day the month has. Times from April 2262 on, beyond
// what Clock can count, are Clock::time_point::max().
StatusOr<queue::Clock::time_point> parse_iso_utc(const std::string& text, const std::string& field);

StatusOr<queue::JobFilter> parse_job_filter(const Query& query);

// ?timeout_s= of run_wait_result (seconds, > 0), capped by max.
// ?group=&before_id=&limit= of /api/autoscaling/events.
StatusOr<autoscale::EventFilter> parse_event_filter(const Query& query);
StatusOr<std::chrono::milliseconds> parse_wait(const Query& query, std::chrono::milliseconds max);
// ?offset= of the log routes (a byte offset, default 0).
StatusOr<int64_t> parse_log_offset(const Query& query);

// --- scripts, tokens, schedules ---
StatusOr<scripts::NewScript> parse_deploy(const Json& body);
StatusOr<auth::NewToken> parse_new_token(const Json& body);
StatusOr<schedule::Schedule> parse_schedule(const Json& body);

// --- agents ---
// The lease owner of an agent request: "agent:<token id>:<worker_id>".
StatusOr<std::string> parse_agent_owner(const Json& body, const std::string& token_id);
struct AgentRegistration {
  int slots = 0;
  std::string version, hostname;
  std::string isolation;  // how the agent confines its jobs (sandbox::describe)
  int pid = 0;
};
StatusOr<AgentRegistration> parse_agent_registration(const Json& body);
struct ClaimRequest {
  int slots = 1;
  std::chrono::milliseconds wait{0};
  queue::ClaimCapacity capacity;
};
StatusOr<ClaimRequest> parse_claim_request(const Json& body);
StatusOr<std::vector<queue::Lease>> parse_leases(const Json& body);
// body["chunks"]: required by /api/agent/logs, optional (none) for /api/agent/complete.
StatusOr<std::vector<queue::LogChunk>> parse_log_chunks(const Json& body, bool required = true);
StatusOr<std::vector<queue::Completion>> parse_completions(const Json& body);

}  // namespace quern::server
