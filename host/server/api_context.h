// Internals shared by the route files of the API: connection pools, the
// authenticated-route helper, and JSON conversions.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "host/auth/permissions.h"
#include "host/auth/token_cache.h"
#include "host/auth/tokens.h"
#include "host/autoscale/autoscale_store.h"
#include "host/common/time_text.h"
#include "host/jobs/job_builder.h"
#include "host/pg/session.h"
#include "host/schedule/schedule_store.h"
#include "host/schedule/scheduler.h"
#include "host/scripts/script_store.h"
#include "host/server/api.h"
#include "host/server/api_requests.h"
#include "host/server/job_waiters.h"
#include "host/server/pool.h"

namespace quern::server {

// One database session and every store over it: what a request borrows,
// so that a request holds at most one connection.
struct Db {
  std::shared_ptr<pg::Session> session;
  std::unique_ptr<queue::Queue> queue;
  std::unique_ptr<auth::TokenStore> tokens;
  std::unique_ptr<scripts::ScriptStore> scripts;
  std::unique_ptr<schedule::ScheduleStore> schedules;
  std::unique_ptr<autoscale::AutoscaleStore> autoscale;
};
using DbPool = Pool<Db>;

// A request's borrowed Db. A handler that waits long without the database
// (run_wait_result, agent long polls) release()s it and reacquire()s it
// when it needs it again, so a waiting request holds no connection.
class DbLease {
 public:
  DbLease(DbPool& pool, DbPool::Lease lease) : pool_(pool), lease_(std::move(lease)) {}
  queue::Queue& queue() { return *(*lease_)->queue; }
  auth::TokenStore& tokens() { return *(*lease_)->tokens; }
  scripts::ScriptStore& scripts() { return *(*lease_)->scripts; }
  schedule::ScheduleStore& schedules() { return *(*lease_)->schedules; }
  autoscale::AutoscaleStore& autoscale() { return *(*lease_)->autoscale; }
  void release() { lease_.reset(); }
  Status reacquire();
  bool held() const { return lease_.has_value(); }

 private:
  DbPool& pool_;
  std::optional<DbPool::Lease> lease_;
};

struct ApiContext {
  explicit ApiContext(ApiOptions o);

  ApiOptions options;
  jobs::Rules rules;   // from options: routing, <limits>, max timeout (dedicated_alive per request)
  DbPool pool;         // the API's connection budget (ApiOptions::db_connections)
  JobWaiters waiters;  // run_wait_result and agent long polls: woken by NOTIFY, one connection
  // Confirmed tokens (thread-safe), fed by waiters with the database's token
  // changes: token_feed forgets a token as soon as its row changes.
  auth::TokenCache token_cache;
  std::unique_ptr<JobWaiters::TagWatch> token_feed;  // null when the cache is off

  // Borrows a Db (for work outside a request: streams, the scheduler).
  StatusOr<DbLease> acquire();
  // The principal of a bearer token (nullopt: unknown, expired or revoked):
  // from token_cache when it may answer, else from db (then remembered).
  StatusOr<std::optional<auth::Principal>> authenticate(std::string_view token, DbLease& db);

  // Whether a live dedicated worker keeps this script warm; cached for a
  // second so that webhook runs don't pay a query each (asked on q).
  bool dedicated_worker_alive(queue::Queue& q, const std::string& script_path);
  // Whether a live worker serves `tag` (dedicated workers serve
  // "dedicated:PATH"); cached for a second per tag, asked on q when stale.
  bool tag_served(queue::Queue& q, const std::string& tag);

 private:
  std::mutex served_mu_;
  std::map<std::string, std::pair<bool, std::chrono::steady_clock::time_point>> served_cache_;  // guarded
};

// The job a run of script version `v` (an inline one has no path or hash)
// with request `r` enqueues — for the run routes and for a schedule's tick
// (role and group "") — by the one job builder (host/jobs/job_builder.h)
// with this server's rules, asking q whether a dedicated worker is live. An
// error is the caller's bad input (the run routes answer 400).
StatusOr<queue::NewJob> job_for_run(ApiContext& ctx, queue::Queue& q, const std::string& role,
                                    const std::string& group, const scripts::ScriptVersion& v,
                                    const RunRequest& r);

using AuthedHandler =
    std::function<http::Response(const http::Request&, const auth::Principal&, DbLease& db)>;

// Registers a route that borrows the request's Db, authenticates the bearer
// token — or, without an Authorization header, the UI session's cookie — and
// checks `permission` before calling the handler: 401 without a valid token,
// 403 when the role lacks the permission (or when a cookie-authenticated
// request other than GET lacks the X-Quern-UI header: CSRF), 503
// (Retry-After) when no connection frees up in time.
void add_route(ApiContext& ctx, http::Router& router, const std::string& method, const std::string& pattern,
               const std::string& permission, const std::string& summary, AuthedHandler handler);

// Parses the body as a JSON object ({} when empty), depth-bounded
// (json_input). Errors name what was wrong.
StatusOr<nlohmann::ordered_json> body_object(const http::Request& req);

// Shortcuts in the one error shape.
http::Response bad_request(const std::string& message);
http::Response not_found(const std::string& message);
// The answer for a failed Status, by its code: invalid_argument 400,
// not_found 404, conflict 409, unavailable 503 (with Retry-After), internal
// 500. The one place where a Status becomes an HTTP status.
http::Response error_response(const Status& status);
http::Response json_ok(const nlohmann::ordered_json& body, int status = 200);

using ::quern::iso_time;  // host/common/time_text.h
nlohmann::ordered_json job_json(const queue::JobRecord& j, bool with_code = false);

// Route registration per area.
void add_job_routes(ApiContext& ctx, http::Router& router);
void add_script_routes(ApiContext& ctx, http::Router& router);
void add_admin_routes(ApiContext& ctx, http::Router& router);
// The readiness check of /readyz (Api::ready).
Status ready(ApiContext& ctx);
void add_agent_routes(ApiContext& ctx, http::Router& router);
void add_schedule_routes(ApiContext& ctx, http::Router& router);
void add_autoscale_routes(ApiContext& ctx, http::Router& router);
// The web UI: its files, login/logout and /api/me (api_ui.cpp).
void add_ui_routes(ApiContext& ctx, http::Router& router);

// The UI session's cookie: it holds the token (api_ui.cpp says why).
inline constexpr const char* kSessionCookie = "quern_session";
// The header a cookie-authenticated request that changes state must carry.
inline constexpr const char* kUiHeader = "x-quern-ui";

// What the server's scheduler pushes for a schedule's tick: a run of the
// script's latest version with the schedule's args, tag and priority, built
// like a run request's job (api_schedules.cpp).
schedule::JobBuilder schedule_job_builder(ApiContext& ctx);

}  // namespace quern::server
