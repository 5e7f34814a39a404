// Queue schema migrations. See migrations.h for the contract and
// docs/QUEUE.md for the reasoning behind each table and index.
#include "host/queue/migrations.h"

#include <pqxx/pqxx>

namespace quern::queue {
namespace {

// Migration 1: the three tables, the claim index, and the NOTIFY trigger.
//
// quern.queue is the small hot table (waiting + running jobs only). Every
// claim is an UPDATE that leaves a dead tuple at the head of the claim index,
// so the table gets aggressive per-table autovacuum (ARCHITECTURE.md §2: the
// claim rate decays 4x within a minute with the defaults). fillfactor 90
// leaves room on each page for HOT updates of heartbeat_at, which no index
// covers.
constexpr const char* kMigration1 = R"SQL(
CREATE TABLE quern.queue (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tag              text NOT NULL CHECK (tag <> ''),
  language         text NOT NULL CHECK (language <> ''),
  script_path      text NOT NULL DEFAULT '',
  payload          json NOT NULL DEFAULT '{}',  -- json, not jsonb: key order of args survives
  priority         smallint NOT NULL DEFAULT 50 CHECK (priority BETWEEN 1 AND 100),
  scheduled_for    timestamptz NOT NULL DEFAULT now(),
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  running          boolean NOT NULL DEFAULT false,
  worker_id        text,
  attempt          integer NOT NULL DEFAULT 0,
  started_at       timestamptz,
  heartbeat_at     timestamptz,
  cancel_requested boolean NOT NULL DEFAULT false,
  cancel_reason    text,
  timeout_s        integer NOT NULL DEFAULT 0 CHECK (timeout_s >= 0),
  max_restarts     integer CHECK (max_restarts >= 0),  -- NULL: the sweeper's default
  restarts         integer NOT NULL DEFAULT 0
) WITH (
  fillfactor = 90,
  autovacuum_vacuum_threshold = 5000,
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_insert_threshold = 5000,
  autovacuum_vacuum_insert_scale_factor = 0,
  autovacuum_analyze_threshold = 5000,
  autovacuum_analyze_scale_factor = 0,
  autovacuum_vacuum_cost_delay = 0
);

-- Matches the claim's ORDER BY on waiting rows; tag and scheduled_for are
-- filtered during the scan. (An ANY() qual on a non-leading index column
-- would make PostgreSQL 15 give up the index order, so tag is not a key.)
CREATE INDEX queue_claim_idx ON quern.queue (priority DESC, scheduled_for, id) WHERE NOT running;

-- Running jobs only (bounded by the number of worker slots): used by the
-- lease sweeper and count_running. Keyed by id, not heartbeat_at, so that
-- heartbeats stay HOT updates.
CREATE INDEX queue_running_idx ON quern.queue (id) WHERE running;

CREATE TABLE quern.completed_jobs (
  id            bigint PRIMARY KEY,  -- the queue id: exactly one completion record per job
  tag           text NOT NULL,
  language      text NOT NULL,
  script_path   text NOT NULL DEFAULT '',
  payload       json NOT NULL,
  priority      smallint NOT NULL,
  scheduled_for timestamptz NOT NULL,
  created_at    timestamptz NOT NULL,
  started_at    timestamptz,
  completed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  status        text NOT NULL CHECK (status IN ('success', 'failure', 'timeout', 'canceled')),
  result        jsonb,
  error         text NOT NULL DEFAULT '',
  worker_id     text,
  attempt       integer NOT NULL,
  restarts      integer NOT NULL DEFAULT 0,
  timeout_s     integer NOT NULL DEFAULT 0,
  max_restarts  integer
);
CREATE INDEX completed_jobs_completed_at_idx ON quern.completed_jobs (completed_at);

-- Append-only log chunks; start_offset is the byte offset of the chunk's first
-- byte in the job's whole log, so reading from an offset is a range scan.
CREATE TABLE quern.job_logs (
  job_id       bigint NOT NULL,
  start_offset bigint NOT NULL,
  chunk        text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (job_id, start_offset)
);

-- NOTIFY channel of a tag; must stay identical to channel_for_tag() in C++
-- (queue_notify.cpp). Channel names are limited to 63 bytes: longer ones are
-- replaced by a 32-bit FNV-1a hash of the tag's UTF-8 bytes.
CREATE FUNCTION quern.channel_for_tag(tag text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  b bytea;
  h bigint := 2166136261;
BEGIN
  b := convert_to(tag, 'UTF8');
  IF length(b) <= 52 THEN
    RETURN 'quern_jobs:' || tag;
  END IF;
  FOR i IN 0 .. length(b) - 1 LOOP
    h := ((h # get_byte(b, i)) * 16777619) % 4294967296;
  END LOOP;
  RETURN 'quern_jobs:#' || lpad(to_hex(h), 8, '0');
END
$$;

-- One NOTIFY per INSERT statement per distinct tag of due jobs (future jobs
-- are found by the workers' polling once due).
CREATE FUNCTION quern.notify_new_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(quern.channel_for_tag(t.tag), '')
     FROM (SELECT DISTINCT tag FROM new_jobs WHERE scheduled_for <= now()) t;
  RETURN NULL;
END
$$;

CREATE TRIGGER queue_notify_new_jobs
  AFTER INSERT ON quern.queue
  REFERENCING NEW TABLE AS new_jobs
  FOR EACH STATEMENT EXECUTE FUNCTION quern.notify_new_jobs();
)SQL";

// Migration 2: what `quern server` needs besides the queue.
//
// quern.tokens: API tokens. Only the SHA-256 of the whole token string is
// stored (the plaintext is shown once at creation and never stored or
// logged); the id is also the first part of the token, so authentication is a
// primary-key lookup followed by a constant-time hash comparison in C++
// (host/auth/tokens.cpp).
//
// quern.scripts: immutable, content-addressed script versions; hash =
// sha256(language, settings, content), so the same content may appear at
// several paths, and again at one path after other versions (A, B, A): the
// key is therefore a surrogate id, not the hash (host/scripts/script_store.h).
// Archiving is per path (archived_at set on all its rows).
//
// quern.workers: the registry of live workers and agents (queue_admin.cpp).
constexpr const char* kMigration2 = R"SQL(
CREATE TABLE quern.tokens (
  id           text PRIMARY KEY,
  secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),  -- SHA-256 of the whole token string
  role         text NOT NULL CHECK (role IN ('admin', 'developer', 'operator', 'agent')),
  worker_group text,
  tags         text[] NOT NULL DEFAULT '{}',
  label        text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  revoked_at   timestamptz,
  last_used_at timestamptz
);

CREATE TABLE quern.scripts (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  path        text NOT NULL CHECK (path <> ''),
  hash        text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  language    text NOT NULL CHECK (language <> ''),
  content     text NOT NULL,
  settings    jsonb NOT NULL DEFAULT '{}',
  summary     text NOT NULL DEFAULT '',
  deployed_by text NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  archived_at timestamptz
);
CREATE INDEX scripts_path_created_idx ON quern.scripts (path, created_at DESC, id DESC);
CREATE INDEX scripts_hash_idx ON quern.scripts (hash);

CREATE TABLE quern.workers (
  id           text PRIMARY KEY,
  kind         text NOT NULL DEFAULT 'worker' CHECK (kind IN ('worker', 'agent')),
  worker_group text,
  tags         text[] NOT NULL DEFAULT '{}',
  slots        integer NOT NULL DEFAULT 0,
  version      text,
  hostname     text,
  pid          integer,
  started_at   timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  running      integer NOT NULL DEFAULT 0
);
CREATE INDEX workers_last_seen_idx ON quern.workers (last_seen_at);
)SQL";

constexpr Migration kMigrations[] = {
    {1, "queue, completed_jobs, job_logs, notify trigger", kMigration1},
    {2, "tokens, scripts, workers", kMigration2},
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

int apply_migrations(pqxx::connection& conn) {
  const int latest = kMigrations[std::size(kMigrations) - 1].version;
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
