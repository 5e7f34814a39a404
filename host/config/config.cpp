// Parsing of config/quern.xml. The contract (error format, path resolution,
// defaults) is in config.h; this file walks the pugixml tree strictly: every
// element and attribute it does not know is an error, because a typo that
// silently falls back to a default is worse than a refusal to start.
#include "host/config/config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

namespace quern::config {
namespace {

constexpr int kMaxSlots = 1024;
constexpr int kMaxRestarts = 1000;
// Ten years: far beyond any sensible setting, far below int64 milliseconds overflow.
constexpr long double kMaxDurationMs = 10.0L * 365 * 24 * 3600 * 1000;

constexpr const char* kDurationHint =
    R"(expected a duration like "250ms", "30s", "5m", "1h" or "2.5" (seconds))";

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Tags and group names end up in SQL arrays, log lines and command lines: keep them plain.
bool is_name(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' ||
           c == ':' || c == '-';
  });
}

// Whole, unsigned, decimal; surrounding whitespace allowed. nullopt when not a number or out of range.
std::optional<long long> parse_integer(std::string_view text, long long lo, long long hi) {
  text = trim(text);
  if (text.empty() || text.size() > 18) return std::nullopt;
  long long value = 0;
  for (char c : text) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value < lo || value > hi) return std::nullopt;
  return value;
}

std::string integer_hint(long long lo, long long hi) {
  const char* kind = lo == 1 ? "a positive integer" : lo == 0 ? "a non-negative integer" : "an integer";
  return std::string("expected ") + kind + " (" + std::to_string(lo) + ".." + std::to_string(hi) + ")";
}

std::string join(std::initializer_list<std::string_view> items, std::string_view before,
                 std::string_view after) {
  std::string out;
  for (std::string_view item : items) {
    if (!out.empty()) out += ", ";
    out.append(before).append(item).append(after);
  }
  return out;
}

// Walks one document. Positions: pugixml parses our own buffer in place, so
// element, attribute and text pointers point into `buffer_` and their
// distance from its start is the offset in the original text (parse_eol and
// escapes only shrink strings in place, they never move their starts).
class Parser {
 public:
  Parser(std::string source, const std::string& text) : source_(std::move(source)), text_(text) {
    for (size_t i = 0; i < text_.size(); ++i) {
      if (text_[i] == '\n') newlines_.push_back(i);
    }
  }

  StatusOr<Config> run() {
    buffer_.assign(text_.begin(), text_.end());
    buffer_.push_back('\0');
    const pugi::xml_parse_result result =
        doc_.load_buffer_inplace(buffer_.data(), text_.size(), pugi::parse_default, pugi::encoding_utf8);
    if (!result) {
      return Status::error(where(line_at(result.offset)) + "XML syntax error: " + result.description());
    }

    pugi::xml_node root;
    for (pugi::xml_node child : doc_.children()) {
      if (child.type() != pugi::node_element) continue;
      if (root) return node_error(child, "a second root element (only one <quern> is allowed)");
      root = child;
    }
    if (!root) return Status::error(where(1) + "no root element (expected <quern>)");
    if (std::string_view(root.name()) != "quern") {
      return Status::error(where(line_of(root)) + "expected root element <quern>, found <" + root.name() +
                           ">");
    }

    Config config;
    config.source = source_;
    if (Status s = check_attributes(root, {}); !s) return s;
    if (Status s = check_children(root, {"database", "plugins", "queue", "workers", "server"}); !s) return s;
    if (Status s = check_unique_children(root); !s) return s;

    if (pugi::xml_node n = root.child("database")) {
      if (Status s = parse_database(n, config); !s) return s;
    }
    if (pugi::xml_node n = root.child("plugins")) {
      if (Status s = parse_plugins(n, config); !s) return s;
    }
    if (pugi::xml_node n = root.child("queue")) {
      if (Status s = parse_queue(n, config); !s) return s;
    }
    if (pugi::xml_node n = root.child("workers")) {
      if (Status s = parse_workers(n, config); !s) return s;
    }
    if (pugi::xml_node n = root.child("server")) {
      if (Status s = parse_server(n, config); !s) return s;
    }
    return config;
  }

