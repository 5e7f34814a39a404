// Tokens the database confirmed recently, so that an API request usually
// authenticates without a query (before: one lookup per request, the larger
// part of an agent's claim or a client's poll).
//
// Revocation stays immediate: the cache is only as good as a feed of token
// changes. Every UPDATE (other than last_used_at) or DELETE of a row of
// quern.tokens NOTIFYs kTokensChannel with the token's id (migration 12);
// the server's listener calls forget(id). The feed has an epoch, which
// changes whenever its connection is lost or made: an entry is served only
// under the epoch it was confirmed in, so a notification missed during an
// outage cannot leave a revoked token cached, and nothing is cached or served
// while the feed is down (nullopt epoch). A lookup that overlapped a forget()
// or an epoch change is not kept (its answer may predate the change).
// Entries are also re-confirmed after max_age (which keeps last_used_at
// current) and never served past the token's expiry, by this host's clock.
//
// What is left: a revocation made elsewhere (the CLI, another server) reaches
// this server's cache as fast as PostgreSQL delivers the NOTIFY, which it
// sends at the revocation's commit (tests/server/token_feed_test.cpp). One
// made through this server's API is forgotten before the API answers.
//
// Only tokens the database confirmed are cached, at most max_entries of
// them: unknown tokens cost a query each, as before, and cannot grow it.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "host/auth/tokens.h"

namespace quern::auth {

class TokenCache {
 public:
  struct Options {
    std::chrono::milliseconds max_age{10000};
    size_t max_entries = 4096;  // when full, the cache starts over
  };
  // What the cache knew when a lookup began (see remember()).
  struct Ticket {
    std::optional<uint64_t> epoch;
    uint64_t forgets = 0;
  };

  TokenCache() : TokenCache(Options{}) {}
  explicit TokenCache(Options options) : options_(options) {}
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  // Take one before asking the database; `epoch` is the feed's now.
  Ticket ticket(std::optional<uint64_t> epoch) const;
  // The principal of `token` when it was confirmed under this epoch at most
  // max_age ago, has not expired at `now`, and its SHA-256 matches the one
  // confirmed (compared in constant time); nullopt: ask the database.
  std::optional<Principal> find(std::string_view token, std::optional<uint64_t> epoch,
                                Clock::time_point now) const;
  // Keeps what the database answered for `token` — unless the feed was
  // down when `ticket` was taken, or its epoch has changed or a token was
  // forgotten since (the answer may predate that change).
  void remember(std::string_view token, const Principal& principal, const Ticket& ticket,
                std::optional<uint64_t> epoch_now, Clock::time_point now);
  // Drops the token with this id ("": every token).
  void forget(std::string_view token_id);
  size_t size() const;

 private:
  struct Entry {
    std::string hash;  // SHA-256 (hex) of the whole token string
    Principal principal;
    uint64_t epoch = 0;
    Clock::time_point confirmed_at;
  };

  const Options options_;
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;  // by token id; guarded by mu_
  uint64_t forgets_ = 0;                               // guarded by mu_
};

}  // namespace quern::auth
