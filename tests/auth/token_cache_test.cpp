// TokenCache on its own (no database): what it serves, and every reason it
// must not — another secret, a changed epoch, a forget, age, expiry — plus
// the lookups that overlapped a change and the bound on its size.
#include "host/auth/token_cache.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace quern::auth {
namespace {

using namespace std::chrono_literals;

// A well-formed token: id n, secret filled with `secret`.
std::string token(int n, char secret = 'a') {
  char id[17];
  std::snprintf(id, sizeof id, "%016x", n);
  return std::string("qrn_tok_") + id + "_" + std::string(64, secret);
}
std::string id_of(const std::string& t) { return t.substr(4, 20); }

Principal principal_of(const std::string& t, Role role = Role::operator_) {
  Principal p;
  p.token_id = id_of(t);
  p.role = role;
  p.label = "l";
  return p;
}

class TokenCacheTest : public ::testing::Test {
 protected:
  // Remembers t as confirmed under epoch 1 at now_.
  void confirm(TokenCache& c, const std::string& t) { c.remember(t, principal_of(t), c.ticket(1), 1, now_); }
  const Clock::time_point now_ = Clock::now();
};

TEST_F(TokenCacheTest, ServesAConfirmedTokenUnderItsEpochOnly) {
  TokenCache c;
  const std::string t = token(1);
  EXPECT_FALSE(c.find(t, 1, now_));  // never confirmed
  confirm(c, t);
  auto hit = c.find(t, 1, now_ + 1s);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->token_id, id_of(t));
  EXPECT_EQ(hit->role, Role::operator_);
  EXPECT_FALSE(c.find(t, 3, now_));              // the feed reconnected since
  EXPECT_FALSE(c.find(t, std::nullopt, now_));   // the feed is down
  EXPECT_FALSE(c.find(token(1, 'b'), 1, now_));  // same id, another secret
  EXPECT_FALSE(c.find("qrn_tok_garbage", 1, now_));
  EXPECT_FALSE(c.find(token(2), 1, now_));
}

TEST_F(TokenCacheTest, ForgetDropsOneTokenOrAll) {
  TokenCache c;
  const std::string a = token(1), b = token(2);
  confirm(c, a);
  confirm(c, b);
  c.forget(id_of(a));
  EXPECT_FALSE(c.find(a, 1, now_));
  EXPECT_TRUE(c.find(b, 1, now_));
  c.forget("");
  EXPECT_FALSE(c.find(b, 1, now_));
  EXPECT_EQ(c.size(), 0u);
}

TEST_F(TokenCacheTest, AgeAndExpiryEndAnEntry) {
  TokenCache c(TokenCache::Options{5s, 16});
  const std::string t = token(1), expiring = token(2);
  confirm(c, t);
  Principal p = principal_of(expiring);
  p.expires_at = now_ + 2s;
  c.remember(expiring, p, c.ticket(1), 1, now_);
  EXPECT_TRUE(c.find(t, 1, now_ + 4900ms));
  EXPECT_FALSE(c.find(t, 1, now_ + 5s));
  EXPECT_FALSE(c.find(t, 1, now_ - 1s));  // the clock went back: ask again
  EXPECT_TRUE(c.find(expiring, 1, now_ + 1s));
  EXPECT_FALSE(c.find(expiring, 1, now_ + 2s));
}

TEST_F(TokenCacheTest, ALookupThatOverlappedAChangeIsNotKept) {
  TokenCache c;
  const std::string t = token(1);
  // A forget (of any token) between the ticket and the answer.
  auto ticket = c.ticket(1);
  c.forget(id_of(token(9)));
  c.remember(t, principal_of(t), ticket, 1, now_);
  EXPECT_FALSE(c.find(t, 1, now_));
  // The feed's epoch moved on during the lookup.
  ticket = c.ticket(1);
  c.remember(t, principal_of(t), ticket, 3, now_);
  EXPECT_FALSE(c.find(t, 3, now_));
  EXPECT_FALSE(c.find(t, 1, now_));
  // The feed was down when the lookup began.
  ticket = c.ticket(std::nullopt);
  c.remember(t, principal_of(t), ticket, 1, now_);
  EXPECT_FALSE(c.find(t, 1, now_));
  // An answer for another id than the token's is a caller's bug: not kept.
  c.remember(t, principal_of(token(2)), c.ticket(1), 1, now_);
  EXPECT_FALSE(c.find(t, 1, now_));
  EXPECT_EQ(c.size(), 0u);
}

TEST_F(TokenCacheTest, SizeIsBounded) {
  TokenCache c(TokenCache::Options{10s, 4});
  for (int i = 0; i < 100; ++i) {
    confirm(c, token(i));
    EXPECT_LE(c.size(), 4u);
  }
  EXPECT_TRUE(c.find(token(99), 1, now_));  // the newest is always kept
  // 96..99 since the last start-over (at 96); refreshing a known one evicts nothing.
  confirm(c, token(99));
  EXPECT_EQ(c.size(), 4u);
  EXPECT_TRUE(c.find(token(96), 1, now_));
}

}  // namespace
}  // namespace quern::auth
