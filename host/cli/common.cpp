#include "host/cli/common.h"

#include <unistd.h>

#include <algorithm>
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

}  // namespace quern::cli
