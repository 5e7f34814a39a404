// SQL text of the queue's prepared statements (one place to review them all).
// Every statement is a single round trip in an implicit transaction unless
// noted. Timestamps cross the wire as microseconds since the Unix epoch.
#pragma once

#include "host/pg/session.h"

// SQL text laid out by hand: clang-format would split the spliced macros.
// clang-format off
namespace quern::queue::sql {

using Statement = pg::Statement;


// RETURNING columns that NOTIFY quern_done (sent at commit) for a finished
// job whose submitter waits for it (waiter): {"w", "id"} and, from
// completions, the outcome too ("status", "result", "error") when the whole
// text fits in a NOTIFY payload (< 8000 bytes).
#define QUERN_NOTIFY_DONE(alias)                                                                      \
  "CASE WHEN " alias ".waiter IS NOT NULL THEN pg_notify('quern_done', json_build_object('w', " alias \
  ".waiter, 'id', " alias ".id)::text) IS NOT NULL END AS notified"
#define QUERN_NOTIFY_RESULT(alias, status, result, error)                                                   \
  "CASE WHEN " alias ".waiter IS NOT NULL THEN pg_notify('quern_done', (SELECT CASE WHEN octet_length(f.t) " \
  "< 7900 THEN f.t ELSE json_build_object('w', " alias ".waiter, 'id', " alias ".id)::text END FROM "       \
  "(SELECT json_build_object('w', " alias ".waiter, 'id', " alias ".id, 'status', " status ", 'result', "    \
  result ", 'error', " error ")::text AS t) f)) IS NOT NULL END AS notified"

// Channel of the NOTIFY a cancel of a running job sends (payload: its id),
// queue::kCancelChannel in C++.
#define QUERN_CANCEL_CHANNEL "quern_cancel"

// Upserts the limits of the concurrency keys in relation `src` (columns key,
// max_running, rate_max, rate_window_ms, n; the highest n of a key wins).
// A key's row is only written when its limits change: claimers hold these
// rows locked while they claim, and a push must not wait for them.
#define QUERN_UPSERT_LIMITS(src)                                                                           \
  "lim_src AS (SELECT DISTINCT ON (key) key, max_running, rate_max, rate_window_ms FROM " src              \
  " WHERE key IS NOT NULL ORDER BY key, n DESC), "                                                         \
  "lim_ins AS (INSERT INTO quern.concurrency_limits (key, max_running, rate_max, rate_window_ms) "         \
  "SELECT key, max_running, rate_max, rate_window_ms FROM lim_src ON CONFLICT (key) DO NOTHING), "         \
  "lim_upd AS (UPDATE quern.concurrency_limits l SET max_running = s.max_running, rate_max = s.rate_max, " \
  "rate_window_ms = s.rate_window_ms, updated_at = now() FROM lim_src s WHERE l.key = s.key AND "          \
  "(l.max_running, l.rate_max, l.rate_window_ms) IS DISTINCT FROM (s.max_running, s.rate_max, "            \
  "s.rate_window_ms)) "

// $1 tag, $2 language, $3 script_path, $4 payload (json text), $5 priority,
// $6 scheduled_for (epoch us, NULL = now), $7 timeout_s, $8 max_restarts (-1 = default),
// $9 concurrency key (NULL = none), $10 max_running, $11 rate_max, $12 rate_window_ms,
// $13 retry policy (jsonb text, NULL = none), $14 gpus, $15 gpu_memory_mb, $16 waiter (NULL = none).
inline constexpr Statement kPushOne{"quern_push_one", R"SQL(
WITH src AS (SELECT $9::text AS key, $10::int AS max_running, $11::int AS rate_max,
                    $12::bigint AS rate_window_ms, 1 AS n),
)SQL" QUERN_UPSERT_LIMITS("src") R"SQL(
INSERT INTO quern.queue (tag, language, script_path, payload, priority, scheduled_for, timeout_s, max_restarts,
                         concurrency_key, retry, gpus, gpu_memory_mb, waiter)
VALUES ($1, $2, $3, $4::json, $5::smallint,
        coalesce('epoch'::timestamptz + $6::bigint * interval '1 microsecond', now()),
        $7::int, nullif($8::int, -1), $9::text, $13::jsonb, $14::smallint, $15::int, $16::text)
RETURNING id
)SQL"};

// $1: json array of objects with the fields of kPushOne. One statement, so a
// batch is all-or-nothing and the trigger NOTIFYs once per distinct tag.
// Identity values are drawn in array order; the caller sorts the returned ids.
inline constexpr Statement kPushBatch{"quern_push_batch", R"SQL(
WITH j AS (
  SELECT * FROM ROWS FROM (json_to_recordset($1::json) AS (
           tag text, language text, script_path text, payload json, priority smallint, scheduled_us bigint,
           timeout_s int, max_restarts int, key text, max_running int, rate_max int, rate_window_ms bigint,
           retry jsonb, gpus smallint, gpu_memory_mb int, waiter text)) WITH ORDINALITY
         AS j(tag, language, script_path, payload, priority, scheduled_us, timeout_s, max_restarts, key,
              max_running, rate_max, rate_window_ms, retry, gpus, gpu_memory_mb, waiter, n)
),
)SQL" QUERN_UPSERT_LIMITS("j") R"SQL(
INSERT INTO quern.queue (tag, language, script_path, payload, priority, scheduled_for, timeout_s, max_restarts,
                         concurrency_key, retry, gpus, gpu_memory_mb, waiter)
SELECT j.tag, j.language, j.script_path, j.payload, j.priority,
       coalesce('epoch'::timestamptz + j.scheduled_us * interval '1 microsecond', now()),
       j.timeout_s, nullif(j.max_restarts, -1), j.key, j.retry, coalesce(j.gpus, 0), coalesce(j.gpu_memory_mb, 0),
       j.waiter
  FROM j ORDER BY j.n
RETURNING id
)SQL"};

// $1 worker_id, $2 tags (text[]), $3 limit, $4 free GPUs, $5 device memory
// (int[]), $6 the claimer's wake channel (NULL = none). quern.claim()
// (migration 3, due_us since migration 8, wake-ups since 11): the claim in one
// call, with concurrency keys and GPU fit (docs/ARCHITECTURE.md §3). A short
// claim ends with a row whose id is NULL: due_us is then the delay until the
// next job may become claimable (NULL: none known).
// The claim commits without waiting for its WAL flush (synchronous_commit
// off for this statement's own transaction only: set_config(..., true)): a
// claim lost in a database crash only means its jobs are claimed again, and
// the completion that follows is durable and flushes it anyway. The server's
// pooled connections, which also push and complete, stay synchronous.
inline constexpr Statement kClaim{"quern_claim", R"SQL(
SELECT id, attempt, tag, language, payload, priority, timeout_s, script_path, created_us, started_us, gpus,
       due_us
  FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed,
       quern.claim($1, $2::text[], $3::int, $4::int, $5::int[], $6::text)
)SQL"};

// $1 worker_id, $2 ids (bigint[]), $3 attempts (int[]). Rows not returned are lost leases.
inline constexpr Statement kHeartbeat{"quern_heartbeat", R"SQL(
UPDATE quern.queue q
   SET heartbeat_at = now()
  FROM unnest($2::bigint[], $3::int[]) AS l(id, attempt)
 WHERE q.id = l.id AND q.attempt = l.attempt AND q.worker_id = $1 AND q.running
RETURNING q.id, q.cancel_requested
)SQL"};

// CTEs lc, ls, li that append the log chunks in json parameter `chunks`
// ([{job_id, attempt, chunk}]) to quern.job_logs; `held` is an extra
// condition on lc (a job_id, attempt) that a chunk must meet, or "".
#define QUERN_APPEND_LOGS(chunks, held)                                                                    \
  "lc AS (SELECT job_id, attempt, chunk, n FROM ROWS FROM (json_to_recordset(" chunks "::json) AS "        \
  "(job_id bigint, attempt int, chunk text)) WITH ORDINALITY AS lc(job_id, attempt, chunk, n) "            \
  "WHERE chunk <> ''" held "), "                                                                           \
  "ls AS (SELECT lc.job_id, lc.chunk, coalesce((SELECT l.start_offset + octet_length(l.chunk) "            \
  "FROM quern.job_logs l WHERE l.job_id = lc.job_id ORDER BY l.start_offset DESC LIMIT 1), 0) "            \
  "+ coalesce(sum(octet_length(lc.chunk)) OVER (PARTITION BY lc.job_id ORDER BY lc.n "                     \
  "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS start_offset FROM lc), "                       \
  "li AS (INSERT INTO quern.job_logs (job_id, start_offset, chunk) "                                       \
  "SELECT job_id, start_offset, chunk FROM ls RETURNING 1)"

// Columns of completed_jobs filled from a deleted queue row (alias d).
#define QUERN_COMPLETED_COLUMNS                                                     \
  "id, tag, language, script_path, payload, priority, scheduled_for, created_at, "  \
  "started_at, completed_at, status, result, error, worker_id, attempt, restarts, " \
  "timeout_s, max_restarts, concurrency_key, retries, cancel_requested"

// $1 worker_id, $2 json array of {id, attempt, status, result, error, resources},
// $3 json array of log chunks ({job_id, attempt, chunk}, as kAppendLogs) of
// jobs this worker holds, stored first: a job's last output and its outcome
// in one round trip, committed together (chunks of leases not held are
// dropped, as their completions are).
// One statement (one transaction): a lease still held is either retried
// (its retry policy covers the outcome and attempts remain: back in the
// queue after a backoff, the attempt kept in job_attempts) or moved to
// completed_jobs — exactly one record. Returns the ids accepted either way.
inline constexpr Statement kComplete{"quern_complete", R"SQL(
WITH c AS (
  SELECT * FROM json_to_recordset($2::json) AS c(id bigint, attempt int, status text, result jsonb, error text,
                                                    resources jsonb)
), held AS (
  SELECT q.id, c.attempt, c.status, c.result, c.error,
         NOT q.cancel_requested AND quern.should_retry(q.retry, q.retries, c.status) AS retry
    FROM quern.queue q JOIN c ON q.id = c.id AND q.attempt = c.attempt
   WHERE q.worker_id = $1 AND q.running
), r AS (
  UPDATE quern.queue q
     SET running = false, worker_id = NULL, heartbeat_at = NULL, retries = q.retries + 1,
         last_error = h.error, scheduled_for = now() + quern.retry_delay(q.retry, q.retries)
    FROM held h
   WHERE q.id = h.id AND h.retry AND q.attempt = h.attempt AND q.worker_id = $1 AND q.running
  RETURNING q.id, q.attempt, q.started_at, q.scheduled_for AS retry_at
), ra AS (
  INSERT INTO quern.job_attempts (job_id, attempt, status, error, result, worker_id, started_at, retry_at)
  SELECT r.id, r.attempt, h.status, coalesce(h.error, ''), h.result, $1, r.started_at, r.retry_at
    FROM r JOIN held h ON h.id = r.id
  ON CONFLICT DO NOTHING
), d AS (
  DELETE FROM quern.queue q USING c
   WHERE q.id = c.id AND q.attempt = c.attempt AND q.worker_id = $1 AND q.running
     AND q.id NOT IN (SELECT id FROM held WHERE retry)
  RETURNING q.*, c.status AS c_status, c.result AS c_result, c.error AS c_error, c.resources AS c_resources,
            )SQL" QUERN_NOTIFY_RESULT("q", "c.status", "c.result", "c.error") R"SQL(
), ins AS (
  INSERT INTO quern.completed_jobs ()SQL" QUERN_COMPLETED_COLUMNS R"SQL(, resources)
  SELECT id, tag, language, script_path, payload, priority, scheduled_for, created_at,
         started_at, clock_timestamp(), c_status, c_result,
         -- a cancel the host delivered: the canceler's reason, not the plugin's words
         CASE WHEN c_status = 'canceled' AND cancel_reason IS NOT NULL THEN cancel_reason
              ELSE coalesce(c_error, '') END,
         worker_id, attempt, restarts, timeout_s, max_restarts, concurrency_key, retries, cancel_requested,
         c_resources
    FROM d
  ON CONFLICT (id) DO NOTHING
  RETURNING id
), )SQL" QUERN_APPEND_LOGS("$3", " AND EXISTS (SELECT 1 FROM quern.queue h WHERE h.id = lc.job_id "
                                  "AND h.attempt = lc.attempt AND h.worker_id = $1 AND h.running)") R"SQL(
SELECT id, false AS retried FROM ins UNION ALL SELECT id, true FROM r
)SQL"};

