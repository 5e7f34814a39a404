// Health, tokens, queue statistics, workers and the OpenAPI document.
#include <algorithm>

#include "host/queue/migrations.h"
#include "host/server/api_context.h"
#include "host/server/api_requests.h"

namespace quern::server {
namespace {

// A worker is late when its last heartbeat is older than two of its own
// intervals (one missed round, plus a round trip's slack); one that never
// said its interval (an older agent) is judged by the default 10 s.
bool heartbeat_late(const queue::WorkerInfo& w, std::chrono::milliseconds age) {
  const int64_t interval_ms =
      w.telemetry && w.telemetry->heartbeat_interval_ms > 0 ? w.telemetry->heartbeat_interval_ms : 10000;
  // Capped (at ~35 years) so that an agent's absurd interval cannot overflow 2 * interval.
  return age.count() > 2 * std::min<int64_t>(interval_ms, int64_t{1} << 40) + 1000;
}

}  // namespace

Status ready(ApiContext& ctx) {
  auto db = ctx.acquire();
  if (!db) return db.status();
  // Any failure here means "not ready" (503), never a server error: a
  // missing table is a database that was reset under us.
  auto v = db->queue().exec_scalar("SELECT coalesce(max(version), 0) FROM quern.schema_migrations");
  if (!v) return Status::unavailable(v.message());
  const int expected = queue::migrations().back().version;
  if (*v != std::to_string(expected))
    return Status::unavailable("the database schema is at version " + *v + ", this server needs " +
                               std::to_string(expected) +
                               " (a `quern server` of this version migrates it at start)");
  return Status::ok();
}

void add_admin_routes(ApiContext& ctx, http::Router& router) {
  router.add({"GET", "/healthz", "", "Liveness (anonymous)",
              [](const http::Request&) { return http::json_response(200, R"({"status":"ok"})"); }});
  router.add({"GET", "/readyz", "", "Readiness: the database answers at the expected schema (anonymous)",
              [&ctx](const http::Request&) {
                Status s = ready(ctx);
                if (!s) return error_response(s);
                return http::json_response(200, R"({"status":"ready"})");
              }});
  add_route(ctx, router, "GET", "/api/openapi.yaml", "docs.read", "This API’s OpenAPI document",
            [](const http::Request&, const auth::Principal&, DbLease&) {
              http::Response r;
              r.content_type = "application/yaml";
              r.body = openapi_yaml();
              return r;
            });
  add_route(ctx, router, "POST", "/api/tokens", "tokens.manage", "Create a token (shown once)",
            [&ctx](const http::Request& req, const auth::Principal&, DbLease& db) {
              auto body = body_object(req);
              if (!body) return error_response(body.status());
              auto t = parse_new_token(*body);
              if (!t) return error_response(t.status());
              auto& store = db.tokens();
              auto issued = store.create(*t);
              if (!issued) return error_response(issued.status());
              return json_ok(
                  Json{{"id", issued->id}, {"token", issued->token}, {"role", auth::to_string(t->role)}},
                  201);
            });
  add_route(ctx, router, "GET", "/api/tokens", "tokens.manage", "List tokens (never their secrets)",
            [&ctx](const http::Request&, const auth::Principal&, DbLease& db) {
              auto& store = db.tokens();
              auto list = store.list();
              if (!list) return error_response(list.status());
              Json out = Json::array();
              for (const auto& t : *list) out.push_back(auth::to_json(t));
              return json_ok(Json{{"tokens", out}});
            });
  add_route(ctx, router, "DELETE", "/api/tokens/{id}", "tokens.manage", "Revoke a token",
            [&ctx](const http::Request& req, const auth::Principal&, DbLease& db) {
              auto& store = db.tokens();
              const std::string& id = req.path_params.at("id");
              auto done = store.revoke(id);
              // Before the answer, not when the notification comes back:
              // the caller's next request must find the token revoked.
              ctx.token_cache.forget(id);
              if (!done) return error_response(done.status());
              if (!*done) return not_found("no token " + id);
              return json_ok(Json{{"id", id}, {"revoked", true}});
            });
  add_route(
      ctx, router, "GET", "/api/queue", "queue.read", "Queue statistics per tag",
      [&ctx](const http::Request&, const auth::Principal&, DbLease& db) {
        auto& q = db.queue();
        auto stats = q.queue_stats(ctx.options.live_within);
        if (!stats) return error_response(stats.status());
        // For a tag no live worker serves: what the autoscaler does about it
        // (read only when some tag needs it).
        StatusOr<std::vector<autoscale::GroupState>> scaled = std::vector<autoscale::GroupState>{};
        if (std::any_of(stats->begin(), stats->end(), [](const queue::TagStats& s) { return !s.served; }))
          scaled = db.autoscale().list_groups();
        if (!scaled) return error_response(scaled.status());
        Json out = Json::array();
        for (const auto& s : *stats) {
          Json by_priority = Json::array();
          for (const auto& p : s.by_priority)
            by_priority.push_back(
                Json{{"priority", p.priority}, {"waiting", p.waiting}, {"oldest_wait_s", p.oldest_wait_s}});
          out.push_back(Json{{"tag", s.tag},
                             {"waiting", s.waiting},
                             {"scheduled", s.scheduled},
                             {"running", s.running},
                             {"oldest_wait_s", s.oldest_wait_s},
                             {"served", s.served},
                             {"by_priority", by_priority}});
          if (std::string note = s.served ? "" : autoscale::scaling_note(*scaled, s.tag); !note.empty())
            out.back()["autoscale"] = note;
        }
        return json_ok(Json{{"tags", out}});
      });
  add_route(ctx, router, "GET", "/api/queue/limits", "queue.read", "Concurrency keys: limits and current use",
            [&ctx](const http::Request&, const auth::Principal&, DbLease& db) {
              auto& q = db.queue();
              auto stats = q.limit_stats();
              if (!stats) return error_response(stats.status());
              Json out = Json::array();
              for (const auto& k : *stats)
                out.push_back(Json{{"key", k.key},
                                   {"max_running", k.max_running},
                                   {"rate_max", k.rate_max},
                                   {"rate_window_s", k.rate_window.count() / 1000.0},
                                   {"running", k.running},
                                   {"waiting", k.waiting},
                                   {"started_in_window", k.started_in_window}});
              return json_ok(Json{{"keys", out}});
            });
  add_route(ctx, router, "GET", "/api/workers", "workers.read", "Workers and agents",
            [&ctx](const http::Request&, const auth::Principal&, DbLease& db) {
              auto& q = db.queue();
              auto list = q.list_workers();
              if (!list) return error_response(list.status());
              Json out = Json::array();
              for (const auto& w : *list) {
                const auto age = w.heartbeat_age;
                out.push_back(Json{{"id", w.id},
                                   {"kind", w.kind},
                                   {"group", w.group},
                                   {"tags", w.tags},
                                   {"slots", w.slots},
                                   {"running", w.running},
                                   {"current_jobs", w.current_jobs},
                                   {"version", w.version},
                                   {"hostname", w.hostname},
                                   {"pid", w.pid},
                                   {"isolation", w.isolation},
                                   {"started_at", iso_time(w.started_at)},
                                   {"last_heartbeat", iso_time(w.last_seen_at)},
                                   {"heartbeat_age_s", static_cast<double>(age.count()) / 1000.0},
                                   {"late", heartbeat_late(w, age)},
                                   {"live", age < ctx.options.live_within}});
                if (w.telemetry) out.back()["telemetry"] = w.telemetry->to_json();
              }
              return json_ok(Json{{"workers", out}});
            });
}

}  // namespace quern::server
