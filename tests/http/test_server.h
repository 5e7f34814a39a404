// A Router + HttpServer on 127.0.0.1 with an ephemeral port, for the http tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "host/http/http_server.h"

namespace quern::testing {

struct TestServer {
  http::Router router;
  std::unique_ptr<http::HttpServer> server;

  // Call after adding routes.
  void start(http::ServerLimits limits = {}) {
    server = std::make_unique<http::HttpServer>(router, limits);
    Status st = server->start("127.0.0.1", 0);
    ASSERT_TRUE(st.is_ok()) << st.message();
    ASSERT_NE(server->port(), 0);
  }
  uint16_t port() const { return server->port(); }
  std::string url(const std::string& path_and_query) const {
    return "http://127.0.0.1:" + std::to_string(port()) + path_and_query;
  }
};

}  // namespace quern::testing
