// Schedules (docs/SCHEDULES.md): create or replace, list, get, pause,
// resume, delete; and the job builder the server's scheduler fires with.
#include "host/schedule/schedule_store.h"
#include "host/server/api_context.h"

namespace quern::server {
namespace {

using Json = nlohmann::ordered_json;

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

// The request body of POST /api/schedules. Messages name the bad field.
StatusOr<schedule::Schedule> parse_schedule(const Json& body) {
  schedule::Schedule s;
  auto text = [](const Json& v, const std::string& key, std::string& out) -> Status {
    if (!v.is_string()) return Status::error(key + " must be a string");
    out = v.get<std::string>();
    return Status::ok();
  };
  for (const auto& [key, value] : body.items()) {
    Status st;
    if (key == "name") {
      st = text(value, key, s.name);
    } else if (key == "cron") {
      st = text(value, key, s.cron);
    } else if (key == "timezone") {
      st = text(value, key, s.timezone);
    } else if (key == "script_path") {
      st = text(value, key, s.script_path);
    } else if (key == "args") {
      if (!value.is_object()) return Status::error("args must be a JSON object");
      s.args = value;
    } else if (key == "tag") {
      if (!value.is_null()) st = text(value, key, s.tag);
    } else if (key == "priority") {
      if (!value.is_null() && (!value.is_number_integer() || value.get<int64_t>() < queue::kMinPriority ||
                               value.get<int64_t>() > queue::kMaxPriority))
        return Status::error("priority must be an integer from 1 to 100 (or null for the script's)");
      s.priority = value.is_null() ? 0 : value.get<int>();
    } else if (key == "paused") {
      if (!value.is_boolean()) return Status::error("paused must be true or false");
      s.paused = value.get<bool>();
    } else if (key == "catch_up") {
      auto c = value.is_string() ? schedule::catch_up_from_string(value.get<std::string>()) : std::nullopt;
      if (!c) return Status::error("catch_up must be \"skip\", \"latest\" or \"all\"");
      s.catch_up = *c;
    } else {
      return Status::error(
          "unknown field '" + key +
          "' (allowed: name, cron, timezone, script_path, args, tag, priority, paused, catch_up)");
    }
    if (!st) return st;
  }
  for (const auto& [field, value] : {std::pair<const char*, const std::string*>{"name", &s.name},
                                     {"cron", &s.cron},
                                     {"script_path", &s.script_path}}) {
    if (value->empty()) return Status::error(std::string(field) + " is required");
  }
  if (Status st = schedule::validate(s); !st) return st;
  return s;
}

// The job a tick of `s` pushes: a run of script version `v` with the
// schedule's args, tag and priority, built as a run request's job is. An
// error is bad input (the schedule's or the script's).
StatusOr<queue::NewJob> job_for_tick(ApiContext& ctx, const schedule::Schedule& s,
                                     const scripts::ScriptVersion& v) {
  RunRequest run;
  run.args = s.args;
  run.tag = s.tag;
  run.priority = s.priority;
  return job_for_run(ctx, "", "", v, run);
}

http::Response create_schedule(ApiContext& ctx, const http::Request& req) {
  auto body = body_object(req);
  if (!body) return bad_request(body.message());
  auto s = parse_schedule(*body);
  if (!s) return bad_request(s.message());
  {
    auto scripts = ctx.scripts.acquire();
    if (!scripts) return unavailable(scripts.status());
    auto found = (*scripts)->latest(s->script_path);
    if (!found) return unavailable(found.status());
    if (!*found) return bad_request("script_path: no script at '" + s->script_path + "' (or it is archived)");
    // What each tick will push must be a valid job (e.g. a concurrency key's $args[name] is in args).
    if (auto job = job_for_tick(ctx, *s, **found); !job) return bad_request(job.message());
  }
  auto store = ctx.schedules.acquire();
  if (!store) return unavailable(store.status());
  auto saved = (*store)->upsert(*s);
  if (!saved) return unavailable(saved.status());
  return json_ok(schedule_json(saved->schedule), saved->created ? 201 : 200);
}

http::Response get_schedule(ApiContext& ctx, const std::string& name) {
  auto store = ctx.schedules.acquire();
  if (!store) return unavailable(store.status());
  auto s = (*store)->get(name);
  if (!s) return unavailable(s.status());
  if (!*s) return not_found("no schedule '" + name + "'");
  return json_ok(schedule_json(**s));
}

http::Response pause_schedule(ApiContext& ctx, const std::string& name, bool paused) {
  auto store = ctx.schedules.acquire();
  if (!store) return unavailable(store.status());
  auto s = (*store)->set_paused(name, paused);
  if (!s) return unavailable(s.status());
  if (!*s) return not_found("no schedule '" + name + "'");
  return json_ok(schedule_json(**s));
}

}  // namespace

schedule::JobBuilder schedule_job_builder(ApiContext& ctx) {
  return [&ctx](const schedule::Schedule& s) -> StatusOr<queue::NewJob> {
    auto store = ctx.scripts.acquire();
    if (!store) return store.status();
    auto found = (*store)->latest(s.script_path);
    if (!found) return found.status();
    if (!*found) return Status::error("no script at path '" + s.script_path + "' (or it is archived)");
    return job_for_tick(ctx, s, **found);
  };
}

void add_schedule_routes(ApiContext& ctx, http::Router& router) {
  add_route(ctx, router, "POST", "/api/schedules", "schedules.write",
            "Create or replace a schedule (by name)",
            [&ctx](const http::Request& r, const auth::Principal&) { return create_schedule(ctx, r); });
  add_route(ctx, router, "GET", "/api/schedules", "schedules.read", "List schedules",
            [&ctx](const http::Request&, const auth::Principal&) {
              auto store = ctx.schedules.acquire();
              if (!store) return unavailable(store.status());
              auto list = (*store)->list();
              if (!list) return unavailable(list.status());
              Json out = Json::array();
              for (const auto& s : *list) out.push_back(schedule_json(s));
              return json_ok(Json{{"schedules", out}});
            });
  add_route(ctx, router, "GET", "/api/schedules/{name+}", "schedules.read", "Get a schedule",
            [&ctx](const http::Request& r, const auth::Principal&) {
              return get_schedule(ctx, r.path_params.at("name"));
            });
  add_route(ctx, router, "POST", "/api/schedules/pause/{name+}", "schedules.write", "Pause a schedule",
            [&ctx](const http::Request& r, const auth::Principal&) {
              return pause_schedule(ctx, r.path_params.at("name"), true);
            });
  add_route(ctx, router, "POST", "/api/schedules/resume/{name+}", "schedules.write",
            "Resume a schedule (from its next tick)", [&ctx](const http::Request& r, const auth::Principal&) {
              return pause_schedule(ctx, r.path_params.at("name"), false);
            });
  add_route(ctx, router, "DELETE", "/api/schedules/{name+}", "schedules.write", "Delete a schedule",
            [&ctx](const http::Request& r, const auth::Principal&) {
              const std::string& name = r.path_params.at("name");
              auto store = ctx.schedules.acquire();
              if (!store) return unavailable(store.status());
              auto removed = (*store)->remove(name);
              if (!removed) return unavailable(removed.status());
              if (!*removed) return not_found("no schedule '" + name + "'");
              return json_ok(Json{{"name", name}, {"deleted", true}});
            });
}

}  // namespace quern::server
