// SQL text of the queue's prepared statements (one place to review them all).
// Every statement is a single round trip in an implicit transaction unless
// noted. Timestamps cross the wire as microseconds since the Unix epoch.
#pragma once

namespace quern::queue::sql {

struct Statement {
  const char* name;
  const char* text;
};

#define QUERN_US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"

// $1 tag, $2 language, $3 script_path, $4 payload (json text), $5 priority,
// $6 scheduled_for (epoch us, NULL = now), $7 timeout_s, $8 max_restarts (-1 = default).
inline constexpr Statement kPushOne{"quern_push_one", R"SQL(
INSERT INTO quern.queue (tag, language, script_path, payload, priority, scheduled_for, timeout_s, max_restarts)
VALUES ($1, $2, $3, $4::json, $5::smallint,
        coalesce('epoch'::timestamptz + $6::bigint * interval '1 microsecond', now()),
        $7::int, nullif($8::int, -1))
RETURNING id
)SQL"};

// $1: json array of objects with the fields of kPushOne. One statement, so a
// batch is all-or-nothing and the trigger NOTIFYs once per distinct tag.
// Identity values are drawn in array order; the caller sorts the returned ids.
inline constexpr Statement kPushBatch{"quern_push_batch", R"SQL(
INSERT INTO quern.queue (tag, language, script_path, payload, priority, scheduled_for, timeout_s, max_restarts)
SELECT j.tag, j.language, j.script_path, j.payload, j.priority,
       coalesce('epoch'::timestamptz + j.scheduled_us * interval '1 microsecond', now()),
       j.timeout_s, nullif(j.max_restarts, -1)
  FROM json_to_recordset($1::json) AS j(tag text, language text, script_path text, payload json,
                                         priority smallint, scheduled_us bigint, timeout_s int,
                                         max_restarts int)
RETURNING id
)SQL"};

// $1 worker_id, $2 tags (text[]), $3 limit. The one-statement claim of
// ARCHITECTURE.md §2, backed by queue_claim_idx.
inline constexpr Statement kClaim{"quern_claim", R"SQL(
WITH claimed AS (
  UPDATE quern.queue q
     SET running = true, worker_id = $1, attempt = q.attempt + 1,
         started_at = now(), heartbeat_at = now()
   WHERE q.id = ANY(ARRAY(SELECT w.id FROM quern.queue w
                   WHERE NOT w.running AND w.tag = ANY($2::text[]) AND w.scheduled_for <= now()
                   ORDER BY w.priority DESC, w.scheduled_for, w.id
                   LIMIT $3
                   FOR UPDATE SKIP LOCKED))
  RETURNING q.id, q.attempt, q.tag, q.language, q.payload, q.priority, q.timeout_s, q.script_path,
            q.scheduled_for, q.created_at, q.started_at)
SELECT id, attempt, tag, language, payload::text, priority, timeout_s, script_path,
       )SQL" QUERN_US("created_at") ", " QUERN_US("started_at") R"SQL(
  FROM claimed
 ORDER BY priority DESC, scheduled_for, id
)SQL"};

// $1 worker_id, $2 ids (bigint[]), $3 attempts (int[]). Rows not returned are lost leases.
inline constexpr Statement kHeartbeat{"quern_heartbeat", R"SQL(
UPDATE quern.queue q
   SET heartbeat_at = now()
  FROM unnest($2::bigint[], $3::int[]) AS l(id, attempt)
 WHERE q.id = l.id AND q.attempt = l.attempt AND q.worker_id = $1 AND q.running
RETURNING q.id, q.cancel_requested
)SQL"};

// Columns of completed_jobs filled from a deleted queue row (alias d).
#define QUERN_COMPLETED_COLUMNS                                                     \
  "id, tag, language, script_path, payload, priority, scheduled_for, created_at, "  \
  "started_at, completed_at, status, result, error, worker_id, attempt, restarts, " \
  "timeout_s, max_restarts"

// $1 worker_id, $2 json array of {id, attempt, status, result, error}.
// Delete + insert in one statement (one transaction): exactly one record.
inline constexpr Statement kComplete{"quern_complete", R"SQL(
WITH c AS (
  SELECT * FROM json_to_recordset($2::json) AS c(id bigint, attempt int, status text, result jsonb, error text)
), d AS (
  DELETE FROM quern.queue q USING c
   WHERE q.id = c.id AND q.attempt = c.attempt AND q.worker_id = $1 AND q.running
  RETURNING q.*, c.status AS c_status, c.result AS c_result, c.error AS c_error
)
INSERT INTO quern.completed_jobs ()SQL" QUERN_COMPLETED_COLUMNS R"SQL()
SELECT id, tag, language, script_path, payload, priority, scheduled_for, created_at,
       started_at, clock_timestamp(), c_status, c_result, coalesce(c_error, ''), worker_id, attempt,
       restarts, timeout_s, max_restarts
  FROM d
ON CONFLICT (id) DO NOTHING
RETURNING id
)SQL"};

// $1 json array of {job_id, chunk}. Each chunk's start offset = the end of the
// job's stored log + the bytes of earlier chunks of the same job in this batch.
inline constexpr Statement kAppendLogs{"quern_append_logs", R"SQL(
WITH c AS (
  SELECT job_id, chunk, n
    FROM ROWS FROM (json_to_recordset($1::json) AS (job_id bigint, chunk text)) WITH ORDINALITY AS c(job_id, chunk, n)
   WHERE chunk <> ''
), s AS (
  SELECT c.job_id, c.chunk,
         coalesce((SELECT l.start_offset + octet_length(l.chunk) FROM quern.job_logs l
                    WHERE l.job_id = c.job_id ORDER BY l.start_offset DESC LIMIT 1), 0)
         + coalesce(sum(octet_length(c.chunk)) OVER (PARTITION BY c.job_id ORDER BY c.n
                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS start_offset
    FROM c
)
INSERT INTO quern.job_logs (job_id, start_offset, chunk)
SELECT job_id, start_offset, chunk FROM s
)SQL"};

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
// next claim makes it attempt + 1), and the tags are NOTIFYed so that another
// worker picks the jobs up at once. A job whose cancel was requested is
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
  RETURNING q.*
), ins AS (
  INSERT INTO quern.completed_jobs ()SQL" QUERN_COMPLETED_COLUMNS R"SQL()
  SELECT id, tag, language, script_path, payload, priority, scheduled_for, created_at,
         started_at, clock_timestamp(), 'canceled', NULL, coalesce(cancel_reason, 'canceled'),
         worker_id, attempt, restarts, timeout_s, max_restarts
    FROM gone
  RETURNING id
), woken AS (
  SELECT pg_notify(quern.channel_for_tag(t.tag), '')
    FROM (SELECT DISTINCT tag FROM back WHERE scheduled_for <= now()) t
)
SELECT (SELECT count(*) FROM back), (SELECT count(*) FROM ins), (SELECT count(*) FROM woken)
)SQL"};

// $1 job_id, $2 reason. Queued: moved to completed_jobs as canceled; running:
// flagged. `finished` reads the snapshot before this statement.
inline constexpr Statement kCancel{"quern_cancel", R"SQL(
WITH d AS (
  DELETE FROM quern.queue WHERE id = $1 AND NOT running RETURNING *
), ins AS (
  INSERT INTO quern.completed_jobs ()SQL" QUERN_COMPLETED_COLUMNS R"SQL()
  SELECT id, tag, language, script_path, payload, priority, scheduled_for, created_at,
         started_at, clock_timestamp(), 'canceled', NULL, $2, worker_id, attempt, restarts,
         timeout_s, max_restarts
    FROM d
  RETURNING id
), u AS (
  UPDATE quern.queue SET cancel_requested = true, cancel_reason = $2
   WHERE id = $1 AND running
  RETURNING id
)
SELECT (SELECT count(*) FROM ins) AS canceled,
       (SELECT count(*) FROM u) AS requested,
       EXISTS (SELECT 1 FROM quern.completed_jobs WHERE id = $1) AS finished
)SQL"};

// $1 job_id: where the job is now (state, in queue or completed, never both).
inline constexpr Statement kCancelProbe{"quern_cancel_probe", R"SQL(
SELECT EXISTS (SELECT 1 FROM quern.completed_jobs WHERE id = $1),
       EXISTS (SELECT 1 FROM quern.queue WHERE id = $1)
)SQL"};

inline constexpr Statement kTryRecoveryLock{"quern_try_recovery_lock",
                                            "SELECT pg_try_advisory_xact_lock($1::bigint)"};

// $1 lease timeout (ms), $2 default max_restarts. Runs inside the transaction
// holding the recovery lock. Lost jobs go back to the queue (attempt kept, so a
// stale worker can no longer complete them) or, past max_restarts or when a
// cancel was requested, to completed_jobs. Requeued tags are NOTIFYed here
// because the INSERT trigger does not fire on UPDATE.
inline constexpr Statement kRecover{"quern_recover", R"SQL(
WITH expired AS (
  SELECT id, restarts + 1 AS n, coalesce(max_restarts, $2::int) AS lim, cancel_requested
    FROM quern.queue
   WHERE running AND heartbeat_at < now() - $1::bigint * interval '1 millisecond'
   FOR UPDATE SKIP LOCKED
), requeued AS (
  UPDATE quern.queue q
     SET running = false, worker_id = NULL, heartbeat_at = NULL, restarts = e.n
    FROM expired e
   WHERE q.id = e.id AND NOT e.cancel_requested AND e.n <= e.lim
  RETURNING q.id, q.tag, q.scheduled_for
), gone AS (
  DELETE FROM quern.queue q USING expired e
   WHERE q.id = e.id AND (e.cancel_requested OR e.n > e.lim)
  RETURNING q.*, e.n AS n
), ins AS (
  INSERT INTO quern.completed_jobs ()SQL" QUERN_COMPLETED_COLUMNS R"SQL()
  SELECT id, tag, language, script_path, payload, priority, scheduled_for, created_at,
         started_at, clock_timestamp(),
         CASE WHEN cancel_requested THEN 'canceled' ELSE 'failure' END, NULL,
         CASE WHEN cancel_requested THEN coalesce(cancel_reason, 'canceled') || ' (worker lost)'
              ELSE 'lost worker: lease expired ' || n || ' times' END,
         worker_id, attempt, n, timeout_s, max_restarts
    FROM gone
  RETURNING status
), woken AS (
  SELECT pg_notify(quern.channel_for_tag(t.tag), '')
    FROM (SELECT DISTINCT tag FROM requeued WHERE scheduled_for <= now()) t
)
SELECT (SELECT count(*) FROM requeued),
       (SELECT count(*) FROM ins WHERE status = 'failure'),
       (SELECT count(*) FROM ins WHERE status = 'canceled'),
       (SELECT count(*) FROM woken)
)SQL"};

// $1 job_id. A single statement sees one snapshot, so the job is in exactly
// one of the two tables.
inline constexpr Statement kGetJob{"quern_get_job", R"SQL(
SELECT id, CASE WHEN running THEN 'running' ELSE 'queued' END, tag, language, script_path,
       payload::text, priority, attempt, coalesce(worker_id, ''), NULL::text, '',
       )SQL" QUERN_US("created_at") ", " QUERN_US("started_at") R"SQL(, NULL::bigint, cancel_requested
  FROM quern.queue WHERE id = $1
UNION ALL
SELECT id, status, tag, language, script_path,
       payload::text, priority, attempt, coalesce(worker_id, ''), result::text, error,
       )SQL" QUERN_US("created_at") ", " QUERN_US("started_at") ", " QUERN_US("completed_at") R"SQL(, false
  FROM quern.completed_jobs WHERE id = $1
)SQL"};

// $1 tags (text[]; empty = all).
inline constexpr Statement kCountWaiting{"quern_count_waiting", R"SQL(
SELECT count(*) FROM quern.queue
 WHERE NOT running AND (cardinality($1::text[]) = 0 OR tag = ANY($1::text[]))
)SQL"};

inline constexpr Statement kCountRunning{"quern_count_running",
                                         "SELECT count(*) FROM quern.queue WHERE running"};

inline constexpr Statement kAll[] = {kPushOne,         kPushBatch,  kClaim,    kHeartbeat,    kComplete,
                                     kRelease,         kAppendLogs, kReadLogs, kCancel,       kCancelProbe,
                                     kTryRecoveryLock, kRecover,    kGetJob,   kCountWaiting, kCountRunning};

#undef QUERN_COMPLETED_COLUMNS
#undef QUERN_US

}  // namespace quern::queue::sql
