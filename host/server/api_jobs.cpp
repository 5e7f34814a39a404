// Jobs: run (by path, by hash, inline), run and wait for the result, get,
// list, cancel, logs (whole text and a live SSE stream).
#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <thread>
#include <variant>

#include "host/common/json_input.h"
#include "host/common/validation.h"
#include "host/server/api_context.h"
#include "host/server/api_requests.h"

namespace quern::server {
namespace {

using Json = nlohmann::ordered_json;
using namespace std::chrono_literals;

}  // namespace

StatusOr<queue::NewJob> job_for_run(ApiContext& ctx, queue::Queue& q, const std::string& role,
                                    const std::string& group, const scripts::ScriptVersion& v,
                                    const RunRequest& r) {
  jobs::Rules rules = ctx.rules;
  rules.dedicated_alive = [&](const std::string& path) { return ctx.dedicated_worker_alive(q, path); };
  return jobs::build_job(rules, jobs::Submission{v, r, role, group});
}

namespace {

// Builds the job a run route asks for: from the script at a path, a script
// version by hash, or inline code. Returns an error response when it can't.
using JobOrResponse = std::variant<queue::NewJob, http::Response>;

JobOrResponse build_job(ApiContext& ctx, const http::Request& req, const auth::Principal& who, DbLease& db,
                        const std::string& kind) {
  auto body = body_object(req);
  if (!body) return error_response(body.status());
  auto run = parse_run_request(*body);
  if (!run) return error_response(run.status());
  const std::string role = auth::to_string(who.role);
  if (kind == "inline") {
    auto code = parse_inline_code(*body);
    if (!code) return error_response(code.status());
    scripts::ScriptVersion s;
    s.language = std::move(code->language);
    s.content = std::move(code->content);
    auto job = job_for_run(ctx, db.queue(), role, who.group, s, *run);
    if (!job) return error_response(job.status());
    return std::move(job).value();
  }
  const std::string& key = req.path_params.at(kind == "path" ? "path" : "hash");
  auto found = kind == "path" ? db.scripts().latest(key) : db.scripts().by_hash(key);
  if (!found) return error_response(found.status());
  if (!*found)
    return not_found(kind == "path" ? "no script at path '" + key + "' (or it is archived)"
                                    : "no script version with hash '" + key + "'");
  auto job = job_for_run(ctx, db.queue(), role, who.group, **found, *run);
  if (!job) return error_response(job.status());
  return std::move(job).value();
}

http::Response run_route(ApiContext& ctx, const http::Request& req, const auth::Principal& who, DbLease& db,
                         const std::string& kind) {
  auto built = build_job(ctx, req, who, db, kind);
  if (auto* r = std::get_if<http::Response>(&built)) return std::move(*r);
  const auto& job = std::get<queue::NewJob>(built);
  auto id = db.queue().push(job);
  if (!id) return error_response(id.status());
  Json answer{{"id", *id}, {"tag", job.tag}};
  if (!ctx.tag_served(db.queue(), job.tag))
    answer["warning"] =
        autoscale::unserved_note(db.autoscale(), job.tag, ctx.options.group_tags, ctx.options.config_name);
  return json_ok(answer, 201);
}

bool finished(const std::string& state) { return state != "queued" && state != "running"; }

// A job id that reads as nothing: never issued, or its job finished longer ago
// than <retention completed-jobs> and was pruned (host/retention).
std::string no_job(int64_t id) {
  return "no job " + std::to_string(id) + " (never created, or pruned after the retention period)";
}

// The answer of run_wait_result for a finished job: its result (200), or the
// error in the one shape (422; 504 for a timeout).
http::Response outcome_response(int64_t id, const std::string& state, const nlohmann::json& result,
                                const std::string& error) {
  http::Response resp;
  if (state == "success") {
    resp = http::json_response(200, result.dump());
  } else {
    resp = http::json_error(state == "timeout" ? 504 : 422, "job_" + state,
                            "job " + std::to_string(id) + " " + state + (error.empty() ? "" : ": " + error));
  }
  resp.headers.emplace_back("X-Quern-Job-Id", std::to_string(id));
  return resp;
}

http::Response wait_result_route(ApiContext& ctx, const http::Request& req, const auth::Principal& who,
                                 DbLease& db, const std::string& kind) {
  auto wait = parse_wait(req.query, ctx.options.max_wait);
  if (!wait) return error_response(wait.status());
  auto built = build_job(ctx, req, who, db, kind);
  if (auto* r = std::get_if<http::Response>(&built)) return std::move(*r);
  auto& job = std::get<queue::NewJob>(built);
  // Watch before the push: the job's NOTIFY (JobWaiters) cannot come first.
  const auto watch = ctx.waiters.watch();
  job.waiter = watch->token();
  auto id = db.queue().push(job);
  if (!id) return error_response(id.status());
  // The NOTIFY usually carries the outcome; the job is read back only when
  // it does not (a result too large for a NOTIFY), after each 100 ms without
  // one, and — without the listener (database reconnecting) — by polling
  // every 200 µs for the first 20 ms, backing off to 20 ms. While it waits
  // for a NOTIFY the request holds no connection.
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + *wait;
  auto delay = std::chrono::microseconds(200);
  bool read_job = !ctx.waiters.listening();
  while (true) {
    if (read_job) {
      if (Status s = db.reacquire(); !s) return error_response(s);
      auto rec = db.queue().get_job(*id);
      if (!rec) return error_response(rec.status());
      if (*rec && finished((*rec)->state))
        return outcome_response(*id, (*rec)->state, (*rec)->result, (*rec)->error);
      if (!*rec)  // finished, and pruned before we read it (a retention shorter than the wait)
        return not_found("job " + std::to_string(*id) +
                         " finished and was pruned before its result was read");
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      auto resp = http::json_error(
          504, "wait_timeout",
          "job " + std::to_string(*id) + " is still running; follow it at /api/jobs/" + std::to_string(*id));
      resp.headers.emplace_back("X-Quern-Job-Id", std::to_string(*id));
      return resp;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()) +
        1ms;
    if (ctx.waiters.listening()) {
      db.release();
      read_job = true;
      auto payload = watch->wait(std::min<std::chrono::milliseconds>(left, 100ms));
      if (!payload) continue;
      auto note = json_input::parse(*payload, "the job's notification");
      if (note && note->is_object() && note->contains("status") && (*note)["status"].is_string())
        return outcome_response(*id, (*note)["status"].get<std::string>(),
                                note->value("result", nlohmann::json()),
                                (*note)["error"].is_string() ? (*note)["error"].get<std::string>() : "");
      continue;
    }
    read_job = true;
    std::this_thread::sleep_for(delay);  // polling interval, bounded by the deadline above
    if (std::chrono::steady_clock::now() - started > 20ms)
      delay = std::min<std::chrono::microseconds>(delay + delay / 4 + std::chrono::microseconds(100), 20ms);
  }
}

StatusOr<int64_t> parse_id(const http::Request& req) {
  return validation::parse_id(req.path_params.at("id"), "job id");
}

// The job named by the route's {id}, or the error response to send.
std::variant<queue::JobRecord, http::Response> find_job(DbLease& db, const http::Request& req) {
  auto id = parse_id(req);
  if (!id) return error_response(id.status());
  auto& q = db.queue();
  auto rec = q.get_job(*id);
  if (!rec) return error_response(rec.status());
  if (!*rec) return not_found(no_job(*id));
  return std::move(**rec);
}

http::Response get_job(DbLease& db, const http::Request& req) {
  auto found = find_job(db, req);
  if (auto* r = std::get_if<http::Response>(&found)) return std::move(*r);
  return json_ok(job_json(std::get<queue::JobRecord>(found), true));
}

http::Response list_jobs(DbLease& db, const http::Request& req) {
  auto f = parse_job_filter(req.query);
  if (!f) return error_response(f.status());
  auto jobs = db.queue().list_jobs(*f);
  if (!jobs) return error_response(jobs.status());
  Json out = Json::array();
  for (const auto& j : *jobs) out.push_back(job_json(j));
  return json_ok(Json{{"jobs", out}});
}

// The same script version (by hash) or code, with the job's args, tag and
// priority; its other settings come from the script as for any run.
http::Response rerun_job(ApiContext& ctx, DbLease& db, const http::Request& req, const auth::Principal& who) {
  auto found = find_job(db, req);
  if (auto* r = std::get_if<http::Response>(&found)) return std::move(*r);
  const queue::JobRecord& old = std::get<queue::JobRecord>(found);
  scripts::ScriptVersion v;
  if (const std::string hash = old.payload.value("script_hash", ""); !hash.empty()) {
    auto script = db.scripts().by_hash(hash);
    if (!script) return error_response(script.status());
    if (!*script)
      return not_found("job " + std::to_string(old.id) + "'s script version " + hash + " is gone");
    v = **script;
  } else {
    if (!auth::allowed(who.role, "jobs.run_inline"))
      return http::json_error(403, "forbidden",
                              std::string("role ") + auth::to_string(who.role) +
                                  " may not jobs.run_inline (job " + std::to_string(old.id) +
                                  " ran inline code)");
    v.language = old.language;
    v.content = old.payload.value("code", "");
  }
  jobs::RunRequest r;
  r.args = old.payload.value("args", Json::object());
  r.tag = old.tag;
  r.priority = old.priority;
  auto job = job_for_run(ctx, db.queue(), auth::to_string(who.role), who.group, v, r);
  if (!job) return error_response(job.status());
  auto id = db.queue().push(*job);
  if (!id) return error_response(id.status());
  return json_ok(Json{{"id", *id}, {"tag", job->tag}, {"rerun_of", old.id}}, 201);
}

http::Response cancel_job(DbLease& db, const http::Request& req) {
  auto id = parse_id(req);
  if (!id) return error_response(id.status());
  auto& q = db.queue();
  auto outcome = q.cancel(*id, "canceled through the API");
  if (!outcome) return error_response(outcome.status());
  switch (*outcome) {
    case queue::CancelOutcome::not_found:
      return not_found(no_job(*id));
    case queue::CancelOutcome::canceled:
      return json_ok(Json{{"id", *id}, {"outcome", "canceled"}});
    case queue::CancelOutcome::requested:
      return json_ok(Json{{"id", *id}, {"outcome", "cancel_requested"}}, 202);
    case queue::CancelOutcome::already_finished:
      return http::json_error(409, "already_finished",
                              "job " + std::to_string(*id) + " has already finished");
  }
  return error_response(Status::error("unexpected cancel outcome"));
}

http::Response job_logs(DbLease& db, const http::Request& req) {
  auto from = parse_log_offset(req.query);
  if (!from) return error_response(from.status());
  auto found = find_job(db, req);
  if (auto* r = std::get_if<http::Response>(&found)) return std::move(*r);
  const auto& job = std::get<queue::JobRecord>(found);
  auto text = db.queue().read_logs(job.id, *from);
  if (!text) return error_response(text.status());
  http::Response resp;
  resp.content_type = "text/plain; charset=utf-8";
  resp.body = std::move(*text);
  resp.headers.emplace_back("X-Quern-Job-State", job.state);
  return resp;
}

// Live logs: "log" events with new text as it is written, then one "done"
// event with the job's final state. Polls the database every 100 ms.
http::Response stream_logs(ApiContext& ctx, DbLease& db, const http::Request& req) {
  auto found = find_job(db, req);
  if (auto* r = std::get_if<http::Response>(&found)) return std::move(*r);
  http::Response resp;
  resp.stream = [&ctx, job_id = std::get<queue::JobRecord>(found).id](http::EventSink& sink) {
    int64_t offset = 0;
    auto last_send = std::chrono::steady_clock::now();
    while (true) {
      auto db = ctx.acquire();  // per poll: a stream holds no connection between polls
      if (!db) {
        sink.send("error", db.message());
        return;
      }
      auto rec =
          db->queue().get_job(job_id);  // state first: logs written before completion are then complete
      auto text = db->queue().read_logs(job_id, offset);
      db->release();
      if (!rec || !text || !*rec) {
        sink.send("error", !rec ? rec.message() : !text ? text.message() : no_job(job_id));
        return;
      }
      if (!text->empty()) {
        offset += static_cast<int64_t>(text->size());
        if (!sink.send("log", *text)) return;
        last_send = std::chrono::steady_clock::now();
      }
      if (finished((*rec)->state)) {
        Json done{{"state", (*rec)->state}, {"result", (*rec)->result}, {"error", (*rec)->error}};
        sink.send("done", done.dump());
        return;
      }
      if (std::chrono::steady_clock::now() - last_send > 15s) {
        if (!sink.keepalive()) return;
        last_send = std::chrono::steady_clock::now();
      }
      std::this_thread::sleep_for(100ms);  // polling interval of the stream
    }
  };
  return resp;
}

}  // namespace

void add_job_routes(ApiContext& ctx, http::Router& router) {
  using Req = const http::Request&;
  using Who = const auth::Principal&;
  struct RunRoute {
    const char* pattern;
    const char* kind;  // path | hash | inline
    bool wait;         // run_wait_result
    const char* summary;
  };
  static constexpr RunRoute kRunRoutes[] = {
      {"/api/jobs/run/p/{path+}", "path", false, "Run the latest version of a script"},
      {"/api/jobs/run/h/{hash}", "hash", false, "Run a script version by hash"},
      {"/api/jobs/run_inline", "inline", false, "Run inline code"},
      {"/api/jobs/run_wait_result/p/{path+}", "path", true, "Run a script and answer with its result"},
      {"/api/jobs/run_wait_result/h/{hash}", "hash", true, "Run a script version and answer with its result"},
      {"/api/jobs/run_wait_result_inline", "inline", true, "Run inline code and answer with its result"},
  };
  for (const RunRoute& route : kRunRoutes) {
    const std::string kind = route.kind;
    const bool wait = route.wait;
    add_route(ctx, router, "POST", route.pattern, kind == "inline" ? "jobs.run_inline" : "jobs.run",
              route.summary, [&ctx, kind, wait](Req r, Who who, DbLease& db) {
                return wait ? wait_result_route(ctx, r, who, db, kind) : run_route(ctx, r, who, db, kind);
              });
  }
  add_route(ctx, router, "GET", "/api/jobs", "jobs.read",
            "List jobs (filters: state, tag, script_path, time)",
            [](Req r, Who, DbLease& db) { return list_jobs(db, r); });
  add_route(ctx, router, "GET", "/api/jobs/{id}", "jobs.read", "Get a job",
            [](Req r, Who, DbLease& db) { return get_job(db, r); });
  add_route(ctx, router, "POST", "/api/jobs/{id}/cancel", "jobs.cancel", "Cancel a job",
            [](Req r, Who, DbLease& db) { return cancel_job(db, r); });
  add_route(ctx, router, "POST", "/api/jobs/{id}/rerun", "jobs.run",
            "Run a job again: same script version (or code), arguments, tag and priority",
            [&ctx](Req r, Who who, DbLease& db) { return rerun_job(ctx, db, r, who); });
  add_route(ctx, router, "GET", "/api/jobs/{id}/logs", "jobs.read", "A job’s log text",
            [](Req r, Who, DbLease& db) { return job_logs(db, r); });
  add_route(ctx, router, "GET", "/api/jobs/{id}/logs/stream", "jobs.read",
            "A job’s log as server-sent events",
            [&ctx](Req r, Who, DbLease& db) { return stream_logs(ctx, db, r); });
}

}  // namespace quern::server
