// The XML configuration (config/quern.xml), parsed with pugixml.
//
// Every error names the file, the line and what was expected, e.g.
//   config/quern.xml:12: <group slots="abc">: expected a positive integer
// Unknown elements and attributes are errors (typos must not pass silently).
// Durations accept "250ms", "30s", "5m", "1h" or a plain number of seconds.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "host/common/status.h"

namespace quern::config {

struct WorkerGroup {
  std::string name = "default";
  int slots = 4;
  std::vector<std::string> tags = {"bash"};
};

struct PluginEntry {
  std::filesystem::path path;
  std::string config_json = "{}";  // the plugin's own settings (child <setting name value/>)
};

struct Config {
  std::filesystem::path source;  // the file this came from (empty for defaults)

  // <database url="..." data-dir="..."/> — empty url = embedded PostgreSQL in data_dir.
  std::string database_url;
  std::filesystem::path data_dir = ".quern";

  // <plugins dir="..."><plugin path="..."/></plugins>
  std::filesystem::path plugin_dir;  // empty = next to the quern binary (../lib/quern/plugins or ./plugins)
  std::vector<PluginEntry> plugins;

  // <queue lease-timeout poll-interval heartbeat-interval max-restarts default-timeout/>
  std::chrono::milliseconds lease_timeout{30000};
  std::chrono::milliseconds poll_interval{1000};
  std::chrono::milliseconds heartbeat_interval{0};  // 0 = lease_timeout / 3
  int max_restarts = 3;
  int default_timeout_s = 3600;
  std::chrono::milliseconds kill_grace{2000};  // TERM → KILL on timeout/cancel

  // <workers><group name slots tags/></workers>; `quern up` starts one worker per group.
  std::vector<WorkerGroup> groups = {WorkerGroup{}};

  std::chrono::milliseconds effective_heartbeat_interval() const {
    return heartbeat_interval.count() > 0 ? heartbeat_interval : lease_timeout / 3;
  }
};

// Parses XML text; `source_name` is used in error messages.
StatusOr<Config> parse_config(const std::string& xml_text, const std::string& source_name);
// Reads and parses a file. A missing file is an error naming the path.
StatusOr<Config> load_config(const std::filesystem::path& file);

// "250ms" / "30s" / "5m" / "1h" / "2.5" (seconds).
StatusOr<std::chrono::milliseconds> parse_duration(const std::string& text);

}  // namespace quern::config
