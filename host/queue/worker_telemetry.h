// What a worker's heartbeat says of its own health, kept in its registry row
// (quern.workers.telemetry, migration 9) and shown by GET /api/workers and
// `quern workers`. An agent sends the same document in its heartbeat body,
// so from_json() treats it as untrusted input: every field is checked and
// bounded, unknown fields are refused, and nothing else is stored.
//
// Plain value type; thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "host/common/status.h"

namespace quern::queue {

struct WorkerTelemetry {
  // Limits on what a heartbeat may carry (an agent's is client input).
  static constexpr size_t kMaxPlugins = 64;
  static constexpr size_t kMaxPluginName = 64;
  static constexpr size_t kMaxHealthText = 512;

  // The worker's process (several workers of one `quern up` share it).
  int64_t rss_bytes = -1;   // resident memory; -1 when unknown
  double cpu_seconds = -1;  // user + system CPU time so far; -1 when unknown
  // Busy slot-time / slot-time over the trailing windows, 0..1.
  double occupancy_15s = 0, occupancy_5m = 0, occupancy_30m = 0;
  // How often it heartbeats: a reader calls it late past twice this.
  int64_t heartbeat_interval_ms = 0;
  // Plugin name → "ok", "unchecked" (no instance has run yet), or why its
  // health() says it is unhealthy.
  std::map<std::string, std::string> plugins;

  nlohmann::json to_json() const;
  // Errors (invalid_argument) name the field under `where`.
  static StatusOr<WorkerTelemetry> from_json(const nlohmann::json& j, const std::string& where);
};

}  // namespace quern::queue
