// Token validation and the token store against a real PostgreSQL: issue,
// authenticate (and every way it must fail), list, revoke, and a pg_dump of
// the database showing that no secret is stored.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <pqxx/pqxx>

#include "host/auth/tokens.h"
#include "host/common/crypto.h"
#include "host/pg/embedded_postgres.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern::auth {
namespace {

using namespace std::chrono_literals;

template <typename T>
T must(StatusOr<T> v) {
  if (!v.is_ok()) throw std::runtime_error(v.message());
  return std::move(v).value();
}

NewToken agent_token() {
  NewToken t;
  t.role = Role::agent;
  t.group = "gpu";
  t.tags = {"cuda", "python.3:12"};
  t.label = "agent on box 7";
  return t;
}

class TokenStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url("tokens");
    store_ = must(TokenStore::connect(url_));
  }
  std::optional<Principal> auth(std::string_view token) { return must(store_->authenticate(token)); }

  std::string url_;
  std::unique_ptr<TokenStore> store_;
};

TEST(TokenValidation, RolesGroupsTags) {
  EXPECT_TRUE(validate(agent_token()).is_ok());
  NewToken t;
  t.role = Role::developer;
  EXPECT_TRUE(validate(t).is_ok());

  NewToken a = agent_token();
  a.group.clear();
  EXPECT_NE(validate(a).message().find("group"), std::string::npos) << validate(a).message();
  a = agent_token();
  a.tags.clear();
  EXPECT_NE(validate(a).message().find("tag"), std::string::npos) << validate(a).message();
  a = agent_token();
  a.tags = {"ok", "bad tag"};
  EXPECT_NE(validate(a).message().find("tags[1]: tag \"bad tag\""), std::string::npos)
      << validate(a).message();
  a.tags = {"x", "x"};
  EXPECT_NE(validate(a).message().find("duplicate"), std::string::npos) << validate(a).message();
  a = agent_token();
  a.group = "g/1";
  EXPECT_NE(validate(a).message().find("bad group"), std::string::npos) << validate(a).message();

  for (Role r : {Role::admin, Role::developer, Role::operator_}) {
    NewToken n;
    n.role = r;
    n.group = "gpu";
    EXPECT_NE(validate(n).message().find("only agent tokens"), std::string::npos) << to_string(r);
    n.group.clear();
    n.tags = {"cuda"};
    EXPECT_NE(validate(n).message().find("only agent tokens"), std::string::npos) << to_string(r);
  }

  t.expires_at = Clock::now() - 1s;
  EXPECT_NE(validate(t).message().find("expires_at"), std::string::npos) << validate(t).message();
  t.expires_at = Clock::now() + 1h;
  EXPECT_TRUE(validate(t).is_ok());
  t.label = std::string(201, 'x');
  EXPECT_FALSE(validate(t).is_ok());
}

