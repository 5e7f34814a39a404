// ScheduleStore and schedule validation (see schedule_store.h).
#include "host/schedule/schedule_store.h"

#include <algorithm>

#include "host/common/validation.h"
#include "host/pg/session.h"
#include "host/schedule/cron.h"
#include "host/schedule/schedule_sql.h"
#include "host/scripts/script_store.h"

namespace quern::schedule {
namespace {

using Clock = std::chrono::system_clock;

constexpr size_t kMaxCron = 200;

// Names follow the script path rules; the message names the field.
Status validate_name(const std::string& name) {
  Status s = scripts::validate_path(name);
  if (s) return s;
  std::string message = s.message();
  if (message.rfind("script path", 0) == 0) message.replace(0, 11, "name");
  return Status::invalid(message);
}

}  // namespace

const char* to_string(CatchUp c) {
  switch (c) {
    case CatchUp::skip:
      return "skip";
    case CatchUp::latest:
      return "latest";
    case CatchUp::all:
      return "all";
  }
  return "skip";
}

std::optional<CatchUp> catch_up_from_string(std::string_view s) {
  for (CatchUp c : {CatchUp::skip, CatchUp::latest, CatchUp::all})
    if (s == to_string(c)) return c;
  return std::nullopt;
}

Status validate(const Schedule& s) {
  if (Status st = validate_name(s.name); !st) return st;
  if (s.cron.size() > kMaxCron) return Status::invalid("cron is longer than 200 characters");
  auto cron = CronExpr::parse(s.cron);
  if (!cron) return cron.status();
  auto zone = find_time_zone(s.timezone);
  if (!zone) return zone.status().with_context("timezone");
  if (auto next = cron->next_after(Clock::now(), **zone); !next) return next.status();
  if (Status st = scripts::validate_path(s.script_path); !st) return st.with_context("script_path");
  if (!s.args.is_object()) return Status::invalid("args must be a JSON object");
  if (!s.tag.empty()) {
    if (Status st = validation::check_tag(s.tag, "tag"); !st) return st;
  }
  if (s.priority != 0 && (s.priority < 1 || s.priority > 100))
    return Status::invalid("priority must be from 1 to 100 (or 0 for the script's), got " +
                           std::to_string(s.priority));
  return Status::ok();
}

namespace sql {

Schedule schedule_from_row(const pqxx::row& row) {
  Schedule s;
  s.name = row["name"].as<std::string>();
  s.cron = row["cron"].as<std::string>();
  s.timezone = row["timezone"].as<std::string>();
  s.script_path = row["script_path"].as<std::string>();
  s.args = nlohmann::ordered_json::parse(row["args"].c_str());
  s.tag = row["tag"].as<std::string>();
  s.priority = row["priority"].as<int>();
  s.paused = row["paused"].as<bool>();
  s.catch_up = catch_up_from_string(row["catch_up"].c_str()).value_or(CatchUp::skip);
  s.next_fire_at = pg::from_epoch_us(row["next_fire_us"].as<int64_t>());
  if (const pqxx::field f = row["last_fired_us"]; !f.is_null())
    s.last_fired_at = pg::from_epoch_us(f.as<int64_t>());
  s.last_job_id = row["last_job_id"].as<int64_t>();
  s.last_error = row["last_error"].as<std::string>();
  s.created_at = pg::from_epoch_us(row["created_us"].as<int64_t>());
  s.updated_at = pg::from_epoch_us(row["updated_us"].as<int64_t>());
  return s;
}

StatusOr<Clock::time_point> next_tick(const Schedule& s, Clock::time_point t) {
  auto cron = CronExpr::parse(s.cron);
  if (!cron) return cron.status();
  auto zone = find_time_zone(s.timezone);
  if (!zone) return zone.status().with_context("timezone");
  return cron->next_after(t, **zone);
}

}  // namespace sql

struct ScheduleStore::Impl {
  explicit Impl(std::shared_ptr<pg::Session> session) : db(std::move(session)) {
    static const pg::Statement kStatements[] = {{"schedules_now", sql::kNow},
                                                {"schedules_notify", sql::kNotify},
                                                {"schedules_upsert", sql::kUpsert},
                                                {"schedules_get", sql::kGet},
                                                {"schedules_get_for_update", sql::kGetForUpdate},
                                                {"schedules_list", sql::kList},
                                                {"schedules_set_paused", sql::kSetPaused},
                                                {"schedules_delete", sql::kDelete}};
    db->add_statements(kStatements);
  }

