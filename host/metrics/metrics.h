// quern::metrics: the Prometheus side of a Quern process. One Metrics per
// process holds a prometheus-cpp Registry (counters, gauges, histograms that
// code updates as things happen) and collectors (functions that read a value
// only when scraped: queue depth from the database, process RSS, occupancy).
// scrape() renders both in the Prometheus text format (version 0.0.4).
//
// Naming: every Quern metric starts with `quern_`; the process collector
// uses the conventional `process_` names. Labels are bounded: a label that
// carries an input value (a tag) goes through a LabelLimit, and no label
// ever carries a job id or a script path (docs/OPERATIONS.md lists them all).
//
// Thread-safety: every method may be called from any thread; prometheus-cpp
// families and metrics are themselves thread-safe. Collectors run on the
// scraping thread, one scrape at a time.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

namespace quern::metrics {

using Collector = std::function<std::vector<prometheus::MetricFamily>()>;

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Families by name: the first call creates the family, later calls with
  // the same name return it (so several worker groups in one process share
  // one family and tell themselves apart by a label).
  prometheus::Family<prometheus::Counter>& counter(const std::string& name, const std::string& help);
  prometheus::Family<prometheus::Gauge>& gauge(const std::string& name, const std::string& help);
  prometheus::Family<prometheus::Histogram>& histogram(const std::string& name, const std::string& help);

  // Adds a function run at every scrape; what it returns is appended to the
  // registry's families. A collector must be cheap or bounded in time (it
  // runs while the scraper waits) and must not throw for expected failures:
  // it returns no families instead (an `_up`-style gauge may say so).
  void add_collector(Collector collector);

  // Adds a function run at every scrape before anything is read: for gauges
  // whose value depends on the time of the scrape (occupancy windows, ages).
  // Same rules as a collector.
  void add_refresh(std::function<void()> refresh);

  // The text exposition of everything registered, as served at /metrics.
  std::string scrape() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex scrape_mu_;  // one scrape at a time; guards collectors_ and refreshes_
  std::vector<Collector> collectors_;
  std::vector<std::function<void()>> refreshes_;
};

// Histogram buckets, in seconds.
const prometheus::Histogram::BucketBoundaries& latency_buckets();   // 0.5 ms .. 10 s (claims, requests)
const prometheus::Histogram::BucketBoundaries& duration_buckets();  // 5 ms .. 1 h (jobs, queue waits)

// Bounds the distinct values one label may take: the first `max_values`
// distinct values are kept, every later one is reported as "_other". The
// set never shrinks (a series once exported stays one). Thread-safe.
class LabelLimit {
 public:
  explicit LabelLimit(size_t max_values = 256) : max_(max_values) {}
  std::string admit(const std::string& value);

 private:
  const size_t max_;
  std::mutex mu_;
  std::set<std::string> seen_;  // guarded by mu_
};

// This process's resident memory and CPU time (user + system) so far, read
// from /proc/self/stat; nullopt when it cannot be read. Thread-safe.
struct ProcessUsage {
  double rss_bytes = 0;
  double cpu_seconds = 0;
};
std::optional<ProcessUsage> process_usage();

// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_cpu_seconds_total, process_open_fds, process_start_time_seconds
// and process_threads, read from /proc/self at scrape time; and
// quern_process_memory_limit_bytes, the memory limit of its cgroup (when set).
Collector process_collector();

// Building blocks for collectors: an empty family of a type (Gauge or
// Counter), and one sample added to it.
prometheus::MetricFamily make_family(const std::string& name, const std::string& help,
                                     prometheus::MetricType type = prometheus::MetricType::Gauge);
void add_sample(prometheus::MetricFamily& family, double value,
                std::vector<prometheus::ClientMetric::Label> labels = {});

}  // namespace quern::metrics