// $1 json array of {job_id, attempt, chunk}. Each chunk's start offset = the
// end of the job's stored log + the bytes of earlier chunks of the same job
// in this batch.
inline constexpr Statement kAppendLogs{"quern_append_logs",
    "WITH " QUERN_APPEND_LOGS("$1", "") " SELECT count(*) FROM li"};

// $1 job_id, $2 byte offset: the chunk containing the offset and all after it.
inline constexpr Statement kReadLogs{"quern_read_logs", R"SQL(
SELECT start_offset, chunk FROM quern.job_logs
 WHERE job_id = $1
   AND start_offset >= coalesce((SELECT max(start_offset) FROM quern.job_logs
                                  WHERE job_id = $1 AND start_offset <= $2), 0)
 ORDER BY start_offset
)SQL"};

// $1 worker_id, $2 ids (bigint[]), $3 attempts (int[]). A worker shutting
// down hands its leases back: no restart is counted, the attempt is kept (the
// next claim makes it attempt + 1), and claimers are woken for them at once
// (the queue's requeue trigger, migration 11). A job whose cancel was requested is
// completed as canceled instead.
inline constexpr Statement kRelease{"quern_release", R"SQL(
WITH l AS (
  SELECT * FROM unnest($2::bigint[], $3::int[]) AS l(id, attempt)
), back AS (
  UPDATE quern.queue q
     SET running = false, worker_id = NULL, heartbeat_at = NULL
    FROM l
   WHERE q.id = l.id AND q.attempt = l.attempt AND q.worker_id = $1 AND q.running AND NOT q.cancel_requested
  RETURNING q.tag, q.scheduled_for
), gone AS (
  DELETE FROM quern.queue q USING l
   WHERE q.id = l.id AND q.attempt = l.attempt AND q.worker_id = $1 AND q.running AND q.cancel_requested
  RETURNING q.*, )SQL" QUERN_NOTIFY_DONE("q") R"SQL(
), ins AS (
  INSERT INTO quern.completed_jobs ()SQL" QUERN_COMPLETED_COLUMNS R"SQL()
  SELECT id, tag, language, script_path, payload, priority, scheduled_for, created_at,
         started_at, clock_timestamp(), 'canceled', NULL, coalesce(cancel_reason, 'canceled'),
         worker_id, attempt, restarts, timeout_s, max_restarts, concurrency_key, retries, cancel_requested
    FROM gone
  RETURNING id
)
SELECT (SELECT count(*) FROM back), (SELECT count(*) FROM ins)
)SQL"};

