// Pieces every `quern` subcommand shares: configuration with command-line
// overrides, finding the database, and signal waiting (finding and loading
// the plugins: plugin_loading.h).
#pragma once

#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "host/cli/plugin_loading.h"
#include "host/common/status.h"
#include "host/config/config.h"
#include "host/plugin/plugin_registry.h"

namespace quern::cli {

// Options common to the daemon commands.
struct CommonOptions {
  std::string config_file;   // --config; empty = $QUERN_CONFIG, else ./config/quern.xml if present
  std::string database_url;  // --database-url
  std::string plugin_dir;    // --plugin-dir
  std::string data_dir;      // --data-dir
};

// Loads the config file (or the built-in defaults) and applies the
// environment and then the command-line overrides. Errors are startup errors.
StatusOr<config::Config> load_effective_config(const CommonOptions& options);

// The database URL: config/env/CLI, else the one `quern up` wrote into the
// data directory for its embedded cluster.
StatusOr<std::string> resolve_database_url(const config::Config& cfg);
std::filesystem::path embedded_url_file(const config::Config& cfg);

// Blocks SIGINT/SIGTERM/SIGHUP in the calling thread (call before starting
// threads so they inherit the mask), then wait_for_signal() returns the next one.
void block_shutdown_signals();
int wait_for_signal(std::optional<std::chrono::milliseconds> timeout = std::nullopt);  // 0 on timeout

}  // namespace quern::cli
