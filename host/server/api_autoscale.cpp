// The autoscaler's routes (docs/API.md, docs/AUTOSCALING.md): each group's
// latest decision — what KEDA's metrics-api scaler reads, at
// /api/autoscaling/groups/{group}, valueLocation "desired" — and the events.
// Any server answers from the database, whichever server's controller
// decides.
#include "host/common/validation.h"
#include "host/server/api_context.h"

namespace quern::server {
namespace {

using Json = nlohmann::ordered_json;

Json group_json(const autoscale::GroupState& g) {
  return Json{{"group", g.group},
              {"integration", g.integration},
              {"tags", g.tags},
              {"min", g.min},
              {"max", g.max},
              {"desired", g.desired},
              {"from", g.from_count},
              {"rule", g.rule},
              {"reason", g.reason},
              {"requested_at", g.requested_at ? Json(iso_time(*g.requested_at)) : Json(nullptr)},
              {"decided_at", iso_time(g.decided_at)},
              {"controller", g.controller}};
}

}  // namespace

void add_autoscale_routes(ApiContext& ctx, http::Router& router) {
  add_route(ctx, router, "GET", "/api/autoscaling/groups", "autoscale.read",
            "Autoscaled worker groups: the count each should run, and why",
            [](const http::Request&, const auth::Principal&, DbLease& db) {
              auto groups = db.autoscale().list_groups();
              if (!groups) return error_response(groups.status());
              Json out = Json::array();
              for (const auto& g : *groups) out.push_back(group_json(g));
              return json_ok(Json{{"groups", out}});
            });
  add_route(
      ctx, router, "GET", "/api/autoscaling/groups/{group}", "autoscale.read",
      "One autoscaled group's desired worker count (KEDA's metrics-api reads \"desired\")",
      [](const http::Request& req, const auth::Principal&, DbLease& db) {
        const std::string& name = req.path_params.at("group");
        if (Status st = validation::check_tag(name, "group"); !st) return error_response(st);
        auto g = db.autoscale().get_group(name);
        if (!g) return error_response(g.status());
        if (!*g)
          return not_found("no autoscaled group " + name +
                           " (a group autoscales with <autoscale> in its <group>, once a controller runs)");
        return json_ok(group_json(**g));
      });
  add_route(ctx, router, "GET", "/api/autoscaling/events", "autoscale.read",
            "Autoscaling decisions that changed a group's count, newest first",
            [](const http::Request& req, const auth::Principal&, DbLease& db) {
              auto f = parse_event_filter(req.query);
              if (!f) return error_response(f.status());
              auto events = db.autoscale().list_events(*f);
              if (!events) return error_response(events.status());
              Json out = Json::array();
              for (const auto& e : *events)
                out.push_back(Json{{"id", e.id},
                                   {"at", iso_time(e.at)},
                                   {"group", e.group},
                                   {"from", e.from_count},
                                   {"to", e.to_count},
                                   {"rule", e.rule},
                                   {"reason", e.reason},
                                   {"integration", e.integration},
                                   {"outcome", e.outcome},
                                   {"error", e.error}});
              return json_ok(Json{{"events", out}});
            });
}

}  // namespace quern::server
