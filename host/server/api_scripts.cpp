// Scripts: deploy (a new immutable version per distinct content), list, get
// by path or hash, versions, archive.
#include "host/server/api_context.h"
#include "host/server/api_requests.h"

namespace quern::server {
namespace {

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
  if (s.settings.limits) o["settings"]["limits"] = queue::to_json(*s.settings.limits);
  o["deployed_by"] = s.deployed_by;
  o["created_at"] = iso_time(s.created_at);
  o["archived"] = s.archived;
  if (with_content) o["content"] = s.content;
  return o;
}

}  // namespace

void add_script_routes(ApiContext& ctx, http::Router& router) {
  add_route(ctx, router, "POST", "/api/scripts", "scripts.write", "Deploy a script (new version if changed)",
            [&ctx](const http::Request& req, const auth::Principal& who, DbLease& db) {
              auto body = body_object(req);
              if (!body) return error_response(body.status());
              auto script = parse_deploy(*body);
              if (!script) return error_response(script.status());
              script->deployed_by = who.label.empty() ? who.token_id : who.label;
              if (Status s = scripts::validate(*script); !s) return error_response(s);
              auto& store = db.scripts();
              auto v = store.deploy(*script);
              if (!v) return error_response(v.status());
              return json_ok(script_json(*v, false), 201);
            });
  add_route(ctx, router, "GET", "/api/scripts", "scripts.read", "List scripts (latest version of each path)",
            [&ctx](const http::Request& req, const auth::Principal&, DbLease& db) {
              const bool archived = req.query.count("archived") && req.query.at("archived") == "true";
              auto& store = db.scripts();
              auto list = store.list(archived);
              if (!list) return error_response(list.status());
              Json out = Json::array();
              for (const auto& s : *list) out.push_back(script_json(s, false));
              return json_ok(Json{{"scripts", out}});
            });
  add_route(ctx, router, "GET", "/api/scripts/p/{path+}", "scripts.read",
            "Get the latest version of a script",
            [&ctx](const http::Request& req, const auth::Principal&, DbLease& db) {
              auto& store = db.scripts();
              const std::string& path = req.path_params.at("path");
              auto v = store.latest(path);
              if (!v) return error_response(v.status());
              if (!*v) return not_found("no script at path '" + path + "' (or it is archived)");
              return json_ok(script_json(**v, true));
            });
  add_route(ctx, router, "GET", "/api/scripts/h/{hash}", "scripts.read", "Get a script version by hash",
            [&ctx](const http::Request& req, const auth::Principal&, DbLease& db) {
              auto& store = db.scripts();
              const std::string& hash = req.path_params.at("hash");
              auto v = store.by_hash(hash);
              if (!v) return error_response(v.status());
              if (!*v) return not_found("no script version with hash '" + hash + "'");
              return json_ok(script_json(**v, true));
            });
  add_route(ctx, router, "GET", "/api/scripts/versions/{path+}", "scripts.read", "All versions of a script",
            [&ctx](const http::Request& req, const auth::Principal&, DbLease& db) {
              auto& store = db.scripts();
              auto list = store.versions(req.path_params.at("path"));
              if (!list) return error_response(list.status());
              Json out = Json::array();
              for (const auto& s : *list) out.push_back(script_json(s, false));
              return json_ok(Json{{"versions", out}});
            });
  add_route(ctx, router, "DELETE", "/api/scripts/p/{path+}", "scripts.write", "Archive a script",
            [&ctx](const http::Request& req, const auth::Principal&, DbLease& db) {
              auto& store = db.scripts();
              const std::string& path = req.path_params.at("path");
              auto done = store.archive(path);
              if (!done) return error_response(done.status());
              if (!*done) return not_found("no script at path '" + path + "'");
              return json_ok(Json{{"path", path}, {"archived", true}});
            });
}

}  // namespace quern::server
