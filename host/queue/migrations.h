// Numbered schema migrations for the queue (schema "quern").
//
// Contract: migration N is applied at most once per database, in its own
// transaction, while holding a transaction-level advisory lock
// (kMigrationLockKey), and its number is recorded in quern.schema_migrations
// in that same transaction. Migrations are append-only: never edit a released
// one, add a new number instead.
#pragma once

#include <cstdint>
#include <span>

#include <pqxx/connection>

namespace quern::queue {

// Advisory lock keys ('quern' in the high bytes so they do not collide with
// other applications sharing the database). Exposed for tests.
constexpr int64_t kMigrationLockKey = 0x717565726E000001;
constexpr int64_t kRecoveryLockKey = 0x717565726E000002;
constexpr int64_t kRetentionLockKey = 0x717565726E000003;  // host/retention

struct Migration {
  int version;
  const char* name;
  const char* sql;  // may hold several statements
};

// All migrations, ordered by version (1, 2, ...).
std::span<const Migration> migrations();

// The newest schema version this binary knows (its last migration).
int latest_schema_version();

// Applies pending migrations on `conn` (no transaction open). Returns the
// schema version afterwards. Throws pqxx exceptions (the caller converts).
int apply_migrations(pqxx::connection& conn);

// The schema version of the database behind `conn`, without changing
// anything: 0 when it has no Quern schema. Throws pqxx exceptions.
int schema_version(pqxx::connection& conn);

}  // namespace quern::queue