// $1 job_id, $2 reason. Queued: moved to completed_jobs as canceled; running:
// flagged. `finished` reads the snapshot before this statement.
inline constexpr Statement kCancel{"quern_cancel", R"SQL(
WITH d AS (
  DELETE FROM quern.queue q WHERE id = $1 AND NOT running RETURNING q.*, )SQL" QUERN_NOTIFY_DONE("q") R"SQL(
), ins AS (
  INSERT INTO quern.completed_jobs ()SQL" QUERN_COMPLETED_COLUMNS R"SQL()
  SELECT id, tag, language, script_path, payload, priority, scheduled_for, created_at,
         started_at, clock_timestamp(), 'canceled', NULL, $2, worker_id, attempt, restarts,
         timeout_s, max_restarts, concurrency_key, retries, true
    FROM d
  RETURNING id
), u AS (
  UPDATE quern.queue SET cancel_requested = true, cancel_reason = $2
   WHERE id = $1 AND running
  RETURNING id, pg_notify(')SQL" QUERN_CANCEL_CHANNEL R"SQL(', id::text) IS NOT NULL AS notified
)
SELECT (SELECT count(*) FROM ins) AS canceled,
       (SELECT count(*) FROM u) AS requested,
       EXISTS (SELECT 1 FROM quern.completed_jobs WHERE id = $1) AS finished
)SQL"};

