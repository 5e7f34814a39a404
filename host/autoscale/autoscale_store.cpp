// AutoscaleStore (see autoscale_store.h).
#include "host/autoscale/autoscale_store.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "host/common/time_text.h"

namespace quern::autoscale {
namespace {

// Advisory lock namespace of the autoscaler (the two-key form: this, and the
// hash of the group's name). Distinct from the migrations' and the lease
// sweeper's single-key locks.
constexpr int kLockSpace = 0x51A5;

// $1 tags, $2 lookahead (ms), $3 group, $4 live_within (ms). "Blocked", as
// in /metrics: a due waiting job whose concurrency key is at its limit
// (quern.keys_at_limit(), migration 10).
constexpr const char* kSignals = R"SQL(
WITH q AS (
  SELECT count(*) FILTER (WHERE NOT running AND scheduled_for <= now()
                            AND (concurrency_key IS NULL OR concurrency_key NOT IN (SELECT quern.keys_at_limit())))
           AS runnable,
         count(*) FILTER (WHERE NOT running AND scheduled_for <= now()
                            AND concurrency_key IN (SELECT quern.keys_at_limit())) AS blocked,
         count(*) FILTER (WHERE running) AS running,
         count(*) FILTER (WHERE NOT running AND scheduled_for > now()
                            AND scheduled_for <= now() + $2::bigint * interval '1 millisecond') AS due_soon
    FROM quern.queue WHERE tag = ANY($1::text[])
), s AS (
  SELECT count(*) AS due_soon FROM quern.schedules sc
   WHERE NOT sc.paused AND sc.next_fire_at <= now() + $2::bigint * interval '1 millisecond'
     AND coalesce(sc.tag, (SELECT v.language FROM quern.scripts v WHERE v.path = sc.script_path
                            ORDER BY v.created_at DESC, v.id DESC LIMIT 1)) = ANY($1::text[])
), w AS (
  SELECT count(*) AS live, coalesce(sum(slots), 0) AS slots, coalesce(sum(least(running, slots)), 0) AS busy
    FROM quern.workers
   WHERE worker_group = $3 AND last_seen_at > now() - $4::bigint * interval '1 millisecond'
)
SELECT q.runnable, q.blocked, q.running, q.due_soon + s.due_soon AS due_soon, w.live, w.slots, w.busy
  FROM q, s, w
)SQL";

constexpr const char* kRunningOf = "SELECT id, running FROM quern.workers WHERE id = ANY($1::text[])";

#define QUERN_AUTOSCALE_GROUP_COLS                                                                    \
  "worker_group, integration, array_to_json(tags)::text AS tags, min_workers, max_workers, desired, " \
  "from_count, rule, reason, "                                                                        \
  "CASE WHEN requested_at IS NULL THEN NULL ELSE " QUERN_PG_US(                                       \
      "requested_at") " END AS requested_us, " QUERN_PG_US("decided_at") " AS decided_us, controller"

constexpr const char* kGetGroup =
    "SELECT " QUERN_AUTOSCALE_GROUP_COLS " FROM quern.autoscale_groups WHERE worker_group = $1";
constexpr const char* kListGroups =
    "SELECT " QUERN_AUTOSCALE_GROUP_COLS " FROM quern.autoscale_groups ORDER BY worker_group";

// $9 requested_at as epoch microseconds, NULL = none.
constexpr const char* kSaveGroup = R"SQL(
INSERT INTO quern.autoscale_groups
  (worker_group, integration, min_workers, max_workers, desired, from_count, rule, reason, requested_at,
   decided_at, controller, tags)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, )SQL" QUERN_PG_TS("$9") R"SQL(, now(), $10, $11::text[])
ON CONFLICT (worker_group) DO UPDATE
   SET integration = EXCLUDED.integration, min_workers = EXCLUDED.min_workers,
       max_workers = EXCLUDED.max_workers, desired = EXCLUDED.desired, from_count = EXCLUDED.from_count,
       rule = EXCLUDED.rule, reason = EXCLUDED.reason, requested_at = EXCLUDED.requested_at,
       decided_at = now(), controller = EXCLUDED.controller, tags = EXCLUDED.tags
)SQL";

constexpr const char* kAddEvent = R"SQL(
INSERT INTO quern.autoscale_events (worker_group, from_count, to_count, rule, reason, integration, outcome, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
)SQL";

constexpr const char* kListEvents = R"SQL(
SELECT id, )SQL" QUERN_PG_US(
    "at") R"SQL( AS at_us, worker_group, from_count, to_count, rule, reason, integration,
       outcome, error
  FROM quern.autoscale_events
 WHERE ($1 = '' OR worker_group = $1) AND ($2::bigint = 0 OR id < $2::bigint)
 ORDER BY id DESC LIMIT $3
)SQL";

