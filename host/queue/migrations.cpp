// Queue schema migrations. See migrations.h for the contract. The SQL of
// each migration, with the reasoning behind its tables and indexes, is in
// host/queue/migrations/ (README.md there says how to add one).
#include "host/queue/migrations.h"

#include <algorithm>

#include <pqxx/pqxx>

namespace quern::queue {

// The migrations' SQL: host/queue/migrations/NNNN_*.sql, embedded at build
// time (host/queue/CMakeLists.txt generates migrations_sql.cpp).
namespace migration_sql {
extern const char kMigration1[];
extern const char kMigration2[];
extern const char kMigration3[];
extern const char kMigration4[];
extern const char kMigration5[];
extern const char kMigration6[];
extern const char kMigration7[];
extern const char kMigration8[];
extern const char kMigration9[];
extern const char kMigration10[];
extern const char kMigration11[];
extern const char kMigration12[];
extern const char kMigration13[];
}  // namespace migration_sql

namespace {

constexpr Migration kMigrations[] = {
    {1, "queue, completed_jobs, job_logs, notify trigger", migration_sql::kMigration1},
    {2, "tokens, scripts, workers", migration_sql::kMigration2},
    {3, "concurrency and rate limits, retries, gpu requests", migration_sql::kMigration3},
    {4, "schedules", migration_sql::kMigration4},
    {5, "completed jobs keep cancel_requested", migration_sql::kMigration5},
    {6, "job resources and worker isolation", migration_sql::kMigration6},
    {7, "job_logs created_at index (retention)", migration_sql::kMigration7},
    {8, "claim returns the due time", migration_sql::kMigration8},
    {9, "worker telemetry", migration_sql::kMigration9},
    {10, "autoscaler", migration_sql::kMigration10},
    {11, "wake-ups", migration_sql::kMigration11},
    {12, "token changes", migration_sql::kMigration12},
    {13, "wake plans", migration_sql::kMigration13},
};

constexpr const char* kBootstrap = R"SQL(
CREATE SCHEMA IF NOT EXISTS quern;
CREATE TABLE IF NOT EXISTS quern.schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
)SQL";

int current_version(pqxx::transaction_base& tx) {
  // Two statements: a reference to a missing table fails at parse time.
  if (tx.exec("SELECT to_regclass('quern.schema_migrations')")[0][0].is_null()) return -1;
  return tx.exec("SELECT coalesce(max(version), 0) FROM quern.schema_migrations")[0][0].as<int>();
}

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }

int latest_schema_version() { return kMigrations[std::size(kMigrations) - 1].version; }

int schema_version(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  return std::max(0, current_version(tx));
}

int apply_migrations(pqxx::connection& conn) {
  const int latest = latest_schema_version();
  {
    // Fast path without the lock: already current (the common case at start).
    pqxx::nontransaction tx(conn);
    const int v = current_version(tx);
    if (v >= latest) return v;
  }
  int version = 0;
  for (const Migration& m : kMigrations) {
    pqxx::work tx(conn);
    tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockKey) + ")");
    tx.exec(kBootstrap);
    version = current_version(tx);
    if (version >= m.version) {
      tx.commit();
      continue;
    }
    tx.exec(m.sql);
    tx.exec_params("INSERT INTO quern.schema_migrations (version, name) VALUES ($1, $2)", m.version,
                   std::string(m.name));
    tx.commit();
    version = m.version;
  }
  return version;
}

}  // namespace quern::queue
