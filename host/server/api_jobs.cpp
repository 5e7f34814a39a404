// Jobs: run (by path, by hash, inline), run and wait for the result, get,
// list, cancel, logs (whole text and a live SSE stream).
#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <thread>
#include <variant>

#include "host/server/api_context.h"
#include "host/worker/gpu_capacity.h"

namespace quern::server {
namespace {

using Json = nlohmann::ordered_json;
using namespace std::chrono_literals;

StatusOr<queue::Clock::time_point> parse_iso_utc(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr)
    return Status::error("scheduled_for must be an ISO 8601 UTC time like 2026-12-01T08:00:00Z");
  double frac = 0;
  if (*end == '.') {
    char* after = nullptr;
    frac = std::strtod(end, &after);
    end = after;
  }
  if (std::string(end) != "Z" && std::string(end) != "+00:00")
    return Status::error("scheduled_for must be in UTC (end with Z): " + text);
  const std::time_t secs = timegm(&tm);
  return queue::Clock::from_time_t(secs) +
         std::chrono::duration_cast<queue::Clock::duration>(std::chrono::duration<double>(frac));
}

StatusOr<RunRequest> parse_run_request(const Json& body) {
  RunRequest r;
  for (const auto& [key, value] : body.items()) {
    if (key == "args") {
      if (!value.is_object()) return Status::error("args must be a JSON object");
      r.args = value;
    } else if (key == "tag") {
      if (!value.is_string() || value.get<std::string>().empty())
        return Status::error("tag must be a non-empty string");
      r.tag = value.get<std::string>();
    } else if (key == "priority") {
      if (!value.is_number_integer() || value.get<int>() < queue::kMinPriority ||
          value.get<int>() > queue::kMaxPriority)
        return Status::error("priority must be an integer from 1 to 100");
      r.priority = value.get<int>();
    } else if (key == "timeout_s") {
      if (!value.is_number_integer() || value.get<int>() < 0)
        return Status::error("timeout_s must be a non-negative integer");
      r.timeout_s = value.get<int>();
    } else if (key == "scheduled_for") {
      if (!value.is_string()) return Status::error("scheduled_for must be a string (ISO 8601, UTC)");
      auto t = parse_iso_utc(value.get<std::string>());
      if (!t) return t.status();
      r.scheduled_for = *t;
    } else if (key == "delay_s") {
      if (!value.is_number() || value.get<double>() < 0)
        return Status::error("delay_s must be a non-negative number");
      r.scheduled_for = queue::Clock::now() + std::chrono::duration_cast<queue::Clock::duration>(
                                                  std::chrono::duration<double>(value.get<double>()));
    } else if (key == "concurrency") {
      auto c = queue::concurrency_from_json(value, "concurrency");
      if (!c) return c.status();
      r.concurrency = *c;
    } else if (key == "retry") {
      auto p = queue::retry_from_json(value, "retry");
      if (!p) return p.status();
      r.retry = *p;
    } else if (key != "language" && key != "content") {
      return Status::error(
          "unknown field '" + key +
          "' (allowed: args, tag, priority, timeout_s, scheduled_for, delay_s, concurrency, retry)");
    }
  }
  return r;
}

queue::NewJob job_from_script(const scripts::ScriptVersion& s, const RunRequest& r) {
  queue::NewJob job;
  job.language = s.language;
  job.tag = !r.tag.empty() ? r.tag : !s.settings.tag.empty() ? s.settings.tag : s.language;
  job.priority = r.priority > 0            ? r.priority
                 : s.settings.priority > 0 ? s.settings.priority
                                           : queue::kDefaultPriority;
  job.timeout_s = r.timeout_s > 0 ? r.timeout_s : s.settings.timeout_s;
  job.scheduled_for = r.scheduled_for;
  job.script_path = s.path;
  job.payload["code"] = s.content;
  job.payload["args"] = r.args;
  job.payload["script_hash"] = s.hash;
  if (auto c = r.concurrency ? r.concurrency : s.settings.concurrency) {
    job.concurrency = *c;
    if (job.concurrency.key.empty()) job.concurrency.key = "script:" + (s.path.empty() ? s.hash : s.path);
  }
  if (auto p = r.retry ? r.retry : s.settings.retry) job.retry = *p;
  return job;
}

// The routing rules decide the tag and the priority, except those the
// request or the script sets (unless a rule forces them).
Status route_job(const ApiContext& ctx, const std::string& role, const std::string& group,
                 const scripts::ScriptVersion& s, const RunRequest& r, queue::NewJob& job) {
  if (ctx.options.routing_rules.empty()) return Status::ok();
  routing::Submission sub;
  sub.language = s.language;
  sub.path = s.path;
  sub.args = r.args;
  sub.role = role;
  sub.group = group;
  sub.explicit_tag = !r.tag.empty() ? r.tag : s.settings.tag;
  sub.explicit_priority = r.priority > 0 ? r.priority : s.settings.priority;
  return routing::route_into(ctx.options.routing_rules, sub, queue::kDefaultPriority, job.tag, job.priority);
}

// Completes a built job and checks it against the queue's rules and the
// server's limits: a gpu job's request becomes visible to the claim (queue
// columns, so only a worker with the devices claims it); the concurrency key
// gets its $path / $language / $args[name] substituted, and the config's
// numbers for that key replace the job's.
Status finalize_job(const ApiContext& ctx, queue::NewJob& job) {
  if (job.language == "gpu") {
    auto request = worker::gpu_request_from_args(job.payload.value("args", Json::object()));
    if (!request) return Status::error(request.message());
    job.gpus = request->gpus;
    job.gpu_memory_mb = request->memory_mb;
  }
  if (job.concurrency.enabled()) {
    if (job.concurrency.key.find('$') != std::string::npos) {
      auto tmpl = routing::TagTemplate::parse(job.concurrency.key);
      routing::Submission sub;
      sub.language = job.language;
      sub.path = job.script_path;
      sub.args = job.payload.value("args", Json::object());
      auto key = tmpl ? tmpl->expand(sub) : StatusOr<std::string>(tmpl.status());
      if (!key) return Status::error("concurrency.key: " + key.message());
      job.concurrency.key = *key;
    }
    for (const queue::ConcurrencyLimit& l : ctx.options.limits) {
      if (l.key == job.concurrency.key) job.concurrency = l;
    }
  }
  if (Status s = queue::validate(job); !s) return s;
  const int max = ctx.options.max_timeout_s;
  if (max > 0 && job.timeout_s > max)
    return Status::error("timeout_s " + std::to_string(job.timeout_s) + " exceeds this server's maximum of " +
                         std::to_string(max) + " s");
  return Status::ok();
}

}  // namespace

