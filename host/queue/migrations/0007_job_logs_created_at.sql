-- Migration 7: an index for the retention's pruning of old logs
-- (host/retention, docs/OPERATIONS.md "Retention").
--
-- <retention logs="14d"> deletes the log chunks of jobs that finished more
-- than 14 days ago, keeping the jobs' rows. Finding them through
-- completed_jobs would mean walking every job finished before the cut-off on
-- every run, including the (many) whose logs went long ago. Log chunks are
-- written while their job runs, so a chunk older than the cut-off belongs to
-- a job that finished before it, or is still running (kept), or finished
-- after it (kept); this index lets each run read only the chunks older than
-- the cut-off that are still there. created_at only grows, so the index is
-- appended to at its right edge and costs little per insert.
--
-- Building it holds a SHARE lock on job_logs (log writes wait) for the time
-- it takes to index the table once; on a very large table, create
-- job_logs_created_at_idx CONCURRENTLY by hand before upgrading (IF NOT
-- EXISTS then makes this a no-op).

CREATE INDEX IF NOT EXISTS job_logs_created_at_idx ON quern.job_logs (created_at);
