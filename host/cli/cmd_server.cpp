// `quern server`, `quern agent` and `quern token`.
#include <unistd.h>

#include <iostream>
#include <optional>
#include <thread>

#include "host/agent/agent_source.h"
#include "host/auth/tokens.h"
#include "host/cli/autoscaling.h"
#include "host/cli/commands.h"
#include "host/cli/process_metrics.h"
#include "host/cli/tables.h"
#include "host/cli/worker_groups.h"
#include "host/log/log.h"
#include "host/server/server.h"
#include "host/service/notify.h"

namespace quern::cli {

std::vector<std::pair<std::string, std::vector<std::string>>> group_tags(const config::Config& cfg) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& g : cfg.groups) out.emplace_back(g.name, g.tags);
  return out;
}

std::string config_name(const config::Config& cfg) {
  return cfg.source.empty() ? std::string("the built-in config") : cfg.source.string();
}

std::chrono::milliseconds live_within(const config::Config& cfg) {
  return cfg.effective_heartbeat_interval() * 3 + std::chrono::seconds(5);
}

server::ServerOptions server_options_for(const config::Config& cfg, const std::string& url) {
  server::ServerOptions o;
  o.api.group_tags = group_tags(cfg);
  o.api.config_name = config_name(cfg);
  o.address = cfg.server_address;
  o.port = cfg.server_port;
  o.api.database_url = url;
  o.api.max_wait = cfg.server_max_wait;
  o.api.live_within = live_within(cfg);
  o.api.db_connections = static_cast<size_t>(cfg.server_db_connections);
  o.api.db_idle_timeout = cfg.server_db_idle_timeout;
  o.api.queue_options.default_max_restarts = cfg.max_restarts;
  o.api.routing_rules = cfg.routing_rules;
  o.api.limits = cfg.limits;
  o.api.max_timeout_s = cfg.max_timeout_s;
  o.limits.handler_threads = cfg.server_handler_threads;
  o.lease_timeout = cfg.lease_timeout;
  o.retention = retention_policy_for(cfg);
  return o;
}

namespace {

struct ServerArgs {
  CommonOptions common;
  std::string listen;
  std::string metrics_listen;
};

int run_server(const ServerArgs& a) {
  auto cfg = load_effective_config(a.common);
  if (!cfg) {
    log::error("server", cfg.message());
    return 2;
  }
  if (!a.listen.empty()) {
    auto colon = a.listen.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      std::cerr << "quern server: --listen expects ADDRESS:PORT, got '" << a.listen << "'\n";
      return 2;
    }
    cfg->server_address = a.listen.substr(0, colon);
    cfg->server_port = static_cast<uint16_t>(std::stoi(a.listen.substr(colon + 1)));
  }
  auto url = resolve_database_url(*cfg);
  if (!url) {
    log::error("server", url.message());
    return 2;
  }
  block_shutdown_signals();
  ProcessMetrics pm(a.metrics_listen.empty() ? cfg->server_metrics_listen : a.metrics_listen);
  auto so = server_options_for(*cfg, *url);
  if (pm.wanted()) so.metrics = &pm.registry();
  if (acts_for_autoscaling(*cfg, false)) so.colocated_connections += 1;  // the autoscaler's
  server::Server s(so);
  if (Status st = s.start(); !st) {
    log::error("server", st.message());
    return 1;
  }
  auto autoscaler = start_autoscaler(*cfg, *url, a.common, false, pm.wanted() ? &pm.registry() : nullptr,
                                     so.api.live_within);
  log::info("server", "listening on http://" + cfg->server_address + ":" + std::to_string(s.port()));
  if (Status st = pm.serve([&s] { return s.ready(); }); !st) {
    log::error("server", st.message());
    return 1;
  }
  service::notify("READY=1\nSTATUS=serving on port " + std::to_string(s.port()));
  while (wait_for_signal() == SIGHUP) {
  }
  log::info("server", "stopping");
  service::notify("STOPPING=1");
  pm.stop();
  autoscaler.reset();
  s.stop();
  return 0;
}

struct AgentArgs {
  std::string server;
  std::string token;
  int slots = 4;
  std::string worker_id;
  std::string plugin_dir;
  std::string config_file;
  double shutdown_grace_s = 30;
  std::string metrics_listen;
};

