// Where a worker gets its jobs and sends their outcomes: PostgreSQL directly
// (PgJobSource, `quern worker`) or the server's agent API over HTTP
// (host/agent, `quern agent`). The worker's logic is the same for both.
//
// Thread-safety: none, except interrupt(); the worker creates one source for
// its claimer thread (which also hears of cancellations) and one for its
// writer thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host/queue/queue.h"

namespace quern::worker {

class JobSource {
 public:
  virtual ~JobSource() = default;

  // --- claimer side ---
  virtual Status listen(const std::vector<std::string>& tags) = 0;
  // Listens on exactly these tags from now on (the served tags changed). A
  // notification sent in between may be missed: the caller claims right after.
  virtual Status relisten(const std::vector<std::string>& tags) { return listen(tags); }
  // Blocks up to timeout until jobs may be claimable. A source that long-polls
  // may claim up to max_jobs here already; claim() then returns those first.
  virtual StatusOr<bool> wait_for_jobs(std::chrono::milliseconds timeout, const std::string& worker_id,
                                       const std::vector<std::string>& tags, int max_jobs,
                                       const queue::ClaimCapacity& capacity) = 0;
  virtual StatusOr<std::vector<queue::ClaimedJob>> claim(const std::string& worker_id,
                                                         const std::vector<std::string>& tags, int max_jobs,
                                                         const queue::ClaimCapacity& capacity) = 0;
  // Whether wait_for_jobs itself claims (a long poll): then a wait that
  // found nothing was as good as a claim, and the claimer waits again
  // rather than polling with claim() between waits.
  virtual bool claims_while_waiting() const { return false; }
  // Longest single wait_for_jobs the claimer should ask for: how late it may
  // notice stop() or new tags when interrupt() cannot end a wait.
  virtual std::chrono::milliseconds max_wait_slice() const { return std::chrono::milliseconds(100); }
  // Ends the current, or else the next, wait early. Any thread, any time.
  // A source that cannot be interrupted keeps max_wait_slice() short.
  virtual void interrupt() {}
  // Names this claimer to the queue so that it can be woken alone (not
  // with every worker of its tags) when a job arrives. Optional.
  virtual Status listen_for_wakeups(const std::string& /*worker_id*/) { return Status::ok(); }
  // When a job of the claimed tags may next become claimable (a delayed job,
  // a retry's backoff, a key's rate window), if the source knows: the
  // claimer sleeps until then rather than waiting for its next poll.
  virtual std::optional<std::chrono::steady_clock::time_point> next_due() const { return std::nullopt; }

  // --- writer side ---
  virtual StatusOr<queue::HeartbeatReply> heartbeat(const std::string& worker_id,
                                                    const std::vector<queue::Lease>& leases) = 0;
  // As queue::Queue::complete: the accepted ids; those re-queued by a retry
  // policy also go to *retried (when given, and only when the call succeeds). `logs` (only when
  // completes_with_logs()) are stored with them, all or nothing, for leases
  // still held.
  virtual StatusOr<std::vector<int64_t>> complete(const std::string& worker_id,
                                                  const std::vector<queue::Completion>& completions,
                                                  std::vector<int64_t>* retried,
                                                  const std::vector<queue::LogChunk>& logs) = 0;
  // Whether complete() takes log chunks: a job's last output and its outcome
  // in one round trip. Otherwise the writer appends the logs first.
  virtual bool completes_with_logs() const { return false; }
  virtual Status append_logs(const std::string& worker_id, const std::vector<queue::LogChunk>& chunks) = 0;
  virtual Status release(const std::string& worker_id, const std::vector<queue::Lease>& leases) = 0;
  virtual StatusOr<queue::RecoveryReport> recover_expired(std::chrono::milliseconds lease_timeout) = 0;
  virtual Status register_worker(const queue::WorkerInfo& info) = 0;
  virtual Status touch_worker(const std::string& worker_id, int running,
                              const queue::WorkerTelemetry& telemetry) = 0;
  virtual Status unregister_worker(const std::string& worker_id) = 0;

  // This claimer claims no more (its worker stops): wake-ups of its tags go
  // to other claimers. Optional.
  virtual Status stop_waiting(const std::string& /*worker_id*/) { return Status::ok(); }

