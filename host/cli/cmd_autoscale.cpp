// `quern autoscale events|groups`: the autoscaler's decisions, through the
// HTTP API (docs/AUTOSCALING.md). A table by default, the API's JSON with
// --json.
#include <iostream>

#include "host/agent/api_client.h"
#include "host/cli/commands.h"

namespace quern::cli {
namespace {

using Json = nlohmann::ordered_json;

struct AutoscaleArgs : ServerConnection {
  std::string group;
  int limit = 50;
  bool json = false;
};

// "2026-12-07T10:00:00.123456Z" -> "2026-12-07 10:00:00".
std::string short_time(const Json& v) {
  if (!v.is_string()) return "-";
  std::string t = v.get<std::string>();
  if (t.size() >= 19) t = t.substr(0, 10) + " " + t.substr(11, 8);
  return t;
}

int events(const AutoscaleArgs& a) {
  std::string path = "/api/autoscaling/events?limit=" + std::to_string(a.limit);
  if (!a.group.empty()) path += "&group=" + a.group;  // [A-Za-z0-9_.:-]: nothing to escape
  agent::ApiClient client(a.server, a.token);
  auto r = client.call("GET", path);
  if (a.json || !r) return print_or_fail("autoscale events", r);
  std::vector<std::vector<std::string>> rows{{"ID", "AT (UTC)", "GROUP", "FROM", "TO", "OUTCOME", "REASON"}};
  for (const Json& e : r->value("events", Json::array())) {
    std::string outcome = e.value("outcome", "");
    if (!e.value("error", "").empty()) outcome += ": " + e.value("error", "");
    rows.push_back({std::to_string(e.value("id", int64_t{0})), short_time(e["at"]), e.value("group", ""),
                    std::to_string(e.value("from", 0)), std::to_string(e.value("to", 0)), outcome,
                    e.value("reason", "")});
  }
  if (rows.size() == 1) {
    std::cout << "no autoscaling events" << (a.group.empty() ? "" : " for group " + a.group) << "\n";
    return 0;
  }
  print_table(rows, std::cout);
  return 0;
}

int groups(const AutoscaleArgs& a) {
  agent::ApiClient client(a.server, a.token);
  auto r = client.call("GET", "/api/autoscaling/groups");
  if (a.json || !r) return print_or_fail("autoscale groups", r);
  std::vector<std::vector<std::string>> rows{
      {"GROUP", "INTEGRATION", "MIN", "MAX", "DESIRED", "CHANGED (UTC)", "DECIDED (UTC)", "REASON"}};
  for (const Json& g : r->value("groups", Json::array()))
    rows.push_back({g.value("group", ""), g.value("integration", ""), std::to_string(g.value("min", 0)),
                    std::to_string(g.value("max", 0)), std::to_string(g.value("desired", 0)),
                    short_time(g["requested_at"]), short_time(g["decided_at"]), g.value("reason", "")});
  if (rows.size() == 1) {
    std::cout << "no autoscaled groups (none has <autoscale>, or no controller has run yet)\n";
    return 0;
  }
  print_table(rows, std::cout);
  return 0;
}

}  // namespace

void register_autoscale(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<AutoscaleArgs>();
  auto* cmd = app.add_subcommand("autoscale", "The autoscaler's decisions (docs/AUTOSCALING.md)");
  cmd->require_subcommand(1);
  auto* ev = cmd->add_subcommand("events", "Decisions that changed a group's worker count, newest first");
  add_server_options(*ev, *a);
  ev->add_option("--group", a->group, "Only this worker group");
  ev->add_option("--limit", a->limit, "At most this many (1..1000)")->check(CLI::Range(1, 1000));
  ev->add_flag("--json", a->json, "Print the API's JSON instead of the table");
  ev->callback([a, exit_code] { *exit_code = events(*a); });
  auto* gr = cmd->add_subcommand("groups", "Each autoscaled group's desired count and why");
  add_server_options(*gr, *a);
  gr->add_flag("--json", a->json, "Print the API's JSON instead of the table");
  gr->callback([a, exit_code] { *exit_code = groups(*a); });
}

}  // namespace quern::cli
