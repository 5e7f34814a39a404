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

// In the register answer's "features": /api/agent/complete stores the
// "chunks" sent with the completions (docs/openapi.yaml).
constexpr const char* kCompleteTakesChunks = "complete-chunks";

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

http::Response jobs_response(const std::vector<queue::ClaimedJob>& jobs) {
  Json out = Json::array();
  for (const auto& j : jobs) out.push_back(claimed_json(j));
  return json_ok(Json{{"jobs", out}});
}

// The claim again after an empty one: no sooner than the claim's own due
// time (a delayed job, a retry's backoff, a key's rate window), at most a
// second later (a missed notification).
std::chrono::milliseconds recheck_after(queue::Queue& q) {
  auto due = q.next_due();
  if (!due) return http::Deferred::kMaxRecheck;
  return std::chrono::ceil<std::chrono::milliseconds>(*due - std::chrono::steady_clock::now());
}

// Jobs claimed for an agent: more may be waiting — a notification may stand
// for several jobs, and wakes one parked poll of the tag (JobWaiters) — so
// the claim passes the wake-up on to one other parked poll of its tags, or
// two when it came back full, until a claim finds nothing. A trickle of jobs
// costs two or three claims each however many agents idle; a batch reaches
// the polls it needs in a few rounds.
void pass_wake_on(ApiContext& ctx, const std::vector<std::string>& tags, size_t claimed, int slots,
                  const JobWaiters::TagWatch* self) {
  if (claimed == 0) return;
  ctx.waiters.wake_tags(tags, claimed >= static_cast<size_t>(slots) ? 2 : 1, self);
}

// A long poll that found nothing: parked by the HTTP layer (no handler
// thread, no database connection) until the server's one listener wakes it
// when jobs of its tags arrive (JobWaiters::watch_tags), its re-check is due
// (at most a second, in case a notification was missed), or its deadline
// passes (then it answers no jobs). Each resume borrows a connection for one
// claim and gives it back.
// Holds copies of what it needs of the request; the ApiContext outlives it
// (the server stops the HTTP layer, which drops every deferral, first).
class ClaimWait final : public http::Deferred {
 public:
  ClaimWait(ApiContext& ctx, std::chrono::steady_clock::time_point deadline, std::string owner,
            std::vector<std::string> tags, ClaimRequest req)
      : Deferred(deadline),
        ctx_(ctx),
        owner_(std::move(owner)),
        tags_(std::move(tags)),
        req_(std::move(req)) {}

  // Before the first claim: a job pushed after it wakes this deferral, even
  // before the HTTP layer parked it.
  void watch() { watch_ = ctx_.waiters.watch_tags(tags_, waker()); }

  // After the handler's own empty claim on q.
  void first_recheck(queue::Queue& q) { recheck_within(recheck_after(q)); }
  const JobWaiters::TagWatch* tag_watch() const { return watch_.get(); }

  std::optional<http::Response> resume() override {
    auto db = ctx_.acquire();
    if (!db) return error_response(db.status());
    auto jobs = db->queue().claim(owner_, tags_, req_.slots, req_.capacity);
    if (!jobs) return error_response(jobs.status());
    if (jobs->empty()) {
      recheck_within(recheck_after(db->queue()));
      return std::nullopt;
    }
    pass_wake_on(ctx_, tags_, jobs->size(), req_.slots, watch_.get());
    return jobs_response(*jobs);
  }
  // No last claim: an agent polls again at once, and that poll's first
  // claim finds whatever this one would have (a third of an idle agent's
  // claims, with 2 s polls and the 1 s re-check).
  http::Response expire() override { return jobs_response({}); }

 private:
  ApiContext& ctx_;
  const std::string owner_;
  const std::vector<std::string> tags_;
  const ClaimRequest req_;
  std::unique_ptr<JobWaiters::TagWatch> watch_;  // destroyed first: no wake-up comes after
};

// Long poll: answers as soon as jobs are claimed, or with {"jobs": []} after
// the wait. Claims once here; when that finds nothing and the agent waits,
// gives the connection back and defers to a ClaimWait.
http::Response claim(ApiContext& ctx, const Json& body, const std::string& owner, const auth::Principal& who,
                     DbLease& db) {
  auto req = parse_claim_request(body);
  if (!req) return error_response(req.status());
  const auto wait = std::min(req->wait, ctx.options.max_wait);
  std::shared_ptr<ClaimWait> later;
  if (wait.count() > 0) {
    later = std::make_shared<ClaimWait>(ctx, std::chrono::steady_clock::now() + wait, owner, who.tags, *req);
    later->watch();
  }
  auto jobs = db.queue().claim(owner, who.tags, req->slots, req->capacity);
  if (!jobs) return error_response(jobs.status());
  pass_wake_on(ctx, who.tags, jobs->size(), req->slots, later ? later->tag_watch() : nullptr);
  if (!jobs->empty() || !later) return jobs_response(*jobs);
  later->first_recheck(db.queue());
  db.release();
  http::Response deferred;
  deferred.defer = std::move(later);
  return deferred;
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
        // What this server takes beyond the first agent protocol, so that
        // an agent never sends what an older server would ignore.
        return json_ok(Json{{"lease_owner", owner},
                            {"group", who.group},
                            {"tags", who.tags},
                            {"features", Json::array({kCompleteTakesChunks})}});
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
        // The jobs' last output, stored with their outcomes (for leases held).
        auto chunks = parse_log_chunks(body, false);
        if (!chunks) return error_response(chunks.status());
        std::vector<int64_t> retried;
        auto accepted = db.queue().complete(owner, *completions, &retried, *chunks);
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
