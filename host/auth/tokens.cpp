// TokenStore and token validation. See tokens.h for the token format and
// the storage contract (only SHA-256 hashes are stored).
#include "host/auth/tokens.h"

#include "host/common/time_text.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "host/common/crypto.h"
#include "host/common/utf8.h"
#include "host/common/validation.h"
#include "host/pg/session.h"

namespace quern::auth {
namespace {

constexpr std::string_view kTokenPrefix = "qrn_";
constexpr std::string_view kIdPrefix = "tok_";
constexpr size_t kIdHexDigits = 16;      // 64 random bits: unique, not secret
constexpr size_t kSecretHexDigits = 64;  // 256 random bits
constexpr size_t kIdSize = kIdPrefix.size() + kIdHexDigits;
constexpr size_t kTokenSize = kTokenPrefix.size() + kIdSize + 1 + kSecretHexDigits;
constexpr size_t kMaxNameSize = 128;
constexpr size_t kMaxLabelSize = 200;

// Timestamps cross the connection as epoch microseconds (exact, no parsing).

constexpr const char* kInsert =
    "INSERT INTO quern.tokens (id, secret_hash, role, worker_group, tags, label, expires_at) "
    "VALUES ($1, decode($2, 'hex'), $3, NULLIF($4, ''), ARRAY(SELECT json_array_elements_text($5::json)), "
    "$6, "
    "'epoch'::timestamptz + $7::bigint * interval '1 microsecond')";

// Only live tokens are found; touch_due says whether last_used_at is due
// for its once-a-minute refresh.
constexpr const char* kLookup =
    "SELECT encode(secret_hash, 'hex') AS secret_hash_hex, role, coalesce(worker_group, '') AS worker_group, "
    "coalesce(array_to_json(tags)::text, '[]') AS tags, label, "
    "(last_used_at IS NULL OR last_used_at < now() - interval '1 minute') AS touch_due, "
    QUERN_PG_US("expires_at") " AS expires_us "
    "FROM quern.tokens WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())";

// Conditional, so concurrent requests with the same token write at most once.
constexpr const char* kTouch =
    "UPDATE quern.tokens SET last_used_at = now() "
    "WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')";

constexpr const char* kList =
    "SELECT id, role, coalesce(worker_group, '') AS worker_group, coalesce(array_to_json(tags)::text, '[]') AS tags, "
    "label, " QUERN_PG_US("created_at") " AS created_us, " QUERN_PG_US("expires_at") " AS expires_us, " QUERN_PG_US(
        "revoked_at") " AS revoked_us, " QUERN_PG_US("last_used_at") " AS last_used_us "
    "FROM quern.tokens ORDER BY created_at, id";

constexpr const char* kRevoke =
    "UPDATE quern.tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1";

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameSize) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
  });
}

Role role_or_throw(const std::string& name) {
  auto r = role_from_string(name);
  // The table's CHECK constraint makes this unreachable; the store's error
  // boundary turns it into a Status if the schema was tampered with.
  if (!r) throw std::runtime_error("unknown role '" + name + "' in quern.tokens");
  return *r;
}

std::vector<std::string> tags_from_json(const char* text) {
  return nlohmann::json::parse(text).get<std::vector<std::string>>();
}

std::optional<Clock::time_point> optional_time(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return pg::from_epoch_us(f.as<int64_t>());
}

}  // namespace

bool parse_token(std::string_view token, std::string* id) {
  if (token.size() != kTokenSize) return false;
  if (token.substr(0, kTokenPrefix.size()) != kTokenPrefix) return false;
  const std::string_view id_part = token.substr(kTokenPrefix.size(), kIdSize);
  if (id_part.substr(0, kIdPrefix.size()) != kIdPrefix || !is_lower_hex(id_part.substr(kIdPrefix.size())))
    return false;
  if (token[kTokenPrefix.size() + kIdSize] != '_') return false;
  if (!is_lower_hex(token.substr(kTokenPrefix.size() + kIdSize + 1))) return false;
  if (id) *id = std::string(id_part);
  return true;
}

Status validate(const NewToken& t) {
  if (t.role == Role::agent) {
    if (t.group.empty()) return Status::invalid("an agent token needs a group (the worker group it serves)");
    if (t.tags.empty())
      return Status::invalid("an agent token needs at least one tag (the tags it may pull)");
  } else {
    if (!t.group.empty() || !t.tags.empty())
      return Status::invalid(std::string("only agent tokens have a group and tags (role ") +
                             to_string(t.role) + ")");
  }
  if (!t.group.empty() && !is_name(t.group))
    return Status::invalid("bad group \"" + text::to_storable(t.group.substr(0, 130)) +
                           "\" (expected [A-Za-z0-9_.:-]+, at most 128 characters)");
  for (size_t i = 0; i < t.tags.size(); ++i) {
    if (Status s = validation::check_tag(t.tags[i], "tags[" + std::to_string(i) + "]"); !s) return s;
    if (std::find(t.tags.begin(), t.tags.begin() + static_cast<std::ptrdiff_t>(i), t.tags[i]) !=
        t.tags.begin() + static_cast<std::ptrdiff_t>(i))
      return Status::invalid("duplicate tag \"" + t.tags[i] + "\"");
  }
  if (Status s = validation::check_text(t.label, "label", kMaxLabelSize); !s) return s;
  if (t.expires_at && *t.expires_at <= Clock::now())
    return Status::invalid("expires_at is not in the future");
  return Status::ok();
}

