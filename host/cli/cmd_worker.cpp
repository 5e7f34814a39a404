// `quern worker`: one worker process serving a group's tags. The group comes
// from the config (--group, else the first); SIGHUP re-reads the config and
// applies the group's new tags and slots (docs/ROUTING.md, "Reload").
#include <algorithm>
#include <chrono>
#include <csignal>
#include <optional>

#include "host/cli/commands.h"
#include "host/cli/process_metrics.h"
#include "host/cli/worker_groups.h"
#include "host/log/log.h"
#include "host/service/notify.h"

namespace quern::cli {

void add_common_options(CLI::App& cmd, CommonOptions& o) {
  cmd.add_option("--config", o.config_file, "XML config file (default: $QUERN_CONFIG or ./config/quern.xml)");
  cmd.add_option("--database-url", o.database_url,
                 "PostgreSQL URL (overrides config and QUERN_DATABASE_URL)");
  cmd.add_option("--plugin-dir", o.plugin_dir, "Directory of executor plugins (libquern_*.so)");
  cmd.add_option("--data-dir", o.data_dir, "Data directory (embedded PostgreSQL, job files)");
}

worker::WorkerOptions worker_options_for(const config::Config& cfg, const config::WorkerGroup& group,
                                         const std::string& database_url) {
  worker::WorkerOptions w;
  w.database_url = database_url;
  w.version = QUERN_VERSION;  // what the registry and `quern workers` show
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
  w.pass_env = group.pass_env;
  w.in_process_plugins = group.in_process;
  w.sandbox.mode = group.sandbox == "none" ? sandbox::Mode::none : sandbox::Mode::bwrap;
  w.sandbox.network = group.network == "none" ? sandbox::Network::none : sandbox::Network::host;
  w.sandbox.announce_none = group.sandbox == "none";
  w.sandbox.limits = {group.memory_max, group.pids_max, group.cpu_max_milli};
  w.sandbox.tmp_size = group.tmp_size;
  w.sandbox.nofile = group.nofile;
  w.sandbox.job_user = group.job_user;
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
  std::vector<std::string> in_process;
  std::string metrics_listen;
};

// The group the worker runs as: the config's (--group, else the first) with
// the command-line overrides applied. --tags without --group makes an ad-hoc
// worker that loads every plugin: its tags may need any of them.
StatusOr<config::WorkerGroup> effective_group(const config::Config& cfg, const WorkerArgs& a) {
  config::WorkerGroup group = cfg.groups.empty() ? config::WorkerGroup{} : cfg.groups.front();
  if (!a.group.empty()) {
    auto found = find_group(cfg, a.group);
    if (!found) return found.status();
    group = std::move(found).value();
  } else if (!a.tags.empty()) {
    group.plugins.clear();
  }
  if (!a.tags.empty()) group.tags = a.tags;
  if (a.slots > 0) group.slots = a.slots;
  if (!a.dedicated.empty()) group.dedicated = a.dedicated;
  if (a.in_process == std::vector<std::string>{"none"})
    group.in_process.clear();
  else if (!a.in_process.empty())
    group.in_process = a.in_process;
  return group;
}

// SIGHUP: the config file again; a bad file changes nothing.
config::WorkerGroup reload(worker::Worker& w, const WorkerArgs& a, const config::WorkerGroup& current,
                           bool has_gpus) {
  const log::Fields fields{.worker = w.id()};
  auto cfg = load_effective_config(a.common);
  if (!cfg) {
    log::error("worker", "reloading the config failed, keeping the old settings: " + cfg.message(), fields);
    return current;
  }
  WorkerArgs by_name = a;
  by_name.group = current.name;  // the group this worker runs as, even if it was the first and moved
  auto group = effective_group(*cfg, by_name);
  if (!group) {
    log::error("worker", "reloading the config failed, keeping the old settings: " + group.message(), fields);
    return current;
  }
  if (a.group.empty() && !a.tags.empty()) group->plugins = current.plugins;  // ad-hoc: still every plugin
  group->tags = servable_tags(std::move(group->tags), has_gpus);
  log::info("worker", "config reloaded from " + cfg->source.string(), fields);
  return apply_group_change(w, current, *group);
}

int run_worker(const WorkerArgs& a) {
  // Until the worker exists, its id is known only when --worker-id gave it.
  const log::Fields given{.worker = a.worker_id};
  auto cfg = load_effective_config(a.common);
  if (!cfg) {
    log::error("worker", cfg.message(), given);
    return 2;
  }
  auto group = effective_group(*cfg, a);
  if (!group) {
    log::error("worker", group.message(), given);
    return 2;
  }
  auto url = resolve_database_url(*cfg);
  if (!url) {
    log::error("worker", url.message(), given);
    return 2;
  }
  plugin::PluginRegistry registry;
  std::vector<std::string> warnings;
  Status loaded = apply_load_policy(load_group_plugins(*cfg, *group, registry), warnings);
  for (const std::string& w : warnings) log::warning("worker", w, given);
  if (!loaded) {
    log::error("worker", loaded.message(), given);
    return 2;
  }
  auto options = worker_options_for(*cfg, *group, *url);
  options.worker_id = a.worker_id;
  options.shutdown_grace = std::chrono::milliseconds(static_cast<int64_t>(a.shutdown_grace_s * 1000));
  options.plugin_configs = plugin_configs(*cfg, registry);
  if (std::string note = apply_gpu_capacity(registry, options); !note.empty())
    log::info("worker", note, given);
  if (options.tags.empty()) {
    log::error("worker", "group " + group->name + " has no tag this machine can serve", given);
    return 2;
  }
  group->tags = options.tags;
  ping_watchdog_from_heartbeats(options);
  const bool has_gpus = !options.gpu_devices_mb.empty();
  block_shutdown_signals();
  ProcessMetrics pm(a.metrics_listen);
  std::optional<metrics::WorkerMetrics> wm;
  if (pm.wanted()) options.metrics = &wm.emplace(pm.registry(), group->name);
  worker::Worker w(options, registry);
  const log::Fields fields{.worker = w.id()};
  // A database that is away (restarting, out of connections) is waited for,
  // with backoff, until it answers or the worker is told to stop.
  // A schema older than the worker's (or none) is waited for too, said once
  // a minute: a server or `quern migrate` brings it up.
  std::optional<std::chrono::steady_clock::time_point> schema_said;
  for (auto delay = std::chrono::milliseconds(250);;
       delay = std::min(delay * 2, std::chrono::milliseconds(5000))) {
    Status s = w.start();
    if (s) break;
    if (s.code() == StatusCode::not_found) {  // Worker::start: the schema it needs is not there yet
      const auto now = std::chrono::steady_clock::now();
      if (!schema_said || now - *schema_said >= std::chrono::minutes(1)) {
        log::warning("worker", s.message() + "; waiting for it", fields);
        service::notify("STATUS=waiting for the database's schema: " + s.message());
        schema_said = now;
      }
    } else if (s.code() != StatusCode::unavailable) {
      log::error("worker", s.message(), fields);
      return 1;
    } else {
      log::warning("worker",
                   "the database is not reachable, retrying in " + std::to_string(delay.count()) +
                       " ms: " + s.message(),
                   fields);
    }
    if (int sig = wait_for_signal(delay); sig == SIGINT || sig == SIGTERM) return 1;
  }
  if (Status s = pm.serve([&w] { return w.ready(); }); !s) {
    log::error("worker", s.message(), fields);
    w.stop();
    w.wait();
    return 1;
  }
  const std::string serving = "group " + group->name + ", " + std::to_string(group->slots) + " slots, tags " +
                              join(group->tags, ",") + ", sandbox " + sandbox::describe(options.sandbox);
  log::info("worker", serving, fields);
  service::notify("READY=1\nSTATUS=" + serving);
  config::WorkerGroup current = *group;
  while (wait_for_signal() == SIGHUP) {
    service::notify("RELOADING=1");
    current = reload(w, a, current, has_gpus);
    service::notify("READY=1");
  }
  log::info("worker", "stopping (running jobs may finish)", fields);
  service::notify("STOPPING=1\nSTATUS=stopping: running jobs may finish or are handed back");
  w.stop();
  w.wait();
  pm.stop();
  return 0;
}

}  // namespace

