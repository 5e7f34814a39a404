// Health, tokens, queue statistics, workers and the OpenAPI document.
#include "host/server/api_context.h"

namespace quern::server {
namespace {

using Json = nlohmann::ordered_json;

StatusOr<auth::NewToken> parse_new_token(const Json& body) {
  auth::NewToken t;
  bool has_role = false;
  for (const auto& [key, value] : body.items()) {
    if (key == "role") {
      auto role = value.is_string() ? auth::role_from_string(value.get<std::string>()) : std::nullopt;
      if (!role) return Status::error("role must be one of admin, developer, operator, agent");
      t.role = *role;
      has_role = true;
    } else if (key == "group") {
      if (!value.is_string()) return Status::error("group must be a string");
      t.group = value.get<std::string>();
    } else if (key == "tags") {
      if (!value.is_array()) return Status::error("tags must be an array of strings");
      for (const auto& tag : value) {
        if (!tag.is_string()) return Status::error("tags must be an array of strings");
        t.tags.push_back(tag.get<std::string>());
      }
    } else if (key == "label") {
      if (!value.is_string()) return Status::error("label must be a string");
      t.label = value.get<std::string>();
    } else if (key == "expires_in_s") {
      if (!value.is_number() || value.get<double>() <= 0)
        return Status::error("expires_in_s must be a positive number");
      t.expires_at = queue::Clock::now() + std::chrono::duration_cast<queue::Clock::duration>(
                                               std::chrono::duration<double>(value.get<double>()));
    } else {
      return Status::error("unknown field '" + key + "' (allowed: role, group, tags, label, expires_in_s)");
    }
  }
  if (!has_role) return Status::error("role is required (admin, developer, operator or agent)");
  if (Status s = auth::validate(t); !s) return s;
  return t;
}

Json token_json(const auth::TokenInfo& t) {
  Json o;
  o["id"] = t.id;
  o["role"] = auth::to_string(t.role);
  o["group"] = t.group;
  o["tags"] = t.tags;
  o["label"] = t.label;
  o["created_at"] = iso_time(t.created_at);
  o["expires_at"] = t.expires_at ? Json(iso_time(*t.expires_at)) : Json(nullptr);
  o["revoked_at"] = t.revoked_at ? Json(iso_time(*t.revoked_at)) : Json(nullptr);
  o["last_used_at"] = t.last_used_at ? Json(iso_time(*t.last_used_at)) : Json(nullptr);
  return o;
}

}  // namespace

void add_admin_routes(ApiContext& ctx, http::Router& router) {
  router.add({"GET", "/healthz", "", "Liveness (anonymous)",
              [](const http::Request&) { return http::json_response(200, R"({"status":"ok"})"); }});
  router.add(
      {"GET", "/readyz", "", "Readiness: the database answers (anonymous)", [&ctx](const http::Request&) {
         auto q = ctx.queues.acquire();
         if (!q) return unavailable(q.status());
         auto v = (*q)->exec_scalar("SELECT 1");
         if (!v) return unavailable(v.status());
         return http::json_response(200, R"({"status":"ready"})");
       }});
  add_route(ctx, router, "GET", "/api/openapi.yaml", "docs.read", "This API’s OpenAPI document",
            [](const http::Request&, const auth::Principal&) {
              http::Response r;
              r.content_type = "application/yaml";
              r.body = openapi_yaml();
              return r;
            });
  add_route(ctx, router, "POST", "/api/tokens", "tokens.manage", "Create a token (shown once)",
            [&ctx](const http::Request& req, const auth::Principal&) {
              auto body = body_object(req);
              if (!body) return bad_request(body.message());
              auto t = parse_new_token(*body);
              if (!t) return bad_request(t.message());
              auto store = ctx.tokens.acquire();
              if (!store) return unavailable(store.status());
              auto issued = (*store)->create(*t);
              if (!issued) return unavailable(issued.status());
              return json_ok(
                  Json{{"id", issued->id}, {"token", issued->token}, {"role", auth::to_string(t->role)}},
                  201);
            });
  add_route(ctx, router, "GET", "/api/tokens", "tokens.manage", "List tokens (never their secrets)",
            [&ctx](const http::Request&, const auth::Principal&) {
              auto store = ctx.tokens.acquire();
              if (!store) return unavailable(store.status());
              auto list = (*store)->list();
              if (!list) return unavailable(list.status());
              Json out = Json::array();
              for (const auto& t : *list) out.push_back(token_json(t));
              return json_ok(Json{{"tokens", out}});
            });
  add_route(ctx, router, "DELETE", "/api/tokens/{id}", "tokens.manage", "Revoke a token",
            [&ctx](const http::Request& req, const auth::Principal&) {
              auto store = ctx.tokens.acquire();
              if (!store) return unavailable(store.status());
              const std::string& id = req.path_params.at("id");
              auto done = (*store)->revoke(id);
              if (!done) return unavailable(done.status());
              if (!*done) return not_found("no token " + id);
              return json_ok(Json{{"id", id}, {"revoked", true}});
            });
  add_route(ctx, router, "GET", "/api/queue", "queue.read", "Queue statistics per tag",
            [&ctx](const http::Request&, const auth::Principal&) {
              auto q = ctx.queues.acquire();
              if (!q) return unavailable(q.status());
              auto stats = (*q)->queue_stats(ctx.options.live_within);
              if (!stats) return unavailable(stats.status());
              Json out = Json::array();
              for (const auto& s : *stats) {
                Json by_priority = Json::array();
                for (const auto& p : s.by_priority)
                  by_priority.push_back(Json{
                      {"priority", p.priority}, {"waiting", p.waiting}, {"oldest_wait_s", p.oldest_wait_s}});
                out.push_back(Json{{"tag", s.tag},
                                   {"waiting", s.waiting},
                                   {"scheduled", s.scheduled},
                                   {"running", s.running},
                                   {"oldest_wait_s", s.oldest_wait_s},
                                   {"served", s.served},
                                   {"by_priority", by_priority}});
              }
              return json_ok(Json{{"tags", out}});
            });
  add_route(ctx, router, "GET", "/api/queue/limits", "queue.read", "Concurrency keys: limits and current use",
            [&ctx](const http::Request&, const auth::Principal&) {
              auto q = ctx.queues.acquire();
              if (!q) return unavailable(q.status());
              auto stats = (*q)->limit_stats();
              if (!stats) return unavailable(stats.status());
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
            [&ctx](const http::Request&, const auth::Principal&) {
              auto q = ctx.queues.acquire();
              if (!q) return unavailable(q.status());
              auto list = (*q)->list_workers();
              if (!list) return unavailable(list.status());
              Json out = Json::array();
              const auto now = queue::Clock::now();
              for (const auto& w : *list)
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
                                   {"started_at", iso_time(w.started_at)},
                                   {"last_heartbeat", iso_time(w.last_seen_at)},
                                   {"live", now - w.last_seen_at < ctx.options.live_within}});
              return json_ok(Json{{"workers", out}});
            });
}

}  // namespace quern::server
