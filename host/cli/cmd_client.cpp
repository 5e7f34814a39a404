// Client commands that go through the HTTP API: `quern script
// deploy|list|versions`, `quern job get|list|logs|cancel`, `quern queue`,
// `quern workers`: tables for people (host/cli/tables.h), or the API's JSON
// with --json.
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "host/agent/api_client.h"
#include "host/cgroup/cgroup.h"
#include "host/cli/commands.h"
#include "host/cli/job_follow.h"
#include "host/cli/tables.h"

namespace quern::cli {
namespace {

using Json = nlohmann::ordered_json;

struct ClientArgs : ServerConnection {
  std::string path;
  std::string file;
  std::string language;
  std::string tag;
  int priority = 0;
  int timeout_s = 0;
  std::string id;
  std::string state;
  int limit = 50;
  bool json = false;
};

int deploy(const ClientArgs& a) {
  std::ifstream in(a.file, std::ios::binary);
  if (!in) {
    std::cerr << "quern script deploy: cannot read " << a.file << "\n";
    return 2;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  JobRequest probe;
  probe.language = a.language;
  if (probe.language.empty()) {
    if (Status s = load_script_file(a.file, probe); !s) {
      std::cerr << "quern script deploy: " << s.message() << "\n";
      return 2;
    }
  }
  Json body{{"path", a.path}, {"language", probe.language}, {"content", ss.str()}};
  if (!a.tag.empty()) body["tag"] = a.tag;
  if (a.priority > 0) body["priority"] = a.priority;
  if (a.timeout_s > 0) body["timeout_s"] = a.timeout_s;
  agent::ApiClient client(a.server, a.token);
  return print_or_fail("script deploy", client.call("POST", "/api/scripts", body));
}

int job_get(const ClientArgs& a) {
  return show_table(a, a.json, "/api/jobs/" + a.id, "job get",
                    [](const Json& doc, std::ostream& out) { print_job(doc, out); });
}

int job_list(const ClientArgs& a) {
  std::string path = "/api/jobs?limit=" + std::to_string(a.limit);
  for (const auto& [key, value] : {std::pair{"state", a.state}, {"tag", a.tag}, {"script_path", a.path}})
    if (!value.empty()) path += std::string("&") + key + "=" + url_escape(value);
  if (!a.id.empty()) path += "&before_id=" + url_escape(a.id);
  return show_table(a, a.json, path, "job list",
                    [](const Json& doc, std::ostream& out) { print_jobs(doc, out); });
}

int job_logs(const ClientArgs& a) {
  agent::ApiClient client(a.server, a.token);
  auto r = client.request("GET", "/api/jobs/" + a.id + "/logs");
  if (!r || r->status != 200) {
    std::cerr << "quern job logs: " << (r ? r->error_message() : r.message()) << "\n";
    return 1;
  }
  std::cout << r->body << std::flush;
  return 0;
}

int job_cancel(const ClientArgs& a) {
  agent::ApiClient client(a.server, a.token);
  return print_or_fail("job cancel", client.call("POST", "/api/jobs/" + a.id + "/cancel"));
}

// Tags, then the concurrency keys when there are any.
int queue_tables(const ClientArgs& a) {
  if (a.json) return show_table(a, true, "/api/queue", "queue", {});
  if (int rc = show_table(a, false, "/api/queue", "queue", print_queue); rc != 0) return rc;
  agent::ApiClient client(a.server, a.token);
  auto limits = client.call("GET", "/api/queue/limits");
  if (limits && !limits->value("keys", Json::array()).empty()) {
    std::cout << "\n";
    print_queue_limits(*limits, std::cout);
  }
  return 0;
}

std::string fixed(double v, int decimals) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << v;
  return out.str();
}

// One line per worker: what an operator scans for (late heartbeats, busy
// slots, memory, unhealthy plugins); `--json` gives the whole document.
void print_workers(const Json& doc, std::ostream& out) {
  const Json& list = doc.contains("workers") ? doc["workers"] : Json::array();
  std::vector<std::vector<std::string>> rows{{"ID", "KIND", "GROUP", "SLOTS", "RUNNING", "OCC 15s/5m/30m",
                                              "RSS", "CPU s", "HEARTBEAT", "VERSION", "PLUGINS",
                                              "ISOLATION"}};
  for (const Json& w : list) {
    const Json t = w.value("telemetry", Json::object());
    const Json occ = t.value("occupancy", Json::object());
    std::string occupancy = "-", rss = "-", cpu = "-", plugins = "-";
    if (!occ.empty())
      occupancy = fixed(occ.value("15s", 0.0), 2) + "/" + fixed(occ.value("5m", 0.0), 2) + "/" +
                  fixed(occ.value("30m", 0.0), 2);
    if (t.contains("rss_bytes")) rss = cgroup::format_bytes(t.value("rss_bytes", int64_t{0}));
    if (t.contains("cpu_seconds")) cpu = fixed(t.value("cpu_seconds", 0.0), 1);
    if (t.contains("plugins")) {
      std::string bad;
      int ok = 0, unchecked = 0;
      for (const auto& [name, health] : t["plugins"].items()) {
        if (health == "ok")
          ++ok;
        else if (health == "unchecked")
          ++unchecked;
        else
          bad += (bad.empty() ? "" : "; ") + name + ": " + health.get<std::string>();
      }
      plugins = bad.empty() ? std::to_string(ok) + " ok, " + std::to_string(unchecked) + " unchecked" : bad;
    }
    std::string beat = fixed(w.value("heartbeat_age_s", 0.0), 1) + "s ago";
    if (w.value("late", false)) beat += " LATE";
    rows.push_back({w.value("id", ""), w.value("kind", ""), w.value("group", ""),
                    std::to_string(w.value("slots", 0)), std::to_string(w.value("running", 0)), occupancy,
                    rss, cpu, beat, w.value("version", ""), plugins, w.value("isolation", "")});
  }
  print_table(rows, out);
}

int workers(const ClientArgs& a) { return show_table(a, a.json, "/api/workers", "workers", print_workers); }

}  // namespace

// `quern run --server URL --token T`: submit through the API, follow the job
// (logs and state) until it ends. Returns the exit status.
int run_through_server(const std::string& server, const std::string& token, const JobRequest& req) {
  agent::ApiClient client(server, token);
  auto args = Json::parse(req.args_json, nullptr, false);
  Json body{{"language", req.language}, {"content", req.code}, {"args", args}};
  if (!req.tag.empty()) body["tag"] = req.tag;
  if (req.priority != queue::kDefaultPriority) body["priority"] = req.priority;
  if (req.timeout_s > 0) body["timeout_s"] = req.timeout_s;
  auto submitted = client.call("POST", "/api/jobs/run_inline", body);
  if (!submitted) {
    std::cerr << "quern run: " << submitted.message() << "\n";
    return 1;
  }
  const std::string id = std::to_string(submitted->value("id", int64_t{0}));
  std::cerr << "job " << id << " queued (tag " << submitted->value("tag", "") << ")" << std::endl;
  if (auto w = submitted->find("warning"); w != submitted->end() && w->is_string())
    std::cerr << "note: " << w->get<std::string>() << std::endl;
  size_t offset = 0;
  for (auto delay = std::chrono::milliseconds(5);;
       delay = std::min(delay * 2, std::chrono::milliseconds(200))) {
    auto job = client.call("GET", "/api/jobs/" + id);
    if (!job) {
      std::cerr << "quern run: " << job.message() << "\n";
      return 1;
    }
    auto logs = client.request("GET", "/api/jobs/" + id + "/logs?offset=" + std::to_string(offset));
    if (logs && logs->status == 200 && !logs->body.empty()) {
      std::cerr << logs->body << std::flush;
      offset += logs->body.size();
    }
    const std::string state = job->value("state", "");
    if (state != "queued" && state != "running") {
      if (state == "success")
        std::cout << (*job)["result"].dump() << std::endl;
      else
        std::cerr << "job " << id << " " << state << ": " << job->value("error", "") << std::endl;
      return exit_code_for(state);
    }
    std::this_thread::sleep_for(delay);  // polling interval
  }
}

void add_server_options(CLI::App& cmd, ServerConnection& c) {
  cmd.add_option("--server", c.server, "Server URL")->envname("QUERN_SERVER");
  cmd.add_option("--token", c.token, "API token")->envname("QUERN_TOKEN");
}

std::string url_escape(const std::string& value) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

int show_table(const ServerConnection& c, bool json, const std::string& path, const char* what,
               const TablePrinter& print) {
  agent::ApiClient client(c.server, c.token);
  auto r = client.call("GET", path);
  if (json || !r) return print_or_fail(what, r);
  print(*r, std::cout);
  return 0;
}

int print_or_fail(const char* what, const StatusOr<nlohmann::ordered_json>& r) {
  if (!r) {
    std::cerr << "quern " << what << ": " << r.message() << "\n";
    return 1;
  }
  std::cout << r->dump(2) << std::endl;
  return 0;
}

void register_client(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ClientArgs>();
  auto* script = app.add_subcommand("script", "Scripts on the server");
  script->require_subcommand(1);
  auto* dep =
      script->add_subcommand("deploy", "Deploy FILE as the script PATH (a new version if it changed)");
  add_server_options(*dep, *a);
  dep->add_option("path", a->path, "Script path, e.g. f/team/name")->required();
  dep->add_option("file", a->file, "File with the code")->required();
  dep->add_option("--language,-l", a->language, "Language (default: from the extension)");
  dep->add_option("--tag", a->tag, "Routing tag for its jobs");
  dep->add_option("--priority", a->priority, "1..100");
  dep->add_option("--timeout", a->timeout_s, "Seconds");
  dep->callback([a, exit_code] { *exit_code = deploy(*a); });
  auto* slist = script->add_subcommand("list", "List scripts (the latest version of each path)");
  auto* versions = script->add_subcommand("versions", "All versions of the script PATH, newest first");
  versions->add_option("path", a->path, "Script path, e.g. f/team/name")->required();
  for (auto* c : {slist, versions}) {
    add_server_options(*c, *a);
    c->add_flag("--json", a->json, "Print the API's JSON instead of the table");
  }
  slist->callback([a, exit_code] {
    *exit_code = show_table(*a, a->json, "/api/scripts", "script list",
                            [](const Json& doc, std::ostream& out) { print_scripts(doc, out); });
  });
  versions->callback([a, exit_code] {
    *exit_code = show_table(*a, a->json, "/api/scripts/versions/" + a->path, "script versions",
                            [](const Json& doc, std::ostream& out) { print_script_versions(doc, out); });
  });

  auto* job = app.add_subcommand("job", "Jobs on the server");
  job->require_subcommand(1);
  auto* get = job->add_subcommand("get", "Show a job");
  auto* logs = job->add_subcommand("logs", "Print a job's log");
  auto* cancel = job->add_subcommand("cancel", "Cancel a job");
  for (auto* c : {get, logs, cancel}) {
    add_server_options(*c, *a);
    c->add_option("id", a->id, "Job id")->required();
  }
  get->add_flag("--json", a->json, "Print the API's JSON instead of the summary");
  get->callback([a, exit_code] { *exit_code = job_get(*a); });
  auto* list = job->add_subcommand("list", "List jobs, newest first");
  add_server_options(*list, *a);
  list->add_option("--state", a->state, "queued, running, success, failure, timeout or canceled");
  list->add_option("--tag", a->tag, "Only this tag");
  list->add_option("--script", a->path, "Only jobs of this script path");
  list->add_option("--limit", a->limit, "At most this many (1..1000)")->check(CLI::Range(1, 1000));
  list->add_option("--before", a->id, "Only jobs older than this id (the next page)");
  list->add_flag("--json", a->json, "Print the API's JSON instead of the table");
  list->callback([a, exit_code] { *exit_code = job_list(*a); });
  logs->callback([a, exit_code] { *exit_code = job_logs(*a); });
  cancel->callback([a, exit_code] { *exit_code = job_cancel(*a); });

  auto* q = app.add_subcommand("queue", "Queue statistics per tag");
  add_server_options(*q, *a);
  q->add_flag("--json", a->json, "Print the API's JSON instead of the tables");
  q->callback([a, exit_code] { *exit_code = queue_tables(*a); });
  auto* w = app.add_subcommand("workers", "Workers and agents");
  add_server_options(*w, *a);
  w->add_flag("--json", a->json, "Print the API's whole JSON document instead of the table");
  w->callback([a, exit_code] { *exit_code = workers(*a); });
}

}  // namespace quern::cli
