-- Migration 11: wake-ups — who is woken for a job, and when.
--
-- Until now every NOTIFY of a tag woke every idle worker of that tag: with
-- 100 idle single-slot workers, one job cost 100 claims, 99 of them empty (a
-- thundering herd); a job that became due later (delay, scheduled_for, a
-- retry's backoff), or a key that got room back, waited for the next poll.
--
-- Targeted wake-ups. A claim that leaves slots free records its worker in
-- quern.claimers_waiting (tags, the worker's own NOTIFY channel); a claim
-- that fills its slots removes it. When due jobs appear (an INSERT, a job
-- handed back, re-queued or retried at once, a keyed job leaving room for
-- its key), quern.wake_claimers() takes up to one waiting claimer per job,
-- freshest first (SKIP LOCKED: concurrent pushes pick different claimers),
-- and NOTIFYs each one's channel; only when it finds fewer waiting claimers
-- than jobs does it also NOTIFY the tag's channel, which every worker of the
-- tag LISTENs on — the safety net for a claimer that was between its claim
-- and its commit. A row whose worker died is harmless: freshest-first
-- reaches it only when no live claimer waits, and the poll covers it.
-- UNLOGGED: after a crash the table starts empty and claimers re-register
-- with their next claim.
--
-- Due-time wake-ups. Jobs that become due later are announced on the tag's
-- channel with their delay in microseconds as payload ("+1500000"), and a
-- claim that leaves slots free returns, as a last row with a NULL id, how
-- long until the next job of its tags becomes due or a rate window of one of
-- its keys reopens. A worker sleeps until then instead of polling for it.
-- Delays rather than times: the database's clock and the worker's may differ.
--
-- The wake-ups are triggers on quern.queue, so every statement that moves a
-- job (push, release, lease recovery, retry, completion of a keyed job)
-- wakes claimers the same way; the row triggers' WHEN clauses are evaluated
-- without a function call, so claims and heartbeats do not pay for them.

CREATE UNLOGGED TABLE quern.claimers_waiting (
  worker_id text PRIMARY KEY,
  tags      text[] NOT NULL,
  channel   text NOT NULL,
  since     timestamptz NOT NULL DEFAULT now()
);

-- The next due time of a worker's tags: an ordered scan from now() (future
-- jobs are few; due ones are claimed).
CREATE INDEX queue_due_idx ON quern.queue (scheduled_for) WHERE NOT running;

-- Wakes up to p_n waiting claimers of p_tag; the tag's channel too when
-- fewer wait. Returns how many were woken by name.
CREATE FUNCTION quern.wake_claimers(p_tag text, p_n int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  woken int := 0;
  ch text;
BEGIN
  FOR ch IN DELETE FROM quern.claimers_waiting c
             WHERE c.worker_id IN (SELECT w.worker_id FROM quern.claimers_waiting w
                                    WHERE p_tag = ANY(w.tags)
                                    ORDER BY w.since DESC LIMIT p_n
                                    FOR UPDATE SKIP LOCKED)
            RETURNING c.channel
  LOOP
    PERFORM pg_notify(ch, '');
    woken := woken + 1;
  END LOOP;
  IF woken < p_n THEN
    PERFORM pg_notify(quern.channel_for_tag(p_tag), '');
  END IF;
  RETURN woken;
END
$$;

-- Announces that a job of p_tag becomes due at p_due (in the future).
CREATE FUNCTION quern.announce_due(p_tag text, p_due timestamptz) RETURNS void
LANGUAGE sql AS $$
  SELECT pg_notify(quern.channel_for_tag(p_tag),
                   '+' || greatest(0, (extract(epoch FROM p_due - now()) * 1000000)::bigint)::text)
$$;

-- A running job of key p_key ended or went back to the queue: its key has
-- room for one more. Wakes a claimer for the key's next due job, if any.
CREATE FUNCTION quern.wake_for_key(p_key text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  t text;
BEGIN
  SELECT w.tag INTO t FROM quern.queue w
   WHERE w.concurrency_key = p_key AND NOT w.running AND w.scheduled_for <= now()
   ORDER BY w.priority DESC, w.scheduled_for, w.id LIMIT 1;
  IF FOUND THEN
    PERFORM quern.wake_claimers(t, 1);
  END IF;
END
$$;

-- New jobs: per tag, one claimer per due job; the earliest future one announced.
CREATE OR REPLACE FUNCTION quern.notify_new_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT tag, count(*) FILTER (WHERE scheduled_for <= now()) AS due,
                  min(scheduled_for) FILTER (WHERE scheduled_for > now()) AS later
             FROM new_jobs GROUP BY tag
  LOOP
    IF t.due > 0 THEN
      PERFORM quern.wake_claimers(t.tag, t.due::int);
    END IF;
    IF t.later IS NOT NULL THEN
      PERFORM quern.announce_due(t.tag, t.later);
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;

-- A running job back in the queue (handed back, lease recovered, retried).
CREATE FUNCTION quern.on_job_requeued() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.scheduled_for <= now() THEN
    PERFORM quern.wake_claimers(NEW.tag, 1);
  ELSE
    PERFORM quern.announce_due(NEW.tag, NEW.scheduled_for);
  END IF;
  IF OLD.concurrency_key IS NOT NULL THEN
    PERFORM quern.wake_for_key(OLD.concurrency_key);
  END IF;
  RETURN NULL;
END
$$;

-- A running keyed job finished (completed, canceled, failed by recovery).
CREATE FUNCTION quern.on_keyed_job_done() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM quern.wake_for_key(OLD.concurrency_key);
  RETURN NULL;
END
$$;

CREATE TRIGGER queue_job_requeued
  AFTER UPDATE ON quern.queue
  FOR EACH ROW WHEN (OLD.running AND NOT NEW.running)
  EXECUTE FUNCTION quern.on_job_requeued();

CREATE TRIGGER queue_keyed_job_done
  AFTER DELETE ON quern.queue
  FOR EACH ROW WHEN (OLD.running AND OLD.concurrency_key IS NOT NULL)
  EXECUTE FUNCTION quern.on_keyed_job_done();

DROP FUNCTION quern.claim(text, text[], int, int, int[]);

-- The claim (docs/ARCHITECTURE.md §3), with the rules of migration 8, plus:
--
-- p_wake, the claimer's own NOTIFY channel (NULL: not woken by name), and a
-- last row with a NULL id when fewer than p_limit jobs were claimed, whose
-- due_us is the delay (us) until the next job of p_tags becomes due or a
-- rate window of a key with due jobs reopens (NULL: none known).
--
-- Faster: re-planning two statements on every call was ~85 % of a claim's
-- time (PostgreSQL's custom plans for LIMIT $n and id = ANY($ids) always
-- looked cheaper than the cached generic one), so plans are forced generic;
-- the claim statement is shaped so that its generic plan is an index scan
-- (`id = ANY(ARRAY(...))`, never a join with a CTE of ids, whose generic plan
-- scans the queue), and sequential scans are off: a generic plan is made
-- once per connection, and one made while the queue was small would scan it
-- for every claim after it grew (and while dead rows bloat it). The key loop runs only when keyed jobs wait, visits only
-- keys that have waiting jobs (a loose scan of queue_claim_keyed_idx), and
-- skips keys already at a limit in this snapshot (the loop re-checks under
-- the key's lock). Without keyed candidates, one statement picks, locks and
-- claims. Measured in docs/BENCHMARKS.md (issue 17).
CREATE FUNCTION quern.claim(p_worker text, p_tags text[], p_limit int, p_free_gpus int, p_device_mb int[],
                            p_wake text)
RETURNS TABLE (id bigint, attempt int, tag text, language text, payload text, priority smallint,
               timeout_s int, script_path text, created_us bigint, started_us bigint, gpus smallint,
               due_us bigint)
LANGUAGE plpgsql SET enable_bitmapscan = off SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
  ids bigint[] := '{}';
  keyed_waiting boolean;
  k record;
  lim record;
  running_now int;
  room int;
  n_claimed int;
  next_wake timestamptz;
BEGIN
  -- Ordered, so that the planner takes queue_claim_keyed_idx even without
  -- statistics (a plain EXISTS was planned as a scan of the whole queue).
  keyed_waiting := EXISTS (SELECT 1 FROM (SELECT w.concurrency_key FROM quern.queue w
                                           WHERE NOT w.running AND w.concurrency_key IS NOT NULL
                                           ORDER BY w.concurrency_key LIMIT 1) x);
  IF keyed_waiting THEN
    FOR k IN
      WITH RECURSIVE wk(key) AS (
        (SELECT w.concurrency_key FROM quern.queue w
          WHERE NOT w.running AND w.concurrency_key IS NOT NULL
          ORDER BY w.concurrency_key LIMIT 1)
        UNION ALL
        SELECT (SELECT w.concurrency_key FROM quern.queue w
                 WHERE NOT w.running AND w.concurrency_key IS NOT NULL AND w.concurrency_key > wk.key
                 ORDER BY w.concurrency_key LIMIT 1)
          FROM wk WHERE wk.key IS NOT NULL)
      SELECT l.key FROM wk JOIN quern.concurrency_limits l ON l.key = wk.key
       WHERE EXISTS (SELECT 1 FROM quern.queue w
                      WHERE w.concurrency_key = l.key AND NOT w.running AND w.tag = ANY(p_tags)
                        AND w.scheduled_for <= now())
         AND (l.max_running = 0 OR (SELECT count(*) FROM quern.queue r
                                     WHERE r.concurrency_key = l.key AND r.running) < l.max_running)
         AND (l.rate_max = 0 OR (SELECT count(*) FROM unnest(l.recent_starts) t
                                  WHERE t > now() - l.rate_window_ms * interval '1 millisecond') < l.rate_max)
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
  END IF;

  IF cardinality(ids) = 0 THEN
    -- No keyed candidate (so no rate to record): one statement.
    RETURN QUERY
    WITH claimed AS (
      UPDATE quern.queue q
         SET running = true, worker_id = p_worker, attempt = q.attempt + 1,
             started_at = now(), heartbeat_at = now()
       WHERE q.id = ANY(ARRAY(
               SELECT w.id FROM quern.queue w
                WHERE NOT w.running AND w.concurrency_key IS NULL AND w.tag = ANY(p_tags)
                  AND w.scheduled_for <= now()
                  AND (w.gpus = 0 OR quern.gpu_fits(w.gpus, w.gpu_memory_mb, p_free_gpus, p_device_mb))
                ORDER BY w.priority DESC, w.scheduled_for, w.id
                LIMIT p_limit
                FOR UPDATE SKIP LOCKED))
      RETURNING q.*
    )
    SELECT c.id, c.attempt, c.tag, c.language, c.payload::text, c.priority, c.timeout_s, c.script_path,
           (extract(epoch FROM c.created_at) * 1000000)::bigint,
           (extract(epoch FROM c.started_at) * 1000000)::bigint, c.gpus,
           (extract(epoch FROM c.scheduled_for) * 1000000)::bigint
      FROM claimed c
     ORDER BY c.priority DESC, c.scheduled_for, c.id;
  ELSE
    -- Keyed candidates: add the unkeyed ones, claim the best p_limit of both
    -- and record the starts of rate-limited keys.
    ids := ids || ARRAY(SELECT w.id FROM quern.queue w
                         WHERE NOT w.running AND w.concurrency_key IS NULL AND w.tag = ANY(p_tags)
                           AND w.scheduled_for <= now()
                           AND (w.gpus = 0 OR quern.gpu_fits(w.gpus, w.gpu_memory_mb, p_free_gpus, p_device_mb))
                         ORDER BY w.priority DESC, w.scheduled_for, w.id
                         LIMIT p_limit
                         FOR UPDATE SKIP LOCKED);
    RETURN QUERY
    WITH claimed AS (
      UPDATE quern.queue q
         SET running = true, worker_id = p_worker, attempt = q.attempt + 1,
             started_at = now(), heartbeat_at = now()
       WHERE q.id = ANY(ARRAY(SELECT w.id FROM quern.queue w WHERE w.id = ANY(ids)
                               ORDER BY w.priority DESC, w.scheduled_for, w.id LIMIT p_limit))
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
           (extract(epoch FROM c.started_at) * 1000000)::bigint, c.gpus,
           (extract(epoch FROM c.scheduled_for) * 1000000)::bigint
      FROM claimed c
     ORDER BY c.priority DESC, c.scheduled_for, c.id;
  END IF;
  GET DIAGNOSTICS n_claimed = ROW_COUNT;

  IF n_claimed >= p_limit THEN
    IF p_wake IS NOT NULL THEN
      DELETE FROM quern.claimers_waiting WHERE worker_id = p_worker;
    END IF;
    RETURN;
  END IF;

  -- Short: this claimer waits. Register it, and say when to look again.
  IF p_wake IS NOT NULL THEN
    INSERT INTO quern.claimers_waiting AS c (worker_id, tags, channel, since)
    VALUES (p_worker, p_tags, p_wake, now())
    ON CONFLICT (worker_id) DO UPDATE SET tags = excluded.tags, channel = excluded.channel, since = now();
  END IF;
  next_wake := (SELECT w.scheduled_for FROM quern.queue w
                 WHERE NOT w.running AND w.scheduled_for > now() AND w.tag = ANY(p_tags)
                 ORDER BY w.scheduled_for LIMIT 1);
  IF keyed_waiting THEN
    -- A key whose rate window is full reopens when its oldest start in the
    -- window leaves it (max_running keys are woken by their jobs' ends).
    next_wake := least(next_wake,
      (SELECT min(r.reopens)
         FROM quern.concurrency_limits l
         JOIN LATERAL (SELECT count(*) AS recent,
                              min(t) + l.rate_window_ms * interval '1 millisecond' AS reopens
                         FROM unnest(l.recent_starts) t
                        WHERE t > now() - l.rate_window_ms * interval '1 millisecond') r ON true
        WHERE l.rate_max > 0 AND r.recent >= l.rate_max
          AND EXISTS (SELECT 1 FROM quern.queue w
                       WHERE w.concurrency_key = l.key AND NOT w.running AND w.tag = ANY(p_tags)
                         AND w.scheduled_for <= now())));
  END IF;
  id := NULL; attempt := NULL; tag := NULL; language := NULL; payload := NULL; priority := NULL;
  timeout_s := NULL; script_path := NULL; created_us := NULL; started_us := NULL; gpus := NULL;
  due_us := CASE WHEN next_wake IS NOT NULL
                 THEN greatest(0, (extract(epoch FROM next_wake - now()) * 1000000)::bigint) END;
  RETURN NEXT;
END
$$;
