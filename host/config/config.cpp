// Parsing of config/quern.xml. The contract (error format, path resolution,
// defaults) is in config.h; the sections are read strictly through
// XmlReader: every element and attribute it does not know is an error,
// because a typo that silently falls back to a default is worse than a
// refusal to start. <workers> is read in config_workers.cpp, <routing> in
// config_routing.cpp.
#include "host/config/config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string_view>

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include "host/config/config_sections.h"
#include "host/config/xml_reader.h"

namespace quern::config {
namespace {

constexpr int kMaxRestarts = 1000;
// Ten years: far beyond any sensible setting, far below int64 milliseconds overflow.
constexpr long double kMaxDurationMs = 10.0L * 365 * 24 * 3600 * 1000;

constexpr const char* kDurationHint =
    R"(expected a duration like "250ms", "30s", "5m", "1h" or "2.5" (seconds))";

bool is_digit(char c) { return c >= '0' && c <= '9'; }

Status parse_database(const XmlReader& r, pugi::xml_node node, Config& config) {
  if (Status s = r.check_attributes(node, {"url", "data-dir"}); !s) return s;
  if (Status s = r.check_children(node, {}); !s) return s;
  // Not validated further: libpq accepts both URLs and "key=value" strings; empty = embedded.
  config.database_url = std::string(trim(node.attribute("url").value()));
  return r.read_path(node, "data-dir", config.data_dir);
}

Status parse_plugins(const XmlReader& r, pugi::xml_node node, Config& config) {
  if (Status s = r.check_attributes(node, {"dir"}); !s) return s;
  if (Status s = r.check_children(node, {"plugin"}); !s) return s;
  if (Status s = r.read_path(node, "dir", config.plugin_dir); !s) return s;
  std::map<std::string, int> seen;  // normalized path -> line
  for (pugi::xml_node plugin : node.children("plugin")) {
    if (Status s = r.check_attributes(plugin, {"path"}); !s) return s;
    if (Status s = r.check_children(plugin, {"setting"}); !s) return s;
    if (Status s = r.require(plugin, "path"); !s) return s;
    PluginEntry entry;
    if (Status s = r.read_path(plugin, "path", entry.path); !s) return s;
    const std::string key = entry.path.lexically_normal().string();
    if (auto [it, inserted] = seen.emplace(key, r.line_of(plugin)); !inserted) {
      return r.attr_error(plugin, plugin.attribute("path"),
                          "duplicate plugin (first at line " + std::to_string(it->second) + ")");
    }
    nlohmann::json settings = nlohmann::json::object();
    for (pugi::xml_node setting : plugin.children("setting")) {
      if (Status s = r.check_attributes(setting, {"name", "value"}); !s) return s;
      if (Status s = r.check_children(setting, {}); !s) return s;
      if (Status s = r.require(setting, "name"); !s) return s;
      if (Status s = r.require(setting, "value"); !s) return s;
      pugi::xml_attribute name = setting.attribute("name");
      if (trim(name.value()).empty()) return r.attr_error(setting, name, "expected a non-empty name");
      if (settings.contains(name.value())) return r.attr_error(setting, name, "duplicate setting");
      // Always a string, even "3" or "true": the plugin owns the meaning of its settings.
      settings[name.value()] = std::string(setting.attribute("value").value());
    }
    entry.config_json = settings.dump();
    config.plugins.push_back(std::move(entry));
  }
  return Status::ok();
}

// An ADDRESS:PORT attribute (port 0 = any free port), split.
Status read_address(const XmlReader& r, pugi::xml_node node, pugi::xml_attribute attr, const char* example,
                    std::string& address, uint16_t& port) {
  const std::string_view text = trim(attr.value());
  const size_t colon = text.rfind(':');
  const auto number =
      colon == std::string_view::npos ? std::nullopt : parse_integer(text.substr(colon + 1), 0, 65535);
  if (colon == 0 || colon == std::string_view::npos || !number)
    return r.attr_error(node, attr,
                        std::string("expected ADDRESS:PORT, e.g. ") + example + " (port 0 = any free port)");
  address = std::string(text.substr(0, colon));
  port = static_cast<uint16_t>(*number);
  return Status::ok();
}

Status parse_server(const XmlReader& r, pugi::xml_node node, Config& config) {
  if (Status s = r.check_attributes(node, {"listen", "metrics-listen", "handler-threads", "db-connections",
                                           "db-idle-timeout", "max-wait"});
      !s)
    return s;
  if (Status s = r.check_children(node, {}); !s) return s;
  if (pugi::xml_attribute attr = node.attribute("listen"))
    if (Status s = read_address(r, node, attr, "127.0.0.1:8420", config.server_address, config.server_port);
        !s)
      return s;
  if (pugi::xml_attribute attr = node.attribute("metrics-listen")) {
    std::string address;
    uint16_t port = 0;
    if (Status s = read_address(r, node, attr, "127.0.0.1:9421", address, port); !s) return s;
    config.server_metrics_listen = address + ":" + std::to_string(port);
  }
  if (Status s = r.read_int(node, "handler-threads", 1, 1024, config.server_handler_threads); !s) return s;
  if (Status s = r.read_int(node, "db-connections", 1, 1000, config.server_db_connections); !s) return s;
  if (Status s = r.read_duration(node, "db-idle-timeout", config.server_db_idle_timeout); !s) return s;
  if (Status s = r.read_duration(node, "max-wait", config.server_max_wait); !s) return s;
  return Status::ok();
}

Status parse_queue(const XmlReader& r, pugi::xml_node node, Config& config) {
  if (Status s = r.check_attributes(node, {"lease-timeout", "poll-interval", "heartbeat-interval",
                                           "max-restarts", "default-timeout", "max-timeout", "kill-grace"});
      !s) {
    return s;
  }
  if (Status s = r.check_children(node, {}); !s) return s;
  if (Status s = r.read_duration(node, "lease-timeout", config.lease_timeout); !s) return s;
  if (Status s = r.read_duration(node, "poll-interval", config.poll_interval); !s) return s;
  if (Status s = r.read_duration(node, "heartbeat-interval", config.heartbeat_interval); !s) return s;
  if (Status s = r.read_int(node, "max-restarts", 0, kMaxRestarts, config.max_restarts); !s) return s;
  if (Status s = r.read_duration(node, "kill-grace", config.kill_grace); !s) return s;

  // Stored as whole seconds (the job row's timeout column); refuse rather than round.
  for (const auto& [name, out] : {std::pair<const char*, int*>{"default-timeout", &config.default_timeout_s},
                                  std::pair<const char*, int*>{"max-timeout", &config.max_timeout_s}}) {
    pugi::xml_attribute attr = node.attribute(name);
    if (!attr) continue;
    StatusOr<std::chrono::milliseconds> value = parse_duration(attr.value());
    if (!value) return r.attr_error(node, attr, value.message());
    if (value->count() < 1000 || value->count() % 1000 != 0) {
      return r.attr_error(node, attr, "expected a whole number of seconds, at least 1s");
    }
    *out = static_cast<int>(std::min<long long>(value->count() / 1000, INT32_MAX));
  }
  if (config.max_timeout_s > 0 && config.default_timeout_s > config.max_timeout_s) {
    pugi::xml_attribute attr = node.attribute("default-timeout");
    return r.attr_error(node, attr ? attr : node.attribute("max-timeout"),
                        "default-timeout (" + std::to_string(config.default_timeout_s) +
                            " s) is more than max-timeout (" + std::to_string(config.max_timeout_s) + " s)");
  }

  if (config.lease_timeout.count() <= 0) {
    return r.attr_error(node, node.attribute("lease-timeout"), "must be greater than zero");
  }
  if (config.poll_interval.count() <= 0) {
    return r.attr_error(node, node.attribute("poll-interval"), "must be greater than zero");
  }
  // A lease that expires before the next heartbeat would be stolen from a healthy worker.
  if (config.heartbeat_interval.count() > 0 && config.heartbeat_interval >= config.lease_timeout) {
    return r.attr_error(
        node, node.attribute("heartbeat-interval"),
        "must be less than lease-timeout (" + std::to_string(config.lease_timeout.count()) + "ms)");
  }
  if (config.effective_heartbeat_interval().count() <= 0) {
    return r.attr_error(node, node.attribute("lease-timeout"),
                        "too short to derive a heartbeat interval (lease-timeout / 3 is 0ms)");
  }
  return Status::ok();
}

StatusOr<Config> parse_document(const std::string& source, const std::string& text) {
  XmlReader r(source, text);
  if (Status s = r.load("quern"); !s) return s;
  const pugi::xml_node root = r.root();
  Config config;
  config.source = source;
  if (Status s = r.check_attributes(root, {}); !s) return s;
  if (Status s = r.check_children(
          root, {"database", "plugins", "queue", "workers", "server", "routing", "limits", "retention"});
      !s)
    return s;
  if (Status s = r.check_unique_children(root); !s) return s;

  if (pugi::xml_node n = root.child("database")) {
    if (Status s = parse_database(r, n, config); !s) return s;
  }
  if (pugi::xml_node n = root.child("plugins")) {
    if (Status s = parse_plugins(r, n, config); !s) return s;
  }
  if (pugi::xml_node n = root.child("queue")) {
    if (Status s = parse_queue(r, n, config); !s) return s;
  }
  if (pugi::xml_node n = root.child("workers")) {
    if (Status s = parse_workers(r, n, config); !s) return s;
  }
  if (pugi::xml_node n = root.child("server")) {
    if (Status s = parse_server(r, n, config); !s) return s;
  }
  if (pugi::xml_node n = root.child("routing")) {
    if (Status s = parse_routing(r, n, config); !s) return s;
  }
  if (pugi::xml_node n = root.child("limits")) {
    if (Status s = parse_limits(r, n, config); !s) return s;
  }
  if (pugi::xml_node n = root.child("retention")) {
    if (Status s = parse_retention(r, n, config); !s) return s;
  }
  return config;
}

std::filesystem::path resolve(const std::filesystem::path& path, const std::filesystem::path& base) {
  if (path.empty()) return path;
  return (path.is_absolute() ? path : base / path).lexically_normal();
}

}  // namespace

StatusOr<std::chrono::milliseconds> parse_duration(const std::string& text) {
  const std::string_view s = trim(text);
  size_t i = 0;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == 0) return Status::error(kDurationHint);
  if (i < s.size() && s[i] == '.') {
    const size_t fraction_start = ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == fraction_start) return Status::error(kDurationHint);
  }
  const std::string number(s.substr(0, i));
  const std::string_view unit = s.substr(i);
  long double scale_ms;
  if (unit == "ms") {
    scale_ms = 1;
  } else if (unit == "s" || unit.empty()) {
    scale_ms = 1000;
  } else if (unit == "m") {
    scale_ms = 60 * 1000;
  } else if (unit == "h") {
    scale_ms = 3600 * 1000;
  } else if (unit == "d") {
    scale_ms = 24 * 3600 * 1000;
  } else {
    return Status::error(kDurationHint);
  }
  // The digit scan above guarantees strtold sees a plain decimal (no sign, exponent, inf or hex).
  const long double ms = std::strtold(number.c_str(), nullptr) * scale_ms;
  if (ms > kMaxDurationMs) return Status::error("duration too long (at most 10 years)");
  return std::chrono::milliseconds(std::llround(ms));
}