StatusOr<queue::NewJob> job_for_run(ApiContext& ctx, const std::string& role, const std::string& group,
                                    const scripts::ScriptVersion& v, const RunRequest& r) {
  queue::NewJob job = job_from_script(v, r);
  if (v.hash.empty()) job.payload.erase("script_hash");  // inline code
  if (Status st = route_job(ctx, role, group, v, r, job); !st) return st;
  // Runs of a script that a live dedicated worker keeps warm go there, unless
  // the request names a tag.
  if (r.tag.empty() && !job.script_path.empty() && ctx.dedicated_worker_alive(job.script_path))
    job.tag = "dedicated:" + job.script_path;
  if (Status st = finalize_job(ctx, job); !st) return st;
  return job;
}

namespace {

// Builds the job a run route asks for: from the script at a path, a script
// version by hash, or inline code. Returns an error response when it can't.
using JobOrResponse = std::variant<queue::NewJob, http::Response>;

JobOrResponse build_job(ApiContext& ctx, const http::Request& req, const auth::Principal& who,
                        const std::string& kind) {
  auto body = body_object(req);
  if (!body) return bad_request(body.message());
  auto run = parse_run_request(*body);
  if (!run) return bad_request(run.message());
  if (kind == "inline") {
    auto lang = body->find("language");
    auto content = body->find("content");
    if (lang == body->end() || !lang->is_string() || lang->get<std::string>().empty())
      return bad_request("language is required (e.g. \"bash\")");
    if (content == body->end() || !content->is_string()) return bad_request("content (the code) is required");
    scripts::ScriptVersion s;
    s.language = lang->get<std::string>();
    s.content = content->get<std::string>();
    auto job = job_for_run(ctx, auth::to_string(who.role), who.group, s, *run);
    if (!job) return bad_request(job.message());
    return std::move(job).value();
  }
  auto store = ctx.scripts.acquire();
  if (!store) return unavailable(store.status());
  const std::string& key = req.path_params.at(kind == "path" ? "path" : "hash");
  auto found = kind == "path" ? (*store)->latest(key) : (*store)->by_hash(key);
  if (!found) return unavailable(found.status());
  if (!*found)
    return not_found(kind == "path" ? "no script at path '" + key + "' (or it is archived)"
                                    : "no script version with hash '" + key + "'");
  auto job = job_for_run(ctx, auth::to_string(who.role), who.group, **found, *run);
  if (!job) return bad_request(job.message());
  return std::move(job).value();
}

StatusOr<int64_t> submit(ApiContext& ctx, const queue::NewJob& job) {
  auto q = ctx.queues.acquire();
  if (!q) return q.status();
  return (*q)->push(job);
}

http::Response run_route(ApiContext& ctx, const http::Request& req, const auth::Principal& who,
                         const std::string& kind) {
  auto built = build_job(ctx, req, who, kind);
  if (auto* r = std::get_if<http::Response>(&built)) return std::move(*r);
  const auto& job = std::get<queue::NewJob>(built);
  auto id = submit(ctx, job);
  if (!id) return unavailable(id.status());
  return json_ok(Json{{"id", *id}, {"tag", job.tag}}, 201);
}

bool finished(const std::string& state) { return state != "queued" && state != "running"; }

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
                                 const std::string& kind) {
  std::chrono::milliseconds wait = ctx.options.max_wait;
  if (auto it = req.query.find("timeout_s"); it != req.query.end()) {
    char* end = nullptr;
    const double s = std::strtod(it->second.c_str(), &end);
    if (end == it->second.c_str() || *end != '\0' || s <= 0)
      return bad_request("timeout_s must be a positive number");
    wait = std::min(wait, std::chrono::milliseconds(static_cast<int64_t>(s * 1000)));
  }
  auto built = build_job(ctx, req, who, kind);
  if (auto* r = std::get_if<http::Response>(&built)) return std::move(*r);
  auto& job = std::get<queue::NewJob>(built);
  // Watch before the push: the job's NOTIFY (JobWaiters) cannot come first.
  const auto watch = ctx.waiters.watch();
  job.waiter = watch->token();
  auto q = ctx.queues.acquire();
  if (!q) return unavailable(q.status());
  auto id = (*q)->push(job);
  if (!id) return unavailable(id.status());
  // The NOTIFY usually carries the outcome; the job is read back only when
  // it does not (a result too large for a NOTIFY), after each 100 ms without
  // one, and — without the listener (database reconnecting) — by polling
  // every 200 µs for the first 20 ms, backing off to 20 ms.
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + wait;
  auto delay = std::chrono::microseconds(200);
  bool read_job = !ctx.waiters.listening();
  while (true) {
    if (read_job) {
      auto rec = (*q)->get_job(*id);
      if (!rec) return unavailable(rec.status());
      if (*rec && finished((*rec)->state))
        return outcome_response(*id, (*rec)->state, (*rec)->result, (*rec)->error);
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
      read_job = true;
      auto payload = watch->wait(std::min<std::chrono::milliseconds>(left, 100ms));
      if (!payload) continue;
      auto note = nlohmann::json::parse(*payload, nullptr, false);
      if (note.is_object() && note.contains("status") && note["status"].is_string())
        return outcome_response(*id, note["status"].get<std::string>(),
                                note.value("result", nlohmann::json()),
                                note["error"].is_string() ? note["error"].get<std::string>() : "");
      continue;
    }
    read_job = true;
    std::this_thread::sleep_for(delay);  // polling interval, bounded by the deadline above
    if (std::chrono::steady_clock::now() - started > 20ms)
      delay = std::min<std::chrono::microseconds>(delay + delay / 4 + std::chrono::microseconds(100), 20ms);
  }
}

