// Scripts: deploy (a new immutable version per distinct content), list, get
// by path or hash, versions, archive.
#include "host/server/api_context.h"

namespace quern::server {
namespace {

using Json = nlohmann::ordered_json;

Json script_json(const scripts::ScriptVersion& s, bool with_content) {
  Json o;
  o["path"] = s.path;
  o["hash"] = s.hash;
  o["language"] = s.language;
  o["summary"] = s.summary;
  o["settings"] = {{"tag", s.settings.tag},
                   {"priority", s.settings.priority},
                   {"timeout_s", s.settings.timeout_s},
                   {"dedicated", s.settings.dedicated}};
  if (s.settings.concurrency) o["settings"]["concurrency"] = queue::to_json(*s.settings.concurrency);
  if (s.settings.retry) o["settings"]["retry"] = queue::to_json(*s.settings.retry);
  o["deployed_by"] = s.deployed_by;
  o["created_at"] = iso_time(s.created_at);
  o["archived"] = s.archived;
  if (with_content) o["content"] = s.content;
  return o;
}

StatusOr<scripts::NewScript> parse_deploy(const Json& body) {
  scripts::NewScript s;
  for (const auto& [key, value] : body.items()) {
    auto need_string = [&](std::string& out) -> Status {
      if (!value.is_string()) return Status::error(key + " must be a string");
      out = value.get<std::string>();
      return Status::ok();
    };
    Status st;
    if (key == "path")
      st = need_string(s.path);
    else if (key == "language")
      st = need_string(s.language);
    else if (key == "content")
      st = need_string(s.content);
    else if (key == "summary")
      st = need_string(s.summary);
    else if (key == "tag")
      st = need_string(s.settings.tag);
    else if (key == "priority" || key == "timeout_s") {
      if (!value.is_number_integer()) return Status::error(key + " must be an integer");
      (key == "priority" ? s.settings.priority : s.settings.timeout_s) = value.get<int>();
    } else if (key == "dedicated") {
      if (!value.is_boolean()) return Status::error("dedicated must be true or false");
      s.settings.dedicated = value.get<bool>();
    } else if (key == "concurrency") {
      auto c = queue::concurrency_from_json(value, "concurrency");
      if (!c) return c.status();
      s.settings.concurrency = *c;
    } else if (key == "retry") {
      auto r = queue::retry_from_json(value, "retry");
      if (!r) return r.status();
      s.settings.retry = *r;
    } else {
      return Status::error(
          "unknown field '" + key +
          "' (allowed: path, language, content, summary, tag, priority, timeout_s, dedicated, "
          "concurrency, retry)");
    }
    if (!st) return st;
  }
  return s;
}

}  // namespace

void add_script_routes(ApiContext& ctx, http::Router& router) {
  add_route(ctx, router, "POST", "/api/scripts", "scripts.write", "Deploy a script (new version if changed)",
            [&ctx](const http::Request& req, const auth::Principal& who) {
              auto body = body_object(req);
              if (!body) return bad_request(body.message());
              auto script = parse_deploy(*body);
              if (!script) return bad_request(script.message());
              script->deployed_by = who.label.empty() ? who.token_id : who.label;
              if (Status s = scripts::validate(*script); !s) return bad_request(s.message());
              auto store = ctx.scripts.acquire();
              if (!store) return unavailable(store.status());
              auto v = (*store)->deploy(*script);
              if (!v) return unavailable(v.status());
              return json_ok(script_json(*v, false), 201);
            });
  add_route(ctx, router, "GET", "/api/scripts", "scripts.read", "List scripts (latest version of each path)",
            [&ctx](const http::Request& req, const auth::Principal&) {
              const bool archived = req.query.count("archived") && req.query.at("archived") == "true";
              auto store = ctx.scripts.acquire();
              if (!store) return unavailable(store.status());
              auto list = (*store)->list(archived);
              if (!list) return unavailable(list.status());
              Json out = Json::array();
              for (const auto& s : *list) out.push_back(script_json(s, false));
              return json_ok(Json{{"scripts", out}});
            });
  add_route(ctx, router, "GET", "/api/scripts/p/{path+}", "scripts.read",
            "Get the latest version of a script", [&ctx](const http::Request& req, const auth::Principal&) {
              auto store = ctx.scripts.acquire();
              if (!store) return unavailable(store.status());
              const std::string& path = req.path_params.at("path");
              auto v = (*store)->latest(path);
              if (!v) return unavailable(v.status());
              if (!*v) return not_found("no script at path '" + path + "' (or it is archived)");
              return json_ok(script_json(**v, true));
            });
  add_route(ctx, router, "GET", "/api/scripts/h/{hash}", "scripts.read", "Get a script version by hash",
            [&ctx](const http::Request& req, const auth::Principal&) {
              auto store = ctx.scripts.acquire();
              if (!store) return unavailable(store.status());
              const std::string& hash = req.path_params.at("hash");
              auto v = (*store)->by_hash(hash);
              if (!v) return unavailable(v.status());
              if (!*v) return not_found("no script version with hash '" + hash + "'");
              return json_ok(script_json(**v, true));
            });
  add_route(ctx, router, "GET", "/api/scripts/versions/{path+}", "scripts.read", "All versions of a script",
            [&ctx](const http::Request& req, const auth::Principal&) {
              auto store = ctx.scripts.acquire();
              if (!store) return unavailable(store.status());
              auto list = (*store)->versions(req.path_params.at("path"));
              if (!list) return unavailable(list.status());
              Json out = Json::array();
              for (const auto& s : *list) out.push_back(script_json(s, false));
              return json_ok(Json{{"versions", out}});
            });
  add_route(ctx, router, "DELETE", "/api/scripts/p/{path+}", "scripts.write", "Archive a script",
            [&ctx](const http::Request& req, const auth::Principal&) {
              auto store = ctx.scripts.acquire();
              if (!store) return unavailable(store.status());
              const std::string& path = req.path_params.at("path");
              auto done = (*store)->archive(path);
              if (!done) return unavailable(done.status());
              if (!*done) return not_found("no script at path '" + path + "'");
              return json_ok(Json{{"path", path}, {"archived", true}});
            });
}

}  // namespace quern::server
