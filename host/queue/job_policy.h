// Per-job policies that the queue enforces: concurrency/rate limits and
// retries (docs/LIMITS.md, its Retries section). Scripts carry them in their
// settings, run requests may override them; both use the JSON shapes below.
//
//   "concurrency": {"key": "api:stripe", "max_running": 3,
//                   "rate": {"max": 100, "window_s": 60}}
//   "retry": {"max_attempts": 5, "backoff_s": 1, "backoff_max_s": 300,
//             "multiplier": 2, "jitter": 0.2, "on": ["failure", "timeout", "lost"]}
//   "limits": {"memory_max": "256M", "pids_max": 100, "cpu_max": 0.5}
//
// Parsing is strict: unknown keys and out-of-range values are errors naming
// the field ("retry.max_attempts: expected an integer from 1 to 100").
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "host/common/status.h"

namespace quern::queue {

// At most max_running jobs with this key run at once (0 = no cap), and at
// most rate_max of them start in any sliding window of rate_window (0 = no
// rate limit). An empty key means no limit. The limits row of a key is the
// one the latest submitted job carried.
struct ConcurrencyLimit {
  std::string key;  // may hold $path / $args[name]; substituted at submission
  int max_running = 0;
  int rate_max = 0;
  std::chrono::milliseconds rate_window{0};

  bool enabled() const { return !key.empty(); }
  bool operator==(const ConcurrencyLimit&) const = default;
};

// Retries of a job: up to max_attempts runs in all; after a retried outcome
// the job waits backoff * multiplier^(retries so far), capped at backoff_max,
// minus up to `jitter` (0..1) of that, chosen at random.
struct RetryPolicy {
  int max_attempts = 1;  // 1 = never retried
  std::chrono::milliseconds backoff{1000};
  std::chrono::milliseconds backoff_max{300000};
  double multiplier = 2.0;
  double jitter = 0.2;
  bool on_failure = true;
  bool on_timeout = true;
  bool on_lost = false;  // a lost worker; without it lost leases follow max_restarts

  bool enabled() const { return max_attempts > 1; }
  bool operator==(const RetryPolicy&) const = default;
};

// Resource limits a script (or a run request) asks for its jobs. They can
// only tighten what the worker group allows (its <group memory-max ...>):
// the worker applies the smaller of each pair. 0 = the group's.
struct JobLimits {
  int64_t memory_max = 0;     // bytes; at least 4 MiB when set
  int64_t pids_max = 0;       // 1..4194304
  int64_t cpu_max_milli = 0;  // thousandths of a CPU, 10..1024000

  bool empty() const { return memory_max == 0 && pids_max == 0 && cpu_max_milli == 0; }
  bool operator==(const JobLimits&) const = default;
};

// `where` prefixes messages (e.g. "concurrency" or "settings.retry").
StatusOr<ConcurrencyLimit> concurrency_from_json(const nlohmann::json& j, std::string_view where);
StatusOr<RetryPolicy> retry_from_json(const nlohmann::json& j, std::string_view where);
// memory_max: a size text ("256M") or whole bytes; cpu_max: a number of CPUs
// or its text ("0.5"). At least one must be set.
StatusOr<JobLimits> limits_from_json(const nlohmann::json& j, std::string_view where);
Status validate(const ConcurrencyLimit& c);  // key given (substituted), ranges
Status validate(const RetryPolicy& r);

// The API shapes above (durations in seconds).
nlohmann::json to_json(const ConcurrencyLimit& c);
nlohmann::json to_json(const RetryPolicy& r);
// memory_max in bytes, cpu_max in CPUs; unset fields are left out. The
// job document carries this as "limits" (limits_from_json reads it back).
nlohmann::json to_json(const JobLimits& l);
// The stored retry policy (quern.queue.retry): durations in milliseconds.
nlohmann::json retry_to_db_json(const RetryPolicy& r);

}  // namespace quern::queue
