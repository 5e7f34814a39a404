-- Migration 2: what `quern server` needs besides the queue.
--
-- quern.tokens: API tokens. Only the SHA-256 of the whole token string is
-- stored (the plaintext is shown once at creation and never stored or
-- logged); the id is also the first part of the token, so authentication is a
-- primary-key lookup followed by a constant-time hash comparison in C++
-- (host/auth/tokens.cpp).
--
-- quern.scripts: immutable, content-addressed script versions; hash =
-- sha256(language, settings, content), so the same content may appear at
-- several paths, and again at one path after other versions (A, B, A): the
-- key is therefore a surrogate id, not the hash (host/scripts/script_store.h).
-- Archiving is per path (archived_at set on all its rows).
--
-- quern.workers: the registry of live workers and agents (queue_admin.cpp).

CREATE TABLE quern.tokens (
  id           text PRIMARY KEY,
  secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),  -- SHA-256 of the whole token string
  role         text NOT NULL CHECK (role IN ('admin', 'developer', 'operator', 'agent')),
  worker_group text,
  tags         text[] NOT NULL DEFAULT '{}',
  label        text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  revoked_at   timestamptz,
  last_used_at timestamptz
);

CREATE TABLE quern.scripts (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  path        text NOT NULL CHECK (path <> ''),
  hash        text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  language    text NOT NULL CHECK (language <> ''),
  content     text NOT NULL,
  settings    jsonb NOT NULL DEFAULT '{}',
  summary     text NOT NULL DEFAULT '',
  deployed_by text NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  archived_at timestamptz
);
CREATE INDEX scripts_path_created_idx ON quern.scripts (path, created_at DESC, id DESC);
CREATE INDEX scripts_hash_idx ON quern.scripts (hash);

CREATE TABLE quern.workers (
  id           text PRIMARY KEY,
  kind         text NOT NULL DEFAULT 'worker' CHECK (kind IN ('worker', 'agent')),
  worker_group text,
  tags         text[] NOT NULL DEFAULT '{}',
  slots        integer NOT NULL DEFAULT 0,
  version      text,
  hostname     text,
  pid          integer,
  started_at   timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  running      integer NOT NULL DEFAULT 0
);
CREATE INDEX workers_last_seen_idx ON quern.workers (last_seen_at);
