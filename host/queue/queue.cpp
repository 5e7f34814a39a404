// Queue: connection, migration, enqueue and the lease protocol (claim,
// heartbeat, complete). Logs, cancel, recovery and lookups are in
// queue_ops.cpp; the connection and LISTEN/NOTIFY in queue_connection.cpp.
// SQL text lives in queue_sql.h.
#include <algorithm>
#include <string>

#include "host/common/validation.h"
#include "host/queue/migrations.h"
#include "host/queue/queue.h"
#include "host/queue/queue_internal.h"
#include "host/queue/queue_sql.h"

namespace quern::queue {
namespace {

// Returns an error message for an invalid job, or empty. Checked before
// anything is sent so that a batch is rejected as a whole.
std::string job_error(const NewJob& job) {
  if (Status s = validation::check_tag(job.tag, "tag"); !s) return s.message();
  if (job.language.empty()) return "language is empty";
  if (job.language.size() > 64) return "language is longer than 64 bytes";
  if (Status s = validation::check_text(job.script_path, "script_path", 255); !s) return s.message();
  if (job.priority < kMinPriority || job.priority > kMaxPriority)
    return "priority " + std::to_string(job.priority) + " is outside " + std::to_string(kMinPriority) + ".." +
           std::to_string(kMaxPriority);
  if (job.timeout_s < 0) return "timeout_s " + std::to_string(job.timeout_s) + " is negative";
  if (job.max_restarts < -1)
    return "max_restarts " + std::to_string(job.max_restarts) + " is invalid (-1 = default, or >= 0)";
  if (Status s = validate(job.concurrency); !s) return s.message();
  if (Status s = validate(job.retry); !s) return s.message();
  if (job.gpus < 0 || job.gpus > 1024) return "gpus " + std::to_string(job.gpus) + " is outside 0..1024";
  if (job.gpu_memory_mb < 0) return "gpu_memory_mb is negative";
  return {};
}

// A PostgreSQL array literal of integers: {1,2,3}.
template <typename Int>
std::string int_array(const std::vector<Int>& v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s + "}";
}

}  // namespace

Status validate(const NewJob& job) {
  std::string err = job_error(job);
  return err.empty() ? Status::ok() : Status::invalid(err);
}

Queue::Queue(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Queue::~Queue() = default;
pg::Session& Queue::session() { return *impl_->session; }

StatusOr<std::unique_ptr<Queue>> Queue::connect(const std::string& database_url, QueueOptions options) {
  pg::SessionOptions so;
  so.relaxed_commit = options.relaxed_commit;
  so.application_name = options.application_name;
  auto session = std::make_shared<pg::Session>(database_url, so);
  if (Status s = session->open("connect"); !s) return s;
  return over(std::move(session), options);
}

std::unique_ptr<Queue> Queue::over(std::shared_ptr<pg::Session> session, QueueOptions options) {
  return std::unique_ptr<Queue>(new Queue(std::make_unique<Impl>(std::move(session), options)));
}

StatusOr<int> Queue::migrate() {
  return impl_->run("migrate", [](pqxx::connection& c) { return apply_migrations(c); });
}

StatusOr<int> Queue::schema_version() {
  return impl_->run("schema version", [](pqxx::connection& c) { return queue::schema_version(c); });
}

namespace {

// Runs kPushOne for a validated job through `exec` (a prepared or a
// parameterized call on some transaction) and returns the new job's id.
template <typename Exec>
int64_t exec_push_one(const NewJob& job, Exec&& exec) {
  const std::string payload = job.payload.dump();
  std::string scheduled;
  if (job.scheduled_for) scheduled = std::to_string(to_epoch_us(*job.scheduled_for));
  const ConcurrencyLimit& lim = job.concurrency;
  const std::string retry = job.retry.enabled() ? retry_to_db_json(job.retry).dump() : std::string();
  auto r = exec(job.tag, job.language, job.script_path, payload, job.priority,
                job.scheduled_for ? scheduled.c_str() : nullptr, job.timeout_s, job.max_restarts,
                lim.enabled() ? lim.key.c_str() : nullptr, lim.max_running, lim.rate_max,
                static_cast<int64_t>(lim.rate_window.count()), job.retry.enabled() ? retry.c_str() : nullptr,
                job.gpus, job.gpu_memory_mb, job.waiter.empty() ? nullptr : job.waiter.c_str());
  return r["id"].template as<int64_t>();
}

}  // namespace

StatusOr<int64_t> Queue::push(const NewJob& job) {
  if (std::string err = job_error(job); !err.empty()) return Status::invalid("push: " + err);
  return impl_->run("push", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return exec_push_one(job, [&](auto&&... a) { return tx.exec_prepared1(sql::kPushOne.name, a...); });
  });
}

StatusOr<int64_t> push_in_transaction(pqxx::transaction_base& tx, const NewJob& job) {
  if (std::string err = job_error(job); !err.empty()) return Status::invalid("push: " + err);
  // Not prepared: the caller's connection has not registered the statement.
  return exec_push_one(job, [&](auto&&... a) { return tx.exec_params1(sql::kPushOne.text, a...); });
}

StatusOr<std::vector<int64_t>> Queue::push_batch(const std::vector<NewJob>& jobs) {
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (std::string err = job_error(jobs[i]); !err.empty())
      return Status::invalid("push_batch: job " + std::to_string(i) + ": " + err + " (nothing was enqueued)");
  }
  if (jobs.empty()) return std::vector<int64_t>{};
  return impl_->run("push_batch", [&](pqxx::connection& c) {
    // ordered_json all the way down: the payload's key order must survive.
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const NewJob& j : jobs) {
      nlohmann::ordered_json o = {
          {"tag", j.tag},
          {"language", j.language},
          {"script_path", j.script_path},
          {"payload", j.payload},
          {"priority", j.priority},
          {"timeout_s", j.timeout_s},
          {"max_restarts", j.max_restarts},
          {"gpus", j.gpus},
          {"gpu_memory_mb", j.gpu_memory_mb},
          {"waiter", j.waiter.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(j.waiter)}};
      if (j.scheduled_for) o["scheduled_us"] = to_epoch_us(*j.scheduled_for);
      if (j.concurrency.enabled()) {
        o["key"] = j.concurrency.key;
        o["max_running"] = j.concurrency.max_running;
        o["rate_max"] = j.concurrency.rate_max;
        o["rate_window_ms"] = j.concurrency.rate_window.count();
      }
      if (j.retry.enabled()) o["retry"] = retry_to_db_json(j.retry);
      arr.push_back(std::move(o));
    }
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared(sql::kPushBatch.name, arr.dump());
    std::vector<int64_t> ids;
    ids.reserve(r.size());
    for (const auto& row : r) ids.push_back(row["id"].as<int64_t>());
    // Identity values are drawn in input order; RETURNING's order is not
    // guaranteed, so sort to line ids up with `jobs`.
    std::sort(ids.begin(), ids.end());
    if (ids.size() != jobs.size()) throw std::runtime_error("inserted row count differs from batch size");
    return ids;
  });
}

