// Queue: listings, statistics and the worker registry — the reads the API
// and operators need, kept out of the hot path's files. SQL text lives in
// queue_sql.h.
#include <algorithm>
#include <set>
#include <string>

#include "host/common/utf8.h"
#include "host/queue/queue.h"
#include "host/queue/queue_internal.h"
#include "host/queue/queue_sql.h"

namespace quern::queue {
namespace {

const std::set<std::string> kStates = {"queued", "running", "success", "failure", "timeout", "canceled"};

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
    // Planned for these values, not prepared: a generic plan of the filters'
    // "($2 = '' OR tag = $2)" cannot see which are off, estimates one row, and
    // sorts every job; planned with the values, each branch walks its primary
    // key backwards and stops at the limit (docs/BENCHMARKS.md, issue 16).
    auto r = tx.exec_params(sql::kListJobs, f.state, f.tag, f.script_path, epoch_us(f.created_after),
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
    auto r = tx.exec_prepared(sql::kQueueStats.name, static_cast<int64_t>(live_within.count()));
    std::vector<TagStats> out;
    for (const auto& row : r) {  // ordered by tag, then priority descending
      const std::string tag = row["tag"].as<std::string>();
      if (out.empty() || out.back().tag != tag) {
        out.emplace_back();
        out.back().tag = tag;
        out.back().served = row["served"].as<bool>();
      }
      TagStats& s = out.back();
      const int64_t waiting = row["waiting"].as<int64_t>();
      const double oldest = row["oldest"].as<double>();
      s.waiting += waiting;
      s.scheduled += row["scheduled"].as<int64_t>();
      s.running += row["running"].as<int64_t>();
      s.oldest_wait_s = std::max(s.oldest_wait_s, oldest);
      const pqxx::field priority = row["priority"];
      if (!priority.is_null() && waiting > 0) s.by_priority.push_back({priority.as<int>(), waiting, oldest});
    }
    return out;
  });
}

StatusOr<QueueMetrics> Queue::queue_metrics(std::chrono::milliseconds live_within) {
  return impl_->run("queue_metrics", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    QueueMetrics m;
    for (const auto& row : tx.exec_prepared(sql::kQueueMetrics.name)) {
      QueueMetrics::Tag t;
      t.tag = row["tag"].as<std::string>();
      t.waiting = row["waiting"].as<int64_t>();
      t.due = row["due"].as<int64_t>();
      t.blocked = row["blocked"].as<int64_t>();
      t.running = row["running"].as<int64_t>();
      t.oldest_due_s = row["oldest_due"].as<double>();
      m.tags.push_back(std::move(t));
    }
    for (const auto& row :
         tx.exec_prepared(sql::kWorkerMetrics.name, static_cast<int64_t>(live_within.count()))) {
      QueueMetrics::Group g;
      g.group = row["worker_group"].as<std::string>();
      g.kind = row["kind"].as<std::string>();
      g.live = row["live"].as<int64_t>();
      g.slots = row["slots"].as<int64_t>();
      g.busy = row["busy"].as<int64_t>();
      g.heartbeat_age_s = row["heartbeat_age"].as<double>();
      m.groups.push_back(std::move(g));
    }
    return m;
  });
}

StatusOr<std::vector<LimitStats>> Queue::limit_stats() {
  return impl_->run("limit_stats", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    std::vector<LimitStats> out;
    for (const auto& row : tx.exec_prepared(sql::kLimitStats.name)) {
      LimitStats s;
      s.key = row["key"].as<std::string>();
      s.max_running = row["max_running"].as<int>();
      s.rate_max = row["rate_max"].as<int>();
      s.rate_window = std::chrono::milliseconds(row["rate_window_ms"].as<int64_t>());
      s.running = row["running"].as<int64_t>();
      s.waiting = row["waiting"].as<int64_t>();
      s.started_in_window = row["started_in_window"].as<int64_t>();
      out.push_back(std::move(s));
    }
    return out;
  });
}

Status Queue::register_worker(const WorkerInfo& w) {
  return impl_
      ->run("register_worker",
            [&](pqxx::connection& c) {
              pqxx::nontransaction tx(c);
              tx.exec_prepared(sql::kRegisterWorker.name, w.id, w.kind, w.group, to_text_array(w.tags),
                               w.slots, w.version, w.hostname, w.pid, w.isolation);
              return true;
            })
      .status();
}

Status Queue::touch_worker(const std::string& worker_id, int running, const WorkerTelemetry* telemetry) {
  std::optional<std::string> doc;
  if (telemetry != nullptr)
    doc = telemetry->to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return impl_
      ->run("touch_worker",
            [&](pqxx::connection& c) {
              pqxx::nontransaction tx(c);
              tx.exec_prepared(sql::kTouchWorker.name, worker_id, running, doc);
              return true;
            })
      .status();
}

Status Queue::unregister_worker(const std::string& worker_id) {
  return impl_->exec_for_worker("unregister_worker", sql::kUnregisterWorker, worker_id);
}

Status Queue::stop_waiting(const std::string& worker_id) {
  return impl_->exec_for_worker("stop_waiting", sql::kStopWaiting, worker_id);
}

StatusOr<std::vector<WorkerInfo>> Queue::list_workers() {
  return impl_->run("list_workers", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared(sql::kListWorkers.name);
    std::vector<WorkerInfo> out;
    for (const auto& row : r) {
      WorkerInfo w;
      w.id = row["id"].as<std::string>();
      w.kind = row["kind"].as<std::string>();
      w.group = row["worker_group"].as<std::string>();
      w.tags = nlohmann::json::parse(row["tags"].c_str()).get<std::vector<std::string>>();
      w.slots = row["slots"].as<int>();
      w.version = row["version"].as<std::string>();
      w.hostname = row["hostname"].as<std::string>();
      w.pid = row["pid"].as<int>();
      w.isolation = row["isolation"].as<std::string>();
      w.running = row["running"].as<int>();
      w.heartbeat_age =
          std::chrono::milliseconds(std::max<int64_t>(0, row["heartbeat_age_ms"].as<int64_t>()));
      // Written by touch_worker from a checked WorkerTelemetry; a row that
      // no longer parses (edited by hand) reads as none rather than failing the list.
      if (!row["telemetry"].is_null()) {
        auto doc = nlohmann::json::parse(row["telemetry"].c_str(), nullptr, false);
        if (auto t = WorkerTelemetry::from_json(doc, "telemetry"); t) w.telemetry = std::move(t).value();
      }
      w.started_at = from_epoch_us(row["started_us"].as<int64_t>());
      w.last_seen_at = from_epoch_us(row["last_seen_us"].as<int64_t>());
      w.current_jobs = nlohmann::json::parse(row["current_jobs"].c_str()).get<std::vector<int64_t>>();
      out.push_back(std::move(w));
    }
    return out;
  });
}

StatusOr<int> Queue::prune_workers(std::chrono::milliseconds unseen_for) {
  return impl_->run("prune_workers", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared(sql::kPruneWorkers.name, static_cast<int64_t>(unseen_for.count()));
    return static_cast<int>(r.affected_rows());
  });
}

StatusOr<bool> Queue::tag_is_served(const std::string& tag, std::chrono::milliseconds live_within) {
  return impl_->run("tag_is_served", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx.exec_prepared1(sql::kTagIsServed.name, tag, static_cast<int64_t>(live_within.count()))["served"]
        .as<bool>();
  });
}

}  // namespace quern::queue
