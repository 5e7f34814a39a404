// Queue: listings, statistics and the worker registry — the reads the API
// and operators need, kept out of the hot path's files.
#include <algorithm>
#include <set>
#include <string>

#include "host/common/utf8.h"
#include "host/queue/queue.h"
#include "host/queue/queue_internal.h"

namespace quern::queue {
namespace {

const std::set<std::string> kStates = {"queued", "running", "success", "failure", "timeout", "canceled"};

// Both tables, same columns as kGetJob; filters are parameters ($1 state,
// $2 tag, $3 script_path, $4/$5 created after/before in epoch us, $6 before_id, $7 limit).
constexpr const char* kListJobs = R"SQL(
SELECT * FROM (
  SELECT id, CASE WHEN running THEN 'running' ELSE 'queued' END AS state, tag, language, script_path,
         payload::text, priority, attempt, coalesce(worker_id, ''), NULL::text, '',
         )SQL" QUERN_PG_US("created_at") ", " QUERN_PG_US("started_at") R"SQL( , NULL::bigint, cancel_requested,
         coalesce(concurrency_key, '')
    FROM quern.queue
   WHERE ($2 = '' OR tag = $2) AND ($3 = '' OR script_path = $3)
     AND ($4::bigint IS NULL OR created_at >= 'epoch'::timestamptz + $4::bigint * interval '1 microsecond')
     AND ($5::bigint IS NULL OR created_at < 'epoch'::timestamptz + $5::bigint * interval '1 microsecond')
     AND ($6::bigint = 0 OR id < $6::bigint)
     AND ($1 = '' OR $1 IN ('queued', 'running'))
  UNION ALL
  SELECT id, status, tag, language, script_path,
         payload::text, priority, attempt, coalesce(worker_id, ''), result::text, error,
         )SQL" QUERN_PG_US("created_at") ", " QUERN_PG_US("started_at") ", " QUERN_PG_US(
    "completed_at") R"SQL(, false,
         coalesce(concurrency_key, '')
    FROM quern.completed_jobs
   WHERE ($2 = '' OR tag = $2) AND ($3 = '' OR script_path = $3)
     AND ($4::bigint IS NULL OR created_at >= 'epoch'::timestamptz + $4::bigint * interval '1 microsecond')
     AND ($5::bigint IS NULL OR created_at < 'epoch'::timestamptz + $5::bigint * interval '1 microsecond')
     AND ($6::bigint = 0 OR id < $6::bigint)
     AND ($1 = '' OR status = $1)
) j
WHERE ($1 = '' OR state = $1)
ORDER BY id DESC
LIMIT $7
)SQL";

// One scan of the queue, grouped by (tag, priority); queue_stats() sums the
// rows of a tag. A tag served by a live worker but with no jobs comes as one
// row with a NULL priority.
constexpr const char* kQueueStats = R"SQL(
WITH q AS (
  SELECT tag, priority,
         count(*) FILTER (WHERE NOT running AND scheduled_for <= now()) AS waiting,
         count(*) FILTER (WHERE NOT running AND scheduled_for > now()) AS scheduled,
         count(*) FILTER (WHERE running) AS running,
         coalesce(extract(epoch FROM now() - min(scheduled_for) FILTER (WHERE NOT running AND scheduled_for <= now())), 0)
           AS oldest
    FROM quern.queue GROUP BY tag, priority
), live AS (
  SELECT DISTINCT unnest(tags) AS tag FROM quern.workers
   WHERE last_seen_at > now() - $1::bigint * interval '1 millisecond'
)
SELECT coalesce(q.tag, live.tag), q.priority, coalesce(q.waiting, 0), coalesce(q.scheduled, 0),
       coalesce(q.running, 0), coalesce(q.oldest, 0)::float8, live.tag IS NOT NULL
  FROM q FULL JOIN live ON live.tag = q.tag
 ORDER BY 1, 2 DESC
)SQL";

constexpr const char* kLimitStats = R"SQL(
SELECT l.key, l.max_running, l.rate_max, l.rate_window_ms,
       (SELECT count(*) FROM quern.queue q WHERE q.concurrency_key = l.key AND q.running),
       (SELECT count(*) FROM quern.queue q WHERE q.concurrency_key = l.key AND NOT q.running
                                            AND q.scheduled_for <= now()),
       (SELECT count(*) FROM unnest(l.recent_starts) t WHERE t > now() - l.rate_window_ms * interval '1 millisecond')
  FROM quern.concurrency_limits l ORDER BY l.key
)SQL";

std::optional<int64_t> epoch_us(const std::optional<Clock::time_point>& t) {
  if (!t) return std::nullopt;
  return to_epoch_us(*t);
}

}  // namespace

Status validate(const JobFilter& f) {
  if (!f.state.empty() && !kStates.count(f.state))
    return Status::invalid("state: unknown state '" + text::to_storable(f.state.substr(0, 100)) +
                           "' (expected queued, running, success, failure, timeout or canceled)");
  if (f.limit < 1 || f.limit > 1000) return Status::invalid("limit must be between 1 and 1000");
  return Status::ok();
}

StatusOr<std::vector<JobRecord>> Queue::list_jobs(const JobFilter& f) {
  if (Status s = validate(f); !s) return s;
  return impl_->run("list_jobs", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_params(kListJobs, f.state, f.tag, f.script_path, epoch_us(f.created_after),
                            epoch_us(f.created_before), f.before_id, f.limit);
    std::vector<JobRecord> out;
    out.reserve(r.size());
    for (const auto& row : r) out.push_back(job_record_from_row(row));
    return out;
  });
}

