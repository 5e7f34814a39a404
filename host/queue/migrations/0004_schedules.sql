-- Migration 4: cron schedules (docs/SCHEDULES.md, host/schedule/). A
-- scheduler fires a due row (NOT paused AND next_fire_at <= now()) by locking
-- it FOR UPDATE SKIP LOCKED, pushing its job(s) and advancing next_fire_at in
-- one transaction, so each tick fires once however many servers run. args is
-- json, not jsonb: the key order of a bash job's arguments must survive.
-- tag/priority NULL: what a run of the script gets.

CREATE TABLE quern.schedules (
  name          text PRIMARY KEY,
  cron          text NOT NULL,
  timezone      text NOT NULL DEFAULT 'UTC',
  script_path   text NOT NULL,
  args          json NOT NULL DEFAULT '{}',
  tag           text CHECK (tag <> ''),
  priority      smallint CHECK (priority BETWEEN 1 AND 100),
  paused        boolean NOT NULL DEFAULT false,
  catch_up      text NOT NULL DEFAULT 'skip' CHECK (catch_up IN ('skip', 'latest', 'all')),
  next_fire_at  timestamptz NOT NULL,
  last_fired_at timestamptz,  -- the tick of the newest job it pushed
  last_job_id   bigint,
  last_error    text,         -- why the last due tick pushed no job (NULL = it did)
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due_idx ON quern.schedules (next_fire_at) WHERE NOT paused;