int run_agent(const AgentArgs& a) {
  CommonOptions common;
  common.config_file = a.config_file;
  common.plugin_dir = a.plugin_dir;
  auto cfg = load_effective_config(common);
  if (!cfg) {
    log::error("agent", cfg.message());
    return 2;
  }
  if (a.token.empty()) {
    std::cerr << "quern agent: --token (or QUERN_TOKEN) is required: an agent token from `quern token create "
                 "--role agent --group G --tags ...`\n";
    return 2;
  }
  plugin::PluginRegistry registry;
  std::vector<std::string> warnings;
  Status loaded = apply_load_policy(load_plugins(*cfg, registry), warnings);
  for (const std::string& w : warnings) log::warning("agent", w);
  if (!loaded) {
    log::error("agent", loaded.message());
    return 2;
  }
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  const std::string id =
      a.worker_id.empty() ? std::string(host) + "-" + std::to_string(getpid()) : a.worker_id;
  const log::Fields fields{.worker = id};
  // Ask the server which group and tags this token serves (retrying while it is away).
  nlohmann::ordered_json reg;
  for (auto delay = std::chrono::milliseconds(250);;
       delay = std::min(delay * 2, std::chrono::milliseconds(5000))) {
    agent::ApiClient client(a.server, a.token);
    auto r = client.call("POST", "/api/agent/register", {{"worker_id", id}, {"slots", a.slots}});
    if (r) {
      reg = *r;
      break;
    }
    if (r.code() != StatusCode::unavailable) {  // refused (a bad token): retrying cannot help
      log::error("agent", r.message(), fields);
      return 2;
    }
    log::warning("agent", "server unreachable (" + r.message() + "), retrying", fields);
    std::this_thread::sleep_for(delay);  // backoff between connection attempts
  }
  config::WorkerGroup group;
  group.name = reg.value("group", "");
  group.tags = reg.value("tags", nlohmann::ordered_json::array()).get<std::vector<std::string>>();
  group.slots = a.slots;
  auto options = worker_options_for(*cfg, group, "");
  options.worker_id = id;
  options.kind = "agent";
  options.recover_expired_leases = false;
  options.plugin_configs = plugin_configs(*cfg, registry);
  options.shutdown_grace = std::chrono::milliseconds(static_cast<int64_t>(a.shutdown_grace_s * 1000));
  options.source_factory = [server = a.server,
                            token = a.token]() -> StatusOr<std::unique_ptr<worker::JobSource>> {
    return std::unique_ptr<worker::JobSource>(new agent::AgentJobSource(server, token));
  };
  ping_watchdog_from_heartbeats(options);
  block_shutdown_signals();
  ProcessMetrics pm(a.metrics_listen);
  std::optional<metrics::WorkerMetrics> wm;
  if (pm.wanted()) options.metrics = &wm.emplace(pm.registry(), group.name);
  worker::Worker w(options, registry);
  if (Status s = w.start(); !s) {
    log::error("agent", s.message(), fields);
    return 1;
  }
  if (Status s = pm.serve([&w] { return w.ready(); }); !s) {
    log::error("agent", s.message(), fields);
    return 1;
  }
  log::info("agent", "group " + group.name + ", " + std::to_string(a.slots) + " slots, server " + a.server,
            fields);
  service::notify("READY=1\nSTATUS=group " + group.name + ", server " + a.server);
  while (wait_for_signal() == SIGHUP) {
  }
  service::notify("STOPPING=1");
  w.stop();
  w.wait();
  pm.stop();
  return 0;
}

struct TokenArgs {
  CommonOptions common;
  std::string role;
  std::string group;
  std::vector<std::string> tags;
  double expires_in_s = 0;
  std::string label;
  std::string id;
  bool json = false;
};

// The token store of the configured database; errors are printed.
StatusOr<std::unique_ptr<auth::TokenStore>> open_token_store(const config::Config& cfg) {
  auto url = resolve_database_url(cfg);
  auto store =
      url ? auth::TokenStore::connect(*url) : StatusOr<std::unique_ptr<auth::TokenStore>>(url.status());
  if (!store) std::cerr << "quern token: " << store.message() << "\n";
  return store;
}

int token_create(const TokenArgs& a) {
  auto cfg = load_effective_config(a.common);
  if (!cfg) {
    std::cerr << "quern token: " << cfg.message() << "\n";
    return 2;
  }
  auto role = auth::role_from_string(a.role);
  if (!role) {
    std::cerr << "quern token create: --role must be admin, developer, operator or agent\n";
    return 2;
  }
  auth::NewToken t;
  t.role = *role;
  t.group = a.group;
  t.tags = a.tags;
  t.label = a.label;
  if (a.expires_in_s > 0)
    t.expires_at =
        std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                               std::chrono::duration<double>(a.expires_in_s));
  if (Status s = auth::validate(t); !s) {
    std::cerr << "quern token create: " << s.message() << "\n";
    return 2;
  }
  auto store = open_token_store(*cfg);
  if (!store) return 1;
  auto issued = (*store)->create(t);
  if (!issued) {
    std::cerr << "quern token: " << issued.message() << "\n";
    return 1;
  }
  std::cerr << "token " << issued->id << " (" << a.role << ") — shown once, store it now:" << std::endl;
  std::cout << issued->token << std::endl;
  return 0;
}

