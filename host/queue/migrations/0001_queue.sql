-- Migration 1: the three tables, the claim index, and the NOTIFY trigger.
--
-- quern.queue is the small hot table (waiting + running jobs only). Every
-- claim is an UPDATE that leaves a dead tuple at the head of the claim index,
-- so the table gets aggressive per-table autovacuum (docs/ARCHITECTURE.md §2: the
-- claim rate decays 4x within a minute with the defaults). fillfactor 90
-- leaves room on each page for HOT updates of heartbeat_at, which no index
-- covers.

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
