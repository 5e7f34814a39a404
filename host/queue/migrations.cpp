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
// so the table gets aggressive per-table autovacuum (docs/ARCHITECTURE.md §2: the
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
-- (queue_connection.cpp). Channel names are limited to 63 bytes: longer ones are
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

// Migration 3: concurrency and rate limits, retries, GPU requests.
//
// Concurrency limits (docs/LIMITS.md): a job may carry a concurrency_key; the
// key's row in quern.concurrency_limits says how many of its jobs may run at
// once (max_running, 0 = no cap) and how many may start per sliding window
// (rate_max per rate_window_ms; recent_starts keeps the newest rate_max start
// times, dropping those older than the window by 10 s: claimers' now() differ
// slightly, and one must not drop a start that another still counts). Enforcement is in quern.claim(): a
// claimer locks a key's row (SKIP LOCKED: a key being claimed by another worker is skipped, never waited
// for), then counts the key's running jobs in a NEW statement — plpgsql takes a fresh snapshot per statement
// in READ COMMITTED, so the count sees every claim committed by earlier holders of the lock. Running jobs are
// counted, not tracked in a counter, so a limit is released however a job
// ends (completion, cancel, lost lease) with nothing to decrement.
//
// Unkeyed and keyed waiting jobs have separate partial indexes, so a key at
// its limit costs the claim one index probe, not a scan of its jobs.
//
// Retries: retry (jsonb, NULL = none) is the policy {max_attempts,
// backoff_ms, backoff_max_ms, multiplier, jitter, on: [...]}; retries counts
// the attempts that ended in a retried outcome. Each such attempt is kept in
// quern.job_attempts (the final one is the completed_jobs row).
//
// GPU requests: gpus (whole devices, 0 = not a GPU job) and gpu_memory_mb
// (per device) let the claim skip GPU jobs the claimer cannot run.
//
// waiter: someone waits for this job's result (run_wait_result) under this
// token; the statement that finishes the job NOTIFYs channel quern_done with
// {"w": waiter, "id", and when it fits in a NOTIFY, "status", "result",
// "error"}, so the server neither polls nor reads the job back. NULL for
// every other job: no NOTIFY traffic.
constexpr const char* kMigration3 = R"SQL(
ALTER TABLE quern.queue
  ADD COLUMN concurrency_key text,
  ADD COLUMN retry jsonb,
  ADD COLUMN retries integer NOT NULL DEFAULT 0,
  ADD COLUMN last_error text,
  ADD COLUMN gpus smallint NOT NULL DEFAULT 0 CHECK (gpus >= 0),
  ADD COLUMN gpu_memory_mb integer NOT NULL DEFAULT 0 CHECK (gpu_memory_mb >= 0),
  ADD COLUMN waiter text;

ALTER TABLE quern.completed_jobs
  ADD COLUMN concurrency_key text,
  ADD COLUMN retries integer NOT NULL DEFAULT 0;

DROP INDEX quern.queue_claim_idx;
CREATE INDEX queue_claim_idx ON quern.queue (priority DESC, scheduled_for, id)
  WHERE NOT running AND concurrency_key IS NULL;
CREATE INDEX queue_claim_keyed_idx ON quern.queue (concurrency_key, priority DESC, scheduled_for, id)
  WHERE NOT running AND concurrency_key IS NOT NULL;
CREATE INDEX queue_running_key_idx ON quern.queue (concurrency_key)
  WHERE running AND concurrency_key IS NOT NULL;

