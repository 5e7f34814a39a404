#include "host/server/api_context.h"

#include <algorithm>
#include <ctime>

#include "host/common/json_input.h"

namespace quern::server {

namespace {

StatusOr<std::unique_ptr<Db>> open_db(const ApiOptions& o) {
  auto db = std::make_unique<Db>();
  pg::SessionOptions so;
  so.application_name = "quern server (api)";
  db->session = std::make_shared<pg::Session>(o.database_url, so);
  if (Status s = db->session->open("connect to the database"); !s) return s;
  db->queue = queue::Queue::over(db->session, o.queue_options);
  db->tokens = auth::TokenStore::over(db->session);
  db->scripts = scripts::ScriptStore::over(db->session);
  db->schedules = schedule::ScheduleStore::over(db->session);
  db->autoscale = autoscale::AutoscaleStore::over(db->session);
  return db;
}

DbPool::Options pool_options(const ApiOptions& o) {
  DbPool::Options p;
  p.max_size = std::max<size_t>(1, o.db_connections);
  p.idle_timeout = o.db_idle_timeout;
  return p;
}

}  // namespace

ApiContext::ApiContext(ApiOptions o)
    : options(std::move(o)),
      rules{options.routing_rules, options.limits, options.max_timeout_s, nullptr},
      pool([this] { return open_db(options); }, pool_options(options),
           // A connection that the server closed while it sat idle (a
           // restart) is replaced here, before a request can fail on it.
           [](Db& db) { db.session->check_alive(); }),
      waiters(options.database_url),
      token_cache(auth::TokenCache::Options{options.token_cache_max_age}) {
  if (options.token_cache_max_age.count() > 0)
    token_feed = waiters.watch_channel(auth::kTokensChannel,
                                       [this](const std::string& id) { token_cache.forget(id); });
}

StatusOr<std::optional<auth::Principal>> ApiContext::authenticate(std::string_view token, DbLease& db) {
  if (!token_feed) return db.tokens().authenticate(token);
  const auth::TokenCache::Ticket ticket = token_cache.ticket(waiters.epoch());
  if (auto hit = token_cache.find(token, ticket.epoch, auth::Clock::now())) return hit;
  auto principal = db.tokens().authenticate(token);
  if (principal && *principal)
    token_cache.remember(token, **principal, ticket, waiters.epoch(), auth::Clock::now());
  return principal;
}

StatusOr<DbLease> ApiContext::acquire() {
  auto lease = pool.acquire();
  if (!lease) return lease.status();
  return DbLease(pool, std::move(lease).value());
}

Status DbLease::reacquire() {
  if (lease_) return Status::ok();
  auto lease = pool_.acquire();
  if (!lease) return lease.status();
  lease_.emplace(std::move(lease).value());
  return Status::ok();
}

bool ApiContext::dedicated_worker_alive(queue::Queue& q, const std::string& script_path) {
  return tag_served(q, "dedicated:" + script_path);
}

bool ApiContext::tag_served(queue::Queue& q, const std::string& tag) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(served_mu_);
    auto it = served_cache_.find(tag);
    if (it != served_cache_.end() && it->second.second > now) return it->second.first;
  }
  auto served = q.tag_is_served(tag, options.live_within);
  const bool yes = served && *served;
  std::lock_guard lock(served_mu_);
  if (served_cache_.size() > 10000) served_cache_.clear();  // bounded: tags and paths come from requests
  served_cache_[tag] = {yes, now + std::chrono::seconds(1)};
  return yes;
}

Api::Api(ApiOptions options) : ctx_(std::make_unique<ApiContext>(std::move(options))) {}
Api::~Api() = default;

void Api::register_routes(http::Router& router) {
  add_admin_routes(*ctx_, router);
  add_script_routes(*ctx_, router);
  add_job_routes(*ctx_, router);
  add_agent_routes(*ctx_, router);
  add_schedule_routes(*ctx_, router);
  add_autoscale_routes(*ctx_, router);
  add_ui_routes(*ctx_, router);
}

schedule::JobBuilder Api::schedule_job_builder() { return server::schedule_job_builder(*ctx_); }
Status Api::ready() { return server::ready(*ctx_); }
StatusOr<queue::QueueMetrics> Api::queue_metrics() {
  auto db = ctx_->acquire();
  if (!db) return db.status();
  return db->queue().queue_metrics(ctx_->options.live_within);
}
StatusOr<std::vector<autoscale::GroupState>> Api::autoscale_groups() {
  auto db = ctx_->acquire();
  if (!db) return db.status();
  return db->autoscale().list_groups();
}

namespace {

// The value of cookie `name` in a Cookie header ("a=1; name=v"), or empty.
std::string_view cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const size_t semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name && pair[name.size()] == '=')
      return pair.substr(name.size() + 1);
    if (semi == std::string_view::npos) break;
    header.remove_prefix(semi + 1);
  }
  return {};
}

}  // namespace

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
    std::string_view token;
    if (!authz.empty()) {
      if (authz.size() <= prefix.size() || authz.compare(0, prefix.size(), prefix) != 0)
        return http::json_error(401, "missing_token", "send Authorization: Bearer <token>");
      token = std::string_view(authz).substr(prefix.size());
    } else {
      token = cookie_value(req.header("cookie"), kSessionCookie);
      if (token.empty())
        return http::json_error(401, "missing_token",
                                "send Authorization: Bearer <token> (or log in at /ui/)");
      if (req.method != "GET" && req.method != "HEAD" && req.header(kUiHeader) != "1")
        return http::json_error(
            403, "forbidden",
            "a request authenticated by the UI's cookie that changes something must carry "
            "X-Quern-UI: 1");
    }
    auto db = ctx.acquire();
    if (!db) return error_response(db.status());
    auto principal = ctx.authenticate(token, *db);
    if (!principal) return error_response(principal.status());
    if (!*principal)
      return http::json_error(401, "invalid_token", "the token is unknown, expired or revoked");
    if (!auth::allowed((*principal)->role, permission))
      return http::json_error(
          403, "forbidden",
          std::string("role ") + auth::to_string((*principal)->role) + " may not " + permission);
    return handler(req, **principal, *db);
  };
  router.add(std::move(route));
}

StatusOr<nlohmann::ordered_json> body_object(const http::Request& req) {
  if (req.body.empty()) return nlohmann::ordered_json::object();
  // NUL characters are refused per field (the route's parser names it).
  auto parsed = json_input::parse<nlohmann::ordered_json>(req.body, "the request body", /*storable=*/false);
  if (!parsed) return parsed.status();
  if (!parsed->is_object()) return Status::invalid("the request body must be a JSON object");
  return parsed;
}

http::Response bad_request(const std::string& message) {
  return http::json_error(400, "bad_request", message);
}
http::Response not_found(const std::string& message) { return http::json_error(404, "not_found", message); }
http::Response error_response(const Status& status) {
  switch (status.code()) {
    case StatusCode::invalid_argument:
      return bad_request(status.message());
    case StatusCode::not_found:
      return not_found(status.message());
    case StatusCode::conflict:
      return http::json_error(409, "conflict", status.message());
    case StatusCode::unavailable:
      return http::json_error(503, "unavailable", status.message());  // the HTTP layer adds Retry-After
    case StatusCode::ok:
    case StatusCode::internal:
      break;
  }
  return http::json_error(500, "internal", status.message());
}
http::Response json_ok(const nlohmann::ordered_json& body, int status) {
  return http::json_response(status, body.dump());
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
  if (!j.resources.is_null()) o["resources"] = j.resources;
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
