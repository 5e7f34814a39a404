-- Migration 8: the claim also returns when each job became due
-- (scheduled_for, as microseconds since the epoch), so that a worker can
-- measure the queue wait (due -> start) it exports as
-- quern_job_queue_wait_seconds. The function is otherwise the one of
-- migration 3; a function's result columns cannot be altered in place, so it
-- is dropped and created again in this migration's transaction (claims wait
-- for it on the function's lock, none fails).
DROP FUNCTION quern.claim(text, text[], int, int, int[]);

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
               timeout_s int, script_path text, created_us bigint, started_us bigint, gpus smallint,
               due_us bigint)
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
         (extract(epoch FROM c.started_at) * 1000000)::bigint, c.gpus,
         (extract(epoch FROM c.scheduled_for) * 1000000)::bigint
    FROM claimed c
   ORDER BY c.priority DESC, c.scheduled_for, c.id;
END
$$;
