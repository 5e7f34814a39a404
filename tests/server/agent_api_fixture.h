// A real server (its API on an ephemeral port, a fresh database) with an
// admin token and two agent tokens of group "edge": one for tag "edge", one
// for "elsewhere". For tests of the agent API and of what agents send it.
// Small budgets (4 handler threads, 4 connections) so that tests see what
// happens beyond them; long polls may wait up to a minute.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "host/auth/tokens.h"
#include "host/queue/queue.h"
#include "host/server/server.h"
#include "tests/support/test_postgres.h"

namespace quern::testing {

class AgentApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    server::ServerOptions o;
    o.port = 0;
    o.api.database_url = url_;
    o.api.max_wait = std::chrono::seconds(60);
    o.api.db_connections = 4;
    o.limits.handler_threads = 4;
    o.run_scheduler = false;
    server_ = std::make_unique<server::Server>(o);
    ASSERT_TRUE(server_->start());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    auto store = auth::TokenStore::connect(url_);
    ASSERT_TRUE(store) << store.message();
    auth::NewToken t;
    t.role = auth::Role::admin;
    admin_ = (*store)->create(t)->token;
    t.role = auth::Role::agent;
    t.group = "edge";
    t.tags = {"edge"};
    agent_ = (*store)->create(t)->token;
    t.tags = {"elsewhere"};
    other_agent_ = (*store)->create(t)->token;
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q) << q.message();
    queue_ = std::move(q).value();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  std::string url_, base_, admin_, agent_, other_agent_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<queue::Queue> queue_;
};

}  // namespace quern::testing
