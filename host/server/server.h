// `quern server`: the HTTP API plus the duties that must run somewhere in the
// cluster: lease recovery (under an advisory lock, so several servers and
// workers may all try), pruning workers that stopped reporting, and firing
// cron schedules (host/schedule: exactly once per tick across servers).
// It never runs user code.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "host/common/status.h"
#include "host/http/http_server.h"
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
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // stop()
  // Checks the database, starts listening and the background duties.
  Status start();
  uint16_t port() const;
  const http::Router& router() const;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quern::server
