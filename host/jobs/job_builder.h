// Building the job a submission enqueues — one builder for every way a job
// enters the queue: the API's run routes, a schedule's tick, and the CLI
// pushing to the database itself (`quern run` without --server, `quern up
// --examples`). No HTTP here: callers parse their own input into a
// Submission and map errors to their own answers.
//
// The steps, in order:
//   1. the script's settings, overridden by the request (tag, priority,
//      timeout, concurrency, retry, resource limits: the job document's
//      "limits", which the worker applies within its group's);
//   2. the config's routing rules (docs/ROUTING.md) for the tag and the
//      priority, as the submitter's token role/group see them ("" for the
//      CLI and for ticks: role and group rules never match);
//   3. a live dedicated worker's tag when neither the request nor a rule
//      names one (Rules::dedicated_alive);
//   4. a gpu job's device request (quern/gpu.hpp) into the queue columns the
//      claim reads; the concurrency key's $path/$language/$args[name]; the
//      config's <limits> numbers for that key;
//   5. the queue's own checks (queue::validate) and the maximum timeout.
// Every error is the submitter's bad input (StatusCode::invalid_argument).
//
// Thread-safety: build_job is a pure function of its arguments (and of
// what dedicated_alive answers).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/common/status.h"
#include "host/queue/queue.h"
#include "host/routing/routing.h"
#include "host/scripts/script_store.h"

namespace quern::jobs {

// What a run request may set on top of the script's settings (0 / empty /
// nullopt = the script's).
struct RunRequest {
  nlohmann::ordered_json args = nlohmann::ordered_json::object();
  std::string tag;
  int priority = 0;
  int timeout_s = 0;
  std::optional<queue::Clock::time_point> scheduled_for;
  std::optional<queue::ConcurrencyLimit> concurrency;  // replaces the script's
  std::optional<queue::RetryPolicy> retry;             // replaces the script's
  std::optional<queue::JobLimits> limits;              // replaces the script's
};

struct Submission {
  scripts::ScriptVersion script;  // inline code: no path and no hash
  RunRequest request;
  std::string role;   // the submitter's token role ("" without a token)
  std::string group;  // the submitter's token group
};

// The operator's rules that every path applies the same way.
struct Rules {
  std::vector<routing::Rule> routing;
  std::vector<queue::ConcurrencyLimit> limits;  // <limits>: replace a job's numbers for the key
  int max_timeout_s = 0;                        // 0 = no maximum
  // Whether a live dedicated worker keeps this script warm; empty = never.
  std::function<bool(const std::string& script_path)> dedicated_alive;
};

StatusOr<queue::NewJob> build_job(const Rules& rules, const Submission& submission);

// A gpu job's request from its args (quern/gpu.hpp): "gpus" (default 1, at
// least 1), "memory_mb" (optional). Errors read "gpu job args: ...", the
// plugin's failure text for the same args. Values above INT_MAX are clamped
// to it (the queue then refuses a request over 1024 GPUs).
struct GpuRequest {
  int gpus = 1;
  int memory_mb = 0;  // per device, 0 = any size
};
StatusOr<GpuRequest> gpu_request_from_args(const nlohmann::json& args);

}  // namespace quern::jobs
