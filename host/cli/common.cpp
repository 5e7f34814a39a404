#include "host/cli/common.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>

namespace quern::cli {

StatusOr<config::Config> load_effective_config(const CommonOptions& options) {
  std::string file = options.config_file;
  if (file.empty()) {
    if (const char* env = std::getenv("QUERN_CONFIG"); env && *env) file = env;
  }
  if (file.empty() && std::filesystem::exists("config/quern.xml")) file = "config/quern.xml";
  config::Config cfg;
  if (!file.empty()) {
    auto loaded = config::load_config(file);
    if (!loaded) return loaded.status();
    cfg = std::move(loaded).value();
  }
  config::apply_environment(cfg);
  if (!options.database_url.empty()) cfg.database_url = options.database_url;
  if (!options.plugin_dir.empty()) cfg.plugin_dir = std::filesystem::absolute(options.plugin_dir);
  if (!options.data_dir.empty()) cfg.data_dir = std::filesystem::absolute(options.data_dir);
  return cfg;
}

std::filesystem::path effective_plugin_dir(const config::Config& cfg) {
  if (!cfg.plugin_dir.empty()) return cfg.plugin_dir;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "plugins";
  auto bin = exe.parent_path();
  if (std::filesystem::is_directory(bin.parent_path() / "plugins")) return bin.parent_path() / "plugins";
  return bin.parent_path() / "lib" / "quern" / "plugins";
}

Status load_plugins(const config::Config& cfg, plugin::PluginRegistry& registry) {
  std::string errors;
  auto dir = effective_plugin_dir(cfg);
  if (std::filesystem::is_directory(dir)) {
    if (Status s = registry.load_directory(dir); !s) errors += s.message() + "\n";
  } else if (cfg.plugins.empty()) {
    return Status::error("plugin directory " + dir.string() +
                         " does not exist (set <plugins dir=...> or --plugin-dir)");
  }
  for (const auto& p : cfg.plugins) {
    // A plugin listed explicitly that also sits in the plugin directory is the same file: skip it.
    bool already = false;
    for (const auto& loaded : registry.plugins()) {
      std::error_code ec;
      if (std::filesystem::equivalent(loaded->info().file, p.path, ec)) already = true;
    }
    if (already) continue;
    if (Status s = registry.load_file(p.path); !s) errors += s.message() + "\n";
  }
  if (!errors.empty()) {
    errors.pop_back();
    return Status::error(errors);
  }
  return Status::ok();
}

std::filesystem::path embedded_url_file(const config::Config& cfg) { return cfg.data_dir / "database.url"; }

StatusOr<std::string> resolve_database_url(const config::Config& cfg) {
  if (!cfg.database_url.empty()) return cfg.database_url;
  std::ifstream in(embedded_url_file(cfg));
  std::string url;
  if (in && std::getline(in, url) && !url.empty()) return url;
  return Status::error(
      "no database: give --database-url (or QUERN_DATABASE_URL, or <database url=...>), "
      "or start `quern up`, which writes " +
      embedded_url_file(cfg).string());
}

void block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_signal(std::optional<std::chrono::milliseconds> timeout) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  while (true) {
    int sig;
    if (!timeout) {
      if (sigwait(&set, &sig) == 0) return sig;
      continue;
    }
    timespec ts{static_cast<time_t>(timeout->count() / 1000),
                static_cast<long>((timeout->count() % 1000) * 1000000)};
    sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;
  }
}

std::map<std::string, std::string> plugin_configs(const config::Config& cfg,
                                                  const plugin::PluginRegistry& registry) {
  std::map<std::string, std::string> out;
  for (const auto& entry : cfg.plugins) {
    for (const auto& loaded : registry.plugins()) {
      std::error_code ec;
      if (std::filesystem::equivalent(loaded->info().file, entry.path, ec))
        out[loaded->info().name] = entry.config_json;
    }
  }
  return out;
}

}  // namespace quern::cli