// $1 job_id: where the job is now (state, in queue or completed, never both).
inline constexpr Statement kCancelProbe{"quern_cancel_probe", R"SQL(
SELECT EXISTS (SELECT 1 FROM quern.completed_jobs WHERE id = $1) AS finished,
       EXISTS (SELECT 1 FROM quern.queue WHERE id = $1) AS in_queue
)SQL"};

inline constexpr Statement kTryRecoveryLock{"quern_try_recovery_lock",
                                            "SELECT pg_try_advisory_xact_lock($1::bigint) AS locked"};

// $1 lease timeout (ms), $2 default max_restarts. Runs inside the transaction
// holding the recovery lock. A lost job goes back to the queue (attempt kept,
// so a stale worker can no longer complete them) or, when it has no attempts
// left or a cancel was requested, to completed_jobs. Jobs whose retry policy
// covers "lost" are retried by that policy (attempts, backoff, recorded in
// job_attempts); others by max_restarts, at once. Claimers are woken for
// requeued jobs by the queue's requeue trigger (migration 11). Waiting
// claimers not heard of for 10 minutes (their worker died) are forgotten.
inline constexpr Statement kRecover{"quern_recover", R"SQL(
WITH expired AS (
  SELECT id, restarts + 1 AS n, cancel_requested,
         CASE WHEN retry IS NOT NULL AND (retry->'on') ? 'lost'
              THEN quern.should_retry(retry, retries, 'lost')
              ELSE restarts + 1 <= coalesce(max_restarts, $2::int) END AS again,
         retry IS NOT NULL AND (retry->'on') ? 'lost' AS by_policy
    FROM quern.queue
   WHERE running AND heartbeat_at < now() - $1::bigint * interval '1 millisecond'
   FOR UPDATE SKIP LOCKED
), requeued AS (
  UPDATE quern.queue q
     SET running = false, worker_id = NULL, heartbeat_at = NULL, restarts = e.n,
         retries = q.retries + CASE WHEN e.by_policy THEN 1 ELSE 0 END,
         last_error = 'lost worker ' || coalesce(q.worker_id, ''),
         scheduled_for = CASE WHEN e.by_policy THEN now() + quern.retry_delay(q.retry, q.retries)
                              ELSE q.scheduled_for END
    FROM expired e
   WHERE q.id = e.id AND NOT e.cancel_requested AND e.again
  RETURNING q.id, q.attempt, q.tag, q.scheduled_for, q.started_at, e.by_policy
), lost AS (
  INSERT INTO quern.job_attempts (job_id, attempt, status, error, worker_id, started_at, retry_at)
  SELECT q.id, q.attempt, 'lost', 'lost worker ' || coalesce(q.worker_id, '') || ': lease expired',
         q.worker_id, q.started_at,
         CASE WHEN NOT e.cancel_requested AND e.again THEN now() END
    FROM quern.queue q JOIN expired e ON e.id = q.id
  ON CONFLICT DO NOTHING
), gone AS (
  DELETE FROM quern.queue q USING expired e
   WHERE q.id = e.id AND (e.cancel_requested OR NOT e.again)
  RETURNING q.*, e.n AS n, )SQL" QUERN_NOTIFY_DONE("q") R"SQL(
), ins AS (
  INSERT INTO quern.completed_jobs ()SQL" QUERN_COMPLETED_COLUMNS R"SQL()
  SELECT id, tag, language, script_path, payload, priority, scheduled_for, created_at,
         started_at, clock_timestamp(),
         CASE WHEN cancel_requested THEN 'canceled' ELSE 'failure' END, NULL,
         CASE WHEN cancel_requested THEN coalesce(cancel_reason, 'canceled') || ' (worker lost)'
              ELSE 'lost worker: lease expired ' || n || ' times in a row (max-restarts '
                   || coalesce(max_restarts, $2::int) || '); the job may be crashing or hanging '
                   || 'its workers; last worker ' || coalesce(worker_id, '?') END,
         worker_id, attempt, n, timeout_s, max_restarts, concurrency_key, retries, cancel_requested
    FROM gone
  RETURNING status
), stale AS (
  DELETE FROM quern.claimers_waiting WHERE since < now() - interval '10 minutes'
)
SELECT (SELECT count(*) FROM requeued) AS requeued,
       (SELECT count(*) FROM ins WHERE status = 'failure') AS failed,
       (SELECT count(*) FROM ins WHERE status = 'canceled') AS canceled
)SQL"};

