// quern_bench: the queue and worker measured the way the peers' benchmark
// harness (set-up in docs/BENCHMARKS.md) measures graphile-worker and
// pg-boss, so the figures sit side by side.
//
//   quern_bench --host /tmp/peers/sock --port 55433 TEST JOBS CONCURRENCY
//
// TEST:
//   noop        drain JOBS pre-queued jobs of the in-process no-op executor (the queue alone)
//   noop-keyed  the same JOBS, queued behind 9 x JOBS higher-priority jobs of one
//               concurrency key held at its limit (90 % of the queue can't run):
//               the claim must skip them, not scan them (compare with noop)
//   sleep       same, each job sleeps 100 ms in-process (as the peers' handler awaits 100 ms)
//   bash-noop   JOBS bash jobs running `true` (a process per job)
//   bash-sleep  JOBS bash jobs running `sleep 0.1`
//   latency     JOBS single no-op jobs submitted to an idle worker: submit → executor start
//   bash-latency  the same with bash jobs (submit → bash executor start)
//   enqueue-batch  one push_batch of JOBS jobs
//   scrape      JOBS waiting jobs (of 10 tags), then 21 scrapes of the server's
//               /metrics text (the queue read included): their median duration
// Metrics (issue 13): --metrics gives the worker its Prometheus metrics and,
// with --scrape-every MS, a thread renders the server's /metrics (queue
// depth per tag read from the database, as a scrape does) that often while
// the jobs drain; --completed N first fills quern.completed_jobs with N
// finished jobs, to show that history costs the claim nothing.
// Every measurement recreates the database `quern_bench` first. One worker
// (in this process, like the peers' node process) with CONCURRENCY slots.
// --executor slot-process runs the plugin in a slot process per slot (as
// Quern runs third-party plugins) instead of in the worker (the default, as
// Quern runs its own): docs/BENCHMARKS.md, "Crash containment".
// Prints one JSON line per measurement (and appends it to --results).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <thread>

#include <pqxx/pqxx>

#include "host/metrics/job_metrics.h"
#include "host/plugin/plugin_registry.h"
#include "host/queue/queue.h"
#include "host/server/server_metrics.h"
#include "host/worker/worker.h"

using namespace std::chrono;
using quern::queue::NewJob;
using quern::queue::Queue;