  // The first tick after the transaction's now(). Throws on a bad cron or
  // zone (callers validated; a failure here is an internal error).
  Clock::time_point next_from_now(pqxx::transaction_base& tx, const Schedule& s) {
    const auto now = pg::from_epoch_us(tx.exec_prepared1("schedules_now")["now_us"].as<int64_t>());
    auto next = sql::next_tick(s, now);
    if (!next) throw std::runtime_error(next.message());
    return *next;
  }

  std::shared_ptr<pg::Session> db;
};

ScheduleStore::ScheduleStore() = default;
ScheduleStore::~ScheduleStore() = default;

StatusOr<std::unique_ptr<ScheduleStore>> ScheduleStore::connect(const std::string& database_url) {
  auto session = std::make_shared<pg::Session>(database_url);
  if (Status s = session->open("connect to the schedule store"); !s) return s;
  return over(std::move(session));
}

std::unique_ptr<ScheduleStore> ScheduleStore::over(std::shared_ptr<pg::Session> session) {
  std::unique_ptr<ScheduleStore> store(new ScheduleStore());
  store->impl_ = std::make_unique<Impl>(std::move(session));
  return store;
}

StatusOr<ScheduleStore::Upserted> ScheduleStore::upsert(const Schedule& s) {
  if (Status st = validate(s); !st) return st;
  return impl_->db->run("save schedule", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    const Clock::time_point next = impl_->next_from_now(tx, s);
    auto row = tx.exec_prepared1("schedules_upsert", s.name, s.cron, s.timezone, s.script_path, s.args.dump(),
                                 s.tag, s.priority, s.paused, to_string(s.catch_up), pg::to_epoch_us(next));
    tx.exec_prepared("schedules_notify", kSchedulesChannel);
    Upserted out{sql::schedule_from_row(row), row["created"].as<bool>()};
    tx.commit();
    return out;
  });
}

StatusOr<std::optional<Schedule>> ScheduleStore::get(const std::string& name) {
  return impl_->db->run("get schedule", [&](pqxx::connection& c) -> std::optional<Schedule> {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared("schedules_get", name);
    if (r.empty()) return std::nullopt;
    return sql::schedule_from_row(r[0]);
  });
}

StatusOr<std::vector<Schedule>> ScheduleStore::list() {
  return impl_->db->run("list schedules", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    std::vector<Schedule> out;
    for (const auto& row : tx.exec_prepared("schedules_list")) out.push_back(sql::schedule_from_row(row));
    return out;
  });
}

StatusOr<std::optional<Schedule>> ScheduleStore::set_paused(const std::string& name, bool paused) {
  return impl_->db->run(
      paused ? "pause schedule" : "resume schedule", [&](pqxx::connection& c) -> std::optional<Schedule> {
        pqxx::work tx(c);
        auto r = tx.exec_prepared("schedules_get_for_update", name);
        if (r.empty()) return std::nullopt;
        Schedule s = sql::schedule_from_row(r[0]);
        if (s.paused == paused) return s;  // nothing to change (a resume keeps its due tick)
        std::string next;                  // empty: unchanged (NULL)
        if (!paused) next = std::to_string(pg::to_epoch_us(impl_->next_from_now(tx, s)));
        s = sql::schedule_from_row(
            tx.exec_prepared1("schedules_set_paused", name, paused, next.empty() ? nullptr : next.c_str()));
        tx.exec_prepared("schedules_notify", kSchedulesChannel);
        tx.commit();
        return s;
      });
}

StatusOr<bool> ScheduleStore::remove(const std::string& name) {
  return impl_->db->run("delete schedule", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    const bool found = !tx.exec_prepared("schedules_delete", name).empty();
    if (found) tx.exec_prepared("schedules_notify", kSchedulesChannel);
    tx.commit();
    return found;
  });
}

}  // namespace quern::schedule