// $1 job_id. A single statement sees one snapshot, so the job is in exactly
// one of the two tables. The columns job_record_from_row() reads (named by
// the first SELECT).
inline constexpr Statement kGetJob{"quern_get_job", R"SQL(
SELECT id, CASE WHEN running THEN 'running' ELSE 'queued' END AS state, tag, language, script_path,
       payload::text AS payload, priority, attempt, coalesce(worker_id, '') AS worker_id, NULL::text AS result,
       '' AS error, )SQL" QUERN_PG_US("created_at") " AS created_us, " QUERN_PG_US("started_at") R"SQL( AS started_us,
       NULL::bigint AS completed_us, cancel_requested, coalesce(concurrency_key, '') AS concurrency_key,
       NULL::text AS resources
  FROM quern.queue WHERE id = $1
UNION ALL
SELECT id, status, tag, language, script_path,
       payload::text, priority, attempt, coalesce(worker_id, ''), result::text, error,
       )SQL" QUERN_PG_US("created_at") ", " QUERN_PG_US("started_at") ", " QUERN_PG_US("completed_at") R"SQL(, cancel_requested,
       coalesce(concurrency_key, ''), resources::text
  FROM quern.completed_jobs WHERE id = $1
)SQL"};

// $1 job_id: its earlier attempts, oldest first.
inline constexpr Statement kGetAttempts{"quern_get_attempts", R"SQL(
SELECT attempt, status, error, coalesce(worker_id, '') AS worker_id,
       )SQL" QUERN_PG_US("started_at") " AS started_us, " QUERN_PG_US("ended_at") " AS ended_us, " QUERN_PG_US(
    "retry_at") R"SQL( AS retry_us
  FROM quern.job_attempts WHERE job_id = $1 ORDER BY attempt
)SQL"};

