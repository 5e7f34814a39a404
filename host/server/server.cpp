#include "host/server/server.h"

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>

namespace quern::server {

struct Server::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)), api(options.api) { api.register_routes(router); }

  ServerOptions options;
  Api api;
  http::Router router;
  std::unique_ptr<http::HttpServer> http;
  std::unique_ptr<schedule::Scheduler> scheduler;  // uses api's pools: declared after api

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;  // guarded by mu
  std::thread duties;

  // Lease recovery and registry pruning, until stop().
  void run_duties() {
    auto q = queue::Queue::connect(options.api.database_url, options.api.queue_options);
    const auto interval = std::max(std::chrono::milliseconds(200), options.lease_timeout / 4);
    std::unique_lock lock(mu);
    while (!stopping) {
      lock.unlock();
      if (!q) {
        q = queue::Queue::connect(options.api.database_url, options.api.queue_options);
      } else {
        if (options.recover_expired_leases) {
          auto report = (*q)->recover_expired(options.lease_timeout);
          if (!report) std::cerr << "quern server: lease recovery failed: " << report.message() << std::endl;
        }
        // A registry row unseen for 10 lease timeouts belongs to a worker that is gone.
        auto pruned = (*q)->prune_workers(options.lease_timeout * 10);
        if (!pruned) std::cerr << "quern server: pruning workers failed: " << pruned.message() << std::endl;
      }
      lock.lock();
      cv.wait_for(lock, interval, [&] { return stopping; });
    }
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Server::~Server() { stop(); }

Status Server::start() {
  auto q = queue::Queue::connect(impl_->options.api.database_url, impl_->options.api.queue_options);
  if (!q) return q.status().with_context("quern server");
  if (auto v = (*q)->migrate(); !v) return v.status().with_context("quern server: migrating the schema");
  impl_->http = std::make_unique<http::HttpServer>(impl_->router, impl_->options.limits);
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
