// `quern up`: everything on one machine — the embedded PostgreSQL when no
// database URL is configured, the schema, and one worker per configured group.
// Optionally runs the example scripts of a folder and prints their results.
#include <algorithm>
#include <fstream>
#include <iostream>

#include "host/auth/tokens.h"
#include "host/cli/commands.h"
#include "host/cli/job_follow.h"
#include "host/pg/embedded_postgres.h"

namespace quern::cli {
namespace {

struct UpArgs {
  CommonOptions common;
  std::string examples_dir;
  bool exit_when_done = false;
  bool no_server = false;
};

// On a database without tokens, creates the first admin token and prints it
// (once: later starts find tokens and print nothing).
void print_first_admin_token(const std::string& url) {
  auto store = auth::TokenStore::connect(url);
  if (!store) {
    std::cerr << "quern up: " << store.message() << "\n";
    return;
  }
  auto existing = (*store)->list();
  if (!existing || !existing->empty()) return;
  auth::NewToken t;
  t.role = auth::Role::admin;
  t.label = "first admin (quern up)";
  auto issued = (*store)->create(t);
  if (!issued) {
    std::cerr << "quern up: creating the first admin token failed: " << issued.message() << "\n";
    return;
  }
  std::cerr << "quern up: first admin token (shown once; create more with `quern token create`):\n  "
            << issued->token << std::endl;
}

// Runs every script of the folder (sorted) and prints "name: state result".
// Returns how many did not succeed.
int run_examples(const std::string& url, const std::filesystem::path& dir) {
  auto q = queue::Queue::connect(url);
  if (!q) {
    std::cerr << "examples: " << q.message() << "\n";
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
      return make_job(req);
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

int up(const UpArgs& a) {
  auto cfg = load_effective_config(a.common);
  if (!cfg) {
    std::cerr << "quern up: " << cfg.message() << "\n";
    return 2;
  }
  plugin::PluginRegistry registry;
  if (Status s = load_plugins(*cfg, registry); !s) {
    std::cerr << "quern up: " << s.message() << "\n";
    return 2;
  }
  block_shutdown_signals();

  std::unique_ptr<pg::EmbeddedPostgres> embedded;
  std::string url = cfg->database_url;
  if (url.empty()) {
    pg::EmbeddedOptions eo;
    eo.data_dir = std::filesystem::absolute(cfg->data_dir / "postgres");
    std::cerr << "quern up: starting the embedded PostgreSQL in " << eo.data_dir.string() << std::endl;
    auto started = pg::EmbeddedPostgres::start(eo);
    if (!started) {
      std::cerr << "quern up: " << started.message() << "\n";
      return 1;
    }
    embedded = std::move(started).value();
    url = embedded->url();
    std::ofstream(embedded_url_file(*cfg)) << url << "\n";
  }
  {
    auto q = queue::Queue::connect(url);
    if (!q) {
      std::cerr << "quern up: " << q.message() << "\n";
      return 1;
    }
    auto version = (*q)->migrate();
    if (!version) {
      std::cerr << "quern up: migrating the schema failed: " << version.message() << "\n";
      return 1;
    }
    std::cerr << "quern up: database ready (schema version " << *version << ")" << std::endl;
  }

  std::unique_ptr<server::Server> api;
  if (!a.no_server) {
    api = std::make_unique<server::Server>(server_options_for(*cfg, url));
    if (Status s = api->start(); !s) {
      std::cerr << "quern up: " << s.message() << " (use --no-server to run without the API)\n";
      return 1;
    }
    std::cerr << "quern up: API on http://" << cfg->server_address << ":" << api->port() << std::endl;
    print_first_admin_token(url);
  }

  std::vector<std::unique_ptr<worker::Worker>> workers;
  const auto configs = plugin_configs(*cfg, registry);
  for (const auto& g : cfg->groups) {
    auto options = worker_options_for(*cfg, g, url);
    options.plugin_configs = configs;
    auto w = std::make_unique<worker::Worker>(options, registry);
    if (Status s = w->start(); !s) {
      std::cerr << "quern up: " << s.message() << "\n";
      for (auto& started : workers) started->stop();
      return 1;
    }
    std::string tags;
    for (const auto& t : g.tags) tags += (tags.empty() ? "" : ",") + t;
    std::cerr << "quern up: worker group " << g.name << " (" << g.slots << " slots, tags " << tags << ")"
              << std::endl;
    workers.push_back(std::move(w));
  }
  std::cerr << "quern up: ready. Submit with: quern run FILE   (Ctrl-C stops everything)" << std::endl;

  int rc = 0;
  if (!a.examples_dir.empty()) rc = run_examples(url, a.examples_dir) == 0 ? 0 : 1;
  if (!a.exit_when_done) {
    while (wait_for_signal() == SIGHUP) {
    }
  }
  std::cerr << "quern up: stopping" << std::endl;
  for (auto& w : workers) w->stop();
  for (auto& w : workers) w->wait();
  if (api) api->stop();
  if (embedded) {
    std::error_code ec;
    std::filesystem::remove(embedded_url_file(*cfg), ec);
    if (Status s = embedded->stop(); !s) std::cerr << "quern up: " << s.message() << "\n";
  }
  std::cerr << "quern up: stopped" << std::endl;
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
  cmd->callback([a, exit_code] { *exit_code = up(*a); });
}

}  // namespace quern::cli