// $1 tags (text[]; empty = all).
inline constexpr Statement kCountWaiting{"quern_count_waiting", R"SQL(
SELECT count(*) AS waiting FROM quern.queue
 WHERE NOT running AND (cardinality($1::text[]) = 0 OR tag = ANY($1::text[]))
)SQL"};

inline constexpr Statement kCountRunning{"quern_count_running",
                                         "SELECT count(*) AS running FROM quern.queue WHERE running"};

// --- Listings, statistics and the worker registry (queue_admin.cpp) ---

// Both tables, same columns as kGetJob; filters are parameters ($1 state,
// $2 tag, $3 script_path, $4/$5 created after/before in epoch us, $6 before_id, $7 limit).
// Each branch takes its newest `limit` matches by its primary key; run with
// the values (list_jobs), the filters that are off fold away, and a state
// only one table can hold skips the other.
inline constexpr const char* kListJobs = R"SQL(
SELECT * FROM (
  (SELECT id, CASE WHEN running THEN 'running' ELSE 'queued' END AS state, tag, language, script_path,
         payload::text AS payload, priority, attempt, coalesce(worker_id, '') AS worker_id, NULL::text AS result,
         '' AS error, )SQL" QUERN_PG_US("created_at") " AS created_us, " QUERN_PG_US("started_at") R"SQL( AS started_us,
         NULL::bigint AS completed_us, cancel_requested, coalesce(concurrency_key, '') AS concurrency_key,
       NULL::text AS resources
    FROM quern.queue
   WHERE ($2 = '' OR tag = $2) AND ($3 = '' OR script_path = $3)
     AND ($4::bigint IS NULL OR created_at >= 'epoch'::timestamptz + $4::bigint * interval '1 microsecond')
     AND ($5::bigint IS NULL OR created_at < 'epoch'::timestamptz + $5::bigint * interval '1 microsecond')
     AND ($6::bigint = 0 OR id < $6::bigint)
     AND ($1 = '' OR $1 IN ('queued', 'running'))
     AND ($1 = '' OR CASE WHEN running THEN 'running' ELSE 'queued' END = $1)
   ORDER BY id DESC LIMIT $7)
  UNION ALL
  (SELECT id, status, tag, language, script_path,
         payload::text, priority, attempt, coalesce(worker_id, ''), result::text, error,
         )SQL" QUERN_PG_US("created_at") ", " QUERN_PG_US("started_at") ", " QUERN_PG_US("completed_at") R"SQL(, cancel_requested,
         coalesce(concurrency_key, ''), resources::text
    FROM quern.completed_jobs
   WHERE ($2 = '' OR tag = $2) AND ($3 = '' OR script_path = $3)
     AND ($4::bigint IS NULL OR created_at >= 'epoch'::timestamptz + $4::bigint * interval '1 microsecond')
     AND ($5::bigint IS NULL OR created_at < 'epoch'::timestamptz + $5::bigint * interval '1 microsecond')
     AND ($6::bigint = 0 OR id < $6::bigint)
     AND ($1 = '' OR $1 NOT IN ('queued', 'running'))
     AND ($1 = '' OR status = $1)
   ORDER BY id DESC LIMIT $7)
) j
ORDER BY id DESC
LIMIT $7
)SQL";

