// Queue: logs, cancel, lease recovery, lookups and admin helpers.
#include <string>

#include "host/queue/migrations.h"
#include "host/queue/queue.h"
#include "host/queue/queue_internal.h"
#include "host/queue/queue_sql.h"

namespace quern::queue {

nlohmann::json log_chunks_json(const std::vector<LogChunk>& chunks) {
  nlohmann::json arr = nlohmann::json::array();
  for (const LogChunk& ch : chunks)
    if (!ch.text.empty()) arr.push_back({{"job_id", ch.job_id}, {"attempt", ch.attempt}, {"chunk", ch.text}});
  return arr;
}

Status with_log_race_retries(pg::Session& session, const char* what,
                             const std::function<void(pqxx::connection&)>& body) {
  // Two appenders on the same job (a stale worker and the new one) may race
  // for the same start offset; the loser retries against the new end.
  constexpr int kAttempts = 5;
  for (int i = 1;; ++i) {
    bool conflict = false;
    auto r = session.run(what, [&](pqxx::connection& c) {
      try {
        body(c);
      } catch (const pqxx::unique_violation&) {
        if (i >= kAttempts) throw;
        conflict = true;
      }
      return true;
    });
    if (!r) return r.status();
    if (!conflict) return Status::ok();
  }
}

Status Queue::append_logs(const std::vector<LogChunk>& chunks) {
  const nlohmann::json arr = log_chunks_json(chunks);
  if (arr.empty()) return Status::ok();
  const std::string text = arr.dump();
  return with_log_race_retries(*impl_->session, "append_logs", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    tx.exec_prepared(sql::kAppendLogs.name, text);
  });
}

StatusOr<std::string> Queue::read_logs(int64_t job_id, int64_t from) {
  if (from < 0) from = 0;
  return impl_->run("read_logs", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared(sql::kReadLogs.name, job_id, from);
    std::string text;
    for (const auto& row : r) {
      const int64_t start = row["start_offset"].as<int64_t>();
      const pqxx::field chunk_field = row["chunk"];
      const char* chunk = chunk_field.c_str();
      const int64_t size = static_cast<int64_t>(chunk_field.size());
      const int64_t skip = from > start ? from - start : 0;
      if (skip < size) text.append(chunk + skip, static_cast<size_t>(size - skip));
    }
    return text;
  });
}

StatusOr<CancelOutcome> Queue::cancel(int64_t job_id, const std::string& reason) {
  return impl_->run("cancel", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    // A job moves between states concurrently (claimed, completed, requeued);
    // retry the few times a move raced with this request.
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto r = tx.exec_prepared1(sql::kCancel.name, job_id, reason);
      if (r["canceled"].as<int64_t>() > 0) return CancelOutcome::canceled;
      if (r["requested"].as<int64_t>() > 0) return CancelOutcome::requested;
      if (r["finished"].as<bool>()) return CancelOutcome::already_finished;
      auto p = tx.exec_prepared1(sql::kCancelProbe.name, job_id);
      if (p["finished"].as<bool>()) return CancelOutcome::already_finished;
      if (!p["in_queue"].as<bool>()) return CancelOutcome::not_found;
    }
    throw std::runtime_error("job " + std::to_string(job_id) + " kept changing state");
  });
}

StatusOr<RecoveryReport> Queue::recover_expired(std::chrono::milliseconds lease_timeout) {
  return impl_->run("recover_expired", [&](pqxx::connection& c) {
    RecoveryReport report;
    pqxx::work tx(c);
    // A process paused or cut off between these statements would hold the
    // cluster-wide recovery lock, and no lease would ever be recovered again:
    // PostgreSQL ends such a session after 5 s idle, releasing the lock.
    tx.exec("SET LOCAL idle_in_transaction_session_timeout = '5s'");
    if (!tx.exec_prepared1(sql::kTryRecoveryLock.name, kRecoveryLockKey)["locked"].as<bool>()) {
      tx.commit();
      return report;  // another process is sweeping
    }
    auto r = tx.exec_prepared1(sql::kRecover.name, static_cast<int64_t>(lease_timeout.count()),
                               impl_->options.default_max_restarts);
    tx.commit();
    report.requeued = r["requeued"].as<int>();
    report.failed = r["failed"].as<int>();
    report.canceled = r["canceled"].as<int>();
    return report;
  });
}

JobRecord job_record_from_row(const pqxx::row& row) {
  JobRecord j;
  j.id = row["id"].as<int64_t>();
  j.state = row["state"].as<std::string>();
  j.tag = row["tag"].as<std::string>();
  j.language = row["language"].as<std::string>();
  j.script_path = row["script_path"].as<std::string>();
  j.payload = nlohmann::ordered_json::parse(row["payload"].c_str());
  j.priority = row["priority"].as<int>();
  j.attempt = row["attempt"].as<int32_t>();
  j.worker_id = row["worker_id"].as<std::string>();
  if (const pqxx::field f = row["result"]; !f.is_null()) j.result = nlohmann::json::parse(f.c_str());
  j.error = row["error"].as<std::string>();
  j.created_at = from_epoch_us(row["created_us"].as<int64_t>());
  if (const pqxx::field f = row["started_us"]; !f.is_null()) j.started_at = from_epoch_us(f.as<int64_t>());
  if (const pqxx::field f = row["completed_us"]; !f.is_null())
    j.completed_at = from_epoch_us(f.as<int64_t>());
  j.cancel_requested = row["cancel_requested"].as<bool>();
  j.concurrency_key = row["concurrency_key"].as<std::string>();
  if (const pqxx::field f = row["resources"]; !f.is_null()) j.resources = nlohmann::json::parse(f.c_str());
  return j;
}

StatusOr<std::optional<JobRecord>> Queue::get_job(int64_t job_id) {
  return impl_->run("get_job", [&](pqxx::connection& c) -> std::optional<JobRecord> {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared(sql::kGetJob.name, job_id);
    if (r.empty()) return std::nullopt;
    JobRecord job = job_record_from_row(r[0]);
    for (const auto& row : tx.exec_prepared(sql::kGetAttempts.name, job_id)) {
      AttemptRecord a;
      a.attempt = row["attempt"].as<int32_t>();
      a.status = row["status"].as<std::string>();
      a.error = row["error"].as<std::string>();
      a.worker_id = row["worker_id"].as<std::string>();
      if (const pqxx::field f = row["started_us"]; !f.is_null())
        a.started_at = from_epoch_us(f.as<int64_t>());
      a.ended_at = from_epoch_us(row["ended_us"].as<int64_t>());
      if (const pqxx::field f = row["retry_us"]; !f.is_null()) a.retry_at = from_epoch_us(f.as<int64_t>());
      job.attempts.push_back(std::move(a));
    }
    return job;
  });
}

StatusOr<int64_t> Queue::count_waiting(const std::vector<std::string>& tags) {
  return impl_->run("count_waiting", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx.exec_prepared1(sql::kCountWaiting.name, to_text_array(tags))["waiting"].as<int64_t>();
  });
}

StatusOr<int64_t> Queue::count_running() {
  return impl_->run("count_running", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx.exec_prepared1(sql::kCountRunning.name)["running"].as<int64_t>();
  });
}

StatusOr<std::string> Queue::exec_scalar(const std::string& statement) {
  return impl_->run("exec_scalar", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec(statement);
    if (r.empty() || r.columns() == 0 || r[0][0].is_null()) return std::string();
    return r[0][0].as<std::string>();
  });
}

}  // namespace quern::queue
