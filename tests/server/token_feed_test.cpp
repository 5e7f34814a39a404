// The server's token cache against a real PostgreSQL and real HTTP
// (host/auth/token_cache.h): a revocation made outside this server — as
// `quern token revoke` makes it, straight in the database — refuses the
// token at once although the cache would trust it for ten minutes; the
// cache does answer (a revocation the feed does not announce goes unseen);
// and when the feed's connection is lost, nothing it confirmed before is
// trusted again.
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "host/auth/tokens.h"
#include "host/server/server.h"
#include "tests/http/http_test_client.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

class TokenFeedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    server::ServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;
    o.api.database_url = url_;
    o.api.token_cache_max_age = 10min;  // only the feed can end an entry within a test
    server_ = std::make_unique<server::Server>(o);
    ASSERT_TRUE(server_->start());
    auto store = auth::TokenStore::connect(url_);
    ASSERT_TRUE(store) << store.message();
    store_ = std::move(store).value();
    auto issued = store_->create(auth::NewToken{});
    ASSERT_TRUE(issued) << issued.message();
    token_ = *issued;
  }
  void TearDown() override { server_->stop(); }

  int status() {
    return testing::http_request("GET", "http://127.0.0.1:" + std::to_string(server_->port()) + "/api/queue",
                                 "", {{"Authorization", "Bearer " + token_.token}})
        .status;
  }
  void sql(const std::string& statement) {
    pqxx::connection c(url_);
    pqxx::nontransaction(c).exec(statement);
  }

  std::string url_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<auth::TokenStore> store_;
  auth::IssuedToken token_;
};

TEST_F(TokenFeedTest, ARevocationMadeInTheDatabaseIsSeenAtOnce) {
  ASSERT_EQ(status(), 200);
  ASSERT_EQ(status(), 200);  // confirmed, and now cached
  auto revoked = store_->revoke(token_.id);
  ASSERT_TRUE(revoked && *revoked);
  // The NOTIFY's delivery is all that stands between the commit and a 401.
  EXPECT_TRUE(wait_until([&] { return status() == 401; }, 5s));
  EXPECT_EQ(status(), 401);
}

TEST_F(TokenFeedTest, TheCacheAnswersUntilItsFeedIsLost) {
  ASSERT_EQ(status(), 200);
  // Revoked behind the feed's back: the database says no, the cache (which
  // confirmed the token a moment ago) still says yes — it is in use.
  sql("ALTER TABLE quern.tokens DISABLE TRIGGER token_changed");
  sql("UPDATE quern.tokens SET revoked_at = now() WHERE id = '" + token_.id + "'");
  EXPECT_EQ(status(), 200);
  // The feed's connection ends: what it vouched for is no longer trusted,
  // whatever notification it may have missed.
  sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE datname = current_database() AND application_name = 'quern server (listener)'");
  EXPECT_TRUE(wait_until([&] { return status() == 401; }, 10s));
}

}  // namespace
}  // namespace quern