 private:
  // ---- positions and messages ------------------------------------------------

  int line_at(ptrdiff_t offset) const {
    if (offset < 0) return 0;
    const auto it = std::lower_bound(newlines_.begin(), newlines_.end(), static_cast<size_t>(offset));
    return static_cast<int>(it - newlines_.begin()) + 1;
  }

  // Offset of a pointer into the parse buffer, or -1 if pugixml allocated the string elsewhere.
  ptrdiff_t offset_of(const char* p) const {
    if (p < buffer_.data() || p >= buffer_.data() + buffer_.size()) return -1;
    return p - buffer_.data();
  }

  int line_of(pugi::xml_node node) const {
    const ptrdiff_t offset = node.offset_debug();
    return offset >= 0 ? line_at(offset) : line_at(offset_of(node.name()));
  }

  // pugixml keeps no offset for attributes; their names point into our buffer though.
  int line_of(pugi::xml_node owner, pugi::xml_attribute attr) const {
    const ptrdiff_t offset = offset_of(attr.name());
    return offset >= 0 ? line_at(offset) : line_of(owner);
  }

  std::string where(int line) const {
    return line > 0 ? source_ + ":" + std::to_string(line) + ": " : source_ + ": ";
  }

  Status node_error(pugi::xml_node node, const std::string& message) const {
    return Status::error(where(line_of(node)) + "<" + node.name() + ">: " + message);
  }

  Status attr_error(pugi::xml_node node, pugi::xml_attribute attr, const std::string& message) const {
    std::string value = attr.value();
    if (value.size() > 80) value = value.substr(0, 77) + "...";
    return Status::error(where(line_of(node, attr)) + "<" + node.name() + " " + attr.name() + "=\"" + value +
                         "\">: " + message);
  }

  // ---- structure checks ---------------------------------------------------------

