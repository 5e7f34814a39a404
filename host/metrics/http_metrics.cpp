#include "host/metrics/http_metrics.h"

namespace quern::metrics {

HttpMetrics::HttpMetrics(Metrics& m)
    : requests_(m.counter("quern_http_requests_total",
                          "HTTP responses by route template, method and status class.")),
      durations_(m.histogram("quern_http_request_duration_seconds",
                             "Time from a request's arrival to its response written, by route template.")),
      unavailable_(m.counter("quern_http_unavailable_total",
                             "HTTP 503 answers: overloaded, or the database away (each carries Retry-After).")
                       .Add({})),
      streams_(m.gauge("quern_http_sse_streams_open", "Server-sent event streams open now.").Add({})) {}

void HttpMetrics::request_done(const std::string& method, const std::string& route, int status,
                               std::chrono::duration<double> elapsed) {
  static const char* const kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  const int cls = status / 100;
  const std::string code = cls >= 1 && cls <= 5 ? kClasses[cls - 1] : "other";
  const std::string& r = route.empty() ? "none" : route;
  requests_.Add({{"route", r}, {"method", method.empty() ? "none" : method}, {"code", code}}).Increment();
  durations_.Add({{"route", r}}, latency_buckets()).Observe(elapsed.count());
  if (status == 503) unavailable_.Increment();
}

void HttpMetrics::streams_changed(int delta) { streams_.Increment(delta); }

}  // namespace quern::metrics
