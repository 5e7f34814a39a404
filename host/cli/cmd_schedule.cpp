// `quern schedule create|list|get|pause|resume|delete`: cron schedules
// through the HTTP API (docs/SCHEDULES.md). Like the other client commands,
// it takes --server and --token (or QUERN_SERVER / QUERN_TOKEN) and prints
// the API's JSON answer.
#include <iostream>

#include "host/agent/api_client.h"
#include "host/cli/commands.h"
#include "host/cli/tables.h"

namespace quern::cli {
namespace {

using Json = nlohmann::ordered_json;

struct ScheduleArgs : ServerConnection {
  std::string name;
  std::string cron;
  std::string script;
  std::string timezone = "UTC";
  std::string args = "{}";
  std::string tag;
  int priority = 0;
  std::string catch_up = "skip";
  bool paused = false;
  bool json = false;
};

// A schedule name in a URL path: its slashes stay, anything else unusual is
// percent-encoded (the server rejects such names with a clear message).
std::string path_of(const std::string& name) { return url_escape(name); }

int call(const ScheduleArgs& a, const char* what, const std::string& method, const std::string& path,
         const Json& body = nullptr) {
  agent::ApiClient client(a.server, a.token);
  return print_or_fail(("schedule " + std::string(what)).c_str(), client.call(method, path, body));
}

int create(const ScheduleArgs& a) {
  auto args = Json::parse(a.args, nullptr, false);
  if (args.is_discarded() || !args.is_object()) {
    std::cerr << "quern schedule create: --args must be a JSON object, e.g. '{\"name\": \"Ada\"}'\n";
    return 2;
  }
  Json body{{"name", a.name}, {"cron", a.cron},         {"timezone", a.timezone}, {"script_path", a.script},
            {"args", args},   {"catch_up", a.catch_up}, {"paused", a.paused}};
  if (!a.tag.empty()) body["tag"] = a.tag;
  if (a.priority > 0) body["priority"] = a.priority;
  return call(a, "create", "POST", "/api/schedules", body);
}

}  // namespace

void register_schedule(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ScheduleArgs>();
  auto* cmd = app.add_subcommand("schedule", "Cron schedules on the server (docs/SCHEDULES.md)");
  cmd->require_subcommand(1);
  auto* create_cmd =
      cmd->add_subcommand("create", "Create or replace the schedule NAME: run --script on --cron's ticks");
  auto* list = cmd->add_subcommand("list", "List schedules");
  auto* get = cmd->add_subcommand("get", "Show a schedule");
  auto* pause = cmd->add_subcommand("pause", "Stop firing a schedule");
  auto* resume = cmd->add_subcommand("resume", "Fire a paused schedule again, from its next tick");
  auto* del = cmd->add_subcommand("delete", "Delete a schedule");
  for (auto* c : {create_cmd, list, get, pause, resume, del}) add_server_options(*c, *a);
  for (auto* c : {create_cmd, get, pause, resume, del})
    c->add_option("name", a->name, "Schedule name, e.g. f/team/nightly")->required();
  create_cmd->add_option("--cron", a->cron, "5 or 6 fields (seconds first), or @daily etc.")->required();
  create_cmd->add_option("--script", a->script, "Path of the script to run, e.g. f/team/report")->required();
  create_cmd->add_option("--timezone,--tz", a->timezone, "IANA time zone of the cron fields (default UTC)");
  create_cmd->add_option("--args", a->args, "Arguments as a JSON object");
  create_cmd->add_option("--tag", a->tag, "Routing tag (default: the script's)");
  create_cmd->add_option("--priority", a->priority, "1..100 (default: the script's)");
  create_cmd->add_option("--catch-up", a->catch_up, "Missed ticks after downtime: skip, latest or all")
      ->check(CLI::IsMember({"skip", "latest", "all"}));
  create_cmd->add_flag("--paused", a->paused, "Create it paused");

  create_cmd->callback([a, exit_code] { *exit_code = create(*a); });
  for (auto* c : {list, get}) c->add_flag("--json", a->json, "Print the API's JSON instead of the table");
  list->callback([a, exit_code] {
    *exit_code = show_table(*a, a->json, "/api/schedules", "schedule list",
                            [](const Json& doc, std::ostream& out) { print_schedules(doc, out); });
  });
  get->callback([a, exit_code] {
    *exit_code = show_table(*a, a->json, "/api/schedules/" + path_of(a->name), "schedule get",
                            [](const Json& doc, std::ostream& out) {
                              print_schedules(Json{{"schedules", {doc}}}, out);
                            });
  });
  pause->callback(
      [a, exit_code] { *exit_code = call(*a, "pause", "POST", "/api/schedules/pause/" + path_of(a->name)); });
  resume->callback([a, exit_code] {
    *exit_code = call(*a, "resume", "POST", "/api/schedules/resume/" + path_of(a->name));
  });
  del->callback(
      [a, exit_code] { *exit_code = call(*a, "delete", "DELETE", "/api/schedules/" + path_of(a->name)); });
}

}  // namespace quern::cli
