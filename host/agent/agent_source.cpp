#include "host/agent/agent_source.h"

namespace quern::agent {
namespace {

using Json = nlohmann::ordered_json;

Json leases_json(const std::vector<queue::Lease>& leases) {
  Json out = Json::array();
  for (const auto& l : leases) out.push_back(Json{{"id", l.id}, {"attempt", l.attempt}});
  return out;
}

Json chunks_json(const std::vector<queue::LogChunk>& chunks) {
  Json out = Json::array();
  for (const auto& c : chunks)
    out.push_back(Json{{"id", c.job_id}, {"attempt", c.attempt}, {"text", c.text}});
  return out;
}

// The integer array `name` of an answer (absent = empty); false when malformed.
bool ids_from(const Json& answer, const char* name, std::vector<int64_t>& out) {
  if (!answer.is_object()) return false;
  auto it = answer.find(name);
  if (it == answer.end()) return true;
  if (!it->is_array()) return false;
  for (const Json& v : *it) {
    if (!v.is_number_integer()) return false;
    out.push_back(v.get<int64_t>());
  }
  return true;
}

}  // namespace

StatusOr<queue::ClaimedJob> claimed_job_from_json(const Json& j) {
  try {
    queue::ClaimedJob c;
    c.id = j.at("id").get<int64_t>();
    c.attempt = j.at("attempt").get<int32_t>();
    c.tag = j.at("tag").get<std::string>();
    c.language = j.at("language").get<std::string>();
    c.payload = j.at("payload");
    c.priority = j.value("priority", queue::kDefaultPriority);
    c.timeout_s = j.value("timeout_s", 0);
    c.script_path = j.value("script_path", "");
    c.created_at = queue::Clock::time_point(std::chrono::microseconds(j.value("created_at_us", int64_t{0})));
    c.started_at = queue::Clock::time_point(std::chrono::microseconds(j.value("started_at_us", int64_t{0})));
    // A server older than the agent sends no due time: the wait then counts from creation.
    c.due_at = queue::Clock::time_point(
        std::chrono::microseconds(j.value("due_at_us", j.value("created_at_us", int64_t{0}))));
    c.gpus = j.value("gpus", 0);
    return c;
  } catch (const std::exception& e) {
    return Status::unavailable(std::string("malformed job from the server: ") + e.what());
  }
}

AgentJobSource::AgentJobSource(const std::string& server_url, const std::string& token,
                               std::chrono::milliseconds long_poll)
    : client_(server_url, token), long_poll_(long_poll) {}

StatusOr<std::vector<queue::ClaimedJob>> AgentJobSource::claim_request(const std::string& worker_id,
                                                                       int max_jobs,
                                                                       const queue::ClaimCapacity& capacity,
                                                                       std::chrono::milliseconds wait) {
  Json body{{"worker_id", worker_id}, {"slots", max_jobs}, {"wait_ms", wait.count()}};
  if (!capacity.device_memory_mb.empty())
    body["gpus"] = {{"free", capacity.free_gpus}, {"devices_mb", capacity.device_memory_mb}};
  auto r = client_.call("POST", "/api/agent/claim", body, wait + std::chrono::seconds(15));
  if (!r) return r.status();
  std::vector<queue::ClaimedJob> out;
  if (!r->is_object() || !r->value("jobs", Json::array()).is_array())
    return Status::unavailable("claim: malformed answer from the server");
  for (const auto& j : r->value("jobs", Json::array())) {
    auto c = claimed_job_from_json(j);
    if (!c) return c.status();
    out.push_back(std::move(*c));
  }
  return out;
}

StatusOr<bool> AgentJobSource::wait_for_jobs(std::chrono::milliseconds timeout, const std::string& worker_id,
                                             const std::vector<std::string>&, int max_jobs,
                                             const queue::ClaimCapacity& capacity) {
  if (!stash_.empty()) return true;
  auto jobs = claim_request(worker_id, std::max(1, max_jobs), capacity, timeout);
  if (!jobs) return jobs.status();
  for (auto& j : *jobs) stash_.push_back(std::move(j));
  return !stash_.empty();
}

StatusOr<std::vector<queue::ClaimedJob>> AgentJobSource::claim(const std::string& worker_id,
                                                               const std::vector<std::string>&, int max_jobs,
                                                               const queue::ClaimCapacity& capacity) {
  std::vector<queue::ClaimedJob> out;
  while (!stash_.empty() && static_cast<int>(out.size()) < max_jobs) {
    out.push_back(std::move(stash_.front()));
    stash_.pop_front();
  }
  if (!out.empty() || max_jobs <= 0) return out;
  return claim_request(worker_id, max_jobs, capacity, std::chrono::milliseconds(0));
}

StatusOr<queue::HeartbeatReply> AgentJobSource::heartbeat(const std::string& worker_id,
                                                          const std::vector<queue::Lease>& leases) {
  auto r = client_.call("POST", "/api/agent/heartbeat",
                        Json{{"worker_id", worker_id}, {"leases", leases_json(leases)}});
  if (!r) return r.status();
  queue::HeartbeatReply reply;
  if (!ids_from(*r, "canceled", reply.canceled) || !ids_from(*r, "lost", reply.lost))
    return Status::unavailable("heartbeat: malformed answer from the server");
  return reply;
}

StatusOr<std::vector<int64_t>> AgentJobSource::complete(const std::string& worker_id,
                                                        const std::vector<queue::Completion>& completions,
                                                        std::vector<int64_t>* retried,
                                                        const std::vector<queue::LogChunk>& logs) {
  Json list = Json::array();
  for (const auto& c : completions)
    list.push_back(Json{{"id", c.id},
                        {"attempt", c.attempt},
                        {"status", queue::to_string(c.status)},
                        {"result", Json(c.result)},
                        {"error", c.error},
                        {"resources", Json(c.resources)}});
  Json body{{"worker_id", worker_id}, {"completions", list}};
  if (!logs.empty()) body["chunks"] = chunks_json(logs);
  auto r = client_.call("POST", "/api/agent/complete", body);
  if (!r) return r.status();
  std::vector<int64_t> accepted;
  if (!ids_from(*r, "accepted", accepted))
    return Status::unavailable("complete: malformed answer from the server");
  // "retried" is absent from servers older than the agent: nothing counted.
  if (retried && r->contains("retried")) ids_from(*r, "retried", *retried);
  return accepted;
}

Status AgentJobSource::append_logs(const std::string& worker_id, const std::vector<queue::LogChunk>& chunks) {
  return client_
      .call("POST", "/api/agent/logs", Json{{"worker_id", worker_id}, {"chunks", chunks_json(chunks)}})
      .status();
}

Status AgentJobSource::release(const std::string& worker_id, const std::vector<queue::Lease>& leases) {
  return client_
      .call("POST", "/api/agent/release", Json{{"worker_id", worker_id}, {"leases", leases_json(leases)}})
      .status();
}

Status AgentJobSource::register_worker(const queue::WorkerInfo& info) {
  auto r = client_.call("POST", "/api/agent/register",
                        Json{{"worker_id", info.id},
                             {"slots", info.slots},
                             {"version", info.version},
                             {"hostname", info.hostname},
                             {"isolation", info.isolation},
                             {"pid", info.pid}});
  if (!r) return r.status();
  // A server older than the agent names no features: logs go apart.
  complete_takes_chunks_ = false;
  if (auto it = r->find("features"); it != r->end() && it->is_array())
    for (const Json& f : *it)
      if (f == "complete-chunks") complete_takes_chunks_ = true;
  return Status::ok();
}

Status AgentJobSource::touch_worker(const std::string& worker_id, int,
                                    const queue::WorkerTelemetry& telemetry) {
  // The heartbeat endpoint refreshes the registry row as well.
  return client_
      .call("POST", "/api/agent/heartbeat",
            Json{{"worker_id", worker_id}, {"leases", Json::array()}, {"telemetry", telemetry.to_json()}})
      .status();
}

Status AgentJobSource::unregister_worker(const std::string& worker_id) {
  return client_.call("POST", "/api/agent/unregister", Json{{"worker_id", worker_id}}).status();
}

}  // namespace quern::agent