TEST(TokenFormat, ParseToken) {
  const std::string good = "qrn_tok_0123456789abcdef_" + std::string(64, 'a');
  std::string id;
  EXPECT_TRUE(parse_token(good, &id));
  EXPECT_EQ(id, "tok_0123456789abcdef");
  EXPECT_FALSE(parse_token(good.substr(1), nullptr));
  EXPECT_FALSE(parse_token(good + "a", nullptr));
  EXPECT_FALSE(parse_token("qrn_tok_0123456789ABCDEF_" + std::string(64, 'a'), nullptr));
  EXPECT_FALSE(parse_token("qrn_tok_0123456789abcdef-" + std::string(64, 'a'), nullptr));
  EXPECT_FALSE(parse_token("", nullptr));
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(crypto::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(crypto::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(TokenStoreTest, CreatedTokenAuthenticatesWithItsPrincipal) {
  IssuedToken issued = must(store_->create(agent_token()));
  EXPECT_TRUE(std::regex_match(issued.id, std::regex("tok_[0-9a-f]{16}"))) << issued.id;
  EXPECT_TRUE(std::regex_match(issued.token, std::regex("qrn_" + issued.id + "_[0-9a-f]{64}")));

  auto p = auth(issued.token);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->token_id, issued.id);
  EXPECT_EQ(p->role, Role::agent);
  EXPECT_EQ(p->group, "gpu");
  EXPECT_EQ(p->tags, (std::vector<std::string>{"cuda", "python.3:12"}));
  EXPECT_EQ(p->label, "agent on box 7");

  NewToken admin;
  admin.role = Role::admin;
  IssuedToken second = must(store_->create(admin));
  EXPECT_NE(second.id, issued.id);
  auto q = auth(second.token);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->role, Role::admin);
  EXPECT_TRUE(q->group.empty());
  EXPECT_TRUE(q->tags.empty());

  // last_used_at is set by the first use.
  auto list = must(store_->list());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_TRUE(list[0].last_used_at.has_value());
}

TEST_F(TokenStoreTest, WrongMalformedAndUnknownTokensAreRefused) {
  IssuedToken issued = must(store_->create(NewToken{}));
  ASSERT_TRUE(auth(issued.token).has_value());

  // One changed character in the secret, and in the id.
  std::string changed = issued.token;
  changed.back() = changed.back() == '0' ? '1' : '0';
  EXPECT_FALSE(auth(changed).has_value());
  std::string other_id = issued.token;
  other_id[8] = other_id[8] == '0' ? '1' : '0';  // first hex digit of the id
  EXPECT_FALSE(auth(other_id).has_value());

  // Well formed, unknown id.
  EXPECT_FALSE(auth("qrn_tok_0000000000000000_" + std::string(64, '0')).has_value());
  // Malformed.
  EXPECT_FALSE(auth("").has_value());
  EXPECT_FALSE(auth("Bearer " + issued.token).has_value());
  EXPECT_FALSE(auth(issued.token + " ").has_value());
  EXPECT_FALSE(auth(issued.id).has_value());
  EXPECT_FALSE(auth("qrn_' OR 1=1 --").has_value());

  // The real one still works.
  EXPECT_TRUE(auth(issued.token).has_value());
}

TEST_F(TokenStoreTest, ExpiredTokenIsRefused) {
  NewToken t;
  t.expires_at = Clock::now() + 1s;
  IssuedToken issued = must(store_->create(t));
  // Valid until it expires (on a very loaded machine the second may already be over).
  const bool valid = auth(issued.token).has_value();
  EXPECT_TRUE(valid || Clock::now() >= *t.expires_at);
  EXPECT_TRUE(testing::wait_until([&] { return !auth(issued.token).has_value(); }, 10s));
  EXPECT_GE(Clock::now(), *t.expires_at);
  auto list = must(store_->list());
  ASSERT_EQ(list.size(), 1u);
  ASSERT_TRUE(list[0].expires_at.has_value());
  EXPECT_LT(std::chrono::abs(*list[0].expires_at - *t.expires_at), 1ms);
}

TEST_F(TokenStoreTest, RevokedTokenIsRefused) {
  IssuedToken keep = must(store_->create(NewToken{}));
  IssuedToken gone = must(store_->create(NewToken{}));
  EXPECT_TRUE(auth(gone.token).has_value());
  EXPECT_TRUE(must(store_->revoke(gone.id)));
  EXPECT_FALSE(auth(gone.token).has_value());
  EXPECT_TRUE(auth(keep.token).has_value());
  EXPECT_TRUE(must(store_->revoke(gone.id)));  // again: still exists
  EXPECT_FALSE(must(store_->revoke("tok_0000000000000000")));

  auto list = must(store_->list());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, keep.id);
  EXPECT_FALSE(list[0].revoked_at.has_value());
  EXPECT_EQ(list[1].id, gone.id);
  EXPECT_TRUE(list[1].revoked_at.has_value());
}

TEST_F(TokenStoreTest, ListShowsNoSecret) {
  NewToken t = agent_token();
  t.expires_at = Clock::now() + 1h;
  IssuedToken issued = must(store_->create(t));
  auto list = must(store_->list());
  ASSERT_EQ(list.size(), 1u);
  const TokenInfo& info = list[0];
  EXPECT_EQ(info.id, issued.id);
  EXPECT_EQ(info.role, Role::agent);
  EXPECT_EQ(info.group, "gpu");
  EXPECT_EQ(info.tags, t.tags);
  EXPECT_EQ(info.label, t.label);
  EXPECT_LT(std::chrono::abs(info.created_at - Clock::now()), 1min);
  EXPECT_FALSE(info.revoked_at.has_value());
  EXPECT_FALSE(info.last_used_at.has_value());
  const std::string secret = issued.token.substr(issued.token.size() - 64);
  for (const std::string& field : {info.id, info.group, info.label})
    EXPECT_EQ(field.find(secret), std::string::npos);
}

TEST_F(TokenStoreTest, InvalidTokenIsNotCreated) {
  NewToken t = agent_token();
  t.tags.clear();
  EXPECT_FALSE(store_->create(t).is_ok());
  EXPECT_TRUE(must(store_->list()).empty());
}

TEST_F(TokenStoreTest, UnreachableDatabaseIsAStatus) {
  auto s = TokenStore::connect("postgresql:///nonexistent_db_for_quern?host=/nonexistent&port=1");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("connect to the token store"), std::string::npos) << s.message();
}