namespace {

struct Args {
  std::string host = "/tmp/peers/sock";
  int port = 55433;
  std::string user = "postgres";
  std::string db = "quern_bench";
  std::string plugin_dir = QUERN_PLUGIN_DIR;
  std::string results;
  std::string test = "noop";
  int jobs = 20000;
  int concurrency = 50;
  int window_s = 10;
  int duration_s = 0;
  // Where the plugins run: in-process (the default for Quern's own plugins)
  // or slot-process (the default for every other plugin).
  std::string executor = "in-process";
  bool metrics = false;
  int scrape_every_ms = 0;
  int64_t completed = 0;
};

std::string url(const Args& a, const std::string& db) {
  return "postgresql:///" + db + "?host=" + a.host + "&port=" + std::to_string(a.port) + "&user=" + a.user;
}

void recreate_database(const Args& a) {
  pqxx::connection c(url(a, "postgres"));
  pqxx::nontransaction tx(c);
  tx.exec("drop database if exists " + tx.quote_name(a.db) + " with (force)");
  tx.exec("create database " + tx.quote_name(a.db));
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

NewJob make_job(const std::string& test, int i) {
  NewJob j;
  const bool bash = test.rfind("bash", 0) == 0;
  j.language = bash ? "bash" : "noop";
  j.tag = j.language;
  if (test == "sleep")
    j.payload["args"] = {{"sleep_ms", 100}};
  else if (test == "bash-sleep")
    j.payload["code"] = "sleep 0.1";
  else if (bash)
    j.payload["code"] = "true";
  else
    j.payload["args"] = {{"n", i}};
  if (!j.payload.contains("args")) j.payload["args"] = nlohmann::ordered_json::object();
  if (!j.payload.contains("code")) j.payload["code"] = "";
  return j;
}

quern::worker::WorkerOptions worker_options(const Args& a, const std::string& tag) {
  quern::worker::WorkerOptions o;
  o.database_url = url(a, a.db);
  o.tags = {tag};
  o.slots = a.concurrency;
  o.poll_interval = 1s;
  o.heartbeat_interval = 10s;
  o.lease_timeout = 30s;
  if (a.executor == "in-process") o.in_process_plugins = {tag};
  return o;
}

// The server's metrics over the benchmark database, rendered every
// --scrape-every ms on a thread of its own (as Prometheus would scrape).
class Scraper {
 public:
  Scraper(const Args& a, quern::metrics::Metrics& worker_registry)
      : a_(a), worker_registry_(worker_registry) {}
  ~Scraper() { stop(); }
  void start() {
    if (a_.scrape_every_ms <= 0) return;
    quern::server::ApiOptions o;
    o.database_url = url(a_, a_.db);
    o.db_connections = 2;
    api_ = std::make_unique<quern::server::Api>(o);
    server_metrics_ = std::make_unique<quern::server::ServerMetrics>(server_registry_, *api_);
    thread_ = std::thread([this] {
      std::unique_lock lock(mu_);
      while (!stopping_) {
        lock.unlock();
        if (server_registry_.scrape().empty() || (a_.metrics && worker_registry_.scrape().empty()))
          throw std::runtime_error("empty scrape");
        ++scrapes_;
        lock.lock();
        cv_.wait_for(lock, milliseconds(a_.scrape_every_ms), [&] { return stopping_; });
      }
    });
  }
  int stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return scrapes_;
  }

 private:
  const Args& a_;
  quern::metrics::Metrics& worker_registry_;
  quern::metrics::Metrics server_registry_;
  std::unique_ptr<quern::server::Api> api_;
  std::unique_ptr<quern::server::ServerMetrics> server_metrics_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  int scrapes_ = 0;
};

// --completed N: N finished jobs in quern.completed_jobs, then ANALYZE.
void fill_completed(const Args& a) {
  if (a.completed <= 0) return;
  pqxx::connection c(url(a, a.db));
  pqxx::nontransaction tx(c);
  tx.exec(
      "INSERT INTO quern.completed_jobs (id, tag, language, payload, priority, scheduled_for, created_at, "
      "started_at, completed_at, status, result, attempt) "
      "SELECT -g, 'noop', 'noop', '{\"args\":{}}', 50, now(), now(), now(), now() - (g % 1000) * interval "
      "'1 minute', CASE WHEN g % 10 = 0 THEN 'failure' ELSE 'success' END, '{\"ok\":true}', 1 "
      "FROM generate_series(1, " +
      std::to_string(a.completed) + ") g");
  tx.exec("VACUUM ANALYZE quern.completed_jobs");
}

// JOBS waiting jobs over 10 tags, then the median of 21 scrapes.
nlohmann::ordered_json scrape(const Args& a) {
  auto q = Queue::connect(url(a, a.db)).value();
  std::vector<NewJob> jobs;
  for (int i = 0; i < a.jobs; ++i) {
    jobs.push_back(make_job("noop", i));
    jobs.back().tag = "t" + std::to_string(i % 10);
  }
  for (size_t off = 0; off < jobs.size(); off += 50000) {
    std::vector<NewJob> chunk(jobs.begin() + off, jobs.begin() + std::min(jobs.size(), off + 50000));
    if (auto r = q->push_batch(chunk); !r) throw std::runtime_error(r.message());
  }
  if (auto r = q->exec_scalar("VACUUM ANALYZE quern.queue"); !r) throw std::runtime_error(r.message());
  quern::server::ApiOptions o;
  o.database_url = url(a, a.db);
  quern::server::Api api(o);
  quern::metrics::Metrics registry;
  quern::server::ServerMetrics sm(registry, api);
  std::vector<double> samples;
  size_t bytes = 0;
  for (int i = 0; i < 21; ++i) {
    const auto t0 = steady_clock::now();
    bytes = registry.scrape().size();
    samples.push_back(duration<double, std::milli>(steady_clock::now() - t0).count());
    std::this_thread::sleep_for(1100ms);  // past the collector's one-second cache: every scrape reads
  }
  return {{"scrape_p50_ms", percentile(samples, 0.5)},
          {"scrape_max_ms", *std::max_element(samples.begin(), samples.end())},
          {"bytes", bytes}};
}

nlohmann::ordered_json drain(const Args& a, const quern::plugin::PluginRegistry& plugins) {
  auto q = Queue::connect(url(a, a.db)).value();
  std::vector<NewJob> jobs;
  for (int i = 0; i < a.jobs; ++i) jobs.push_back(make_job(a.test, i));
  for (size_t off = 0; off < jobs.size(); off += 50000) {
    std::vector<NewJob> chunk(jobs.begin() + off, jobs.begin() + std::min(jobs.size(), off + 50000));
    if (auto r = q->push_batch(chunk); !r) throw std::runtime_error(r.message());
  }
  if (a.test == "noop-keyed") {
    // 9 x JOBS jobs of key "full" (limit 1), ahead in claim order; its one
    // slot is taken by a claimer that never finishes (within the run).
    NewJob k = make_job("noop", 0);
    k.priority = 90;
    k.concurrency.key = "full";
    k.concurrency.max_running = 1;
    const std::vector<NewJob> keyed(50000, k);
    for (int left = 9 * a.jobs; left > 0; left -= 50000) {
      std::vector<NewJob> chunk(keyed.begin(), keyed.begin() + std::min(left, 50000));
      if (auto r = q->push_batch(chunk); !r) throw std::runtime_error(r.message());
    }
    if (auto r = q->claim("blocker", {"noop"}, 1); !r || r->size() != 1 || r->front().priority != 90)
      throw std::runtime_error("could not fill the key's slot");
    if (auto r = q->exec_scalar("VACUUM ANALYZE quern.queue"); !r) throw std::runtime_error(r.message());
  }
  const std::string tag = jobs.front().tag;
  auto options = worker_options(a, tag);
  quern::metrics::Metrics registry;
  std::optional<quern::metrics::WorkerMetrics> worker_metrics;
  if (a.metrics) options.metrics = &worker_metrics.emplace(registry, "bench");
  Scraper scraper(a, registry);
  quern::worker::Worker w(options, plugins);
  auto t0 = steady_clock::now();
  if (auto s = w.start(); !s) throw std::runtime_error(s.message());
  scraper.start();
  // --duration: keep the queue fed (JOBS waiting at most) for that long, to
  // see whether the claim rate decays as dead index entries pile up.
  std::atomic<int64_t> pushed{a.jobs};
  std::atomic<bool> feeding{a.duration_s > 0};
  std::thread feeder([&] {
    if (!feeding) return;
    auto fq = Queue::connect(url(a, a.db)).value();
    std::vector<NewJob> batch(std::min(a.jobs, 5000), make_job(a.test, 0));
    while (feeding) {
      if (pushed - w.stats().completed > a.jobs - static_cast<int64_t>(batch.size())) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      if (auto r = fq->push_batch(batch); !r) throw std::runtime_error(r.message());
      pushed += static_cast<int64_t>(batch.size());
    }
  });
  std::vector<double> windows;
  int64_t last_done = 0;
  auto last_t = t0;
  while (true) {
    if (feeding && steady_clock::now() - t0 >= seconds(a.duration_s)) {
      feeding = false;
      feeder.join();
    }
    if (!feeding && w.stats().completed >= pushed) break;
    std::this_thread::sleep_for(2ms);
    auto now = steady_clock::now();
    if (now - last_t >= seconds(a.window_s)) {
      int64_t done = w.stats().completed;
      windows.push_back((done - last_done) / duration<double>(now - last_t).count());
      last_done = done;
      last_t = now;
    }
  }
  auto t1 = steady_clock::now();
  if (feeder.joinable()) feeder.join();
  const int scrapes = scraper.stop();
  w.stop();
  w.wait();
  double ms = duration<double, std::milli>(t1 - t0).count();
  const double done = static_cast<double>(pushed);
  nlohmann::ordered_json out;
  out["ms"] = ms;
  out["jobs_done"] = pushed.load();
  out["jobs_per_s"] = done / (ms / 1000.0);
  if (a.test == "sleep" || a.test == "bash-sleep")
    out["efficiency"] = (done / (ms / 1000.0)) / (a.concurrency / 0.1);
  out["claim_queries"] = w.stats().claim_queries;
  if (a.scrape_every_ms > 0) out["scrapes"] = scrapes;
  if (a.completed > 0) out["completed_jobs_in_table"] = a.completed;
  if (!windows.empty()) out["window_jobs_per_s"] = windows;
  return out;
}

nlohmann::ordered_json latency(const Args& a, const quern::plugin::PluginRegistry& plugins) {
  const bool bash = a.test == "bash-latency";
  auto q = Queue::connect(url(a, a.db)).value();
  std::mutex mu;
  std::condition_variable cv;
  int64_t started_id = -1;
  steady_clock::time_point started_at;
  auto o = worker_options(a, bash ? "bash" : "noop");
  o.slots = std::max(1, a.concurrency);
  o.on_job_start = [&](const quern::queue::ClaimedJob& j) {
    auto now = steady_clock::now();
    std::lock_guard lock(mu);
    started_id = j.id;
    started_at = now;
    cv.notify_all();
  };
  quern::worker::Worker w(o, plugins);
  if (auto s = w.start(); !s) throw std::runtime_error(s.message());
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> gap(0, 50);
  std::vector<double> samples;
  const int warmup = 10;
  for (int i = 0; i < a.jobs + warmup; ++i) {
    std::this_thread::sleep_for(milliseconds(20 + gap(rng)));  // idle gap, as the peer harness
    NewJob j = make_job(bash ? "bash-noop" : "noop", i);
    auto t0 = steady_clock::now();
    auto id = q->push(j);
    if (!id) throw std::runtime_error(id.message());
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, 10s, [&] { return started_id == *id; }))
      throw std::runtime_error("job never started");
    if (i >= warmup) samples.push_back(duration<double, std::milli>(started_at - t0).count());
  }
  w.stop();
  w.wait();
  nlohmann::ordered_json out;
  out["p50_ms"] = percentile(samples, 0.5);
  out["p99_ms"] = percentile(samples, 0.99);
  out["avg_ms"] = std::accumulate(samples.begin(), samples.end(), 0.0) / samples.size();
  return out;
}

