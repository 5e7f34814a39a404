-- Migration 9: what each worker's heartbeat says of its own health
-- (host/queue/worker_telemetry.h): resident memory, CPU time, slot occupancy
-- over 15 s / 5 min / 30 min, its heartbeat interval (so that a reader can
-- tell a late worker from a live one) and its plugins' health() answers.
-- One small JSON document per worker row, rewritten in place by each
-- heartbeat's UPDATE; NULL until the first heartbeat that carries it (and for
-- agents of older versions, which send none).
ALTER TABLE quern.workers ADD COLUMN telemetry jsonb;
