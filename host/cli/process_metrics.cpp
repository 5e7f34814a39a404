#include "host/cli/process_metrics.h"

#include "host/log/log.h"

namespace quern::cli {

ProcessMetrics::ProcessMetrics(std::string listen_address) : listen(std::move(listen_address)) {
  metrics_.add_collector(metrics::process_collector());
}

Status ProcessMetrics::serve(metrics::ReadyCheck ready) {
  if (listen.empty()) return Status::ok();
  auto address = metrics::parse_listen_address(listen);
  if (!address) return address.status().with_context("--metrics-listen");
  server_ = std::make_unique<metrics::MetricsServer>(metrics_, std::move(ready));
  if (Status s = server_->start(listen); !s) return s;
  log::info("metrics",
            "metrics on http://" + address->host + ":" + std::to_string(server_->port()) + "/metrics");
  return Status::ok();
}

void ProcessMetrics::stop() {
  if (server_) server_->stop();
}

void add_metrics_option(CLI::App& cmd, std::string& listen) {
  cmd.add_option("--metrics-listen", listen,
                 "Serve /metrics, /healthz and /readyz (anonymous) at ADDRESS:PORT, e.g. 127.0.0.1:9421 "
                 "(port 0: any free port, printed at start; default: for server and up, the config's <server "
                 "metrics-listen>, else not served)");
}

metrics::ReadyCheck all_ready(std::vector<metrics::ReadyCheck> checks) {
  return [checks = std::move(checks)] {
    for (const auto& c : checks)
      if (Status s = c(); !s) return s;
    return Status::ok();
  };
}

}  // namespace quern::cli
