// The HTTP API of `quern server` (docs/API.md, docs/openapi.yaml). Routes are
// registered on an http::Router; every route but /healthz and /readyz
// requires a bearer token whose role allows the route's permission.
//
// Thread-safety: handlers run concurrently on the HTTP server's handler
// threads; each borrows one database connection (with every store over it)
// from one pool.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "host/autoscale/autoscale_store.h"
#include "host/http/http_server.h"
#include "host/queue/queue.h"
#include "host/routing/routing.h"
#include "host/schedule/scheduler.h"

namespace quern::server {

struct ApiOptions {
  std::string database_url;
  // Cap on how long run_wait_result and agent long polls may hold a request.
  std::chrono::milliseconds max_wait{60000};
  // A worker counts as live (queue stats "served") if seen within this.
  std::chrono::milliseconds live_within{35000};
  // Largest timeout_s a job may ask for (0 = no maximum); larger is a 400.
  int max_timeout_s = 0;
  // The API's connection budget: requests share this many database
  // connections (each request holds at most one); connections idle for
  // db_idle_timeout are closed. The server process as a whole uses
  // db_connections + 3 (server.h).
  size_t db_connections = 16;
  std::chrono::milliseconds db_idle_timeout{60000};
  // The config's <routing> rules, applied to every run (docs/ROUTING.md).
  std::vector<routing::Rule> routing_rules;
  // The config's <limits>: numbers that replace a job's for the same key.
  std::vector<queue::ConcurrencyLimit> limits;
  queue::QueueOptions queue_options;
  // The config's worker groups (name, tags) and its file's name: a run whose
  // tag no live worker serves answers with a `warning` saying which would.
  std::vector<std::pair<std::string, std::vector<std::string>>> group_tags;
  std::string config_name = "the server's config";
  // Tokens the database confirmed are trusted this long without a query
  // (host/auth/token_cache.h: revocations still apply at once); 0 = a query
  // per request.
  std::chrono::milliseconds token_cache_max_age{10000};
};

struct ApiContext;  // internal (api_context.h)

class Api {
 public:
  explicit Api(ApiOptions options);
  ~Api();
  void register_routes(http::Router& router);
  // Readiness (/readyz): OK when a pooled connection answers and the schema
  // is at the version this binary expects; else unavailable, saying which.
  Status ready();
  // The queue's depth and live workers, over a pooled connection (/metrics).
  StatusOr<queue::QueueMetrics> queue_metrics();
  // Each autoscaled group's latest decision, over a pooled connection (/metrics).
  StatusOr<std::vector<autoscale::GroupState>> autoscale_groups();
  // Builds the jobs of schedules' ticks (the server's scheduler fires them);
  // valid while this Api lives.
  schedule::JobBuilder schedule_job_builder();

 private:
  std::unique_ptr<ApiContext> ctx_;
};

// The OpenAPI document served at /api/openapi.yaml (docs/openapi.yaml,
// embedded at build time).
const std::string& openapi_yaml();

}  // namespace quern::server
