-- Migration 6: what a job used, and how each worker confines its jobs.
--
-- completed_jobs.resources: the kernel's count for the job's cgroup, written
-- by the worker with its completion: {"peak_memory_bytes": n, "cpu_ms": n,
-- "oom_kills": n} (each key only when known); NULL for jobs that ran no
-- process, ran where cgroups were not available, or never ran.
-- workers.isolation: the worker's sandbox and limits as it describes them
-- ("bwrap (network host), memory-max 256 MiB"), for GET /api/workers.

ALTER TABLE quern.completed_jobs ADD COLUMN resources jsonb;
ALTER TABLE quern.workers ADD COLUMN isolation text NOT NULL DEFAULT '';
