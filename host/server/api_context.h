// Internals shared by the route files of the API: connection pools, the
// authenticated-route helper, and JSON conversions.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "host/auth/permissions.h"
#include "host/auth/tokens.h"
#include "host/schedule/schedule_store.h"
#include "host/schedule/scheduler.h"
#include "host/scripts/script_store.h"
#include "host/server/api.h"
#include "host/server/job_waiters.h"
#include "host/server/pool.h"

namespace quern::server {

struct ApiContext {
  explicit ApiContext(ApiOptions o);

  ApiOptions options;
  Pool<queue::Queue> queues;
  Pool<auth::TokenStore> tokens;
  Pool<scripts::ScriptStore> scripts;
  Pool<schedule::ScheduleStore> schedules;
  JobWaiters waiters;  // run_wait_result: woken by the job's NOTIFY

  // Whether a live dedicated worker keeps this script warm; cached for a
  // second so that webhook runs don't pay a query each.
  bool dedicated_worker_alive(const std::string& script_path);

 private:
  std::mutex dedicated_mu_;
  std::map<std::string, std::pair<bool, std::chrono::steady_clock::time_point>> dedicated_cache_;  // guarded
};

// What a run request may set on top of the script's settings.
struct RunRequest {
  nlohmann::ordered_json args = nlohmann::ordered_json::object();
  std::string tag;
  int priority = 0;
  int timeout_s = 0;
  std::optional<queue::Clock::time_point> scheduled_for;
  std::optional<queue::ConcurrencyLimit> concurrency;  // replaces the script's
  std::optional<queue::RetryPolicy> retry;             // replaces the script's
};

// The job a run of script version `v` (an inline one has no path or hash)
// with request `r` enqueues — for the run routes and for a schedule's tick:
// the script's settings overridden by the request; the config's routing
// rules (docs/ROUTING.md) for the tag and priority, as the submitter's token
// role/group see them ("" for a tick, which matches no role or group rule);
// a live dedicated worker's tag when neither names one; then completed (GPU
// request, concurrency key substitution, the config's <limits>) and checked
// against the queue's rules and the server's maximum timeout. An error is
// the caller's bad input (the run routes answer 400).
StatusOr<queue::NewJob> job_for_run(ApiContext& ctx, const std::string& role, const std::string& group,
                                    const scripts::ScriptVersion& v, const RunRequest& r);

using AuthedHandler = std::function<http::Response(const http::Request&, const auth::Principal&)>;

// Registers a route that authenticates the bearer token and checks
// `permission` before calling the handler: 401 without a valid token, 403
// when the role lacks the permission.
void add_route(ApiContext& ctx, http::Router& router, const std::string& method, const std::string& pattern,
               const std::string& permission, const std::string& summary, AuthedHandler handler);

// Parses the body as a JSON object ({} when empty). Errors name what was wrong.
StatusOr<nlohmann::ordered_json> body_object(const http::Request& req);

// 400 / 404 / 500 shortcuts in the one error shape.
http::Response bad_request(const std::string& message);
http::Response not_found(const std::string& message);
http::Response unavailable(const Status& status);  // database trouble → 503
http::Response json_ok(const nlohmann::ordered_json& body, int status = 200);

std::string iso_time(queue::Clock::time_point t);
nlohmann::ordered_json job_json(const queue::JobRecord& j, bool with_code = false);

// Route registration per area.
void add_job_routes(ApiContext& ctx, http::Router& router);
void add_script_routes(ApiContext& ctx, http::Router& router);
void add_admin_routes(ApiContext& ctx, http::Router& router);
void add_agent_routes(ApiContext& ctx, http::Router& router);
void add_schedule_routes(ApiContext& ctx, http::Router& router);

// What the server's scheduler pushes for a schedule's tick: a run of the
// script's latest version with the schedule's args, tag and priority, built
// like a run request's job (api_schedules.cpp).
schedule::JobBuilder schedule_job_builder(ApiContext& ctx);

}  // namespace quern::server
