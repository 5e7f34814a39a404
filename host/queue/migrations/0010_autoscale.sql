-- Migration 10: the autoscaler (host/autoscale, docs/AUTOSCALING.md).
--
-- quern.autoscale_groups: one row per autoscaled worker group, written by the
-- controller that holds the group's advisory lock: the count it decided
-- (what KEDA's metrics-api scaler and the queue's "scaling up from 0" read,
-- on any server), why, and when the count last changed (requested_at).
-- decided_at is the last tick that evaluated it: a stale one means no
-- controller is running.
CREATE TABLE quern.autoscale_groups (
  worker_group text PRIMARY KEY,
  integration  text NOT NULL,
  tags         text[] NOT NULL DEFAULT '{}',  -- the tags the group serves (config), for the queue's view
  min_workers  integer NOT NULL CHECK (min_workers >= 0),
  max_workers  integer NOT NULL CHECK (max_workers >= min_workers),
  desired      integer NOT NULL CHECK (desired >= 0),
  from_count   integer NOT NULL DEFAULT 0 CHECK (from_count >= 0),
  rule         text NOT NULL DEFAULT '',
  reason       text NOT NULL DEFAULT '',
  requested_at timestamptz,
  decided_at   timestamptz NOT NULL DEFAULT now(),
  controller   text NOT NULL DEFAULT ''
);

-- Every decision that changed a group's count, and what acting on it did:
-- outcome ok, failed (error says why: a script's exit status, a worker that
-- would not start) or dry-run (integration="dry-run": nothing was changed).
CREATE TABLE quern.autoscale_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at           timestamptz NOT NULL DEFAULT clock_timestamp(),
  worker_group text NOT NULL,
  from_count   integer NOT NULL CHECK (from_count >= 0),
  to_count     integer NOT NULL CHECK (to_count >= 0),
  rule         text NOT NULL,
  reason       text NOT NULL,
  integration  text NOT NULL,
  outcome      text NOT NULL CHECK (outcome IN ('ok', 'failed', 'dry-run')),
  error        text NOT NULL DEFAULT ''
);
CREATE INDEX autoscale_events_group_idx ON quern.autoscale_events (worker_group, id DESC);

-- The concurrency keys at their limit now: max_running jobs running, or
-- rate_max starts within the rate window. More workers would not start the
-- due jobs of these keys: /metrics counts them as blocked, and the
-- autoscaler does not scale out for them.
CREATE FUNCTION quern.keys_at_limit() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
  SELECT l.key FROM quern.concurrency_limits l
   WHERE (l.max_running > 0 AND (SELECT count(*) FROM quern.queue r
                                  WHERE r.concurrency_key = l.key AND r.running) >= l.max_running)
      OR (l.rate_max > 0 AND (SELECT count(*) FROM unnest(l.recent_starts) t
                               WHERE t > now() - l.rate_window_ms * interval '1 millisecond') >= l.rate_max)
$$;