// The token store of the command's config and database; nullptr after
// printing why, with `rc` the exit status (2: the config, 1: the database).
std::unique_ptr<auth::TokenStore> token_store(const CommonOptions& common, int& rc) {
  auto cfg = load_effective_config(common);
  if (!cfg) {
    std::cerr << "quern token: " << cfg.message() << "\n";
    rc = 2;
    return nullptr;
  }
  auto store = open_token_store(*cfg);
  if (!store) {
    rc = 1;
    return nullptr;
  }
  return std::move(store).value();
}

int token_list(const TokenArgs& a) {
  int rc = 0;
  auto store = token_store(a.common, rc);
  if (!store) return rc;
  auto list = store->list();
  if (!list) {
    std::cerr << "quern token list: " << list.message() << "\n";
    return 1;
  }
  nlohmann::ordered_json doc{{"tokens", nlohmann::ordered_json::array()}};
  for (const auto& t : *list) doc["tokens"].push_back(auth::to_json(t));
  if (a.json)
    std::cout << doc.dump(2) << std::endl;
  else
    print_tokens(doc, std::cout);
  return 0;
}

int token_revoke(const TokenArgs& a) {
  int rc = 0;
  auto store = token_store(a.common, rc);
  if (!store) return rc;
  auto done = store->revoke(a.id);
  if (!done) {
    std::cerr << "quern token: " << done.message() << "\n";
    return 1;
  }
  if (!*done) {
    std::cerr << "quern token revoke: no token " << a.id << "\n";
    return 1;
  }
  std::cerr << "revoked " << a.id << std::endl;
  return 0;
}

}  // namespace

void register_server(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ServerArgs>();
  auto* cmd = app.add_subcommand("server", "Run the HTTP API (never runs user code)");
  add_common_options(*cmd, a->common);
  cmd->add_option("--listen", a->listen, "ADDRESS:PORT (default from <server listen>, 127.0.0.1:8420)");
  add_metrics_option(*cmd, a->metrics_listen);
  cmd->callback([a, exit_code] { *exit_code = run_server(*a); });

  auto g = std::make_shared<AgentArgs>();
  auto* agent = app.add_subcommand("agent", "Run a worker that reaches the server over HTTP only");
  agent->add_option("--server", g->server, "Server URL")->envname("QUERN_SERVER")->required();
  agent->add_option("--token", g->token, "Agent token")->envname("QUERN_TOKEN");
  agent->add_option("--slots", g->slots, "Jobs run at once")->check(CLI::Range(1, 1024));
  agent->add_option("--worker-id", g->worker_id, "Agent id (default: host-pid)");
  agent->add_option("--plugin-dir", g->plugin_dir, "Directory of executor plugins");
  agent->add_option("--config", g->config_file, "XML config (plugins, timeouts)");
  agent->add_option("--shutdown-grace", g->shutdown_grace_s, "Seconds running jobs may go on after SIGTERM");
  add_metrics_option(*agent, g->metrics_listen);
  agent->callback([g, exit_code] { *exit_code = run_agent(*g); });

  auto t = std::make_shared<TokenArgs>();
  auto* token = app.add_subcommand("token", "Manage API tokens (direct database access)");
  token->require_subcommand(1);
  auto* create = token->add_subcommand("create", "Create a token; it is printed once");
  add_common_options(*create, t->common);
  create->add_option("--role", t->role, "admin, developer, operator or agent")->required();
  create->add_option("--group", t->group, "Worker group (agent tokens)");
  create->add_option("--tags", t->tags, "Tags (agent tokens)")->delimiter(',');
  create->add_option("--expires-in", t->expires_in_s, "Seconds until it expires (default: never)");
  create->add_option("--label", t->label, "A name for it");
  create->callback([t, exit_code] { *exit_code = token_create(*t); });
  auto* list = token->add_subcommand("list", "List tokens (never their secrets)");
  add_common_options(*list, t->common);
  list->add_flag("--json", t->json, "Print JSON (as GET /api/tokens) instead of the table");
  list->callback([t, exit_code] { *exit_code = token_list(*t); });
  auto* revoke = token->add_subcommand("revoke", "Revoke a token by id");
  add_common_options(*revoke, t->common);
  revoke->add_option("id", t->id, "Token id (tok_...)")->required();
  revoke->callback([t, exit_code] { *exit_code = token_revoke(*t); });
}

}  // namespace quern::cli