StatusOr<int64_t> parse_id(const http::Request& req) {
  const std::string& text = req.path_params.at("id");
  char* end = nullptr;
  const long long id = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || id <= 0)
    return Status::error("job id must be a positive integer, got '" + text + "'");
  return static_cast<int64_t>(id);
}

// The job named by the route's {id}, or the error response to send.
std::variant<queue::JobRecord, http::Response> find_job(ApiContext& ctx, const http::Request& req) {
  auto id = parse_id(req);
  if (!id) return bad_request(id.message());
  auto q = ctx.queues.acquire();
  if (!q) return unavailable(q.status());
  auto rec = (*q)->get_job(*id);
  if (!rec) return unavailable(rec.status());
  if (!*rec) return not_found("no job " + std::to_string(*id));
  return std::move(**rec);
}

http::Response get_job(ApiContext& ctx, const http::Request& req) {
  auto found = find_job(ctx, req);
  if (auto* r = std::get_if<http::Response>(&found)) return std::move(*r);
  return json_ok(job_json(std::get<queue::JobRecord>(found), true));
}

http::Response list_jobs(ApiContext& ctx, const http::Request& req) {
  queue::JobFilter f;
  for (const auto& [key, value] : req.query) {
    if (key == "state")
      f.state = value;
    else if (key == "tag")
      f.tag = value;
    else if (key == "script_path")
      f.script_path = value;
    else if (key == "limit" || key == "before_id") {
      char* end = nullptr;
      const long long n = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0') return bad_request(key + " must be an integer");
      if (key == "limit")
        f.limit = static_cast<int>(std::clamp(n, -1LL, 100000LL));  // range checked by the queue
      else
        f.before_id = n;
    } else if (key == "created_after" || key == "created_before") {
      auto t = parse_iso_utc(value);
      if (!t) return bad_request(key + ": " + t.message());
      (key == "created_after" ? f.created_after : f.created_before) = *t;
    } else {
      return bad_request(
          "unknown filter '" + key +
          "' (allowed: state, tag, script_path, created_after, created_before, before_id, limit)");
    }
  }
  if (Status s = queue::validate(f); !s) return bad_request(s.message());
  auto q = ctx.queues.acquire();
  if (!q) return unavailable(q.status());
  auto jobs = (*q)->list_jobs(f);
  if (!jobs) return unavailable(jobs.status());
  Json out = Json::array();
  for (const auto& j : *jobs) out.push_back(job_json(j));
  return json_ok(Json{{"jobs", out}});
}