CREATE TABLE quern.concurrency_limits (
  key            text PRIMARY KEY,
  max_running    integer NOT NULL DEFAULT 0 CHECK (max_running >= 0),
  rate_max       integer NOT NULL DEFAULT 0 CHECK (rate_max >= 0),
  rate_window_ms bigint NOT NULL DEFAULT 0 CHECK (rate_window_ms >= 0),
  recent_starts  timestamptz[] NOT NULL DEFAULT '{}',
  updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE quern.job_attempts (
  job_id     bigint NOT NULL,
  attempt    integer NOT NULL,
  status     text NOT NULL,
  error      text NOT NULL DEFAULT '',
  result     jsonb,
  worker_id  text,
  started_at timestamptz,
  ended_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  retry_at   timestamptz,
  PRIMARY KEY (job_id, attempt)
);

-- Whether a GPU request fits a claimer: free devices >= gpus and enough
-- devices (of all the claimer has) with gpu_memory_mb each.
CREATE FUNCTION quern.gpu_fits(gpus int, memory_mb int, free_gpus int, device_mb int[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT gpus = 0 OR (gpus <= free_gpus AND
                      (SELECT count(*) FROM unnest(device_mb) m WHERE m >= memory_mb) >= gpus)
$$;

-- Delay before retry number n+1 (n = retries so far): backoff_ms *
-- multiplier^n, capped at backoff_max_ms, minus up to `jitter` of itself.
CREATE FUNCTION quern.retry_delay(policy jsonb, n int) RETURNS interval
LANGUAGE sql VOLATILE AS $$
  SELECT (least((policy->>'backoff_max_ms')::float8,
                (policy->>'backoff_ms')::float8 * power((policy->>'multiplier')::float8, n))
          * (1 - (policy->>'jitter')::float8 * random())) * interval '1 millisecond'
$$;

-- Whether an attempt that ended with `outcome` (failure | timeout | lost) is retried.
CREATE FUNCTION quern.should_retry(policy jsonb, retries int, outcome text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT policy IS NOT NULL AND retries + 1 < (policy->>'max_attempts')::int AND (policy->'on') ? outcome
$$;

-- The claim (docs/ARCHITECTURE.md §3). One call = one transaction.
-- Unkeyed jobs: one indexed, ordered SKIP LOCKED scan. Keyed jobs: per key
-- with a due waiting job for these tags, lock its limits row (skip if
-- locked), count what runs (fresh snapshot), take up to the room left. The
-- best p_limit of both sets (priority desc, scheduled_for, id) are claimed.
-- Bitmap scans are off: every lookup here is an ordered LIMIT scan or a key
-- lookup, and before the first ANALYZE of a freshly filled queue the planner
-- would pick a bitmap scan plus a sort of every waiting job (4x slower).
CREATE FUNCTION quern.claim(p_worker text, p_tags text[], p_limit int, p_free_gpus int, p_device_mb int[])
RETURNS TABLE (id bigint, attempt int, tag text, language text, payload text, priority smallint,
               timeout_s int, script_path text, created_us bigint, started_us bigint, gpus smallint)
LANGUAGE plpgsql SET enable_bitmapscan = off AS $$
#variable_conflict use_column
DECLARE
  ids bigint[];
  k record;
  lim record;
  running_now int;
  room int;
BEGIN
  ids := ARRAY(SELECT w.id FROM quern.queue w
                WHERE NOT w.running AND w.concurrency_key IS NULL AND w.tag = ANY(p_tags)
                  AND w.scheduled_for <= now()
                  AND (w.gpus = 0 OR quern.gpu_fits(w.gpus, w.gpu_memory_mb, p_free_gpus, p_device_mb))
                ORDER BY w.priority DESC, w.scheduled_for, w.id
                LIMIT p_limit
                FOR UPDATE SKIP LOCKED);

  FOR k IN SELECT l.key FROM quern.concurrency_limits l
            WHERE EXISTS (SELECT 1 FROM quern.queue w
                           WHERE w.concurrency_key = l.key AND NOT w.running AND w.tag = ANY(p_tags)
                             AND w.scheduled_for <= now())
  LOOP
    PERFORM 1 FROM quern.concurrency_limits l WHERE l.key = k.key FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;  -- another claimer is taking this key's jobs
    SELECT l.max_running, l.rate_max, l.rate_window_ms,
           (SELECT count(*) FROM unnest(l.recent_starts) t
             WHERE t > now() - l.rate_window_ms * interval '1 millisecond')::int AS recent
      INTO lim FROM quern.concurrency_limits l WHERE l.key = k.key;
    room := p_limit;
    IF lim.max_running > 0 THEN
      SELECT count(*) INTO running_now FROM quern.queue w WHERE w.concurrency_key = k.key AND w.running;
      room := least(room, lim.max_running - running_now);
    END IF;
    IF lim.rate_max > 0 THEN
      room := least(room, lim.rate_max - lim.recent);
    END IF;
    CONTINUE WHEN room <= 0;
    ids := ids || ARRAY(SELECT w.id FROM quern.queue w
                         WHERE w.concurrency_key = k.key AND NOT w.running AND w.tag = ANY(p_tags)
                           AND w.scheduled_for <= now()
                           AND (w.gpus = 0 OR quern.gpu_fits(w.gpus, w.gpu_memory_mb, p_free_gpus, p_device_mb))
                         ORDER BY w.priority DESC, w.scheduled_for, w.id
                         LIMIT room
                         FOR UPDATE SKIP LOCKED);
  END LOOP;

  RETURN QUERY
  WITH chosen AS (
    SELECT w.id FROM quern.queue w WHERE w.id = ANY(ids)
     ORDER BY w.priority DESC, w.scheduled_for, w.id LIMIT p_limit
  ), claimed AS (
    UPDATE quern.queue q
       SET running = true, worker_id = p_worker, attempt = q.attempt + 1,
           started_at = now(), heartbeat_at = now()
      FROM chosen c WHERE q.id = c.id
    RETURNING q.*
  ), rated AS (
    UPDATE quern.concurrency_limits l
       SET recent_starts = ARRAY(SELECT t FROM unnest(l.recent_starts) t
                                  WHERE t > now() - l.rate_window_ms * interval '1 millisecond'
                                            - interval '10 seconds'
                                  ORDER BY t DESC LIMIT l.rate_max)
                           || array_fill(now(), ARRAY[n.started::int])
      FROM (SELECT c.concurrency_key, count(*) AS started FROM claimed c
             WHERE c.concurrency_key IS NOT NULL GROUP BY 1) n
     WHERE l.key = n.concurrency_key AND l.rate_max > 0
  )
  SELECT c.id, c.attempt, c.tag, c.language, c.payload::text, c.priority, c.timeout_s, c.script_path,
         (extract(epoch FROM c.created_at) * 1000000)::bigint,
         (extract(epoch FROM c.started_at) * 1000000)::bigint, c.gpus
    FROM claimed c
   ORDER BY c.priority DESC, c.scheduled_for, c.id;
END
$$;
)SQL";

// Migration 4: cron schedules (docs/SCHEDULES.md, host/schedule/). A
// scheduler fires a due row (NOT paused AND next_fire_at <= now()) by locking
// it FOR UPDATE SKIP LOCKED, pushing its job(s) and advancing next_fire_at in
// one transaction, so each tick fires once however many servers run. args is
// json, not jsonb: the key order of a bash job's arguments must survive.
// tag/priority NULL: what a run of the script gets.
constexpr const char* kMigration4 = R"SQL(
CREATE TABLE quern.schedules (
  name          text PRIMARY KEY,
  cron          text NOT NULL,
  timezone      text NOT NULL DEFAULT 'UTC',
  script_path   text NOT NULL,
  args          json NOT NULL DEFAULT '{}',
  tag           text CHECK (tag <> ''),
  priority      smallint CHECK (priority BETWEEN 1 AND 100),
  paused        boolean NOT NULL DEFAULT false,
  catch_up      text NOT NULL DEFAULT 'skip' CHECK (catch_up IN ('skip', 'latest', 'all')),
  next_fire_at  timestamptz NOT NULL,
  last_fired_at timestamptz,  -- the tick of the newest job it pushed
  last_job_id   bigint,
  last_error    text,         -- why the last due tick pushed no job (NULL = it did)
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due_idx ON quern.schedules (next_fire_at) WHERE NOT paused;
)SQL";

constexpr Migration kMigrations[] = {
    {1, "queue, completed_jobs, job_logs, notify trigger", kMigration1},
    {2, "tokens, scripts, workers", kMigration2},
    {3, "concurrency and rate limits, retries, gpu requests", kMigration3},
    {4, "schedules", kMigration4},
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
