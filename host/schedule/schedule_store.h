// Cron schedules stored in quern.schedules (migration 4; docs/SCHEDULES.md):
// what runs (a deployed script's latest version, with arguments), when (a
// cron expression in an IANA time zone), and the firing state the scheduler
// keeps (next_fire_at, last fired tick and job, last error).
//
// The store is the write side of the API: create-or-replace, pause, resume,
// delete. Every change NOTIFYs channel kSchedulesChannel at commit, so
// running schedulers re-plan their sleep at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/common/status.h"

namespace quern::pg {
class Session;
}

namespace quern::schedule {

inline constexpr const char* kSchedulesChannel = "quern_schedules";

// What to do with ticks missed while no scheduler ran (a tick is missed when
// it is older than the scheduler's late grace; later ones always fire).
enum class CatchUp {
  skip,    // drop them; the next fire is the next tick
  latest,  // fire once, for the newest missed tick
  all,     // fire each of them, at most the newest SchedulerOptions::max_catch_up
};
const char* to_string(CatchUp c);
std::optional<CatchUp> catch_up_from_string(std::string_view s);

struct Schedule {
  // Set by the user.
  std::string name;  // f/<folder>/<name> or u/<user>/<name>, like a script path
  std::string cron;  // cron.h
  std::string timezone = "UTC";
  std::string script_path;
  nlohmann::ordered_json args = nlohmann::ordered_json::object();  // key order kept
  std::string tag;                                                 // empty: what a run of the script gets
  int priority = 0;  // 0: what a run of the script gets, else 1..100
  bool paused = false;
  CatchUp catch_up = CatchUp::skip;

  // Kept by the store and the scheduler.
  std::chrono::system_clock::time_point next_fire_at;
  std::optional<std::chrono::system_clock::time_point> last_fired_at;  // tick of the newest job
  int64_t last_job_id = 0;                                             // 0 = none yet
  std::string last_error;  // why the last due tick pushed no job; empty when it did
  std::chrono::system_clock::time_point created_at, updated_at;
};

// Checks the user-set fields; each message starts with the field's name
// ("cron: cron field 2 (hour): 25 is out of range 0-23").
Status validate(const Schedule& s);

// Owns one database connection: NOT thread-safe (one per thread; the server
// borrows them from a pool). Database errors come back as Status values; a
// lost connection is re-opened by the next call.
class ScheduleStore {
 public:
  static StatusOr<std::unique_ptr<ScheduleStore>> connect(const std::string& database_url);
  // Over a session shared with other stores (the server's pool).
  static std::unique_ptr<ScheduleStore> over(std::shared_ptr<pg::Session> session);
  ~ScheduleStore();
  ScheduleStore(const ScheduleStore&) = delete;
  ScheduleStore& operator=(const ScheduleStore&) = delete;

  struct Upserted {
    Schedule schedule;
    bool created = false;  // false: an existing schedule was replaced
  };
  // Validates, then creates the schedule or replaces the one with that name
  // (its firing history — last fired tick and job — is kept; its last error
  // is cleared). next_fire_at becomes the first tick after the database's
  // now(): a replaced schedule does not fire ticks it missed.
  StatusOr<Upserted> upsert(const Schedule& s);
  StatusOr<std::optional<Schedule>> get(const std::string& name);
  StatusOr<std::vector<Schedule>> list();  // by name
  // Pausing stops firing; resuming sets next_fire_at to the first tick after
  // now() (ticks of the paused time are not caught up). nullopt: no such name.
  StatusOr<std::optional<Schedule>> set_paused(const std::string& name, bool paused);
  // false: no such name.
  StatusOr<bool> remove(const std::string& name);

 private:
  ScheduleStore();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quern::schedule