constexpr const char* kTryLock = "SELECT pg_try_advisory_lock($1::int, hashtext($2))";
constexpr const char* kUnlockAll = "SELECT pg_advisory_unlock_all()";

GroupState group_from_row(const pqxx::row& row) {
  GroupState g;
  g.group = row["worker_group"].as<std::string>();
  g.integration = row["integration"].as<std::string>();
  for (const auto& t : nlohmann::json::parse(row["tags"].c_str())) g.tags.push_back(t.get<std::string>());
  g.min = row["min_workers"].as<int>();
  g.max = row["max_workers"].as<int>();
  g.desired = row["desired"].as<int>();
  g.from_count = row["from_count"].as<int>();
  g.rule = row["rule"].as<std::string>();
  g.reason = row["reason"].as<std::string>();
  if (const pqxx::field f = row["requested_us"]; !f.is_null())
    g.requested_at = pg::from_epoch_us(f.as<int64_t>());
  g.decided_at = pg::from_epoch_us(row["decided_us"].as<int64_t>());
  g.controller = row["controller"].as<std::string>();
  return g;
}

}  // namespace

std::string scaling_note(const std::vector<GroupState>& groups, const std::string& tag) {
  for (const GroupState& g : groups) {
    if (std::find(g.tags.begin(), g.tags.end(), tag) == g.tags.end()) continue;
    if (g.desired > 0 && g.from_count == 0 && g.requested_at)
      return "scaling group " + g.group + " up from 0 (requested at " + iso_time(*g.requested_at) + ")";
    if (g.desired > 0) return "group " + g.group + " is scaling to " + std::to_string(g.desired) + " workers";
    return "group " + g.group + " is at 0 workers; its autoscaler (" + g.integration +
           ") starts one as soon as it sees this job";
  }
  return "";
}

std::string unserved_note(AutoscaleStore& store, const std::string& tag,
                          const std::vector<std::pair<std::string, std::vector<std::string>>>& groups,
                          const std::string& config_name) {
  if (auto scaled = store.list_groups(); scaled) {
    if (std::string note = scaling_note(*scaled, tag); !note.empty()) return note;
  }
  std::string would;
  for (const auto& [name, tags] : groups)
    if (std::find(tags.begin(), tags.end(), tag) != tags.end()) would += (would.empty() ? "" : ", ") + name;
  return "no live worker serves tag " + tag + "; it waits until one does" +
         (would.empty() ? " (no group of " + config_name + " serves it: add the tag to a group's tags)"
                        : " (the config's group " + would + " would: start `quern worker --group " +
                              would.substr(0, would.find(',')) + "` or `quern up`)");
}

struct AutoscaleStore::Impl {
  explicit Impl(std::shared_ptr<pg::Session> s) : db(std::move(s)) {
    static const pg::Statement kStatements[] = {
        {"autoscale_signals", kSignals},        {"autoscale_running_of", kRunningOf},
        {"autoscale_get_group", kGetGroup},     {"autoscale_list_groups", kListGroups},
        {"autoscale_save_group", kSaveGroup},   {"autoscale_add_event", kAddEvent},
        {"autoscale_list_events", kListEvents}, {"autoscale_try_lock", kTryLock},
        {"autoscale_unlock_all", kUnlockAll}};
    db->add_statements(kStatements);
    // A new connection holds no lock of the old one.
    hook = db->add_hooks([this](pqxx::connection&) { held.clear(); }, [this] { held.clear(); });
  }
  ~Impl() { db->remove_hooks(hook); }
  std::shared_ptr<pg::Session> db;
  std::set<std::string> held;  // groups whose lock this session holds
  int hook = 0;
};

AutoscaleStore::AutoscaleStore() = default;
AutoscaleStore::~AutoscaleStore() = default;

StatusOr<std::unique_ptr<AutoscaleStore>> AutoscaleStore::connect(const std::string& database_url) {
  pg::SessionOptions options;
  options.application_name = "quern autoscaler";
  auto session = std::make_shared<pg::Session>(database_url, options);
  if (Status s = session->open("connect the autoscaler"); !s) return s;
  return over(std::move(session));
}

std::unique_ptr<AutoscaleStore> AutoscaleStore::over(std::shared_ptr<pg::Session> session) {
  std::unique_ptr<AutoscaleStore> store(new AutoscaleStore());
  store->impl_ = std::make_unique<Impl>(std::move(session));
  return store;
}

