// `quern autoscale events|groups`: the autoscaler's decisions, through the
// HTTP API (docs/AUTOSCALING.md). A table by default (host/cli/tables.h),
// the API's JSON with --json.
#include <iostream>

#include "host/cli/commands.h"
#include "host/cli/tables.h"

namespace quern::cli {
namespace {

using Json = nlohmann::ordered_json;

struct AutoscaleArgs : ServerConnection {
  std::string group;
  int limit = 50;
  bool json = false;
};

int events(const AutoscaleArgs& a) {
  std::string path = "/api/autoscaling/events?limit=" + std::to_string(a.limit);
  if (!a.group.empty()) path += "&group=" + a.group;  // checked below: [A-Za-z0-9_.:-], nothing to escape
  return show_table(a, a.json, path, "autoscale events",
                    [](const Json& doc, std::ostream& out) { print_autoscale_events(doc, out); });
}

int groups(const AutoscaleArgs& a) {
  return show_table(a, a.json, "/api/autoscaling/groups", "autoscale groups",
                    [](const Json& doc, std::ostream& out) { print_autoscale_groups(doc, out); });
}

}  // namespace

void register_autoscale(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<AutoscaleArgs>();
  auto* cmd = app.add_subcommand("autoscale", "The autoscaler's decisions (docs/AUTOSCALING.md)");
  cmd->require_subcommand(1);
  auto* ev = cmd->add_subcommand("events", "Decisions that changed a group's worker count, newest first");
  add_server_options(*ev, *a);
  ev->add_option("--group", a->group, "Only this worker group")
      ->check(CLI::Validator(
          [](std::string& g) {
            return g.find_first_not_of(
                       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") ==
                           std::string::npos
                       ? std::string()
                       : std::string("a group name is made of [A-Za-z0-9_.:-]");
          },
          "NAME"));
  ev->add_option("--limit", a->limit, "At most this many (1..1000)")->check(CLI::Range(1, 1000));
  ev->add_flag("--json", a->json, "Print the API's JSON instead of the table");
  ev->callback([a, exit_code] { *exit_code = events(*a); });
  auto* gr = cmd->add_subcommand("groups", "Each autoscaled group's desired count and why");
  add_server_options(*gr, *a);
  gr->add_flag("--json", a->json, "Print the API's JSON instead of the table");
  gr->callback([a, exit_code] { *exit_code = groups(*a); });
}

}  // namespace quern::cli
