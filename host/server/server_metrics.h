// What `quern server` exports at /metrics (docs/OPERATIONS.md lists every
// name): its HTTP traffic (metrics::HttpMetrics), the queue per tag and the
// live workers per group and kind (read from the database when scraped, at
// most once a second however many scrapers there are, in two statements
// that scan quern.queue and quern.workers only), lease recoveries, and the
// database's reachability as seen by those reads.
//
// Thread-safety: recovered() and the observer are called from the server's
// threads concurrently with scrapes; all state is prometheus-cpp metrics or
// guarded by the collector's own mutex.
#pragma once

#include <memory>

#include "host/metrics/http_metrics.h"
#include "host/metrics/metrics.h"
#include "host/queue/queue.h"
#include "host/retention/retention.h"
#include "host/server/api.h"

namespace quern::server {

class ServerMetrics {
 public:
  // api must outlive this object and every scrape of m.
  ServerMetrics(metrics::Metrics& m, Api& api);
  http::RequestObserver* http_observer() { return &http_; }
  void recovered(const queue::RecoveryReport& r);
  // quern_retention_pruned_rows_total{table="completed_jobs"|"job_logs"|"job_attempts"}.
  void pruned(const retention::PruneReport& r);

 private:
  metrics::HttpMetrics http_;
  metrics::Metrics& metrics_;
  prometheus::Family<prometheus::Counter>& pruned_;
};

}  // namespace quern::server
