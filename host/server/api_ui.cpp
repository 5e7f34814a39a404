// The web UI's routes (docs/UI.md): its files at /ui/ (host/ui), and the
// session: POST /ui/login exchanges a token for an HttpOnly, SameSite=Strict
// cookie holding it, which every /api route then accepts (add_route); POST
// /ui/logout clears it; GET /api/me says who the session is and what it may
// do, so that the UI shows only the actions its role allows (the API checks
// them again on every call).
//
// Why the cookie holds the token itself: a revoked or expired token ends its
// sessions at once with no session table to keep in step, and a forged cookie
// is just an unknown token (401). Its theft is what HttpOnly (no script
// reads it) and SameSite=Strict (no other site sends it) guard against;
// state-changing calls that authenticate by cookie must also carry
// X-Quern-UI: 1, which a cross-site form cannot set (add_route).
#include "host/server/api_context.h"
#include "host/ui/ui_assets.h"

namespace quern::server {
namespace {

using Json = nlohmann::ordered_json;

// No inline script or style anywhere in the UI: only its own files.
constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

// 12 hours: a forgotten tab does not stay logged in for days.
constexpr int kSessionSeconds = 12 * 3600;

void add_page_headers(http::Response& r) {
  r.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Cache-Control", "no-cache");
}

http::Response asset_response(const std::string& path) {
  const ui::Asset* asset = ui::find_asset(path);
  if (asset == nullptr) return not_found("no UI file " + path.substr(0, 200));
  http::Response r;
  r.content_type = std::string(asset->content_type);
  r.body = std::string(asset->content);
  add_page_headers(r);
  return r;
}

std::string session_cookie(const std::string& value, int max_age) {
  return std::string(kSessionCookie) + "=" + value +
         "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age);
}

}  // namespace

void add_ui_routes(ApiContext& ctx, http::Router& router) {
  router.add({"GET", "/", "", "The web UI (redirects to /ui/; anonymous)", [](const http::Request&) {
                http::Response r;
                r.status = 302;
                r.content_type = "text/plain; charset=utf-8";
                r.body = "the UI is at /ui/\n";
                r.headers.emplace_back("Location", "/ui/");
                return r;
              }});
  router.add({"GET", "/ui/", "", "The web UI's page (anonymous: it asks for a token)",
              [](const http::Request&) { return asset_response("index.html"); }});
  router.add({"GET", "/ui/{path+}", "", "The web UI's files (anonymous)",
              [](const http::Request& req) { return asset_response(req.path_params.at("path")); }});
  router.add(
      {"POST", "/ui/login", "", "Exchange a token for a session cookie (anonymous)",
       [&ctx](const http::Request& req) {
         auto body = body_object(req);
         if (!body) return error_response(body.status());
         auto token = body->find("token");
         if (token == body->end() || !token->is_string() || token->get<std::string>().empty())
           return bad_request("token is required (a Quern API token, e.g. from quern token create)");
         auto db = ctx.acquire();
         if (!db) return error_response(db.status());
         auto principal = db->tokens().authenticate(token->get<std::string>());
         if (!principal) return error_response(principal.status());
         if (!*principal)
           return http::json_error(401, "invalid_token", "the token is unknown, expired or revoked");
         const auth::Principal& p = **principal;
         if (p.role == auth::Role::agent)
           return http::json_error(403, "forbidden", "agent tokens cannot log in to the UI");
         http::Response r =
             json_ok(Json{{"role", auth::to_string(p.role)}, {"token_id", p.token_id}, {"label", p.label}});
         r.headers.emplace_back("Set-Cookie", session_cookie(token->get<std::string>(), kSessionSeconds));
         r.headers.emplace_back("Cache-Control", "no-store");
         return r;
       }});
  router.add({"POST", "/ui/logout", "", "End the UI session: clears its cookie (anonymous)",
              [](const http::Request&) {
                http::Response r = json_ok(Json{{"logged_out", true}});
                r.headers.emplace_back("Set-Cookie", session_cookie("", 0));
                return r;
              }});
  add_route(ctx, router, "GET", "/api/me", "session.read",
            "Who this token (or UI session) is, and what it may do",
            [](const http::Request&, const auth::Principal& p, DbLease&) {
              Json permissions = Json::array();
              for (const std::string& name : auth::all_permissions())
                if (auth::allowed(p.role, name)) permissions.push_back(name);
              return json_ok(Json{{"role", auth::to_string(p.role)},
                                  {"token_id", p.token_id},
                                  {"label", p.label},
                                  {"permissions", permissions}});
            });
}

}  // namespace quern::server
