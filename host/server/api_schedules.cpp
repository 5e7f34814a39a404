// Schedules (docs/SCHEDULES.md): create or replace, list, get, pause,
// resume, delete; and the job builder the server's scheduler fires with.
#include "host/schedule/schedule_store.h"
#include "host/server/api_context.h"
#include "host/server/api_requests.h"

namespace quern::server {
namespace {

Json optional_time(const std::optional<queue::Clock::time_point>& t) {
  return t ? Json(iso_time(*t)) : Json(nullptr);
}

Json schedule_json(const schedule::Schedule& s) {
  Json o;
  o["name"] = s.name;
  o["cron"] = s.cron;
  o["timezone"] = s.timezone;
  o["script_path"] = s.script_path;
  o["args"] = s.args;
  o["tag"] = s.tag.empty() ? Json(nullptr) : Json(s.tag);
  o["priority"] = s.priority > 0 ? Json(s.priority) : Json(nullptr);
  o["paused"] = s.paused;
  o["catch_up"] = schedule::to_string(s.catch_up);
  o["next_fire_at"] = iso_time(s.next_fire_at);
  o["last_fired_at"] = optional_time(s.last_fired_at);
  o["last_job_id"] = s.last_job_id > 0 ? Json(s.last_job_id) : Json(nullptr);
  o["last_error"] = s.last_error.empty() ? Json(nullptr) : Json(s.last_error);
  o["created_at"] = iso_time(s.created_at);
  o["updated_at"] = iso_time(s.updated_at);
  return o;
}

// The job a tick of `s` pushes: a run of script version `v` with the
// schedule's args, tag and priority, built as a run request's job is. An
// error is bad input (the schedule's or the script's).
StatusOr<queue::NewJob> job_for_tick(ApiContext& ctx, queue::Queue& q, const schedule::Schedule& s,
                                     const scripts::ScriptVersion& v) {
  RunRequest run;
  run.args = s.args;
  run.tag = s.tag;
  run.priority = s.priority;
  return job_for_run(ctx, q, "", "", v, run);
}

http::Response create_schedule(ApiContext& ctx, DbLease& db, const http::Request& req) {
  auto body = body_object(req);
  if (!body) return error_response(body.status());
  auto s = parse_schedule(*body);
  if (!s) return error_response(s.status());
  auto found = db.scripts().latest(s->script_path);
  if (!found) return error_response(found.status());
  if (!*found) return bad_request("script_path: no script at '" + s->script_path + "' (or it is archived)");
  // What each tick will push must be a valid job (e.g. a concurrency key's $args[name] is in args).
  if (auto job = job_for_tick(ctx, db.queue(), *s, **found); !job) return error_response(job.status());
  auto& store = db.schedules();
  auto saved = store.upsert(*s);
  if (!saved) return error_response(saved.status());
  return json_ok(schedule_json(saved->schedule), saved->created ? 201 : 200);
}

http::Response get_schedule(DbLease& db, const std::string& name) {
  auto& store = db.schedules();
  auto s = store.get(name);
  if (!s) return error_response(s.status());
  if (!*s) return not_found("no schedule '" + name + "'");
  return json_ok(schedule_json(**s));
}

http::Response pause_schedule(DbLease& db, const std::string& name, bool paused) {
  auto& store = db.schedules();
  auto s = store.set_paused(name, paused);
  if (!s) return error_response(s.status());
  if (!*s) return not_found("no schedule '" + name + "'");
  return json_ok(schedule_json(**s));
}

}  // namespace

schedule::JobBuilder schedule_job_builder(ApiContext& ctx) {
  return [&ctx](const schedule::Schedule& s) -> StatusOr<queue::NewJob> {
    auto db = ctx.acquire();
    if (!db) return db.status();
    auto found = db->scripts().latest(s.script_path);
    if (!found) return found.status();
    if (!*found) return Status::invalid("no script at path '" + s.script_path + "' (or it is archived)");
    return job_for_tick(ctx, db->queue(), s, **found);
  };
}

void add_schedule_routes(ApiContext& ctx, http::Router& router) {
  add_route(ctx, router, "POST", "/api/schedules", "schedules.write",
            "Create or replace a schedule (by name)",
            [&ctx](const http::Request& r, const auth::Principal&, DbLease& db) {
              return create_schedule(ctx, db, r);
            });
  add_route(ctx, router, "GET", "/api/schedules", "schedules.read", "List schedules",
            [&ctx](const http::Request&, const auth::Principal&, DbLease& db) {
              auto& store = db.schedules();
              auto list = store.list();
              if (!list) return error_response(list.status());
              Json out = Json::array();
              for (const auto& s : *list) out.push_back(schedule_json(s));
              return json_ok(Json{{"schedules", out}});
            });
  add_route(ctx, router, "GET", "/api/schedules/{name+}", "schedules.read", "Get a schedule",
            [&ctx](const http::Request& r, const auth::Principal&, DbLease& db) {
              return get_schedule(db, r.path_params.at("name"));
            });
  add_route(ctx, router, "POST", "/api/schedules/pause/{name+}", "schedules.write", "Pause a schedule",
            [&ctx](const http::Request& r, const auth::Principal&, DbLease& db) {
              return pause_schedule(db, r.path_params.at("name"), true);
            });
  add_route(ctx, router, "POST", "/api/schedules/resume/{name+}", "schedules.write",
            "Resume a schedule (from its next tick)",
            [&ctx](const http::Request& r, const auth::Principal&, DbLease& db) {
              return pause_schedule(db, r.path_params.at("name"), false);
            });
  add_route(ctx, router, "DELETE", "/api/schedules/{name+}", "schedules.write", "Delete a schedule",
            [&ctx](const http::Request& r, const auth::Principal&, DbLease& db) {
              const std::string& name = r.path_params.at("name");
              auto& store = db.schedules();
              auto removed = store.remove(name);
              if (!removed) return error_response(removed.status());
              if (!*removed) return not_found("no schedule '" + name + "'");
              return json_ok(Json{{"name", name}, {"deleted", true}});
            });
}

}  // namespace quern::server
