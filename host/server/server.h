// `quern server`: the HTTP API plus the duties that must run somewhere in the
// cluster: lease recovery (under an advisory lock, so several servers and
// workers may all try) and pruning workers that stopped reporting.
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