// $1 live_within (ms). One scan of the queue, grouped by (tag, priority);
// queue_stats() sums the rows of a tag. A tag served by a live worker but
// with no jobs comes as one row with a NULL priority.
inline constexpr Statement kQueueStats{"quern_queue_stats", R"SQL(
WITH q AS (
  SELECT tag, priority,
         count(*) FILTER (WHERE NOT running AND scheduled_for <= now()) AS waiting,
         count(*) FILTER (WHERE NOT running AND scheduled_for > now()) AS scheduled,
         count(*) FILTER (WHERE running) AS running,
         coalesce(extract(epoch FROM now() - min(scheduled_for) FILTER (WHERE NOT running AND scheduled_for <= now())), 0)
           AS oldest
    FROM quern.queue GROUP BY tag, priority
), live AS (
  SELECT DISTINCT unnest(tags) AS tag FROM quern.workers
   WHERE last_seen_at > now() - $1::bigint * interval '1 millisecond'
)
SELECT coalesce(q.tag, live.tag) AS tag, q.priority, coalesce(q.waiting, 0) AS waiting,
       coalesce(q.scheduled, 0) AS scheduled, coalesce(q.running, 0) AS running,
       coalesce(q.oldest, 0)::float8 AS oldest, live.tag IS NOT NULL AS served
  FROM q FULL JOIN live ON live.tag = q.tag
 ORDER BY 1, 2 DESC
)SQL"};

// For /metrics: one scan of the queue grouped by tag. "blocked": due waiting
// jobs whose concurrency key is at its limit now (running at max_running, or
// rate_max starts within the window): more workers would not start them.
inline constexpr Statement kQueueMetrics{"quern_queue_metrics", R"SQL(
SELECT tag,
       count(*) FILTER (WHERE NOT running) AS waiting,
       count(*) FILTER (WHERE NOT running AND scheduled_for <= now()) AS due,
       count(*) FILTER (WHERE NOT running AND scheduled_for <= now()
                          AND concurrency_key IN (SELECT quern.keys_at_limit())) AS blocked,
       count(*) FILTER (WHERE running) AS running,
       coalesce(extract(epoch FROM now() - min(scheduled_for) FILTER (WHERE NOT running AND scheduled_for <= now())),
                0)::float8 AS oldest_due
  FROM quern.queue GROUP BY tag ORDER BY tag
)SQL"};

// For /metrics: live workers (seen within $1 ms) per group and kind.
inline constexpr Statement kWorkerMetrics{"quern_worker_metrics", R"SQL(
SELECT coalesce(worker_group, '') AS worker_group, kind, count(*) AS live, sum(slots) AS slots,
       sum(least(running, slots)) AS busy, max(extract(epoch FROM now() - last_seen_at))::float8 AS heartbeat_age
  FROM quern.workers
 WHERE last_seen_at > now() - $1::bigint * interval '1 millisecond'
 GROUP BY 1, 2 ORDER BY 1, 2
)SQL"};

inline constexpr Statement kLimitStats{"quern_limit_stats", R"SQL(
SELECT l.key, l.max_running, l.rate_max, l.rate_window_ms,
       (SELECT count(*) FROM quern.queue q WHERE q.concurrency_key = l.key AND q.running) AS running,
       (SELECT count(*) FROM quern.queue q WHERE q.concurrency_key = l.key AND NOT q.running
                                            AND q.scheduled_for <= now()) AS waiting,
       (SELECT count(*) FROM unnest(l.recent_starts) t WHERE t > now() - l.rate_window_ms * interval '1 millisecond')
         AS started_in_window
  FROM quern.concurrency_limits l ORDER BY l.key
)SQL"};

