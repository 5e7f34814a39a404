// Each subcommand registers itself on the CLI11 app; its callback stores the
// process exit status in *exit_code.
#pragma once

#include <functional>
#include <ostream>

#include <CLI/CLI.hpp>

#include "host/cli/common.h"
#include "host/config/config.h"
#include "host/server/server.h"
#include "host/worker/worker.h"

namespace quern::cli {

// What every client command (cmd_client.cpp, cmd_schedule.cpp) needs to
// reach the server: --server and --token, or QUERN_SERVER / QUERN_TOKEN.
struct ServerConnection {
  std::string server = "http://127.0.0.1:8420";
  std::string token;
};
void add_server_options(CLI::App& cmd, ServerConnection& c);
// The API's JSON answer on stdout (returns 0), or "quern WHAT: error" on
// stderr (returns 1).
int print_or_fail(const char* what, const StatusOr<nlohmann::ordered_json>& r);
// Percent-encodes a path segment or query value for the API; '/' stays (script
// and schedule names span segments).
std::string url_escape(const std::string& value);

// GETs path and prints it for people with `print` (host/cli/tables.h), or
// the API's JSON with `json` (kubectl's -o json habit); errors as above.
using TablePrinter = std::function<void(const nlohmann::ordered_json&, std::ostream&)>;
int show_table(const ServerConnection& c, bool json, const std::string& path, const char* what,
               const TablePrinter& print);

void register_up(CLI::App& app, int* exit_code);
void register_worker(CLI::App& app, int* exit_code);
void register_run(CLI::App& app, int* exit_code);
void register_plugins(CLI::App& app, int* exit_code);
void register_server(CLI::App& app, int* exit_code);  // server, agent, token
void register_client(CLI::App& app, int* exit_code);  // script, job, queue, workers
void register_route(CLI::App& app, int* exit_code);   // route test
void register_schedule(CLI::App& app, int* exit_code);
void register_prune(CLI::App& app, int* exit_code);      // cmd_prune.cpp
void register_migrate(CLI::App& app, int* exit_code);    // cmd_migrate.cpp
void register_autoscale(CLI::App& app, int* exit_code);  // cmd_autoscale.cpp

// --config/--database-url/--plugin-dir/--data-dir on a subcommand.
void add_common_options(CLI::App& cmd, CommonOptions& options);

server::ServerOptions server_options_for(const config::Config& cfg, const std::string& database_url);
// The config's groups as (name, tags), and the file's name for messages.
std::vector<std::pair<std::string, std::vector<std::string>>> group_tags(const config::Config& cfg);
std::string config_name(const config::Config& cfg);
// How recently a worker must have reported to count as live (the API's
// "served", the autoscaler's signals): three heartbeats plus 5 s.
std::chrono::milliseconds live_within(const config::Config& cfg);
// The config's <retention> as the pruning's policy (cmd_prune.cpp).
retention::RetentionPolicy retention_policy_for(const config::Config& cfg);

struct JobRequest;
int run_through_server(const std::string& server, const std::string& token, const JobRequest& req);

// Worker options for one configured group.
worker::WorkerOptions worker_options_for(const config::Config& cfg, const config::WorkerGroup& group,
                                         const std::string& database_url);

}  // namespace quern::cli
