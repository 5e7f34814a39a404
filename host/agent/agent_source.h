// The agent's job source: the worker's queue operations as calls to the
// server's /api/agent/* endpoints. The server claims on the agent's behalf
// with the token's tags; the agent never sees the database.
#pragma once

#include <deque>
#include <memory>
#include <string>

#include "host/agent/api_client.h"
#include "host/worker/job_source.h"

namespace quern::agent {

class AgentJobSource final : public worker::JobSource {
 public:
  // long_poll: how long one claim request may wait on the server for jobs.
  AgentJobSource(const std::string& server_url, const std::string& token,
                 std::chrono::milliseconds long_poll = std::chrono::seconds(2));

  Status listen(const std::vector<std::string>&) override { return Status::ok(); }
  StatusOr<bool> wait_for_jobs(std::chrono::milliseconds timeout, const std::string& worker_id,
                               const std::vector<std::string>& tags, int max_jobs,
                               const queue::ClaimCapacity& capacity) override;
  StatusOr<std::vector<queue::ClaimedJob>> claim(const std::string& worker_id,
                                                 const std::vector<std::string>& tags, int max_jobs,
                                                 const queue::ClaimCapacity& capacity) override;
  std::chrono::milliseconds max_wait_slice() const override { return long_poll_; }
  bool claims_while_waiting() const override { return true; }  // the server re-checks while we wait

  StatusOr<queue::HeartbeatReply> heartbeat(const std::string& worker_id,
                                            const std::vector<queue::Lease>& leases) override;
  StatusOr<std::vector<int64_t>> complete(const std::string& worker_id,
                                          const std::vector<queue::Completion>& completions,
                                          std::vector<int64_t>* retried,
                                          const std::vector<queue::LogChunk>& logs) override;
  // When the server said so at registration (older servers ignore chunks
  // sent with completions).
  bool completes_with_logs() const override { return complete_takes_chunks_; }
  Status append_logs(const std::string& worker_id, const std::vector<queue::LogChunk>& chunks) override;
  Status release(const std::string& worker_id, const std::vector<queue::Lease>& leases) override;
  // The server sweeps expired leases; an agent has nothing to do.
  StatusOr<queue::RecoveryReport> recover_expired(std::chrono::milliseconds) override {
    return queue::RecoveryReport{};
  }
  Status register_worker(const queue::WorkerInfo& info) override;
  Status touch_worker(const std::string& worker_id, int running,
                      const queue::WorkerTelemetry& telemetry) override;
  Status unregister_worker(const std::string& worker_id) override;

 private:
  StatusOr<std::vector<queue::ClaimedJob>> claim_request(const std::string& worker_id, int max_jobs,
                                                         const queue::ClaimCapacity& capacity,
                                                         std::chrono::milliseconds wait);
  ApiClient client_;
  std::chrono::milliseconds long_poll_;
  std::deque<queue::ClaimedJob> stash_;  // claimed by a long poll, not yet handed to the worker
  bool complete_takes_chunks_ = false;   // from the last register answer's "features"
};

// Parses one claimed job of /api/agent/claim's answer.
StatusOr<queue::ClaimedJob> claimed_job_from_json(const nlohmann::ordered_json& j);

}  // namespace quern::agent
