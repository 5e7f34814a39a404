-- Migration 3: concurrency and rate limits, retries, GPU requests.
--
-- Concurrency limits (docs/LIMITS.md): a job may carry a concurrency_key; the
-- key's row in quern.concurrency_limits says how many of its jobs may run at
-- once (max_running, 0 = no cap) and how many may start per sliding window
-- (rate_max per rate_window_ms; recent_starts keeps the newest rate_max start
-- times, dropping those older than the window by 10 s: claimers' now() differ
-- slightly, and one must not drop a start that another still counts). Enforcement is in quern.claim(): a
-- claimer locks a key's row (SKIP LOCKED: a key being claimed by another worker is skipped, never waited
-- for), then counts the key's running jobs in a NEW statement — plpgsql takes a fresh snapshot per statement
-- in READ COMMITTED, so the count sees every claim committed by earlier holders of the lock. Running jobs are
-- counted, not tracked in a counter, so a limit is released however a job
-- ends (completion, cancel, lost lease) with nothing to decrement.
--
-- Unkeyed and keyed waiting jobs have separate partial indexes, so a key at
-- its limit costs the claim one index probe, not a scan of its jobs.
--
-- Retries: retry (jsonb, NULL = none) is the policy {max_attempts,
-- backoff_ms, backoff_max_ms, multiplier, jitter, on: [...]}; retries counts
-- the attempts that ended in a retried outcome. Each such attempt is kept in
-- quern.job_attempts (the final one is the completed_jobs row).
--
-- GPU requests: gpus (whole devices, 0 = not a GPU job) and gpu_memory_mb
-- (per device) let the claim skip GPU jobs the claimer cannot run.
--
-- waiter: someone waits for this job's result (run_wait_result) under this
-- token; the statement that finishes the job NOTIFYs channel quern_done with
-- {"w": waiter, "id", and when it fits in a NOTIFY, "status", "result",
-- "error"}, so the server neither polls nor reads the job back. NULL for
-- every other job: no NOTIFY traffic.

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
