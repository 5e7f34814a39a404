// <limits>: concurrency and rate limits the operator sets per key, whatever
// scripts and run requests say (docs/LIMITS.md). Enforcement is the queue's.
#include <set>
#include <string>

#include "host/config/config_sections.h"

namespace quern::config {

namespace {

// "100/60s", "5/1m", "10/250ms": starts per window.
Status parse_rate(const XmlReader& r, pugi::xml_node node, pugi::xml_attribute attr,
                  queue::ConcurrencyLimit& out) {
  const std::string text(trim(attr.value()));
  const size_t slash = text.find('/');
  const auto bad = [&] {
    return r.attr_error(node, attr, "expected COUNT/WINDOW, e.g. \"100/60s\" or \"5/1m\" (count 1..1000000)");
  };
  if (slash == std::string::npos) return bad();
  const auto count = parse_integer(std::string_view(text).substr(0, slash), 1, 1000000);
  if (!count) return bad();
  auto window = parse_duration(text.substr(slash + 1));
  if (!window) return r.attr_error(node, attr, "window: " + window.message());
  if (window->count() < 1 || window->count() > 24LL * 3600 * 1000)
    return r.attr_error(node, attr, "window must be from 1ms to 24h");
  out.rate_max = static_cast<int>(*count);
  out.rate_window = *window;
  return Status::ok();
}

}  // namespace

Status parse_limits(const XmlReader& r, pugi::xml_node node, Config& config) {
  if (Status s = r.check_attributes(node, {}); !s) return s;
  if (Status s = r.check_children(node, {"limit"}); !s) return s;
  std::set<std::string> keys;
  for (pugi::xml_node n : node.children("limit")) {
    if (Status s = r.check_attributes(n, {"key", "max-running", "rate"}); !s) return s;
    if (Status s = r.check_children(n, {}); !s) return s;
    queue::ConcurrencyLimit limit;
    pugi::xml_attribute key = n.attribute("key");
    if (!key) return r.node_error(n, "needs key=\"...\" (the concurrency key it limits)");
    limit.key = std::string(trim(key.value()));
    if (limit.key.empty() || limit.key.size() > 256 || limit.key.find('$') != std::string::npos)
      return r.attr_error(n, key, "expected a key of 1..256 characters, without $ substitutions");
    if (!keys.insert(limit.key).second) return r.attr_error(n, key, "a second <limit> for this key");
    if (Status s = r.read_int(n, "max-running", 0, 100000, limit.max_running); !s) return s;
    if (pugi::xml_attribute rate = n.attribute("rate")) {
      if (Status s = parse_rate(r, n, rate, limit); !s) return s;
    }
    if (limit.max_running == 0 && limit.rate_max == 0)
      return r.node_error(n, "set max-running, rate, or both");
    config.limits.push_back(std::move(limit));
  }
  return Status::ok();
}

}  // namespace quern::config
