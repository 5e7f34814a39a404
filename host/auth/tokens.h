// API tokens (quern.tokens, migration 2).
//
// A token is "qrn_" + id + "_" + 64 hex digits (256 random bits), where id is
// "tok_" + 16 hex digits. It is returned once by create(); the database keeps
// only the SHA-256 of the whole token string, so neither the table nor a dump
// of it can be used to authenticate. The id (not secret) is how tokens are
// listed, revoked and found at authentication time.
//
// Nothing in this file logs a token or puts one into a Status message.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include "host/auth/permissions.h"

#include "host/common/status.h"

namespace quern::pg {
class Session;
}

namespace quern::auth {

using Clock = std::chrono::system_clock;

// Who a request comes from (an authenticated token).
struct Principal {
  std::string token_id;
  Role role;
  std::string group;              // agent tokens: the worker group it may serve
  std::vector<std::string> tags;  // agent tokens: the tags it may pull
  std::string label;
  std::optional<Clock::time_point> expires_at;  // nullopt = never
};

// NOTIFY channel of token changes (migration 12): the payload is the id of a
// token whose row was updated (other than its last_used_at) or deleted, or
// empty after a TRUNCATE. TokenCache's feed.
inline constexpr const char* kTokensChannel = "quern_tokens";

struct NewToken {
  Role role = Role::operator_;
  std::string group;
  std::vector<std::string> tags;
  std::optional<Clock::time_point> expires_at;  // nullopt = never
  std::string label;
};

// An agent token requires a group and at least one tag; other roles must have
// neither. Group and tags match [A-Za-z0-9_.:-]+ (at most 128 characters, no
// duplicate tags); the label is at most 200 bytes; expires_at, when given, is
// in the future. Messages say what is wrong.
Status validate(const NewToken& token);

struct IssuedToken {
  std::string id;
  std::string token;  // shown once; never stored
};

struct TokenInfo {
  std::string id;
  Role role;
  std::string group;
  std::vector<std::string> tags;
  std::string label;
  Clock::time_point created_at;
  std::optional<Clock::time_point> expires_at, revoked_at, last_used_at;
};

// A token as the API and `quern token list` show it (never its secret):
// id, role, group, tags, label, and created/expires/revoked/last-used times
// (RFC 3339, null when unset).
nlohmann::ordered_json to_json(const TokenInfo& t);

// The token table. Owns one database connection: NOT thread-safe (use one
// per thread; the server borrows them from a pool). A lost connection is
// reported by the failing call and re-opened by the next one. Every database
// error is returned as a Status; no exception escapes.
class TokenStore {
 public:
  // Connects now: an unreachable database is reported here.
  static StatusOr<std::unique_ptr<TokenStore>> connect(const std::string& database_url);
  // Over a session shared with other stores (the server's pool).
  static std::unique_ptr<TokenStore> over(std::shared_ptr<pg::Session> session);
  ~TokenStore();
  TokenStore(const TokenStore&) = delete;
  TokenStore& operator=(const TokenStore&) = delete;

  // Validates, then stores a new token with a fresh random id and secret.
  StatusOr<IssuedToken> create(const NewToken& token);

  // nullopt: malformed, unknown, expired or revoked (the caller answers 401
  // without saying which). A malformed string never reaches the database.
  // Looks the row up by id (parsed from the token) and compares SHA-256
  // hashes in constant time. Updates last_used_at at most once a minute per
  // token, so a busy client costs one extra write a minute, not one per
  // request.
  StatusOr<std::optional<Principal>> authenticate(std::string_view token);

  // All tokens (revoked and expired included), oldest first; never secrets.
  StatusOr<std::vector<TokenInfo>> list();

  // Sets revoked_at (kept if already revoked). false = no such token.
  StatusOr<bool> revoke(const std::string& id);

 private:
  TokenStore();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Exposed for tests and callers that want to reject obviously wrong input
// early: true if `token` has the exact shape of a Quern token (it may still
// be unknown). Sets *id to its id part when non-null.
bool parse_token(std::string_view token, std::string* id);

}  // namespace quern::auth