StatusOr<Config> parse_config(const std::string& xml_text, const std::string& source_name) {
  return parse_document(source_name, xml_text);
}

StatusOr<Config> load_config(const std::filesystem::path& file) {
  const std::string name = file.string();
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    return Status::error(name + ": cannot read config file: is a directory");
  }
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(name.c_str(), "rb"), &std::fclose);
  if (!f) return Status::error(name + ": cannot open config file: " + std::strerror(errno));
  std::string text;
  char chunk[65536];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f.get())) > 0) text.append(chunk, n);
  if (std::ferror(f.get())) return Status::error(name + ": cannot read config file: " + std::strerror(errno));

  StatusOr<Config> config = parse_config(text, name);
  if (!config) return config;
  config->source = file;
  resolve_paths(*config, file.parent_path());
  if (Status s = check_autoscale_scripts(*config); !s) return s;
  return config;
}

void resolve_paths(Config& config, const std::filesystem::path& base_dir) {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::absolute(base_dir.empty() ? "." : base_dir, ec);
  if (ec) base = base_dir;
  config.data_dir = resolve(config.data_dir, base);
  config.plugin_dir = resolve(config.plugin_dir, base);
  for (PluginEntry& plugin : config.plugins) plugin.path = resolve(plugin.path, base);
  for (WorkerGroup& g : config.groups)
    if (g.autoscale && !g.autoscale->script.empty()) g.autoscale->script = resolve(g.autoscale->script, base);
}

void apply_environment(Config& config) {
  const char* url = std::getenv("QUERN_DATABASE_URL");
  if (url != nullptr && *url != '\0') config.database_url = url;
}

}  // namespace quern::config
