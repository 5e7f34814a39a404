#include "host/metrics/metrics_endpoint.h"

namespace quern::metrics {

void add_routes(http::Router& router, const Metrics& metrics, ReadyCheck ready) {
  router.add({"GET", "/metrics", "", "Prometheus metrics (anonymous)", [&metrics](const http::Request&) {
                http::Response r;
                r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                r.body = metrics.scrape();
                return r;
              }});
  router.add({"GET", "/healthz", "", "Liveness (anonymous)",
              [](const http::Request&) { return http::json_response(200, R"({"status":"ok"})"); }});
  router.add(
      {"GET", "/readyz", "", "Readiness (anonymous)", [ready = std::move(ready)](const http::Request&) {
         Status s = ready ? ready() : Status::ok();
         if (s) return http::json_response(200, R"({"status":"ready"})");
         return http::json_error(503, "not_ready", s.message());
       }});
}

StatusOr<ListenAddress> parse_listen_address(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return Status::invalid("listen address '" + text + "': " + why +
                           " (expected HOST:PORT, [IPV6]:PORT or :PORT, e.g. 127.0.0.1:9421)");
  };
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  ListenAddress a;
  a.host = text.substr(0, colon);
  if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']')
    a.host = a.host.substr(1, a.host.size() - 2);
  if (a.host.empty()) a.host = "0.0.0.0";
  const std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return bad("the port is not a number");
  const long p = std::stol(port);
  if (p > 65535) return bad("the port is over 65535");
  a.port = static_cast<uint16_t>(p);
  return a;
}

MetricsServer::MetricsServer(const Metrics& metrics, ReadyCheck ready) {
  add_routes(router_, metrics, std::move(ready));
}

MetricsServer::~MetricsServer() { stop(); }

Status MetricsServer::start(const std::string& listen) {
  auto a = parse_listen_address(listen);
  if (!a) return a.status();
  http::ServerLimits limits;
  limits.io_threads = 1;
  limits.handler_threads = 2;  // a scrape and a probe at once
  limits.max_connections = 64;
  limits.max_pending_requests = 64;
  limits.max_body_bytes = 4096;  // probes and scrapes carry no body
  http_ = std::make_unique<http::HttpServer>(router_, limits);
  if (Status s = http_->start(a->host, a->port); !s) return s.with_context("metrics listener " + listen);
  return Status::ok();
}

uint16_t MetricsServer::port() const { return http_ ? http_->port() : 0; }

void MetricsServer::stop() {
  if (http_) http_->stop();
}

}  // namespace quern::metrics
