-- Migration 5: a finished job keeps whether its cancellation was requested.
--
-- A cancel of a running job sets quern.queue.cancel_requested and NOTIFYs
-- channel quern_cancel with the job's id, so the worker that holds it stops
-- it at once (the heartbeat stays the fallback). A job that finished before
-- the stop reached it is recorded with its own outcome and, now, with
-- cancel_requested = true, instead of the request silently disappearing.

ALTER TABLE quern.completed_jobs ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
