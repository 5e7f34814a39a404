// `quern server`: the HTTP API plus the duties that must run somewhere in the
// cluster: lease recovery (under an advisory lock, so several servers and
// workers may all try), pruning workers that stopped reporting, pruning old
// jobs and logs (host/retention, under an advisory lock too), and firing
// cron schedules (host/schedule: exactly once per tick across servers).
// It never runs user code.
//
// Connection budget: a server process holds at most
// api.db_connections + kFixedConnections database connections (the API's
// pool; lease recovery; the one listener for run_wait_result and agent long
// polls; the scheduler). start() logs the budget and checks it against the
// database's max_connections: it refuses to start when the budget (plus
// colocated_connections) can never fit, and warns when it leaves room for
// fewer than kWorkerRoom more (a `quern worker` process uses 3).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "host/common/status.h"
#include "host/http/http_server.h"
#include "host/metrics/metrics.h"
#include "host/retention/retention.h"
#include "host/server/api.h"

namespace quern::server {

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8420;  // 0 = any free port
  ApiOptions api;
  http::ServerLimits limits;
  std::chrono::milliseconds lease_timeout{30000};
  bool recover_expired_leases = true;
  // The scheduler thread (docs/SCHEDULES.md); its database_url is api's.
  bool run_scheduler = true;
  schedule::SchedulerOptions scheduler;
  // Connections of workers in the same process (`quern up`), counted in the
  // budget check.
  int colocated_connections = 0;
  // Where the server's metrics go (host/server/server_metrics.h); null: none.
  // Must outlive the server; scrapes read the queue through the API's pool.
  metrics::Metrics* metrics = nullptr;
  // Data retention (host/retention/retention.h): the duties thread prunes old
  // jobs and logs on its own connection every prune_interval, at its first
  // round after that (rounds run every max(200ms, lease_timeout / 4)). The
  // default policy keeps everything; `quern server` passes the config's
  // <retention>.
  // on_pruned is called on the duties thread after each round that ran,
  // with what it deleted (e.g. for a metric); it must not block.
  retention::RetentionPolicy retention;
  std::chrono::milliseconds prune_interval{60000};
  std::function<void(const retention::PruneReport&)> on_pruned;
};

inline constexpr int kFixedConnections = 3;
inline constexpr int kWorkerRoom = 10;

// What the budget check found (also for tests).
struct ConnectionBudget {
  int budget = 0;           // db_connections + kFixedConnections + colocated
  int max_connections = 0;  // the database's
  int reserved = 0;         // superuser_reserved_connections
  int in_use = 0;           // client connections open now (ours included)
};
// Reads the database's limits on q's connection and checks `budget`
// against them: an error (invalid_argument) when it can never fit; else
// OK, with a warning (empty when none) when little room is left.
StatusOr<ConnectionBudget> check_connection_budget(queue::Queue& q, int budget, std::string* warning);

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // stop()
  // Checks the database, starts listening and the background duties.
  Status start();
  uint16_t port() const;
  const http::Router& router() const;
  // Readiness for probes (/readyz): the database answers at the schema
  // version this binary expects. Thread-safe; needs start().
  Status ready();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quern::server
