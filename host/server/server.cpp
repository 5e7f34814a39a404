#include "host/server/server.h"

#include "host/log/log.h"
#include "host/server/server_metrics.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

namespace quern::server {

struct Server::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)), api(options.api) { api.register_routes(router); }

  ServerOptions options;
  Api api;
  http::Router router;
  std::unique_ptr<ServerMetrics> metrics;  // when options.metrics is set
  std::unique_ptr<http::HttpServer> http;
  std::unique_ptr<schedule::Scheduler> scheduler;  // uses api's pools: declared after api

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;  // guarded by mu
  std::thread duties;

  // Lease recovery, registry pruning and data retention, until stop().
  void run_duties() {
    queue::QueueOptions qo = options.api.queue_options;
    qo.application_name = "quern server (recovery)";
    auto q = queue::Queue::connect(options.api.database_url, qo);
    const auto interval = std::max(std::chrono::milliseconds(200), options.lease_timeout / 4);
    retention::PeriodicPruner pruner(options.retention, options.prune_interval, options.on_pruned);
    std::unique_lock lock(mu);
    while (!stopping) {
      lock.unlock();
      if (!q) {
        q = queue::Queue::connect(options.api.database_url, qo);
      } else {
        if (options.recover_expired_leases) {
          auto report = (*q)->recover_expired(options.lease_timeout);
          if (!report) log::warning("server", "lease recovery failed: " + report.message());
          if (report && metrics) metrics->recovered(*report);
        }
        // A registry row unseen for 10 lease timeouts belongs to a worker that is gone.
        auto pruned = (*q)->prune_workers(options.lease_timeout * 10);
        if (!pruned) log::warning("server", "pruning workers failed: " + pruned.message());
        pruner.run_if_due((*q)->session());
      }
      lock.lock();
      cv.wait_for(lock, interval, [&] { return stopping; });
    }
  }
};

StatusOr<ConnectionBudget> check_connection_budget(queue::Queue& q, int budget, std::string* warning) {
  auto text = q.exec_scalar(
      "SELECT current_setting('max_connections') || ',' || current_setting('superuser_reserved_connections') "
      "|| ',' || (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')");
  if (!text) return text.status();
  ConnectionBudget b;
  b.budget = budget;
  if (std::sscanf(text->c_str(), "%d,%d,%d", &b.max_connections, &b.reserved, &b.in_use) != 3)
    return Status::error("reading the database's connection limits: unexpected answer '" + *text + "'");
  const int usable = b.max_connections - b.reserved;
  if (budget > usable)
    return Status::invalid("the database allows " + std::to_string(usable) +
                           " connections (max_connections " + std::to_string(b.max_connections) +
                           " minus superuser_reserved_connections " + std::to_string(b.reserved) +
                           ") but this server needs up to " + std::to_string(budget) +
                           ": lower <server db-connections> or raise the database's max_connections");
  // The check's own connection is one of the budget's (lease recovery).
  const int left = usable - (b.in_use - 1) - budget;
  if (warning) {
    warning->clear();
    if (left < kWorkerRoom)
      *warning =
          "only " + std::to_string(std::max(left, 0)) + " database connections are left for workers (" +
          std::to_string(b.in_use) + " in use now, max_connections " + std::to_string(b.max_connections) +
          "); each `quern worker` process uses 3: lower <server db-connections> or raise max_connections";
  }
  return b;
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Server::~Server() { stop(); }

Status Server::start() {
  auto q = queue::Queue::connect(impl_->options.api.database_url, impl_->options.api.queue_options);
  if (!q) return q.status().with_context("quern server");
  if (auto v = (*q)->migrate(); !v) return v.status().with_context("quern server: migrating the schema");
  const int budget = static_cast<int>(impl_->options.api.db_connections) + kFixedConnections +
                     impl_->options.colocated_connections;
  std::string warning;
  auto checked = check_connection_budget(**q, budget, &warning);
  if (!checked) return checked.status().with_context("quern server");
  log::info(
      "server",
      "database connections: up to " + std::to_string(budget) + " (db-connections " +
          std::to_string(impl_->options.api.db_connections) + " + " + std::to_string(kFixedConnections) +
          " for lease recovery, notifications and the scheduler" +
          (impl_->options.colocated_connections
               ? " + " + std::to_string(impl_->options.colocated_connections) + " for this process's workers"
               : std::string()) +
          ") of max_connections " + std::to_string(checked->max_connections) + " (" +
          std::to_string(checked->reserved) + " reserved for superusers, " + std::to_string(checked->in_use) +
          " in use now)");
  if (!warning.empty()) log::warning("server", warning);
  if (impl_->options.metrics) {
    impl_->metrics = std::make_unique<ServerMetrics>(*impl_->options.metrics, impl_->api);
    impl_->options.on_pruned = [m = impl_->metrics.get(),
                                then = impl_->options.on_pruned](const retention::PruneReport& r) {
      m->pruned(r);
      if (then) then(r);
    };
  }
  impl_->http = std::make_unique<http::HttpServer>(
      impl_->router, impl_->options.limits, impl_->metrics ? impl_->metrics->http_observer() : nullptr);
  if (Status s = impl_->http->start(impl_->options.address, impl_->options.port); !s) return s;
  impl_->duties = std::thread([this] { impl_->run_duties(); });
  if (impl_->options.run_scheduler) {
    schedule::SchedulerOptions so = impl_->options.scheduler;
    so.database_url = impl_->options.api.database_url;
    impl_->scheduler = std::make_unique<schedule::Scheduler>(so, impl_->api.schedule_job_builder());
    if (Status s = impl_->scheduler->start(); !s) return s.with_context("quern server");
  }
  return Status::ok();
}

uint16_t Server::port() const { return impl_->http ? impl_->http->port() : 0; }
const http::Router& Server::router() const { return impl_->router; }
Status Server::ready() { return impl_->api.ready(); }

void Server::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    impl_->cv.notify_all();
  }
  if (impl_->scheduler) impl_->scheduler->stop();
  if (impl_->http) impl_->http->stop();
  if (impl_->duties.joinable()) impl_->duties.join();
}

}  // namespace quern::server
