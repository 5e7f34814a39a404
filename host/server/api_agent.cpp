// Agent endpoints: a worker that reaches the queue through the server. The
// server claims from PostgreSQL on the agent's behalf with its token's tags;
// the lease belongs to "agent:<token id>:<agent's own id>", so one agent can
// never heartbeat, complete or release another worker's jobs. Completions are
// conditional on the claim's attempt, so posting a result twice (a retry
// after a lost response) is accepted once.
#include <thread>

#include "host/server/api_context.h"

namespace quern::server {
namespace {

using Json = nlohmann::ordered_json;
using namespace std::chrono_literals;

StatusOr<std::string> lease_owner(const Json& body, const auth::Principal& who) {
  auto it = body.find("worker_id");
  if (it == body.end() || !it->is_string()) return Status::error("worker_id (string) is required");
  const std::string id = it->get<std::string>();
  if (id.empty() || id.size() > 64) return Status::error("worker_id must be 1 to 64 characters");
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return Status::error("worker_id may hold letters, digits, '-', '_' and '.' only");
  return "agent:" + who.token_id + ":" + id;
}

StatusOr<std::vector<queue::Lease>> parse_leases(const Json& body) {
  std::vector<queue::Lease> leases;
  auto it = body.find("leases");
  if (it == body.end()) return leases;
  if (!it->is_array()) return Status::error("leases must be an array of {id, attempt}");
  for (const auto& l : *it) {
    if (!l.is_object() || !l.contains("id") || !l.contains("attempt") || !l["id"].is_number_integer() ||
        !l["attempt"].is_number_integer())
      return Status::error("each lease needs integer id and attempt");
    leases.push_back({l["id"].get<int64_t>(), l["attempt"].get<int32_t>()});
  }
  return leases;
}

Json claimed_json(const queue::ClaimedJob& j) {
  return Json{
      {"id", j.id},
      {"attempt", j.attempt},
      {"tag", j.tag},
      {"language", j.language},
      {"payload", j.payload},
      {"priority", j.priority},
      {"timeout_s", j.timeout_s},
      {"script_path", j.script_path},
      {"created_at_us",
       std::chrono::duration_cast<std::chrono::microseconds>(j.created_at.time_since_epoch()).count()},
      {"started_at_us",
       std::chrono::duration_cast<std::chrono::microseconds>(j.started_at.time_since_epoch()).count()},
      {"gpus", j.gpus}};
}

// The optional "gpus": {"free": n, "devices_mb": [..]} of a claim request.
StatusOr<queue::ClaimCapacity> claim_capacity(const Json& body) {
  queue::ClaimCapacity c;
  auto it = body.find("gpus");
  if (it == body.end()) return c;
  const Json& g = *it;
  if (!g.is_object() || !g.contains("free") || !g["free"].is_number_integer() || !g.contains("devices_mb") ||
      !g["devices_mb"].is_array())
    return Status::error("gpus must be {\"free\": <int>, \"devices_mb\": [<int>, ...]}");
  for (const Json& m : g["devices_mb"]) {
    if (!m.is_number_integer() || m.get<int64_t>() < 0 || m.get<int64_t>() > (1 << 30))
      return Status::error("gpus.devices_mb must hold non-negative integers");
    c.device_memory_mb.push_back(m.get<int>());
  }
  c.free_gpus = g["free"].get<int>();
  if (c.free_gpus < 0 || c.free_gpus > static_cast<int>(c.device_memory_mb.size()))
    return Status::error("gpus.free must be from 0 to the number of devices");
  return c;
}

// Wraps a handler that needs the parsed body and the lease owner.
using AgentHandler =
    std::function<http::Response(const Json& body, const std::string& owner, const auth::Principal& who)>;
AuthedHandler agent_handler(AgentHandler inner) {
  return [inner = std::move(inner)](const http::Request& req, const auth::Principal& who) {
    auto body = body_object(req);
    if (!body) return bad_request(body.message());
    auto owner = lease_owner(*body, who);
    if (!owner) return bad_request(owner.message());
    return inner(*body, *owner, who);
  };
}

}  // namespace

void add_agent_routes(ApiContext& ctx, http::Router& router) {
  add_route(ctx, router, "POST", "/api/agent/register", "agent", "An agent announces itself",
            agent_handler([&ctx](const Json& body, const std::string& owner, const auth::Principal& who) {
              queue::WorkerInfo w;
              w.id = owner;
              w.kind = "agent";
              w.group = who.group;
              w.tags = who.tags;
              w.slots = body.value("slots", 0);
              w.version = body.value("version", "");
              w.hostname = body.value("hostname", "");
              w.pid = body.value("pid", 0);
              auto q = ctx.queues.acquire();
              if (!q) return unavailable(q.status());
              if (Status s = (*q)->register_worker(w); !s) return unavailable(s);
              return json_ok(Json{{"lease_owner", owner}, {"group", who.group}, {"tags", who.tags}});
            }));
  add_route(ctx, router, "POST", "/api/agent/unregister", "agent", "An agent leaves",
            agent_handler([&ctx](const Json&, const std::string& owner, const auth::Principal&) {
              auto q = ctx.queues.acquire();
              if (!q) return unavailable(q.status());
              if (Status s = (*q)->unregister_worker(owner); !s) return unavailable(s);
              return json_ok(Json{{"ok", true}});
            }));
  // Long poll: answers as soon as jobs are claimed, or empty after wait_ms.
  add_route(ctx, router, "POST", "/api/agent/claim", "agent", "Claim jobs of the token’s tags (long poll)",
            agent_handler([&ctx](const Json& body, const std::string& owner, const auth::Principal& who) {
              const int slots = body.value("slots", 1);
              if (slots < 1 || slots > 1024) return bad_request("slots must be from 1 to 1024");
              auto capacity = claim_capacity(body);
              if (!capacity) return bad_request(capacity.message());
              const auto wait =
                  std::min(std::chrono::milliseconds(body.value("wait_ms", 0)), ctx.options.max_wait);
              auto q = ctx.queues.acquire();
              if (!q) return unavailable(q.status());
              const auto deadline = std::chrono::steady_clock::now() + wait;
              if (wait.count() > 0) {
                if (Status s = (*q)->listen(who.tags); !s) return unavailable(s);
              }
              struct Unlisten {
                queue::Queue& q;
                ~Unlisten() { q.unlisten_all(); }
              } unlisten{**q};
              while (true) {
                auto jobs = (*q)->claim(owner, who.tags, slots, *capacity);
                if (!jobs) return unavailable(jobs.status());
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now());
                if (!jobs->empty() || left.count() <= 0) {
                  Json out = Json::array();
                  for (const auto& j : *jobs) out.push_back(claimed_json(j));
                  return json_ok(Json{{"jobs", out}});
                }
                // Woken by NOTIFY on the tags; at most 1 s between polls in case one was lost.
                auto woke = (*q)->wait_for_jobs(std::min(left, std::chrono::milliseconds(1000)));
                if (!woke) return unavailable(woke.status());
              }
            }));
  add_route(ctx, router, "POST", "/api/agent/heartbeat", "agent",
            "Refresh leases; learn of cancels and losses",
            agent_handler([&ctx](const Json& body, const std::string& owner, const auth::Principal&) {
              auto leases = parse_leases(body);
              if (!leases) return bad_request(leases.message());
              auto q = ctx.queues.acquire();
              if (!q) return unavailable(q.status());
              if (Status s = (*q)->touch_worker(owner, static_cast<int>(leases->size())); !s)
                return unavailable(s);
              if (leases->empty()) return json_ok(Json{{"canceled", Json::array()}, {"lost", Json::array()}});
              auto reply = (*q)->heartbeat(owner, *leases);
              if (!reply) return unavailable(reply.status());
              return json_ok(Json{{"canceled", reply->canceled}, {"lost", reply->lost}});
            }));
  add_route(ctx, router, "POST", "/api/agent/logs", "agent", "Append log chunks of held jobs",
            agent_handler([&ctx](const Json& body, const std::string& owner, const auth::Principal&) {
              auto it = body.find("chunks");
              if (it == body.end() || !it->is_array())
                return bad_request("chunks must be an array of {id, attempt, text}");
              std::vector<queue::Lease> leases;
              std::vector<queue::LogChunk> chunks;
              for (const auto& c : *it) {
                if (!c.is_object() || !c.value("id", Json()).is_number_integer() ||
                    !c.value("attempt", Json()).is_number_integer() || !c.value("text", Json()).is_string())
                  return bad_request("each chunk needs integer id and attempt and a text string");
                leases.push_back({c["id"].get<int64_t>(), c["attempt"].get<int32_t>()});
                chunks.push_back(
                    {c["id"].get<int64_t>(), c["attempt"].get<int32_t>(), c["text"].get<std::string>()});
              }
              auto q = ctx.queues.acquire();
              if (!q) return unavailable(q.status());
              // Only jobs this agent still holds may be written to.
              auto held = (*q)->heartbeat(owner, leases);
              if (!held) return unavailable(held.status());
              std::vector<queue::LogChunk> accepted;
              for (auto& ch : chunks)
                if (std::find(held->lost.begin(), held->lost.end(), ch.job_id) == held->lost.end())
                  accepted.push_back(std::move(ch));
              if (Status s = (*q)->append_logs(accepted); !s) return unavailable(s);
              return json_ok(Json{{"accepted", accepted.size()}, {"lost", held->lost}});
            }));
  add_route(ctx, router, "POST", "/api/agent/complete", "agent", "Post results (idempotent)",
            agent_handler([&ctx](const Json& body, const std::string& owner, const auth::Principal&) {
              auto it = body.find("completions");
              if (it == body.end() || !it->is_array()) return bad_request("completions must be an array");
              std::vector<queue::Completion> completions;
              for (const auto& c : *it) {
                queue::Completion done;
                auto status = c.is_object() && c.value("status", Json()).is_string()
                                  ? queue::job_status_from_string(c["status"].get<std::string>())
                                  : std::nullopt;
                if (!status || !c.value("id", Json()).is_number_integer() ||
                    !c.value("attempt", Json()).is_number_integer())
                  return bad_request(
                      "each completion needs integer id and attempt and a status "
                      "(success, failure, timeout, canceled)");
                done.id = c["id"].get<int64_t>();
                done.attempt = c["attempt"].get<int32_t>();
                done.status = *status;
                done.result = c.contains("result") ? nlohmann::json(c["result"]) : nlohmann::json();
                done.error = c.value("error", "");
                completions.push_back(std::move(done));
              }
              auto q = ctx.queues.acquire();
              if (!q) return unavailable(q.status());
              auto accepted = (*q)->complete(owner, completions);
              if (!accepted) return unavailable(accepted.status());
              Json refused = Json::array();
              for (const auto& c : completions)
                if (std::find(accepted->begin(), accepted->end(), c.id) == accepted->end())
                  refused.push_back(c.id);
              return json_ok(Json{{"accepted", *accepted}, {"refused", refused}});
            }));
  add_route(ctx, router, "POST", "/api/agent/release", "agent", "Hand held jobs back to the queue",
            agent_handler([&ctx](const Json& body, const std::string& owner, const auth::Principal&) {
              auto leases = parse_leases(body);
              if (!leases) return bad_request(leases.message());
              auto q = ctx.queues.acquire();
              if (!q) return unavailable(q.status());
              if (Status s = (*q)->release(owner, *leases); !s) return unavailable(s);
              return json_ok(Json{{"released", leases->size()}});
            }));
}

}  // namespace quern::server
