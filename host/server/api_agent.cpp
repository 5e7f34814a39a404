// Agent endpoints: a worker that reaches the queue through the server. The
// server claims from PostgreSQL on the agent's behalf with its token's tags;
// the lease belongs to "agent:<token id>:<agent's own id>", so one agent can
// never heartbeat, complete or release another worker's jobs. Completions are
// conditional on the claim's attempt, so posting a result twice (a retry
// after a lost response) is accepted once.
#include <algorithm>

#include "host/server/api_context.h"
#include "host/server/api_requests.h"

namespace quern::server {
namespace {

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
      {"due_at_us",
       std::chrono::duration_cast<std::chrono::microseconds>(j.due_at.time_since_epoch()).count()},
      {"gpus", j.gpus}};
}

// Wraps a handler that needs the parsed body and the lease owner.
using AgentHandler = std::function<http::Response(const Json& body, const std::string& owner,
                                                  const auth::Principal& who, DbLease& db)>;
AuthedHandler agent_handler(AgentHandler inner) {
  return [inner = std::move(inner)](const http::Request& req, const auth::Principal& who, DbLease& db) {
    auto body = body_object(req);
    if (!body) return error_response(body.status());
    auto owner = parse_agent_owner(*body, who.token_id);
    if (!owner) return error_response(owner.status());
    return inner(*body, *owner, who, db);
  };
}

// Long poll: answers as soon as jobs are claimed, or empty after the wait.
// Between claims it holds no connection: the server's one listener wakes
// it when jobs of its tags arrive (JobWaiters::watch_tags), and it claims
// again at least every second in case a notification was missed.
http::Response claim(ApiContext& ctx, const Json& body, const std::string& owner, const auth::Principal& who,
                     DbLease& db) {
  auto req = parse_claim_request(body);
  if (!req) return error_response(req.status());
  const auto wait = std::min(req->wait, ctx.options.max_wait);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::unique_ptr<JobWaiters::TagWatch> watch;
  if (wait.count() > 0) watch = ctx.waiters.watch_tags(who.tags);
  while (true) {
    if (Status s = db.reacquire(); !s) return error_response(s);
    auto jobs = db.queue().claim(owner, who.tags, req->slots, req->capacity);
    if (!jobs) return error_response(jobs.status());
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!jobs->empty() || left.count() <= 0) {
      Json out = Json::array();
      for (const auto& j : *jobs) out.push_back(claimed_json(j));
      return json_ok(Json{{"jobs", out}});
    }
    db.release();
    watch->wait(std::min(left, std::chrono::milliseconds(1000)));
  }
}

}  // namespace

void add_agent_routes(ApiContext& ctx, http::Router& router) {
  add_route(
      ctx, router, "POST", "/api/agent/register", "agent", "An agent announces itself",
      agent_handler([](const Json& body, const std::string& owner, const auth::Principal& who, DbLease& db) {
        auto reg = parse_agent_registration(body);
        if (!reg) return error_response(reg.status());
        queue::WorkerInfo w;
        w.id = owner;
        w.kind = "agent";
        w.group = who.group;
        w.tags = who.tags;
        w.slots = reg->slots;
        w.version = reg->version;
        w.hostname = reg->hostname;
        w.isolation = reg->isolation;
        w.pid = reg->pid;
        if (Status s = db.queue().register_worker(w); !s) return error_response(s);
        return json_ok(Json{{"lease_owner", owner}, {"group", who.group}, {"tags", who.tags}});
      }));
  add_route(ctx, router, "POST", "/api/agent/unregister", "agent", "An agent leaves",
            agent_handler([](const Json&, const std::string& owner, const auth::Principal&, DbLease& db) {
              if (Status s = db.queue().unregister_worker(owner); !s) return error_response(s);
              return json_ok(Json{{"ok", true}});
            }));
  add_route(ctx, router, "POST", "/api/agent/claim", "agent", "Claim jobs of the token’s tags (long poll)",
            agent_handler([&ctx](const Json& body, const std::string& owner, const auth::Principal& who,
                                 DbLease& db) { return claim(ctx, body, owner, who, db); }));
  add_route(
      ctx, router, "POST", "/api/agent/heartbeat", "agent", "Refresh leases; learn of cancels and losses",
      agent_handler([](const Json& body, const std::string& owner, const auth::Principal&, DbLease& db) {
        auto leases = parse_leases(body);
        if (!leases) return error_response(leases.status());
        std::optional<queue::WorkerTelemetry> telemetry;  // none: the row keeps its last
        if (auto it = body.find("telemetry"); it != body.end()) {
          auto t = queue::WorkerTelemetry::from_json(nlohmann::json(*it), "telemetry");
          if (!t) return error_response(t.status());
          telemetry = std::move(t).value();
        }
        auto& q = db.queue();
        if (Status s =
                q.touch_worker(owner, static_cast<int>(leases->size()), telemetry ? &*telemetry : nullptr);
            !s)
          return error_response(s);
        if (leases->empty()) return json_ok(Json{{"canceled", Json::array()}, {"lost", Json::array()}});
        auto reply = q.heartbeat(owner, *leases);
        if (!reply) return error_response(reply.status());
        return json_ok(Json{{"canceled", reply->canceled}, {"lost", reply->lost}});
      }));
  add_route(
      ctx, router, "POST", "/api/agent/logs", "agent", "Append log chunks of held jobs",
      agent_handler([](const Json& body, const std::string& owner, const auth::Principal&, DbLease& db) {
        auto chunks = parse_log_chunks(body);
        if (!chunks) return error_response(chunks.status());
        std::vector<queue::Lease> leases;
        for (const auto& c : *chunks) leases.push_back({c.job_id, c.attempt});
        auto& q = db.queue();
        // Only jobs this agent still holds may be written to.
        auto held = q.heartbeat(owner, leases);
        if (!held) return error_response(held.status());
        std::vector<queue::LogChunk> accepted;
        for (auto& ch : *chunks)
          if (std::find(held->lost.begin(), held->lost.end(), ch.job_id) == held->lost.end())
            accepted.push_back(std::move(ch));
        if (Status s = q.append_logs(accepted); !s) return error_response(s);
        return json_ok(Json{{"accepted", accepted.size()}, {"lost", held->lost}});
      }));
  add_route(
      ctx, router, "POST", "/api/agent/complete", "agent", "Post results (idempotent)",
      agent_handler([](const Json& body, const std::string& owner, const auth::Principal&, DbLease& db) {
        auto completions = parse_completions(body);
        if (!completions) return error_response(completions.status());
        std::vector<int64_t> retried;
        auto accepted = db.queue().complete(owner, *completions, &retried);
        if (!accepted) return error_response(accepted.status());
        Json refused = Json::array();
        for (const auto& c : *completions)
          if (std::find(accepted->begin(), accepted->end(), c.id) == accepted->end()) refused.push_back(c.id);
        return json_ok(Json{{"accepted", *accepted}, {"refused", refused}, {"retried", retried}});
      }));
  add_route(
      ctx, router, "POST", "/api/agent/release", "agent", "Hand held jobs back to the queue",
      agent_handler([](const Json& body, const std::string& owner, const auth::Principal&, DbLease& db) {
        auto leases = parse_leases(body);
        if (!leases) return error_response(leases.status());
        if (Status s = db.queue().release(owner, *leases); !s) return error_response(s);
        return json_ok(Json{{"released", leases->size()}});
      }));
}

}  // namespace quern::server