void register_worker(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<WorkerArgs>();
  auto* cmd = app.add_subcommand("worker", "Run a worker: claim jobs of its tags and execute them");
  add_common_options(*cmd, args->common);
  cmd->add_option("--group", args->group,
                  "Worker group from the config: tags, slots, plugins, pass-env (default: the first)");
  cmd->add_option("--tags", args->tags,
                  "Tags to serve (overrides the group's; without --group: every plugin is loaded)")
      ->delimiter(',');
  cmd->add_option("--slots", args->slots, "Jobs run at once (overrides the group's)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--worker-id", args->worker_id, "Worker id (default: host-pid-random)");
  cmd->add_option("--dedicated", args->dedicated,
                  "Keep these scripts warm (paths like f/team/name); their runs are routed here")
      ->delimiter(',');
  cmd->add_option("--in-process", args->in_process,
                  "Plugins whose code runs in the worker's own process, or none (trusted plugins only: "
                  "a crash in one ends the worker; default: the group's in-process, Quern's own plugins; "
                  "the others run in a slot process per slot)")
      ->delimiter(',');
  cmd->add_option("--shutdown-grace", args->shutdown_grace_s,
                  "Seconds running jobs may go on after SIGTERM before they are handed back")
      ->check(CLI::NonNegativeNumber);
  add_metrics_option(*cmd, args->metrics_listen);
  cmd->callback([args, exit_code] { *exit_code = run_worker(*args); });
}

}  // namespace quern::cli
