// `--metrics-listen ADDRESS:PORT` of `quern server`, `worker`, `agent` and
// `up`: the process's metrics registry (with the process_* collector) that
// the command hands to its server and workers, and the listener serving
// /metrics, /healthz and /readyz (host/metrics/metrics_endpoint.h).
//
// Thread-safety: set up from the command's main thread; the listener and
// the registry are thread-safe once serving.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "host/metrics/metrics_endpoint.h"

namespace quern::cli {

class ProcessMetrics {
 public:
  explicit ProcessMetrics(std::string listen_address);
  metrics::Metrics& registry() { return metrics_; }
  // Whether --metrics-listen was given (the command then wires its metrics).
  bool wanted() const { return !listen.empty(); }
  // Serves at `listen` with this readiness check and logs where (component
  // "metrics": "metrics on http://HOST:PORT/metrics"). Errors name the address.
  Status serve(metrics::ReadyCheck ready);
  void stop();

 private:
  const std::string listen;  // --metrics-listen; "" = no listener, no metrics
  metrics::Metrics metrics_;
  std::unique_ptr<metrics::MetricsServer> server_;
};

// Adds --metrics-listen to a command.
void add_metrics_option(CLI::App& cmd, std::string& listen);

// The first failing check's status, else OK (readiness of several parts).
metrics::ReadyCheck all_ready(std::vector<metrics::ReadyCheck> checks);

}  // namespace quern::cli
