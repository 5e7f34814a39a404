// `quern worker`: one worker process serving a group's tags.
#include <iostream>

#include "host/cli/commands.h"

namespace quern::cli {

void add_common_options(CLI::App& cmd, CommonOptions& o) {
  cmd.add_option("--config", o.config_file, "XML config file (default: $QUERN_CONFIG or ./config/quern.xml)");
  cmd.add_option("--database-url", o.database_url,
                 "PostgreSQL URL (overrides config and QUERN_DATABASE_URL)");
  cmd.add_option("--plugin-dir", o.plugin_dir, "Directory of executor plugins (*.so)");
  cmd.add_option("--data-dir", o.data_dir, "Data directory (embedded PostgreSQL, job files)");
}

worker::WorkerOptions worker_options_for(const config::Config& cfg, const config::WorkerGroup& group,
                                         const std::string& database_url) {
  worker::WorkerOptions w;
  w.database_url = database_url;
  w.group = group.name;
  w.tags = group.tags;
  w.slots = group.slots;
  w.poll_interval = cfg.poll_interval;
  w.heartbeat_interval = cfg.effective_heartbeat_interval();
  w.lease_timeout = cfg.lease_timeout;
  w.kill_grace = cfg.kill_grace;
  w.default_timeout_s = cfg.default_timeout_s;
  w.max_restarts = cfg.max_restarts;
  w.dedicated_scripts = group.dedicated;
  return w;
}

namespace {

struct WorkerArgs {
  CommonOptions common;
  std::string group;
  std::vector<std::string> tags;
  int slots = 0;
  std::string worker_id;
  double shutdown_grace_s = 30;
  std::vector<std::string> dedicated;
};

int run_worker(const WorkerArgs& a) {
  auto cfg = load_effective_config(a.common);
  if (!cfg) {
    std::cerr << "quern worker: " << cfg.message() << "\n";
    return 2;
  }
  config::WorkerGroup group = cfg->groups.empty() ? config::WorkerGroup{} : cfg->groups.front();
  if (!a.group.empty()) {
    bool found = false;
    for (const auto& g : cfg->groups)
      if (g.name == a.group) group = g, found = true;
    if (!found) {
      std::cerr << "quern worker: no worker group '" << a.group << "' in " << cfg->source.string() << "\n";
      return 2;
    }
  }
  if (!a.tags.empty()) group.tags = a.tags;
  if (a.slots > 0) group.slots = a.slots;
  if (!a.dedicated.empty()) group.dedicated = a.dedicated;
  auto url = resolve_database_url(*cfg);
  if (!url) {
    std::cerr << "quern worker: " << url.message() << "\n";
    return 2;
  }
  plugin::PluginRegistry registry;
  if (Status s = load_plugins(*cfg, registry); !s) {
    std::cerr << "quern worker: " << s.message() << "\n";
    return 2;
  }
  auto options = worker_options_for(*cfg, group, *url);
  options.worker_id = a.worker_id;
  options.shutdown_grace = std::chrono::milliseconds(static_cast<int64_t>(a.shutdown_grace_s * 1000));
  options.plugin_configs = plugin_configs(*cfg, registry);
  block_shutdown_signals();
  worker::Worker w(options, registry);
  if (Status s = w.start(); !s) {
    std::cerr << "quern worker: " << s.message() << "\n";
    return 1;
  }
  std::string tags;
  for (const auto& t : group.tags) tags += (tags.empty() ? "" : ",") + t;
  std::cerr << "quern worker " << w.id() << ": group " << group.name << ", " << group.slots << " slots, tags "
            << tags << std::endl;
  while (true) {
    int sig = wait_for_signal();
    if (sig == SIGHUP) continue;  // config reload comes with worker groups (issue 5)
    break;
  }
  std::cerr << "quern worker " << w.id() << ": stopping (running jobs may finish)" << std::endl;
  w.stop();
  w.wait();
  return 0;
}

}  // namespace

void register_worker(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<WorkerArgs>();
  auto* cmd = app.add_subcommand("worker", "Run a worker: claim jobs of its tags and execute them");
  add_common_options(*cmd, args->common);
  cmd->add_option("--group", args->group, "Worker group from the config (default: the first)");
  cmd->add_option("--tags", args->tags, "Tags to serve (overrides the group's)")->delimiter(',');
  cmd->add_option("--slots", args->slots, "Jobs run at once (overrides the group's)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--worker-id", args->worker_id, "Worker id (default: host-pid-random)");
  cmd->add_option("--dedicated", args->dedicated,
                  "Keep these scripts warm (paths like f/team/name); their runs are routed here")
      ->delimiter(',');
  cmd->add_option("--shutdown-grace", args->shutdown_grace_s,
                  "Seconds running jobs may go on after SIGTERM before they are handed back")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([args, exit_code] { *exit_code = run_worker(*args); });
}

}  // namespace quern::cli
