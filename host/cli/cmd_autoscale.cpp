// `quern autoscale events|groups`: the autoscaler's decisions, through the
// HTTP API (docs/AUTOSCALING.md). A table by default, the API's JSON with
// --json.
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

// A string field, "" when absent or not a string (never throws).
std::string text(const Json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string number(const Json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_number_integer() ? std::to_string(it->get<int64_t>()) : "-";
}

// "2026-12-07T10:00:00.123456Z" -> "2026-12-07 10:00:00".
std::string short_time(const Json& v) {
  if (!v.is_string()) return "-";
  std::string t = v.get<std::string>();
  if (t.size() >= 19) t = t.substr(0, 10) + " " + t.substr(11, 8);
  return t;
}

// The tables use one_line() (host/cli/tables.h): a reason or an error from
// the server stays on its row whatever it holds.
void print_events(const Json& doc, std::ostream& out) {
  std::vector<std::vector<std::string>> rows{{"ID", "AT (UTC)", "GROUP", "FROM", "TO", "OUTCOME", "REASON"}};
  for (const Json& e : doc.value("events", Json::array())) {
    if (!e.is_object()) continue;
    std::string outcome = text(e, "outcome");
    if (const std::string error = text(e, "error"); !error.empty()) outcome += ": " + error;
    rows.push_back({std::to_string(e.value("id", int64_t{0})), short_time(e.value("at", Json())),
                    text(e, "group"), number(e, "from"), number(e, "to"), one_line(outcome),
                    one_line(text(e, "reason"))});
  }
  if (rows.size() == 1) {
    out << "no autoscaling events\n";
    return;
  }
  print_table(rows, out);
}

void print_groups(const Json& doc, std::ostream& out) {
  std::vector<std::vector<std::string>> rows{
      {"GROUP", "INTEGRATION", "MIN", "MAX", "DESIRED", "CHANGED (UTC)", "DECIDED (UTC)", "REASON"}};
  for (const Json& g : doc.value("groups", Json::array())) {
    if (!g.is_object()) continue;
    rows.push_back({text(g, "group"), text(g, "integration"), number(g, "min"), number(g, "max"),
                    number(g, "desired"), short_time(g.value("requested_at", Json())),
                    short_time(g.value("decided_at", Json())), one_line(text(g, "reason"))});
  }
  if (rows.size() == 1) {
    out << "no autoscaled groups (none has <autoscale>, or no controller has run yet)\n";
    return;
  }
  print_table(rows, out);
}

int events(const AutoscaleArgs& a) {
  std::string path = "/api/autoscaling/events?limit=" + std::to_string(a.limit);
  if (!a.group.empty()) path += "&group=" + a.group;  // checked below: [A-Za-z0-9_.:-], nothing to escape
  return show_table(a, a.json, path, "autoscale events", print_events);
}

int groups(const AutoscaleArgs& a) {
  return show_table(a, a.json, "/api/autoscaling/groups", "autoscale groups", print_groups);
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
