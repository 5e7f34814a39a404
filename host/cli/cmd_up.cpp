// `quern up`: everything on one machine — the embedded PostgreSQL when no
// database URL is configured, the schema, and one worker per configured group
// (each loading only its group's plugins). Optionally runs the example
// scripts of a folder and prints their results. SIGHUP re-reads the config
// and applies the groups' new tags and slots.
#include <algorithm>
#include <fstream>
#include <iostream>

#include "host/auth/tokens.h"
#include "host/cli/autoscaling.h"
#include "host/cli/commands.h"
#include "host/cli/job_follow.h"
#include "host/cli/process_metrics.h"
#include "host/cli/worker_groups.h"
#include "host/log/log.h"
#include "host/pg/embedded_postgres.h"
#include "host/service/notify.h"

namespace quern::cli {
namespace {

struct UpArgs {
  CommonOptions common;
  std::string examples_dir;
  bool exit_when_done = false;
  bool no_server = false;
  std::string metrics_listen;
};

// On a database without tokens, creates the first admin token and prints it
// (once: later starts find tokens and print nothing). Printed plainly, not
// logged: a secret has no place in a log pipeline.
void print_first_admin_token(const std::string& url) {
  auto store = auth::TokenStore::connect(url);
  if (!store) {
    log::error("up", store.message());
    return;
  }
  auto existing = (*store)->list();
  if (!existing || !existing->empty()) return;
  auth::NewToken t;
  t.role = auth::Role::admin;
  t.label = "first admin (quern up)";
  auto issued = (*store)->create(t);
  if (!issued) {
    log::error("up", "creating the first admin token failed: " + issued.message());
    return;
  }
  std::cerr << "quern up: first admin token (shown once; create more with `quern token create`):\n  "
            << issued->token << std::endl;
}

// Runs every script of the folder (sorted) and prints "name: state result".
// Returns how many did not succeed.
int run_examples(const config::Config& cfg, const std::string& url, const std::filesystem::path& dir) {
  auto q = queue::Queue::connect(url);
  if (!q) {
    log::error("up", "examples: " + q.message());
    return 1;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && (e.path().extension() == ".sh" || e.path().extension() == ".bash"))
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<std::pair<std::string, int64_t>> submitted;
  int failures = 0;
  for (const auto& f : files) {
    JobRequest req;
    auto job = [&]() -> StatusOr<queue::NewJob> {
      if (Status s = load_script_file(f, req); !s) return s;
      return make_job(req, cfg);
    }();
    auto id = job ? (*q)->push(*job) : StatusOr<int64_t>(job.status());
    if (!id) {
      std::cout << f.filename().string() << ": not submitted: " << id.message() << "\n";
      failures++;
      continue;
    }
    submitted.emplace_back(f.filename().string(), *id);
  }
  for (const auto& [name, id] : submitted) {
    auto rec = follow_job(**q, id, nullptr);
    if (!rec) {
      std::cout << name << ": " << rec.message() << "\n";
      failures++;
      continue;
    }
    std::cout << name << " (job " << id << "): " << rec->state << " → "
              << (rec->state == "success" ? rec->result.dump() : rec->error) << std::endl;
    if (rec->state != "success") failures++;
  }
  return failures;
}

// SIGHUP: the groups' new tags and slots; a bad file changes nothing.
// Groups added or removed need a restart (the API's routing rules too).
void reload_groups(const UpArgs& a, std::vector<std::unique_ptr<worker::Worker>>& workers,
                   std::vector<config::WorkerGroup>& groups, const std::vector<bool>& has_gpus) {
  auto cfg = load_effective_config(a.common);
  if (!cfg) {
    log::error("up", "reloading the config failed, keeping the old settings: " + cfg.message());
    return;
  }
  log::info("up", "config reloaded from " + cfg->source.string());
  for (size_t i = 0; i < groups.size(); ++i) {
    auto now = find_group(*cfg, groups[i].name);
    if (!now) {
      log::warning("up", "worker group " + groups[i].name + " was removed: needs a restart");
      continue;
    }
    now->tags = servable_tags(std::move(now->tags), has_gpus[i]);
    groups[i] = apply_group_change(*workers[i], groups[i], *now);
  }
  for (const auto& g : cfg->groups) {
    if (workers_come_from_autoscaler(g)) continue;  // its settings apply at a restart, like a new group's
    if (std::none_of(groups.begin(), groups.end(),
                     [&](const config::WorkerGroup& r) { return r.name == g.name; }))
      log::warning("up", "worker group " + g.name + " was added: needs a restart");
  }
}

int up(const UpArgs& a) {
  auto cfg = load_effective_config(a.common);
  if (!cfg) {
    log::error("up", cfg.message());
    return 2;
  }
  // One registry per group: a group loads only the plugins it enables. A
  // refused file stops everything only when a group (or <plugin path>) needs
  // it; else one warning for it, however many groups tried it.
  std::vector<std::unique_ptr<plugin::PluginRegistry>> registries;
  LoadReport loaded;
  for (const auto& g : cfg->groups) {
    registries.push_back(std::make_unique<plugin::PluginRegistry>());
    merge_reports(loaded, load_group_plugins(*cfg, g, *registries.back()));
  }
  std::vector<std::string> warnings;
  Status policy = apply_load_policy(loaded, warnings);
  for (const std::string& w : warnings) log::warning("up", w);
  if (!policy) {
    log::error("up", policy.message());
    return 2;
  }
  block_shutdown_signals();

  std::unique_ptr<pg::EmbeddedPostgres> embedded;
  std::string url = cfg->database_url;
  if (url.empty()) {
    pg::EmbeddedOptions eo;
    eo.data_dir = std::filesystem::absolute(cfg->data_dir / "postgres");
    log::info("up", "starting the embedded PostgreSQL in " + eo.data_dir.string());
    auto started = pg::EmbeddedPostgres::start(eo);
    if (!started) {
      log::error("up", started.message());
      return 1;
    }
    embedded = std::move(started).value();
    url = embedded->url();
    std::ofstream(embedded_url_file(*cfg)) << url << "\n";
  }
  {
    auto q = queue::Queue::connect(url);
    if (!q) {
      log::error("up", q.message());
      return 1;
    }
    auto version = (*q)->migrate();
    if (!version) {
      log::error("up", "migrating the schema failed: " + version.message());
      return 1;
    }
    log::info("up", "database ready (schema version " + std::to_string(*version) + ")");
  }

  // One registry for the server and every group's worker, served at one address.
  ProcessMetrics pm(a.metrics_listen.empty() ? cfg->server_metrics_listen : a.metrics_listen);
  std::vector<std::unique_ptr<metrics::WorkerMetrics>> worker_metrics;
  std::vector<metrics::ReadyCheck> ready;
  std::unique_ptr<server::Server> api;
  if (!a.no_server) {
    auto so = server_options_for(*cfg, url);
    if (pm.wanted()) so.metrics = &pm.registry();
    so.colocated_connections = 2 * static_cast<int>(cfg->groups.size());  // claimer (and cancels), writer
    if (acts_for_autoscaling(*cfg, true)) so.colocated_connections += 1;  // the autoscaler's
    api = std::make_unique<server::Server>(so);
    if (Status s = api->start(); !s) {
      log::error("up", s.message() + " (use --no-server to run without the API)");
      return 1;
    }
    log::info("up", "API on http://" + cfg->server_address + ":" + std::to_string(api->port()));
    ready.push_back([s = api.get()] { return s->ready(); });
    print_first_admin_token(url);
  }

  std::vector<std::unique_ptr<worker::Worker>> workers;
  std::vector<config::WorkerGroup> groups = cfg->groups;  // as each worker runs now
  std::vector<bool> has_gpus;                             // per worker
  for (size_t i = 0; i < groups.size(); ++i) {
    auto& g = groups[i];
    if (workers_come_from_autoscaler(g)) {  // started (or not) by the autoscaler below
      groups.erase(groups.begin() + static_cast<std::ptrdiff_t>(i));
      registries.erase(registries.begin() + static_cast<std::ptrdiff_t>(i));
      --i;
      continue;
    }
    auto options = worker_options_for(*cfg, g, url);
    options.plugin_configs = plugin_configs(*cfg, *registries[i]);
    if (std::string note = apply_gpu_capacity(*registries[i], options); !note.empty())
      log::info("up", "worker group " + g.name + ": " + note);
    if (options.tags.empty()) {  // e.g. the gpu group on a machine without GPUs
      log::warning("up", "worker group " + g.name + " not started: no tag this machine can serve");
      groups.erase(groups.begin() + static_cast<std::ptrdiff_t>(i));
      registries.erase(registries.begin() + static_cast<std::ptrdiff_t>(i));
      --i;
      continue;
    }
    g.tags = options.tags;
    has_gpus.push_back(!options.gpu_devices_mb.empty());
    if (pm.wanted()) {
      worker_metrics.push_back(std::make_unique<metrics::WorkerMetrics>(pm.registry(), g.name));
      options.metrics = worker_metrics.back().get();
    }
    auto w = std::make_unique<worker::Worker>(options, *registries[i]);
    if (Status s = w->start(); !s) {
      log::error("up", s.message());
      for (auto& started : workers) started->stop();
      return 1;
    }
    log::info("up",
              "worker group " + g.name + " (" + std::to_string(g.slots) + " slots, tags " +
                  join(g.tags, ",") + ", sandbox " + sandbox::describe(options.sandbox) + ")",
              {.worker = w->id()});
    ready.push_back([w = w.get()] { return w->ready(); });
    workers.push_back(std::move(w));
  }
  auto autoscaler =
      start_autoscaler(*cfg, url, a.common, true, pm.wanted() ? &pm.registry() : nullptr, live_within(*cfg));
  if (Status s = pm.serve(all_ready(std::move(ready))); !s) {
    log::error("up", s.message());
    for (auto& w : workers) w->stop();
    return 1;
  }
  log::info("up", "ready. Submit with: quern run FILE   (Ctrl-C stops everything)");
  service::notify("READY=1");

  int rc = 0;
  if (!a.examples_dir.empty()) rc = run_examples(*cfg, url, a.examples_dir) == 0 ? 0 : 1;
  if (!a.exit_when_done) {
    while (wait_for_signal() == SIGHUP) reload_groups(a, workers, groups, has_gpus);
  }
  log::info("up", "stopping");
  service::notify("STOPPING=1");
  pm.stop();           // before the workers and server its checks read
  autoscaler.reset();  // its local workers stop gracefully, as the others below
  for (auto& w : workers) w->stop();
  for (auto& w : workers) w->wait();
  // Close every connection before the embedded cluster goes: a worker's queue
  // says UNLISTEN on the way out, which must reach a live server.
  workers.clear();
  if (api) api->stop();
  api.reset();
  if (embedded) {
    std::error_code ec;
    std::filesystem::remove(embedded_url_file(*cfg), ec);
    if (Status s = embedded->stop(); !s) log::error("up", s.message());
  }
  log::info("up", "stopped");
  return rc;
}

}  // namespace

void register_up(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<UpArgs>();
  auto* cmd = app.add_subcommand("up", "Run everything on this machine (embedded PostgreSQL without a URL)");
  add_common_options(*cmd, a->common);
  cmd->add_option("--examples", a->examples_dir, "Run the scripts in this folder and print their results");
  cmd->add_flag("--exit-when-done", a->exit_when_done, "Stop after the examples instead of serving");
  cmd->add_flag("--no-server", a->no_server, "Don't start the HTTP API");
  add_metrics_option(*cmd, a->metrics_listen);
  cmd->callback([a, exit_code] { *exit_code = up(*a); });
}

}  // namespace quern::cli
