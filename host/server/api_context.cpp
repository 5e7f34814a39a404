#include "host/server/api_context.h"

#include <ctime>

namespace quern::server {

ApiContext::ApiContext(ApiOptions o)
    : options(std::move(o)),
      queues([this] { return queue::Queue::connect(options.database_url, options.queue_options); },
             options.pool_size),
      tokens([this] { return auth::TokenStore::connect(options.database_url); }, options.pool_size),
      scripts([this] { return scripts::ScriptStore::connect(options.database_url); }, options.pool_size),
      schedules([this] { return schedule::ScheduleStore::connect(options.database_url); }, options.pool_size),
      waiters(options.database_url) {}

bool ApiContext::dedicated_worker_alive(const std::string& script_path) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(dedicated_mu_);
    auto it = dedicated_cache_.find(script_path);
    if (it != dedicated_cache_.end() && it->second.second > now) return it->second.first;
  }
  bool alive = false;
  if (auto q = queues.acquire()) {
    auto served = (*q)->tag_is_served("dedicated:" + script_path, options.live_within);
    alive = served && *served;
  }
  std::lock_guard lock(dedicated_mu_);
  dedicated_cache_[script_path] = {alive, now + std::chrono::seconds(1)};
  return alive;
}

Api::Api(ApiOptions options) : ctx_(std::make_unique<ApiContext>(std::move(options))) {}
Api::~Api() = default;

void Api::register_routes(http::Router& router) {
  add_admin_routes(*ctx_, router);
  add_script_routes(*ctx_, router);
  add_job_routes(*ctx_, router);
  add_agent_routes(*ctx_, router);
  add_schedule_routes(*ctx_, router);
}

schedule::JobBuilder Api::schedule_job_builder() { return server::schedule_job_builder(*ctx_); }

void add_route(ApiContext& ctx, http::Router& router, const std::string& method, const std::string& pattern,
               const std::string& permission, const std::string& summary, AuthedHandler handler) {
  http::Route route;
  route.method = method;
  route.pattern = pattern;
  route.permission = permission;
  route.summary = summary;
  route.handler = [&ctx, permission, handler = std::move(handler)](const http::Request& req) {
    const std::string& authz = req.header("authorization");
    const std::string prefix = "Bearer ";
    if (authz.size() <= prefix.size() || authz.compare(0, prefix.size(), prefix) != 0)
      return http::json_error(401, "missing_token", "send Authorization: Bearer <token>");
    auto store = ctx.tokens.acquire();
    if (!store) return unavailable(store.status());
    auto principal = (*store)->authenticate(std::string_view(authz).substr(prefix.size()));
    if (!principal) return unavailable(principal.status());
    if (!*principal)
      return http::json_error(401, "invalid_token", "the token is unknown, expired or revoked");
    if (!auth::allowed((*principal)->role, permission))
      return http::json_error(
          403, "forbidden",
          std::string("role ") + auth::to_string((*principal)->role) + " may not " + permission);
    return handler(req, **principal);
  };
  router.add(std::move(route));
}

StatusOr<nlohmann::ordered_json> body_object(const http::Request& req) {
  if (req.body.empty()) return nlohmann::ordered_json::object();
  auto parsed = nlohmann::ordered_json::parse(req.body, nullptr, false);
  if (parsed.is_discarded()) return Status::error("the request body is not valid JSON");
  if (!parsed.is_object()) return Status::error("the request body must be a JSON object");
  return parsed;
}

http::Response bad_request(const std::string& message) {
  return http::json_error(400, "bad_request", message);
}
http::Response not_found(const std::string& message) { return http::json_error(404, "not_found", message); }
http::Response unavailable(const Status& status) {
  return http::json_error(503, "unavailable", status.message());
}
http::Response json_ok(const nlohmann::ordered_json& body, int status) {
  return http::json_response(status, body.dump());
}

std::string iso_time(queue::Clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof(out), "%s.%06lldZ", buf, static_cast<long long>(us % 1000000));
  return out;
}

nlohmann::ordered_json job_json(const queue::JobRecord& j, bool with_code) {
  nlohmann::ordered_json o;
  o["id"] = j.id;
  o["state"] = j.state;
  o["tag"] = j.tag;
  o["language"] = j.language;
  o["script_path"] = j.script_path;
  if (j.payload.contains("script_hash")) o["script_hash"] = j.payload["script_hash"];
  o["priority"] = j.priority;
  o["attempt"] = j.attempt;
  o["worker_id"] = j.worker_id;
  o["args"] = j.payload.contains("args") ? j.payload["args"] : nlohmann::ordered_json::object();
  if (with_code && j.payload.contains("code")) o["code"] = j.payload["code"];
  o["result"] = j.result;
  o["error"] = j.error;
  o["created_at"] = iso_time(j.created_at);
  o["started_at"] = j.started_at ? nlohmann::ordered_json(iso_time(*j.started_at)) : nullptr;
  o["completed_at"] = j.completed_at ? nlohmann::ordered_json(iso_time(*j.completed_at)) : nullptr;
  if (j.started_at && j.completed_at)
    o["duration_ms"] = std::chrono::duration<double, std::milli>(*j.completed_at - *j.started_at).count();
  o["cancel_requested"] = j.cancel_requested;
  if (!j.concurrency_key.empty()) o["concurrency_key"] = j.concurrency_key;
  if (!j.attempts.empty()) {
    nlohmann::ordered_json attempts = nlohmann::ordered_json::array();
    for (const queue::AttemptRecord& a : j.attempts) {
      attempts.push_back(
          {{"attempt", a.attempt},
           {"status", a.status},
           {"error", a.error},
           {"worker_id", a.worker_id},
           {"started_at", a.started_at ? nlohmann::ordered_json(iso_time(*a.started_at)) : nullptr},
           {"ended_at", iso_time(a.ended_at)},
           {"retry_at", a.retry_at ? nlohmann::ordered_json(iso_time(*a.retry_at)) : nullptr}});
    }
    o["attempts"] = std::move(attempts);
  }
  return o;
}

}  // namespace quern::server