http::Response cancel_job(ApiContext& ctx, const http::Request& req) {
  auto id = parse_id(req);
  if (!id) return bad_request(id.message());
  auto q = ctx.queues.acquire();
  if (!q) return unavailable(q.status());
  auto outcome = (*q)->cancel(*id, "canceled through the API");
  if (!outcome) return unavailable(outcome.status());
  switch (*outcome) {
    case queue::CancelOutcome::not_found:
      return not_found("no job " + std::to_string(*id));
    case queue::CancelOutcome::canceled:
      return json_ok(Json{{"id", *id}, {"outcome", "canceled"}});
    case queue::CancelOutcome::requested:
      return json_ok(Json{{"id", *id}, {"outcome", "cancel_requested"}}, 202);
    case queue::CancelOutcome::already_finished:
      return http::json_error(409, "already_finished",
                              "job " + std::to_string(*id) + " has already finished");
  }
  return unavailable(Status::error("unexpected cancel outcome"));
}

http::Response job_logs(ApiContext& ctx, const http::Request& req) {
  auto found = find_job(ctx, req);
  if (auto* r = std::get_if<http::Response>(&found)) return std::move(*r);
  const auto& job = std::get<queue::JobRecord>(found);
  int64_t from = 0;
  if (auto it = req.query.find("offset"); it != req.query.end()) from = std::atoll(it->second.c_str());
  auto q = ctx.queues.acquire();
  if (!q) return unavailable(q.status());
  auto text = (*q)->read_logs(job.id, from);
  if (!text) return unavailable(text.status());
  http::Response resp;
  resp.content_type = "text/plain; charset=utf-8";
  resp.body = std::move(*text);
  resp.headers.emplace_back("X-Quern-Job-State", job.state);
  return resp;
}