  // --- cancellations, on the claimer's source (optional) ---
  // Starts listening for cancellations of running jobs on the claimer's own
  // connection (one listening connection per worker: PostgreSQL signals
  // every listening backend on every NOTIFY); false when the source has no
  // push channel (an agent learns of cancels from heartbeats). With true,
  // wait_for_jobs() also ends when a cancellation arrives, and the claimer
  // takes them after every wait, busy or not.
  virtual StatusOr<bool> listen_cancels() { return false; }
  // The ids of jobs whose cancellation was requested since the last call
  // (any worker's: the caller keeps its own). Does not wait.
  virtual StatusOr<std::vector<int64_t>> take_cancels() { return std::vector<int64_t>{}; }
  // The database's schema version, for a source that reaches it directly;
  // -1 for one that goes through a server (which owns the schema).
  virtual StatusOr<int> schema_version() { return -1; }
};

// The PostgreSQL source: a thin forwarder to queue::Queue.
class PgJobSource final : public JobSource {
 public:
  explicit PgJobSource(std::unique_ptr<queue::Queue> q) : q_(std::move(q)) {}
  static StatusOr<std::unique_ptr<JobSource>> connect(const std::string& url, queue::QueueOptions options) {
    auto q = queue::Queue::connect(url, options);
    if (!q) return q.status();
    return std::unique_ptr<JobSource>(new PgJobSource(std::move(q).value()));
  }

  Status listen(const std::vector<std::string>& tags) override { return q_->listen(tags); }
  StatusOr<int> schema_version() override { return q_->schema_version(); }
  Status relisten(const std::vector<std::string>& tags) override {
    q_->unlisten_tags();  // keeps the wake and cancel channels
    return q_->listen(tags);
  }
  StatusOr<bool> wait_for_jobs(std::chrono::milliseconds timeout, const std::string&,
                               const std::vector<std::string>&, int, const queue::ClaimCapacity&) override {
    return q_->wait_for_jobs(timeout);
  }
  // Waits end on a NOTIFY or interrupt(): no slicing needed.
  std::chrono::milliseconds max_wait_slice() const override { return std::chrono::hours(1); }
  void interrupt() override { q_->interrupt(); }
  Status listen_for_wakeups(const std::string& worker_id) override {
    return q_->listen_for_wakeups(worker_id);
  }
  std::optional<std::chrono::steady_clock::time_point> next_due() const override { return q_->next_due(); }
  StatusOr<std::vector<queue::ClaimedJob>> claim(const std::string& worker_id,
                                                 const std::vector<std::string>& tags, int max_jobs,
                                                 const queue::ClaimCapacity& capacity) override {
    return q_->claim(worker_id, tags, max_jobs, capacity);
  }
  StatusOr<queue::HeartbeatReply> heartbeat(const std::string& worker_id,
                                            const std::vector<queue::Lease>& leases) override {
    return q_->heartbeat(worker_id, leases);
  }
  StatusOr<std::vector<int64_t>> complete(const std::string& worker_id,
                                          const std::vector<queue::Completion>& completions,
                                          std::vector<int64_t>* retried,
                                          const std::vector<queue::LogChunk>& logs) override {
    return q_->complete(worker_id, completions, retried, logs);
  }
  bool completes_with_logs() const override { return true; }
  Status append_logs(const std::string&, const std::vector<queue::LogChunk>& chunks) override {
    return q_->append_logs(chunks);
  }
  Status release(const std::string& worker_id, const std::vector<queue::Lease>& leases) override {
    return q_->release(worker_id, leases);
  }
  StatusOr<queue::RecoveryReport> recover_expired(std::chrono::milliseconds lease_timeout) override {
    return q_->recover_expired(lease_timeout);
  }
  Status register_worker(const queue::WorkerInfo& info) override { return q_->register_worker(info); }
  Status touch_worker(const std::string& worker_id, int running,
                      const queue::WorkerTelemetry& telemetry) override {
    return q_->touch_worker(worker_id, running, &telemetry);
  }
  Status unregister_worker(const std::string& worker_id) override { return q_->unregister_worker(worker_id); }
  Status stop_waiting(const std::string& worker_id) override { return q_->stop_waiting(worker_id); }
  StatusOr<bool> listen_cancels() override {
    if (Status s = q_->listen_channel(queue::kCancelChannel); !s) return s;
    return true;
  }
  StatusOr<std::vector<int64_t>> take_cancels() override;

 private:
  std::unique_ptr<queue::Queue> q_;
};

}  // namespace quern::worker
