#include "host/queue/worker_telemetry.h"

#include <limits>

#include "host/common/utf8.h"
#include "host/common/validation.h"

namespace quern::queue {

nlohmann::json WorkerTelemetry::to_json() const {
  nlohmann::json j = {{"occupancy", {{"15s", occupancy_15s}, {"5m", occupancy_5m}, {"30m", occupancy_30m}}},
                      {"heartbeat_interval_ms", heartbeat_interval_ms},
                      {"plugins", plugins}};
  if (rss_bytes >= 0) j["rss_bytes"] = rss_bytes;
  if (cpu_seconds >= 0) j["cpu_seconds"] = cpu_seconds;
  return j;
}

namespace {

Status bad(const std::string& where, const std::string& why) { return Status::invalid(where + ": " + why); }

}  // namespace

StatusOr<WorkerTelemetry> WorkerTelemetry::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return bad(where, "expected an object");
  WorkerTelemetry t;
  for (const auto& [key, v] : j.items()) {
    const std::string at = where + "." + key;
    if (key == "rss_bytes" || key == "heartbeat_interval_ms") {
      auto n = validation::json_integer(v, at, 0, std::numeric_limits<int64_t>::max());
      if (!n) return n.status();
      (key == "rss_bytes" ? t.rss_bytes : t.heartbeat_interval_ms) = *n;
    } else if (key == "cpu_seconds") {
      auto x = validation::json_number(v, at, 0, 1e12);
      if (!x) return x.status();
      t.cpu_seconds = *x;
    } else if (key == "occupancy") {
      if (!v.is_object()) return bad(at, "expected an object with 15s, 5m and 30m");
      for (const auto& [window, r] : v.items()) {
        double* slot = window == "15s"   ? &t.occupancy_15s
                       : window == "5m"  ? &t.occupancy_5m
                       : window == "30m" ? &t.occupancy_30m
                                         : nullptr;
        if (slot == nullptr) return bad(at, "unknown window '" + window + "' (expected 15s, 5m, 30m)");
        auto x = validation::json_number(r, at + "." + window, 0, 1);
        if (!x) return x.status();
        *slot = *x;
      }
    } else if (key == "plugins") {
      if (!v.is_object()) return bad(at, "expected an object of plugin name → health");
      if (v.size() > kMaxPlugins) return bad(at, "more than " + std::to_string(kMaxPlugins) + " plugins");
      for (const auto& [name, health] : v.items()) {
        if (name.empty() || name.size() > kMaxPluginName || !text::is_storable(name))
          return bad(at, "a plugin name must have 1 to " + std::to_string(kMaxPluginName) +
                             " bytes of UTF-8 without NUL");
        if (!health.is_string()) return bad(at + "." + name, "expected a string");
        // A long reason is cut, not refused; a sequence cut in two or a NUL
        // becomes U+FFFD so that the row stays storable.
        const std::string& why = health.get_ref<const std::string&>();
        t.plugins[name] = text::to_storable(std::string_view(why).substr(0, kMaxHealthText));
      }
    } else {
      return bad(where, "unknown field '" + key + "'");
    }
  }
  return t;
}

}  // namespace quern::queue