StatusOr<std::vector<ClaimedJob>> Queue::claim(const std::string& worker_id,
                                               const std::vector<std::string>& tags, int max_jobs,
                                               const ClaimCapacity& capacity) {
  if (max_jobs <= 0 || tags.empty()) return std::vector<ClaimedJob>{};
  return impl_->run("claim", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    const std::string& wake = impl_->wake_channel;
    auto r = tx.exec_prepared(sql::kClaim.name, worker_id, to_text_array(tags), max_jobs, capacity.free_gpus,
                              int_array(capacity.device_memory_mb), wake.empty() ? nullptr : wake.c_str());
    // Columns by name, looked up once per result (the hot path).
    const auto id = r.column_number("id"), attempt = r.column_number("attempt"), tag = r.column_number("tag"),
               language = r.column_number("language"), payload = r.column_number("payload"),
               priority = r.column_number("priority"), timeout_s = r.column_number("timeout_s"),
               script_path = r.column_number("script_path"), created_us = r.column_number("created_us"),
               started_us = r.column_number("started_us"), gpus = r.column_number("gpus"),
               due_us = r.column_number("due_us");
    std::vector<ClaimedJob> jobs;
    jobs.reserve(r.size());
    impl_->next_due.reset();  // the claim knows better than what was heard before
    for (const auto& row : r) {
      if (row[id].is_null()) {  // a short claim's last row: when to look again
        if (!row[due_us].is_null())
          impl_->next_due =
              std::chrono::steady_clock::now() + std::chrono::microseconds(row[due_us].as<int64_t>());
        continue;
      }
      ClaimedJob j;
      j.id = row[id].as<int64_t>();
      j.attempt = row[attempt].as<int32_t>();
      j.tag = row[tag].as<std::string>();
      j.language = row[language].as<std::string>();
      j.payload = nlohmann::ordered_json::parse(row[payload].c_str());
      j.priority = row[priority].as<int>();
      j.timeout_s = row[timeout_s].as<int>();
      j.script_path = row[script_path].as<std::string>();
      j.created_at = from_epoch_us(row[created_us].as<int64_t>());
      j.started_at = from_epoch_us(row[started_us].as<int64_t>());
      j.gpus = row[gpus].as<int>();
      j.due_at = from_epoch_us(row[due_us].as<int64_t>());
      jobs.push_back(std::move(j));
    }
    return jobs;
  });
}