// $1 id, $2 kind, $3 worker_group, $4 tags (text[]), $5 slots, $6 version,
// $7 hostname, $8 pid, $9 isolation. Registers a worker or agent, or refreshes its row.
inline constexpr Statement kRegisterWorker{"quern_register_worker", R"SQL(
INSERT INTO quern.workers (id, kind, worker_group, tags, slots, version, hostname, pid, isolation, started_at,
                           last_seen_at, running)
VALUES ($1, $2, $3, $4::text[], $5, $6, $7, $8, $9, now(), now(), 0)
ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, worker_group = EXCLUDED.worker_group,
  tags = EXCLUDED.tags, slots = EXCLUDED.slots, version = EXCLUDED.version, hostname = EXCLUDED.hostname,
  pid = EXCLUDED.pid, isolation = EXCLUDED.isolation, last_seen_at = now()
)SQL"};

// $1 id, $2 running jobs, $3 telemetry (jsonb text; NULL keeps the last).
inline constexpr Statement kTouchWorker{"quern_touch_worker", R"SQL(
UPDATE quern.workers SET last_seen_at = now(), running = $2, telemetry = coalesce($3::jsonb, telemetry) WHERE id = $1
)SQL"};

// $1 id.
// A worker leaving is no longer a waiting claimer either.
inline constexpr Statement kUnregisterWorker{"quern_unregister_worker", R"SQL(
WITH w AS (DELETE FROM quern.claimers_waiting WHERE worker_id = $1)
DELETE FROM quern.workers WHERE id = $1
)SQL"};

// $1 worker id. A claimer that stops claiming (its worker stops, and may
// finish running jobs for a while) must not be picked for wake-ups.
inline constexpr Statement kStopWaiting{"quern_stop_waiting", R"SQL(
DELETE FROM quern.claimers_waiting WHERE worker_id = $1
)SQL"};

// Every registered worker with the ids of the jobs it runs. ORDER BY names
// the table's columns (w.worker_group: NULL last), not the output's.
inline constexpr Statement kListWorkers{"quern_list_workers", R"SQL(
SELECT id, kind, coalesce(worker_group, '') AS worker_group, coalesce(array_to_json(tags)::text, '[]') AS tags,
       slots, coalesce(version, '') AS version, coalesce(hostname, '') AS hostname, coalesce(pid, 0) AS pid,
       isolation, running, telemetry::text AS telemetry,
       (extract(epoch FROM now() - last_seen_at) * 1000)::bigint AS heartbeat_age_ms, )SQL" QUERN_PG_US("started_at") " AS started_us, " QUERN_PG_US("last_seen_at") R"SQL( AS last_seen_us,
       (SELECT coalesce(json_agg(q.id ORDER BY q.id), '[]')::text FROM quern.queue q
         WHERE q.running AND q.worker_id = w.id) AS current_jobs
  FROM quern.workers w ORDER BY w.worker_group, w.id
)SQL"};

// $1 unseen_for (ms): removes workers not seen for that long.
inline constexpr Statement kPruneWorkers{"quern_prune_workers", R"SQL(
DELETE FROM quern.workers WHERE last_seen_at < now() - $1::bigint * interval '1 millisecond'
)SQL"};

// $1 tag, $2 live_within (ms): whether a worker seen within live_within serves the tag.
inline constexpr Statement kTagIsServed{"quern_tag_is_served", R"SQL(
SELECT EXISTS (SELECT 1 FROM quern.workers WHERE $1 = ANY(tags)
                  AND last_seen_at > now() - $2::bigint * interval '1 millisecond') AS served
)SQL"};

// Every statement above: registered on the session by Queue::Impl.
inline constexpr Statement kAll[] = {
    // The hot path, logs, cancel, recovery and lookups.
    kPushOne, kPushBatch, kClaim, kHeartbeat, kComplete, kRelease, kAppendLogs, kReadLogs, kCancel,
    kCancelProbe, kTryRecoveryLock, kRecover, kGetJob, kGetAttempts, kCountWaiting, kCountRunning,
    // Listings, statistics and the worker registry.
    kQueueStats, kQueueMetrics, kWorkerMetrics, kLimitStats, kRegisterWorker, kTouchWorker, kUnregisterWorker, kStopWaiting, kListWorkers,
    kPruneWorkers, kTagIsServed};

#undef QUERN_COMPLETED_COLUMNS
#undef QUERN_APPEND_LOGS
#undef QUERN_UPSERT_LIMITS
#undef QUERN_NOTIFY_DONE
#undef QUERN_CANCEL_CHANNEL
#undef QUERN_NOTIFY_RESULT

}  // namespace quern::queue::sql
// clang-format on