StatusOr<Signals> AutoscaleStore::signals(const std::string& group, const std::vector<std::string>& tags,
                                          std::chrono::milliseconds lookahead,
                                          std::chrono::milliseconds live_within) {
  return impl_->db->run("read the autoscaling signals", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    const pqxx::row r = tx.exec_prepared1("autoscale_signals", pg::to_text_array(tags),
                                          static_cast<int64_t>(lookahead.count()), group,
                                          static_cast<int64_t>(live_within.count()));
    Signals s;
    s.runnable = r["runnable"].as<int64_t>();
    s.blocked = r["blocked"].as<int64_t>();
    s.running = r["running"].as<int64_t>();
    s.due_soon = r["due_soon"].as<int64_t>();
    s.live_workers = r["live"].as<int64_t>();
    s.total_slots = r["slots"].as<int64_t>();
    s.busy_slots = r["busy"].as<int64_t>();
    return s;
  });
}

StatusOr<std::vector<std::pair<std::string, int>>> AutoscaleStore::running_of(
    const std::vector<std::string>& worker_ids) {
  return impl_->db->run("read the workers' running jobs", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    std::vector<std::pair<std::string, int>> out;
    for (const auto& row : tx.exec_prepared("autoscale_running_of", pg::to_text_array(worker_ids)))
      out.emplace_back(row[0].as<std::string>(), row[1].as<int>());
    return out;
  });
}

StatusOr<std::optional<GroupState>> AutoscaleStore::get_group(const std::string& group) {
  return impl_->db->run("read the autoscaled group", [&](pqxx::connection& c) -> std::optional<GroupState> {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared("autoscale_get_group", group);
    if (r.empty()) return std::nullopt;
    return group_from_row(r[0]);
  });
}

StatusOr<std::vector<GroupState>> AutoscaleStore::list_groups() {
  return impl_->db->run("list the autoscaled groups", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    std::vector<GroupState> out;
    for (const auto& row : tx.exec_prepared("autoscale_list_groups")) out.push_back(group_from_row(row));
    return out;
  });
}

Status AutoscaleStore::save_group(const GroupState& g) {
  auto done = impl_->db->run("save the autoscaled group", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    std::string requested;  // empty: NULL
    if (g.requested_at) requested = std::to_string(pg::to_epoch_us(*g.requested_at));
    tx.exec_prepared("autoscale_save_group", g.group, g.integration, g.min, g.max, g.desired, g.from_count,
                     g.rule, g.reason, requested.empty() ? nullptr : requested.c_str(), g.controller,
                     pg::to_text_array(g.tags));
    return true;
  });
  return done ? Status::ok() : done.status();
}

StatusOr<int64_t> AutoscaleStore::add_event(const Event& e) {
  return impl_->db->run("record the autoscaling event", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx
        .exec_prepared1("autoscale_add_event", e.group, e.from_count, e.to_count, e.rule, e.reason,
                        e.integration, e.outcome, e.error)[0]
        .as<int64_t>();
  });
}

StatusOr<std::vector<Event>> AutoscaleStore::list_events(const EventFilter& f) {
  if (f.limit < 1 || f.limit > 1000)
    return Status::invalid("limit must be from 1 to 1000, got " + std::to_string(f.limit));
  if (f.before_id < 0) return Status::invalid("before must be a positive job event id");
  return impl_->db->run("list the autoscaling events", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    std::vector<Event> out;
    for (const auto& row : tx.exec_prepared("autoscale_list_events", f.group, f.before_id, f.limit)) {
      Event e;
      e.id = row["id"].as<int64_t>();
      e.at = pg::from_epoch_us(row["at_us"].as<int64_t>());
      e.group = row["worker_group"].as<std::string>();
      e.from_count = row["from_count"].as<int>();
      e.to_count = row["to_count"].as<int>();
      e.rule = row["rule"].as<std::string>();
      e.reason = row["reason"].as<std::string>();
      e.integration = row["integration"].as<std::string>();
      e.outcome = row["outcome"].as<std::string>();
      e.error = row["error"].as<std::string>();
      out.push_back(std::move(e));
    }
    return out;
  });
}

StatusOr<bool> AutoscaleStore::try_lock(const std::string& group) {
  if (holds(group)) return true;
  auto got = impl_->db->run("take the autoscaling lock", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx.exec_prepared1("autoscale_try_lock", kLockSpace, group)[0].as<bool>();
  });
  if (got && *got) impl_->held.insert(group);
  return got;
}

bool AutoscaleStore::holds(const std::string& group) const {
  return impl_->held.count(group) > 0 && impl_->db->is_open();
}

void AutoscaleStore::unlock_all() {
  if (impl_->held.empty()) return;
  (void)impl_->db->run("release the autoscaling locks", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    tx.exec_prepared("autoscale_unlock_all");
    return true;
  });
  impl_->held.clear();
}

}  // namespace quern::autoscale