  Status check_attributes(pugi::xml_node node, std::initializer_list<std::string_view> allowed) const {
    std::set<std::string_view> seen;
    for (pugi::xml_attribute attr : node.attributes()) {
      const std::string_view name = attr.name();
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        return attr_error(
            node, attr,
            allowed.size() == 0
                ? std::string("unknown attribute (this element takes no attributes)")
                : "unknown attribute \"" + std::string(name) + "\" (allowed: " + join(allowed, "", "") + ")");
      }
      // pugixml accepts duplicates; which one would win is not obvious to a reader.
      if (!seen.insert(name).second) return attr_error(node, attr, "duplicate attribute");
    }
    return Status::ok();
  }

  // Only the listed child elements, and no text: settings live in attributes.
  Status check_children(pugi::xml_node node, std::initializer_list<std::string_view> allowed) const {
    for (pugi::xml_node child : node.children()) {
      switch (child.type()) {
        case pugi::node_element:
          if (std::find(allowed.begin(), allowed.end(), std::string_view(child.name())) == allowed.end()) {
            const std::string inside =
                std::string("unknown element <") + child.name() + "> inside <" + node.name() + ">";
            return Status::error(where(line_of(child)) + inside +
                                 (allowed.size() == 0 ? std::string(" (it takes no child elements)")
                                                      : " (allowed: " + join(allowed, "<", ">") + ")"));
          }
          break;
        case pugi::node_pcdata:
        case pugi::node_cdata: {
          std::string text(trim(child.value()));
          if (text.empty()) break;
          if (text.size() > 40) text = text.substr(0, 37) + "...";
          // The node starts right after '>'; point at the first visible character instead.
          ptrdiff_t offset = child.offset_debug();
          while (offset >= 0 && static_cast<size_t>(offset) < text_.size() &&
                 trim(std::string_view(&text_[offset], 1)).empty()) {
            ++offset;
          }
          return Status::error(where(offset >= 0 ? line_at(offset) : line_of(node)) + "<" + node.name() +
                               ">: unexpected text \"" + text + "\" (settings go in attributes)");
        }
        default:
          break;  // comments, processing instructions: ignored
      }
    }
    return Status::ok();
  }

  // For elements that configure one thing (<database>, <queue>...): a second copy is a mistake.
  Status check_unique_children(pugi::xml_node node) const {
    std::map<std::string_view, pugi::xml_node> first;
    for (pugi::xml_node child : node.children()) {
      if (child.type() != pugi::node_element) continue;
      auto [it, inserted] = first.emplace(child.name(), child);
      if (!inserted) {
        return node_error(child,
                          "duplicate element (first at line " + std::to_string(line_of(it->second)) + ")");
      }
    }
    return Status::ok();
  }

  // ---- typed attribute readers (absent attribute = keep the default) -------------------

  Status read_int(pugi::xml_node node, const char* name, long long lo, long long hi, int& out) const {
    pugi::xml_attribute attr = node.attribute(name);
    if (!attr) return Status::ok();
    const std::optional<long long> value = parse_integer(attr.value(), lo, hi);
    if (!value) return attr_error(node, attr, integer_hint(lo, hi));
    out = static_cast<int>(*value);
    return Status::ok();
  }

  Status read_duration(pugi::xml_node node, const char* name, std::chrono::milliseconds& out) const {
    pugi::xml_attribute attr = node.attribute(name);
    if (!attr) return Status::ok();
    StatusOr<std::chrono::milliseconds> value = parse_duration(attr.value());
    if (!value) return attr_error(node, attr, value.message());
    out = *value;
    return Status::ok();
  }

  Status read_path(pugi::xml_node node, const char* name, std::filesystem::path& out) const {
    pugi::xml_attribute attr = node.attribute(name);
    if (!attr) return Status::ok();
    if (trim(attr.value()).empty()) return attr_error(node, attr, "expected a non-empty path");
    out = attr.value();
    return Status::ok();
  }

  Status require(pugi::xml_node node, const char* name) const {
    if (node.attribute(name)) return Status::ok();
    return node_error(node, std::string("missing required attribute \"") + name + "\"");
  }

  // ---- elements ---------------------------------------------------------------

  Status parse_database(pugi::xml_node node, Config& config) const {
    if (Status s = check_attributes(node, {"url", "data-dir"}); !s) return s;
    if (Status s = check_children(node, {}); !s) return s;
    // Not validated further: libpq accepts both URLs and "key=value" strings; empty = embedded.
    config.database_url = std::string(trim(node.attribute("url").value()));
    return read_path(node, "data-dir", config.data_dir);
  }

  Status parse_plugins(pugi::xml_node node, Config& config) const {
    if (Status s = check_attributes(node, {"dir"}); !s) return s;
    if (Status s = check_children(node, {"plugin"}); !s) return s;
    if (Status s = read_path(node, "dir", config.plugin_dir); !s) return s;
    std::map<std::string, int> seen;  // normalized path -> line
    for (pugi::xml_node plugin : node.children("plugin")) {
      if (Status s = check_attributes(plugin, {"path"}); !s) return s;
      if (Status s = check_children(plugin, {"setting"}); !s) return s;
      if (Status s = require(plugin, "path"); !s) return s;
      PluginEntry entry;
      if (Status s = read_path(plugin, "path", entry.path); !s) return s;
      const std::string key = entry.path.lexically_normal().string();
      if (auto [it, inserted] = seen.emplace(key, line_of(plugin)); !inserted) {
        return attr_error(plugin, plugin.attribute("path"),
                          "duplicate plugin (first at line " + std::to_string(it->second) + ")");
      }
      nlohmann::json settings = nlohmann::json::object();
      for (pugi::xml_node setting : plugin.children("setting")) {
        if (Status s = check_attributes(setting, {"name", "value"}); !s) return s;
        if (Status s = check_children(setting, {}); !s) return s;
        if (Status s = require(setting, "name"); !s) return s;
        if (Status s = require(setting, "value"); !s) return s;
        pugi::xml_attribute name = setting.attribute("name");
        if (trim(name.value()).empty()) return attr_error(setting, name, "expected a non-empty name");
        if (settings.contains(name.value())) return attr_error(setting, name, "duplicate setting");
        // Always a string, even "3" or "true": the plugin owns the meaning of its settings.
        settings[name.value()] = std::string(setting.attribute("value").value());
      }
      entry.config_json = settings.dump();
      config.plugins.push_back(std::move(entry));
    }
    return Status::ok();
  }

  Status parse_server(pugi::xml_node node, Config& config) const {
    if (Status s = check_attributes(node, {"listen", "handler-threads", "max-wait"}); !s) return s;
    if (Status s = check_children(node, {}); !s) return s;
    if (pugi::xml_attribute attr = node.attribute("listen")) {
      const std::string_view text = trim(attr.value());
      const size_t colon = text.rfind(':');
      const auto port =
          colon == std::string_view::npos ? std::nullopt : parse_integer(text.substr(colon + 1), 0, 65535);
      if (colon == 0 || colon == std::string_view::npos || !port) {
        return attr_error(node, attr, "expected ADDRESS:PORT, e.g. 127.0.0.1:8420 (port 0 = any free port)");
      }
      config.server_address = std::string(text.substr(0, colon));
      config.server_port = static_cast<uint16_t>(*port);
    }
    if (Status s = read_int(node, "handler-threads", 1, 1024, config.server_handler_threads); !s) return s;
    if (Status s = read_duration(node, "max-wait", config.server_max_wait); !s) return s;
    return Status::ok();
  }

  Status parse_queue(pugi::xml_node node, Config& config) const {
    if (Status s = check_attributes(node, {"lease-timeout", "poll-interval", "heartbeat-interval",
                                           "max-restarts", "default-timeout", "kill-grace"});
        !s) {
      return s;
    }
    if (Status s = check_children(node, {}); !s) return s;
    if (Status s = read_duration(node, "lease-timeout", config.lease_timeout); !s) return s;
    if (Status s = read_duration(node, "poll-interval", config.poll_interval); !s) return s;
    if (Status s = read_duration(node, "heartbeat-interval", config.heartbeat_interval); !s) return s;
    if (Status s = read_int(node, "max-restarts", 0, kMaxRestarts, config.max_restarts); !s) return s;
    if (Status s = read_duration(node, "kill-grace", config.kill_grace); !s) return s;

    if (pugi::xml_attribute attr = node.attribute("default-timeout")) {
      StatusOr<std::chrono::milliseconds> value = parse_duration(attr.value());
      if (!value) return attr_error(node, attr, value.message());
      // Stored as whole seconds (the job row's timeout column); refuse rather than round.
      if (value->count() < 1000 || value->count() % 1000 != 0) {
        return attr_error(node, attr, "expected a whole number of seconds, at least 1s");
      }
      config.default_timeout_s = static_cast<int>(std::min<long long>(value->count() / 1000, INT32_MAX));
    }

    if (config.lease_timeout.count() <= 0) {
      return attr_error(node, node.attribute("lease-timeout"), "must be greater than zero");
    }
    if (config.poll_interval.count() <= 0) {
      return attr_error(node, node.attribute("poll-interval"), "must be greater than zero");
    }
    // A lease that expires before the next heartbeat would be stolen from a healthy worker.
    if (config.heartbeat_interval.count() > 0 && config.heartbeat_interval >= config.lease_timeout) {
      return attr_error(
          node, node.attribute("heartbeat-interval"),
          "must be less than lease-timeout (" + std::to_string(config.lease_timeout.count()) + "ms)");
    }
    if (config.effective_heartbeat_interval().count() <= 0) {
      return attr_error(node, node.attribute("lease-timeout"),
                        "too short to derive a heartbeat interval (lease-timeout / 3 is 0ms)");
    }
    return Status::ok();
  }

  Status parse_workers(pugi::xml_node node, Config& config) const {
    if (Status s = check_attributes(node, {}); !s) return s;
    if (Status s = check_children(node, {"group"}); !s) return s;
    std::vector<WorkerGroup> groups;
    std::map<std::string, int> seen;  // name -> line
    for (pugi::xml_node group_node : node.children("group")) {
      if (Status s = check_attributes(group_node, {"name", "slots", "tags", "dedicated"}); !s) return s;
      if (Status s = check_children(group_node, {}); !s) return s;
      WorkerGroup group;
      if (pugi::xml_attribute attr = group_node.attribute("name")) {
        group.name = std::string(trim(attr.value()));
        if (!is_name(group.name)) {
          return attr_error(group_node, attr, "expected a name made of [A-Za-z0-9_.:-]");
        }
      }
      if (auto [it, inserted] = seen.emplace(group.name, line_of(group_node)); !inserted) {
        const std::string message =
            "duplicate group name \"" + group.name + "\" (first at line " + std::to_string(it->second) + ")";
        pugi::xml_attribute attr = group_node.attribute("name");
        return attr ? attr_error(group_node, attr, message) : node_error(group_node, message);
      }
      if (Status s = read_int(group_node, "slots", 1, kMaxSlots, group.slots); !s) return s;
      if (pugi::xml_attribute attr = group_node.attribute("tags")) {
        if (Status s = parse_tags(group_node, attr, group.tags); !s) return s;
      }
      if (pugi::xml_attribute attr = group_node.attribute("dedicated")) {
        // Script paths (f/team/name): the same characters as tags plus '/'.
        std::string_view rest = attr.value();
        while (true) {
          const size_t comma = rest.find(',');
          const std::string_view path = trim(rest.substr(0, comma));
          const bool ok = !path.empty() && std::all_of(path.begin(), path.end(), [](char c) {
            return c == '/' || is_name(std::string_view(&c, 1));
          });
          if (!ok)
            return attr_error(group_node, attr, "expected comma-separated script paths like f/team/name");
          group.dedicated.emplace_back(path);
          if (comma == std::string_view::npos) break;
          rest = rest.substr(comma + 1);
        }
      }
      groups.push_back(std::move(group));
    }
    if (groups.empty()) return node_error(node, "expected at least one <group> (no workers would run)");
    config.groups = std::move(groups);
    return Status::ok();
  }

  Status parse_tags(pugi::xml_node node, pugi::xml_attribute attr, std::vector<std::string>& out) const {
    std::vector<std::string> tags;
    std::string_view rest = attr.value();
    if (trim(rest).empty()) return attr_error(node, attr, "expected at least one tag (comma-separated)");
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view tag = trim(rest.substr(0, comma));
      if (tag.empty()) return attr_error(node, attr, "empty tag in the comma-separated list");
      if (!is_name(tag)) {
        return attr_error(node, attr, "bad tag \"" + std::string(tag) + "\" (expected [A-Za-z0-9_.:-]+)");
      }
      if (std::find(tags.begin(), tags.end(), tag) != tags.end()) {
        return attr_error(node, attr, "duplicate tag \"" + std::string(tag) + "\"");
      }
      tags.emplace_back(tag);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    out = std::move(tags);
    return Status::ok();
  }

  std::string source_;
  const std::string& text_;
  std::vector<size_t> newlines_;  // offsets of '\n' in text_, ascending
  std::vector<char> buffer_;      // parsed in place by pugixml; must outlive doc_
  pugi::xml_document doc_;
};

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
  } else {
    return Status::error(kDurationHint);
  }
  // The digit scan above guarantees strtold sees a plain decimal (no sign, exponent, inf or hex).
  const long double ms = std::strtold(number.c_str(), nullptr) * scale_ms;
  if (ms > kMaxDurationMs) return Status::error("duration too long (at most 10 years)");
  return std::chrono::milliseconds(std::llround(ms));
}

StatusOr<Config> parse_config(const std::string& xml_text, const std::string& source_name) {
  return Parser(source_name, xml_text).run();
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
  return config;
}

void resolve_paths(Config& config, const std::filesystem::path& base_dir) {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::absolute(base_dir.empty() ? "." : base_dir, ec);
  if (ec) base = base_dir;
  config.data_dir = resolve(config.data_dir, base);
  config.plugin_dir = resolve(config.plugin_dir, base);
  for (PluginEntry& plugin : config.plugins) plugin.path = resolve(plugin.path, base);
}

void apply_environment(Config& config) {
  const char* url = std::getenv("QUERN_DATABASE_URL");
  if (url != nullptr && *url != '\0') config.database_url = url;
}

}  // namespace quern::config