// A lost connection is reported by at most one call; the next reconnects
// (and re-prepares its statements).
TEST_F(TokenStoreTest, ReconnectsAfterTheBackendIsTerminated) {
  IssuedToken issued = must(store_->create(NewToken{}));
  ASSERT_TRUE(auth(issued.token).has_value());
  {
    pqxx::connection admin(url_);
    pqxx::nontransaction tx(admin);
    auto r = tx.exec(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    ASSERT_EQ(r[0][0].as<int>(), 1);
  }
  auto first = store_->authenticate(issued.token);
  if (!first.is_ok()) {
    EXPECT_NE(first.message().find("authenticate"), std::string::npos) << first.message();
  }
  auto again = auth(issued.token);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->token_id, issued.id);
  EXPECT_EQ(must(store_->list()).size(), 1u);
}

// Migration 12's feed (TokenCache's invalidation): every change to a token
// NOTIFYs kTokensChannel with its id — a revoke, a DELETE, a TRUNCATE (empty
// payload) — but authentication's once-a-minute touch of last_used_at does
// not (it would evict every busy token each minute). Notifications arrive in
// commit order, so the first one heard after a touch and a revoke is the
// revoke's.
TEST_F(TokenStoreTest, ChangesToATokenAreNotifiedButItsUseIsNot) {
  IssuedToken used = must(store_->create(NewToken{}));
  IssuedToken revoked = must(store_->create(NewToken{}));
  pqxx::connection listener(url_);
  std::vector<std::string> heard;
  struct Receiver : pqxx::notification_receiver {
    Receiver(pqxx::connection_base& c, std::vector<std::string>& out)
        : pqxx::notification_receiver(c, kTokensChannel), out_(out) {}
    void operator()(const std::string& payload, int) override { out_.push_back(payload); }
    std::vector<std::string>& out_;
  } receiver(listener, heard);
  const auto next = [&]() -> std::optional<std::string> {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (heard.empty() && std::chrono::steady_clock::now() < deadline) listener.await_notification(1, 0);
    if (heard.empty()) return std::nullopt;
    std::string first = heard.front();
    heard.erase(heard.begin());
    return first;
  };

  ASSERT_TRUE(auth(used.token).has_value());  // touches last_used_at
  {
    pqxx::connection c(url_);
    pqxx::nontransaction(c).exec("UPDATE quern.tokens SET last_used_at = now() - interval '1 hour'");
  }
  ASSERT_TRUE(auth(used.token).has_value());  // touches it again
  EXPECT_TRUE(must(store_->revoke(revoked.id)));
  EXPECT_EQ(next(), revoked.id);
  pqxx::connection c(url_);
  pqxx::nontransaction(c).exec("UPDATE quern.tokens SET label = 'renamed' WHERE id = " + c.quote(used.id));
  EXPECT_EQ(next(), used.id);
  pqxx::nontransaction(c).exec("DELETE FROM quern.tokens WHERE id = " + c.quote(revoked.id));
  EXPECT_EQ(next(), revoked.id);
  pqxx::nontransaction(c).exec("TRUNCATE quern.tokens");
  EXPECT_EQ(next(), "");
  EXPECT_TRUE(heard.empty());
}

// The plaintext token, and its secret part alone, appear nowhere in a dump
// of the whole database; the id does (it is the row's key).
TEST_F(TokenStoreTest, DatabaseDumpHoldsNoSecret) {
  IssuedToken issued = must(store_->create(agent_token()));
  ASSERT_TRUE(auth(issued.token).has_value());  // also writes last_used_at
  const std::string secret = issued.token.substr(issued.token.size() - 64);

  const auto bindir = must(pg::find_postgres_bindir());
  const auto dir = std::filesystem::temp_directory_path() / ("quern-tokens-dump-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string dump_file = (dir / "dump.sql").string();
  testing::ChildProcess dump({(bindir / "pg_dump").string(), "--dbname=" + url_, "--format=plain",
                              "--no-owner", "--file=" + dump_file},
                             (dir / "pg_dump.log").string());
  ASSERT_EQ(dump.wait_exit(60s), 0) << dump.output();

  std::ifstream in(dump_file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  const std::string sql = text.str();
  std::filesystem::remove_all(dir);
  ASSERT_NE(sql.find("CREATE TABLE quern.tokens"), std::string::npos) << "not a dump of the test database?";
  EXPECT_NE(sql.find(issued.id), std::string::npos) << "the id should be stored";
  EXPECT_EQ(sql.find(issued.token), std::string::npos) << "the plaintext token is stored";
  EXPECT_EQ(sql.find(secret), std::string::npos) << "the token's secret is stored";
  // Nor is any 32-byte slice of it (e.g. a half of the secret).
  EXPECT_EQ(sql.find(secret.substr(0, 32)), std::string::npos);
  EXPECT_EQ(sql.find(secret.substr(32)), std::string::npos);
}

}  // namespace
}  // namespace quern::auth