nlohmann::ordered_json enqueue_batch(const Args& a) {
  auto q = Queue::connect(url(a, a.db)).value();
  std::vector<NewJob> jobs;
  for (int i = 0; i < a.jobs; ++i) jobs.push_back(make_job("noop", i));
  auto t0 = steady_clock::now();
  if (auto r = q->push_batch(jobs); !r) throw std::runtime_error(r.message());
  double ms = duration<double, std::milli>(steady_clock::now() - t0).count();
  return {{"ms", ms}, {"jobs_per_s", a.jobs / (ms / 1000.0)}};
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Quern queue benchmark (same measures as ../shared/bench/peers)"};
  app.add_option("--host", a.host, "PostgreSQL socket directory or host");
  app.add_option("--port", a.port);
  app.add_option("--user", a.user);
  app.add_option("--database", a.db, "Recreated for every measurement");
  app.add_option("--plugin-dir", a.plugin_dir);
  app.add_option("--results", a.results, "Append the JSON line to this file");
  app.add_option("--window", a.window_s, "Seconds per throughput window (decay check)");
  app.add_option("--duration", a.duration_s, "noop/sleep: keep feeding JOBS-deep for this many seconds");
  app.add_option("--executor", a.executor, "in-process (default, as for Quern's own plugins) or slot-process")
      ->check(CLI::IsMember({"in-process", "slot-process"}));
  app.add_flag("--metrics", a.metrics, "Give the worker its Prometheus metrics (issue 13)");
  app.add_option("--scrape-every", a.scrape_every_ms, "Render the server's /metrics every MS while draining");
  app.add_option("--completed", a.completed, "Fill quern.completed_jobs with this many finished jobs first");
  app.add_option("test", a.test)->required();
  app.add_option("jobs", a.jobs);
  app.add_option("concurrency", a.concurrency);
  CLI11_PARSE(app, argc, argv);

  quern::plugin::PluginRegistry plugins;
  if (auto s = plugins.load_directory(a.plugin_dir); !s) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  try {
    recreate_database(a);
    auto q = Queue::connect(url(a, a.db));
    if (!q) throw std::runtime_error(q.message());
    if (auto v = (*q)->migrate(); !v) throw std::runtime_error(v.message());
    fill_completed(a);
    nlohmann::ordered_json r;
    r["system"] = "quern";
    r["version"] = QUERN_VERSION;
    r["test"] = a.test;
    r["jobs"] = a.jobs;
    r["concurrency"] = a.concurrency;
    r["executor"] = a.executor;
    nlohmann::ordered_json m;
    if (a.test == "latency" || a.test == "bash-latency")
      m = latency(a, plugins);
    else if (a.test == "enqueue-batch")
      m = enqueue_batch(a);
    else if (a.test == "scrape")
      m = scrape(a);
    else if (a.test == "noop" || a.test == "noop-keyed" || a.test == "sleep" || a.test == "bash-noop" ||
             a.test == "bash-sleep")
      m = drain(a, plugins);
    else
      throw std::runtime_error("unknown test " + a.test);
    for (auto& [k, v] : m.items()) r[k] = v;
    std::cout << r.dump() << std::endl;
    if (!a.results.empty()) std::ofstream(a.results, std::ios::app) << r.dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "quern_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