// Live logs: "log" events with new text as it is written, then one "done"
// event with the job's final state. Polls the database every 100 ms.
http::Response stream_logs(ApiContext& ctx, const http::Request& req) {
  auto found = find_job(ctx, req);
  if (auto* r = std::get_if<http::Response>(&found)) return std::move(*r);
  http::Response resp;
  resp.stream = [&ctx, job_id = std::get<queue::JobRecord>(found).id](http::EventSink& sink) {
    int64_t offset = 0;
    auto last_send = std::chrono::steady_clock::now();
    while (true) {
      auto q = ctx.queues.acquire();
      if (!q) {
        sink.send("error", q.message());
        return;
      }
      auto rec = (*q)->get_job(job_id);  // state first: logs written before completion are then complete
      auto text = (*q)->read_logs(job_id, offset);
      if (!rec || !text || !*rec) {
        sink.send("error", !rec ? rec.message() : !text ? text.message() : "job disappeared");
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
  add_route(
      ctx, router, "POST", "/api/jobs/run/p/{path+}", "jobs.run", "Run the latest version of a script",
      [&ctx](const http::Request& r, const auth::Principal& who) { return run_route(ctx, r, who, "path"); });
  add_route(
      ctx, router, "POST", "/api/jobs/run/h/{hash}", "jobs.run", "Run a script version by hash",
      [&ctx](const http::Request& r, const auth::Principal& who) { return run_route(ctx, r, who, "hash"); });
  add_route(ctx, router, "POST", "/api/jobs/run_inline", "jobs.run_inline", "Run inline code",
            [&ctx](const http::Request& r, const auth::Principal& who) {
              return run_route(ctx, r, who, "inline");
            });
  add_route(ctx, router, "POST", "/api/jobs/run_wait_result/p/{path+}", "jobs.run",
            "Run a script and answer with its result",
            [&ctx](const http::Request& r, const auth::Principal& who) {
              return wait_result_route(ctx, r, who, "path");
            });
  add_route(ctx, router, "POST", "/api/jobs/run_wait_result/h/{hash}", "jobs.run",
            "Run a script version and answer with its result",
            [&ctx](const http::Request& r, const auth::Principal& who) {
              return wait_result_route(ctx, r, who, "hash");
            });
  add_route(ctx, router, "POST", "/api/jobs/run_wait_result_inline", "jobs.run_inline",
            "Run inline code and answer with its result",
            [&ctx](const http::Request& r, const auth::Principal& who) {
              return wait_result_route(ctx, r, who, "inline");
            });
  add_route(ctx, router, "GET", "/api/jobs", "jobs.read",
            "List jobs (filters: state, tag, script_path, time)",
            [&ctx](const http::Request& r, const auth::Principal&) { return list_jobs(ctx, r); });
  add_route(ctx, router, "GET", "/api/jobs/{id}", "jobs.read", "Get a job",
            [&ctx](const http::Request& r, const auth::Principal&) { return get_job(ctx, r); });
  add_route(ctx, router, "POST", "/api/jobs/{id}/cancel", "jobs.cancel", "Cancel a job",
            [&ctx](const http::Request& r, const auth::Principal&) { return cancel_job(ctx, r); });
  add_route(ctx, router, "GET", "/api/jobs/{id}/logs", "jobs.read", "A job’s log text",
            [&ctx](const http::Request& r, const auth::Principal&) { return job_logs(ctx, r); });
  add_route(ctx, router, "GET", "/api/jobs/{id}/logs/stream", "jobs.read",
            "A job’s log as server-sent events",
            [&ctx](const http::Request& r, const auth::Principal&) { return stream_logs(ctx, r); });
}

}  // namespace quern::server