StatusOr<HeartbeatReply> Queue::heartbeat(const std::string& worker_id, const std::vector<Lease>& leases) {
  if (leases.empty()) return HeartbeatReply{};
  return impl_->run("heartbeat", [&](pqxx::connection& c) {
    std::vector<int64_t> ids, attempts;
    ids.reserve(leases.size());
    attempts.reserve(leases.size());
    for (const Lease& l : leases) {
      ids.push_back(l.id);
      attempts.push_back(l.attempt);
    }
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared(sql::kHeartbeat.name, worker_id, int_array(ids), int_array(attempts));
    std::vector<int64_t> held;
    HeartbeatReply reply;
    for (const auto& row : r) {
      const int64_t id = row["id"].as<int64_t>();
      held.push_back(id);
      if (row["cancel_requested"].as<bool>()) reply.canceled.push_back(id);
    }
    std::sort(held.begin(), held.end());
    for (const Lease& l : leases) {
      if (!std::binary_search(held.begin(), held.end(), l.id)) reply.lost.push_back(l.id);
    }
    return reply;
  });
}

StatusOr<std::vector<int64_t>> Queue::complete(const std::string& worker_id,
                                               const std::vector<Completion>& completions,
                                               std::vector<int64_t>* retried,
                                               const std::vector<LogChunk>& logs) {
  if (completions.empty()) return std::vector<int64_t>{};
  nlohmann::json arr = nlohmann::json::array();
  for (const Completion& k : completions) {
    arr.push_back({{"id", k.id},
                   {"attempt", k.attempt},
                   {"status", to_string(k.status)},
                   {"result", k.result},
                   {"error", k.error},
                   {"resources", k.resources}});
  }
  const std::string completions_json = arr.dump(), logs_json = log_chunks_json(logs).dump();
  std::vector<int64_t> ids, retried_ids;
  Status s = with_log_race_retries(*impl_->session, "complete", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared(sql::kComplete.name, worker_id, completions_json, logs_json);
    for (const auto& row : r) {
      ids.push_back(row["id"].as<int64_t>());
      if (row["retried"].as<bool>()) retried_ids.push_back(ids.back());
    }
  });
  if (!s) return s;
  if (retried) retried->insert(retried->end(), retried_ids.begin(), retried_ids.end());
  std::sort(ids.begin(), ids.end());
  return ids;
}

Status Queue::release(const std::string& worker_id, const std::vector<Lease>& leases) {
  if (leases.empty()) return Status::ok();
  auto r = impl_->run("release", [&](pqxx::connection& c) {
    std::vector<int64_t> ids, attempts;
    for (const Lease& l : leases) {
      ids.push_back(l.id);
      attempts.push_back(l.attempt);
    }
    pqxx::nontransaction tx(c);
    tx.exec_prepared(sql::kRelease.name, worker_id, int_array(ids), int_array(attempts));
    return true;
  });
  return r.status();
}

const char* to_string(JobStatus s) {
  switch (s) {
    case JobStatus::success:
      return "success";
    case JobStatus::failure:
      return "failure";
    case JobStatus::timeout:
      return "timeout";
    case JobStatus::canceled:
      return "canceled";
  }
  return "failure";
}

std::optional<JobStatus> job_status_from_string(std::string_view s) {
  if (s == "success") return JobStatus::success;
  if (s == "failure") return JobStatus::failure;
  if (s == "timeout") return JobStatus::timeout;
  if (s == "canceled") return JobStatus::canceled;
  return std::nullopt;
}

}  // namespace quern::queue
