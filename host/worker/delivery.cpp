#include "host/worker/delivery.h"

#include <utility>

namespace quern::worker {
namespace {

bool refused_for_good(const Status& s) { return s.code() == StatusCode::invalid_argument; }

// Sends the batch whole; on a refusal for good, row by row. `send` sends a
// sub-batch; `isolate` handles one refused row (and may send again).
template <typename Row, typename Send, typename Isolate>
Status deliver(std::vector<Row>& batch, Send&& send, Isolate&& isolate) {
  if (batch.empty()) return Status::ok();
  Status whole = send(batch);
  if (whole) {
    batch.clear();
    return Status::ok();
  }
  if (!refused_for_good(whole) || batch.size() == 1) {
    if (!refused_for_good(whole)) return whole;
    isolate(batch.front(), whole);
    batch.clear();
    return Status::ok();
  }
  size_t done = 0;
  Status stopped;
  for (; done < batch.size(); ++done) {
    std::vector<Row> one{batch[done]};
    Status s = send(one);
    if (s) continue;
    if (!refused_for_good(s)) {
      stopped = s;
      break;
    }
    isolate(batch[done], s);
  }
  batch.erase(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(done));
  return stopped;
}

}  // namespace

Status deliver_logs(JobSource& source, const std::string& worker_id, std::vector<queue::LogChunk>& batch,
                    const OnIsolated& on_isolated) {
  return deliver(
      batch, [&](const std::vector<queue::LogChunk>& b) { return source.append_logs(worker_id, b); },
      [&](const queue::LogChunk& c, const Status& why) {
        on_isolated(c.job_id, Isolated::log_chunk,
                    "part of the job's log could not be stored: " + why.message());
      });
}

Status deliver_completions(JobSource& source, const std::string& worker_id,
                           std::vector<queue::Completion>& batch, std::vector<int64_t>& accepted,
                           std::vector<int64_t>& retried, const OnIsolated& on_isolated) {
  auto send = [&](const std::vector<queue::Completion>& b) -> Status {
    auto ids = source.complete(worker_id, b, &retried, {});
    if (!ids) return ids.status();
    accepted.insert(accepted.end(), ids->begin(), ids->end());
    return Status::ok();
  };
  return deliver(batch, send, [&](const queue::Completion& c, const Status& why) {
    const std::string reason = "the job's outcome could not be stored: " + why.message();
    queue::Completion failed{c.id, c.attempt, queue::JobStatus::failure, nullptr, reason};
    // The reason quotes the database, which writes valid text; if even this
    // is refused the completion is dropped (the lease expires).
    if (Status s = send({failed}); s)
      on_isolated(c.id, Isolated::completion_replaced, reason);
    else
      on_isolated(c.id, Isolated::completion_dropped, reason + "; storing the failure: " + s.message());
  });
}

Status deliver_outputs(JobSource& source, const std::string& worker_id, std::vector<queue::LogChunk>& logs,
                       std::vector<queue::Completion>& completions, std::map<int64_t, std::string>& poisoned,
                       std::vector<int64_t>& accepted, std::vector<int64_t>& retried,
                       const OnIsolated& on_isolated) {
  const auto fail_poisoned = [&] {
    for (queue::Completion& c : completions) {
      auto it = poisoned.find(c.id);
      if (it == poisoned.end()) continue;
      c.status = queue::JobStatus::failure;
      c.result = nullptr;
      c.error = it->second;
      poisoned.erase(it);
    }
  };
  if (!logs.empty() && !completions.empty() && source.completes_with_logs()) {
    fail_poisoned();
    auto ids = source.complete(worker_id, completions, &retried, logs);  // *retried: only when it succeeds
    if (ids) {
      accepted.insert(accepted.end(), ids->begin(), ids->end());
      logs.clear();
      completions.clear();
      return Status::ok();
    }
    if (!refused_for_good(ids.status())) return ids.status();
    // Nothing was stored: apart, each delivery finds the row it refuses.
  }
  if (Status s = deliver_logs(source, worker_id, logs, on_isolated); !s) return s;
  if (completions.empty()) return Status::ok();
  fail_poisoned();
  return deliver_completions(source, worker_id, completions, accepted, retried, on_isolated);
}

}  // namespace quern::worker