StatusOr<std::vector<TagStats>> Queue::queue_stats(std::chrono::milliseconds live_within) {
  return impl_->run("queue_stats", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_params(kQueueStats, static_cast<int64_t>(live_within.count()));
    std::vector<TagStats> out;
    for (const auto& row : r) {  // ordered by tag, then priority descending
      const std::string tag = row[0].as<std::string>();
      if (out.empty() || out.back().tag != tag) {
        out.emplace_back();
        out.back().tag = tag;
        out.back().served = row[6].as<bool>();
      }
      TagStats& s = out.back();
      const int64_t waiting = row[2].as<int64_t>();
      const double oldest = row[5].as<double>();
      s.waiting += waiting;
      s.scheduled += row[3].as<int64_t>();
      s.running += row[4].as<int64_t>();
      s.oldest_wait_s = std::max(s.oldest_wait_s, oldest);
      if (!row[1].is_null() && waiting > 0) s.by_priority.push_back({row[1].as<int>(), waiting, oldest});
    }
    return out;
  });
}

StatusOr<std::vector<LimitStats>> Queue::limit_stats() {
  return impl_->run("limit_stats", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    std::vector<LimitStats> out;
    for (const auto& row : tx.exec(kLimitStats)) {
      LimitStats s;
      s.key = row[0].as<std::string>();
      s.max_running = row[1].as<int>();
      s.rate_max = row[2].as<int>();
      s.rate_window = std::chrono::milliseconds(row[3].as<int64_t>());
      s.running = row[4].as<int64_t>();
      s.waiting = row[5].as<int64_t>();
      s.started_in_window = row[6].as<int64_t>();
      out.push_back(std::move(s));
    }
    return out;
  });
}

Status Queue::register_worker(const WorkerInfo& w) {
  return impl_
      ->run(
          "register_worker",
          [&](pqxx::connection& c) {
            pqxx::nontransaction tx(c);
            tx.exec_params(
                "INSERT INTO quern.workers (id, kind, worker_group, tags, slots, version, hostname, pid, "
                "started_at, "
                "last_seen_at, running) VALUES ($1, $2, $3, $4::text[], $5, $6, $7, $8, now(), now(), 0) "
                "ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, worker_group = EXCLUDED.worker_group, "
                "tags = EXCLUDED.tags, slots = EXCLUDED.slots, version = EXCLUDED.version, hostname = "
                "EXCLUDED.hostname, "
                "pid = EXCLUDED.pid, last_seen_at = now()",
                w.id, w.kind, w.group, to_text_array(w.tags), w.slots, w.version, w.hostname, w.pid);
            return true;
          })
      .status();
}

Status Queue::touch_worker(const std::string& worker_id, int running) {
  return impl_
      ->run("touch_worker",
            [&](pqxx::connection& c) {
              pqxx::nontransaction tx(c);
              tx.exec_params("UPDATE quern.workers SET last_seen_at = now(), running = $2 WHERE id = $1",
                             worker_id, running);
              return true;
            })
      .status();
}

Status Queue::unregister_worker(const std::string& worker_id) {
  return impl_
      ->run("unregister_worker",
            [&](pqxx::connection& c) {
              pqxx::nontransaction tx(c);
              tx.exec_params("DELETE FROM quern.workers WHERE id = $1", worker_id);
              return true;
            })
      .status();
}

StatusOr<std::vector<WorkerInfo>> Queue::list_workers() {
  return impl_->run("list_workers", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec(
        "SELECT id, kind, coalesce(worker_group, ''), coalesce(array_to_json(tags)::text, '[]'), slots, "
        "coalesce(version, ''), coalesce(hostname, ''), coalesce(pid, 0), running, "
        "(extract(epoch FROM started_at) * 1000000)::bigint, (extract(epoch FROM last_seen_at) * "
        "1000000)::bigint, "
        "(SELECT coalesce(json_agg(q.id ORDER BY q.id), '[]')::text FROM quern.queue q "
        "  WHERE q.running AND q.worker_id = w.id) "
        "FROM quern.workers w ORDER BY worker_group, id");
    std::vector<WorkerInfo> out;
    for (const auto& row : r) {
      WorkerInfo w;
      w.id = row[0].as<std::string>();
      w.kind = row[1].as<std::string>();
      w.group = row[2].as<std::string>();
      w.tags = nlohmann::json::parse(row[3].c_str()).get<std::vector<std::string>>();
      w.slots = row[4].as<int>();
      w.version = row[5].as<std::string>();
      w.hostname = row[6].as<std::string>();
      w.pid = row[7].as<int>();
      w.running = row[8].as<int>();
      w.started_at = from_epoch_us(row[9].as<int64_t>());
      w.last_seen_at = from_epoch_us(row[10].as<int64_t>());
      w.current_jobs = nlohmann::json::parse(row[11].c_str()).get<std::vector<int64_t>>();
      out.push_back(std::move(w));
    }
    return out;
  });
}

StatusOr<int> Queue::prune_workers(std::chrono::milliseconds unseen_for) {
  return impl_->run("prune_workers", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_params(
        "DELETE FROM quern.workers WHERE last_seen_at < now() - $1::bigint * interval '1 millisecond'",
        static_cast<int64_t>(unseen_for.count()));
    return static_cast<int>(r.affected_rows());
  });
}

StatusOr<bool> Queue::tag_is_served(const std::string& tag, std::chrono::milliseconds live_within) {
  return impl_->run("tag_is_served", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx
        .exec_params1(
            "SELECT EXISTS (SELECT 1 FROM quern.workers WHERE $1 = ANY(tags) "
            "AND last_seen_at > now() - $2::bigint * interval '1 millisecond')",
            tag, static_cast<int64_t>(live_within.count()))[0]
        .as<bool>();
  });
}

}  // namespace quern::queue