struct TokenStore::Impl {
  explicit Impl(std::shared_ptr<pg::Session> session) : db(std::move(session)) {
    static const pg::Statement kStatements[] = {{"tokens_insert", kInsert},
                                                {"tokens_lookup", kLookup},
                                                {"tokens_touch", kTouch},
                                                {"tokens_list", kList},
                                                {"tokens_revoke", kRevoke}};
    db->add_statements(kStatements);
  }
  std::shared_ptr<pg::Session> db;
};

TokenStore::TokenStore() = default;
TokenStore::~TokenStore() = default;

StatusOr<std::unique_ptr<TokenStore>> TokenStore::connect(const std::string& database_url) {
  auto session = std::make_shared<pg::Session>(database_url);
  if (Status s = session->open("connect to the token store"); !s) return s;
  return over(std::move(session));
}

std::unique_ptr<TokenStore> TokenStore::over(std::shared_ptr<pg::Session> session) {
  std::unique_ptr<TokenStore> store(new TokenStore());
  store->impl_ = std::make_unique<Impl>(std::move(session));
  return store;
}

StatusOr<IssuedToken> TokenStore::create(const NewToken& t) {
  if (Status s = validate(t); !s) return s;
  const std::string tags = nlohmann::json(t.tags).dump();
  std::optional<int64_t> expires_us;
  if (t.expires_at) expires_us = pg::to_epoch_us(*t.expires_at);
  // A 64-bit id collision is astronomically unlikely; retry anyway rather
  // than fail a create.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto id_hex = crypto::random_hex(kIdHexDigits / 2);
    if (!id_hex) return id_hex.status();
    auto secret = crypto::random_hex(kSecretHexDigits / 2);
    if (!secret) return secret.status();
    IssuedToken issued;
    issued.id = std::string(kIdPrefix) + *id_hex;
    issued.token = std::string(kTokenPrefix) + issued.id + "_" + *secret;
    const std::string hash = crypto::sha256_hex(issued.token);
    auto inserted = impl_->db->run("create token", [&](pqxx::connection& c) {
      try {
        pqxx::nontransaction tx(c);
        tx.exec_prepared("tokens_insert", issued.id, hash, std::string(to_string(t.role)), t.group, tags,
                         t.label, expires_us);
        return true;
      } catch (const pqxx::unique_violation&) {
        return false;
      }
    });
    if (!inserted) return inserted.status();
    if (*inserted) return issued;
  }
  return Status::error("create token: could not find a free id");
}

StatusOr<std::optional<Principal>> TokenStore::authenticate(std::string_view token) {
  std::string id;
  if (!parse_token(token, &id)) return std::optional<Principal>();
  const std::string presented = crypto::sha256_hex(token);
  return impl_->db->run("authenticate", [&](pqxx::connection& c) -> std::optional<Principal> {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared("tokens_lookup", id);
    if (r.empty()) return std::nullopt;
    const auto& row = r[0];
    if (!crypto::equal_constant_time(presented, row["secret_hash_hex"].c_str())) return std::nullopt;
    Principal p;
    p.token_id = id;
    p.role = role_or_throw(row["role"].as<std::string>());
    p.group = row["worker_group"].as<std::string>();
    p.tags = tags_from_json(row["tags"].c_str());
    p.label = row["label"].as<std::string>();
    p.expires_at = optional_time(row["expires_us"]);
    if (row["touch_due"].as<bool>()) tx.exec_prepared("tokens_touch", id);
    return p;
  });
}

StatusOr<std::vector<TokenInfo>> TokenStore::list() {
  return impl_->db->run("list tokens", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared("tokens_list");
    std::vector<TokenInfo> out;
    out.reserve(r.size());
    for (const auto& row : r) {
      TokenInfo t;
      t.id = row["id"].as<std::string>();
      t.role = role_or_throw(row["role"].as<std::string>());
      t.group = row["worker_group"].as<std::string>();
      t.tags = tags_from_json(row["tags"].c_str());
      t.label = row["label"].as<std::string>();
      t.created_at = pg::from_epoch_us(row["created_us"].as<int64_t>());
      t.expires_at = optional_time(row["expires_us"]);
      t.revoked_at = optional_time(row["revoked_us"]);
      t.last_used_at = optional_time(row["last_used_us"]);
      out.push_back(std::move(t));
    }
    return out;
  });
}

StatusOr<bool> TokenStore::revoke(const std::string& id) {
  return impl_->db->run("revoke token", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx.exec_prepared("tokens_revoke", id).affected_rows() > 0;
  });
}

nlohmann::ordered_json to_json(const TokenInfo& t) {
  using Json = nlohmann::ordered_json;
  auto when = [](const std::optional<Clock::time_point>& at) {
    return at ? Json(iso_time(*at)) : Json(nullptr);
  };
  Json o;
  o["id"] = t.id;
  o["role"] = to_string(t.role);
  o["group"] = t.group;
  o["tags"] = t.tags;
  o["label"] = t.label;
  o["created_at"] = iso_time(t.created_at);
  o["expires_at"] = when(t.expires_at);
  o["revoked_at"] = when(t.revoked_at);
  o["last_used_at"] = when(t.last_used_at);
  return o;
}

}  // namespace quern::auth
