// SQL on quern.schedules shared by ScheduleStore and Scheduler (internal to
// host/schedule). Timestamps cross the wire as microseconds since the epoch.
#pragma once

#include <chrono>

#include <pqxx/pqxx>

#include "host/common/status.h"
#include "host/pg/session.h"
#include "host/schedule/schedule_store.h"

namespace quern::schedule::sql {

// The columns schedule_from_row() reads, by name. The timestamps are named
// *_us, so that ORDER BY next_fire_at still names the table's column.
#define QUERN_SCHEDULE_COLS \
  "name, cron, timezone, script_path, args::text AS args, coalesce(tag, '') AS tag, "                            \
  "coalesce(priority, 0) AS priority, paused, catch_up, " QUERN_PG_US("next_fire_at") " AS next_fire_us, "      \
  QUERN_PG_US("last_fired_at") " AS last_fired_us, coalesce(last_job_id, 0) AS last_job_id, "                  \
  "coalesce(last_error, '') AS last_error, " QUERN_PG_US("created_at") " AS created_us, " QUERN_PG_US(          \
      "updated_at") " AS updated_us"

inline constexpr const char* kNow = "SELECT " QUERN_PG_US("now()") " AS now_us";
// $1 the channel (kSchedulesChannel).
inline constexpr const char* kNotify = "SELECT pg_notify($1, '')";

// $1..$9 the user-set fields (tag '' and priority 0 = NULL), $10 next_fire_at.
// The extra column `created`: whether the row is new (xmax = 0 on an insert).
inline constexpr const char* kUpsert = R"SQL(
INSERT INTO quern.schedules (name, cron, timezone, script_path, args, tag, priority, paused, catch_up, next_fire_at)
VALUES ($1, $2, $3, $4, $5::json, nullif($6, ''), nullif($7::int, 0)::smallint, $8, $9, )SQL" QUERN_PG_TS(
    "$10") R"SQL()
ON CONFLICT (name) DO UPDATE
   SET cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, script_path = EXCLUDED.script_path,
       args = EXCLUDED.args, tag = EXCLUDED.tag, priority = EXCLUDED.priority, paused = EXCLUDED.paused,
       catch_up = EXCLUDED.catch_up, next_fire_at = EXCLUDED.next_fire_at, last_error = NULL, updated_at = now()
RETURNING )SQL" QUERN_SCHEDULE_COLS R"SQL(, xmax = 0 AS created
)SQL";

inline constexpr const char* kGet = "SELECT " QUERN_SCHEDULE_COLS " FROM quern.schedules WHERE name = $1";
inline constexpr const char* kGetForUpdate =
    "SELECT " QUERN_SCHEDULE_COLS " FROM quern.schedules WHERE name = $1 FOR UPDATE";
inline constexpr const char* kList = "SELECT " QUERN_SCHEDULE_COLS " FROM quern.schedules ORDER BY name";

// $1 name, $2 paused, $3 next_fire_at (NULL = unchanged).
inline constexpr const char* kSetPaused = R"SQL(
UPDATE quern.schedules
   SET paused = $2, next_fire_at = coalesce()SQL" QUERN_PG_TS("$3") R"SQL(, next_fire_at), updated_at = now()
 WHERE name = $1
RETURNING )SQL" QUERN_SCHEDULE_COLS;

inline constexpr const char* kDelete = "DELETE FROM quern.schedules WHERE name = $1 RETURNING 1";

// The scheduler. $1 batch size. Due rows, locked (rows another scheduler is
// firing are skipped, not waited for), and the transaction's now() (now_us).
inline constexpr const char* kLockDue = "SELECT " QUERN_SCHEDULE_COLS ", " QUERN_PG_US("now()") " AS now_us" R"SQL(
  FROM quern.schedules
 WHERE NOT paused AND next_fire_at <= now()
 ORDER BY next_fire_at
 LIMIT $1
   FOR UPDATE SKIP LOCKED
)SQL";

// $1 name, $2 next_fire_at, $3 last fired tick (NULL = unchanged), $4 last
// job id (NULL = unchanged), $5 last error (NULL = none).
inline constexpr const char* kAdvance = R"SQL(
UPDATE quern.schedules
   SET next_fire_at = )SQL" QUERN_PG_TS("$2") R"SQL(,
       last_fired_at = coalesce()SQL" QUERN_PG_TS("$3") R"SQL(, last_fired_at),
       last_job_id = coalesce($4::bigint, last_job_id),
       last_error = $5
 WHERE name = $1
)SQL";

// Milliseconds until the earliest unpaused schedule is due (NULL: none).
inline constexpr const char* kUntilDue = R"SQL(
SELECT ceil(extract(epoch FROM min(next_fire_at) - clock_timestamp()) * 1000)::bigint AS until_due_ms
  FROM quern.schedules WHERE NOT paused
)SQL";

#undef QUERN_SCHEDULE_COLS

// Reads QUERN_SCHEDULE_COLS (by name) from `row`.
Schedule schedule_from_row(const pqxx::row& row);

// The first tick of s.cron in s.timezone strictly after t.
StatusOr<std::chrono::system_clock::time_point> next_tick(const Schedule& s,
                                                          std::chrono::system_clock::time_point t);

}  // namespace quern::schedule::sql
