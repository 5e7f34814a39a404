// Where metrics and probes are served: GET /metrics (Prometheus text
// format), /healthz (the process is alive and serving) and /readyz (it can do
// its work: for a server, the database answers at the expected schema
// version; for a worker, that plus its plugins loaded). All three are
// anonymous: bind the listener to localhost or a private interface when the
// numbers should not be public (docs/OPERATIONS.md).
//
// A MetricsServer is a small http::HttpServer of its own (`--metrics-listen`)
// so that scrapes and probes never queue behind API requests and never need
// a token; it runs Quern's HTTP layer, not a second web server library.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "host/common/status.h"
#include "host/http/http_server.h"
#include "host/metrics/metrics.h"

namespace quern::metrics {

// OK when ready, else why not (the /readyz body says it, with status 503).
using ReadyCheck = std::function<Status()>;

// Adds the three routes to `router`. metrics and ready must outlive it.
void add_routes(http::Router& router, const Metrics& metrics, ReadyCheck ready);

// "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces). Port 0 picks a free
// one. Errors name the text and what was expected.
struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};
StatusOr<ListenAddress> parse_listen_address(const std::string& text);

class MetricsServer {
 public:
  MetricsServer(const Metrics& metrics, ReadyCheck ready);
  ~MetricsServer();
  // Binds and serves; errors name the address (in use, not local, malformed).
  Status start(const std::string& listen);
  uint16_t port() const;
  void stop();

 private:
  http::Router router_;
  std::unique_ptr<http::HttpServer> http_;
};

}  // namespace quern::metrics
