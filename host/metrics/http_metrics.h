// Metrics of an HTTP server (host/http), fed by its RequestObserver hook:
//   quern_http_requests_total{route,method,code}   responses by route template
//                                                  and status class ("2xx" .. "5xx")
//   quern_http_request_duration_seconds{route}     time from the request's first
//                                                  byte to its response written
//   quern_http_unavailable_total                   503 answers (overload, database away)
//   quern_http_sse_streams_open                    event streams running now
// `route` is the route's pattern ("/api/jobs/{id}"), never the path, so
// the series are bounded by the routes; unrouted requests share "none".
// Thread-safe (prometheus-cpp's metrics are).
#pragma once

#include "host/http/http_server.h"
#include "host/metrics/metrics.h"

namespace quern::metrics {

class HttpMetrics : public http::RequestObserver {
 public:
  explicit HttpMetrics(Metrics& metrics);
  void request_done(const std::string& method, const std::string& route, int status,
                    std::chrono::duration<double> elapsed) override;
  void streams_changed(int delta) override;

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Counter& unavailable_;
  prometheus::Gauge& streams_;
};

}  // namespace quern::metrics
