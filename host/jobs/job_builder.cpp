#include "host/jobs/job_builder.h"

#include <algorithm>
#include <climits>
#include <stdexcept>

#include "quern/gpu.hpp"

namespace quern::jobs {
namespace {

using Json = nlohmann::ordered_json;

// Step 1: the script's settings overridden by the request.
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
  if (!s.hash.empty()) job.payload["script_hash"] = s.hash;
  if (auto c = r.concurrency ? r.concurrency : s.settings.concurrency) {
    job.concurrency = *c;
    if (job.concurrency.key.empty()) job.concurrency.key = "script:" + (s.path.empty() ? s.hash : s.path);
  }
  if (auto p = r.retry ? r.retry : s.settings.retry) job.retry = *p;
  if (auto l = r.limits ? r.limits : s.settings.limits) job.payload["limits"] = queue::to_json(*l);
  return job;
}

// Step 2: the routing rules decide the tag and the priority, except those the
// request or the script sets (unless a rule forces them).
Status route_job(const Rules& rules, const Submission& sub, queue::NewJob& job) {
  if (rules.routing.empty()) return Status::ok();
  const scripts::ScriptVersion& s = sub.script;
  const RunRequest& r = sub.request;
  routing::Submission rs;
  rs.language = s.language;
  rs.path = s.path;
  rs.args = r.args;
  rs.role = sub.role;
  rs.group = sub.group;
  rs.explicit_tag = !r.tag.empty() ? r.tag : s.settings.tag;
  rs.explicit_priority = r.priority > 0 ? r.priority : s.settings.priority;
  return routing::route_into(rules.routing, rs, queue::kDefaultPriority, job.tag, job.priority);
}

// Step 4.
Status complete_job(const Rules& rules, queue::NewJob& job) {
  if (job.language == "gpu") {
    auto request = gpu_request_from_args(job.payload.value("args", Json::object()));
    if (!request) return request.status();
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
      if (!key) return Status::invalid("concurrency.key: " + key.message());
      job.concurrency.key = *key;
    }
    for (const queue::ConcurrencyLimit& l : rules.limits) {
      if (l.key == job.concurrency.key) job.concurrency = l;
    }
  }
  return Status::ok();
}

}  // namespace

StatusOr<queue::NewJob> build_job(const Rules& rules, const Submission& sub) {
  queue::NewJob job = job_from_script(sub.script, sub.request);
  if (Status st = route_job(rules, sub, job); !st) return Status::invalid(st.message());
  // Step 3: runs of a script that a live dedicated worker keeps warm go
  // there, unless the request names a tag.
  if (sub.request.tag.empty() && !job.script_path.empty() && rules.dedicated_alive &&
      rules.dedicated_alive(job.script_path))
    job.tag = "dedicated:" + job.script_path;
  if (Status st = complete_job(rules, job); !st) return st;
  // Step 5.
  if (Status st = queue::validate(job); !st) return st;
  if (rules.max_timeout_s > 0 && job.timeout_s > rules.max_timeout_s)
    return Status::invalid("timeout_s " + std::to_string(job.timeout_s) +
                           " exceeds this server's maximum of " + std::to_string(rules.max_timeout_s) + " s");
  return job;
}

StatusOr<GpuRequest> gpu_request_from_args(const nlohmann::json& args) {
  try {
    const sdk::GpuRequestArgs r = sdk::parse_gpu_request(args);
    const auto clamp = [](uint64_t v) { return static_cast<int>(std::min<uint64_t>(v, INT_MAX)); };
    return GpuRequest{clamp(r.gpus), clamp(r.memory_mb.value_or(0))};
  } catch (const std::invalid_argument& e) {
    return Status::invalid(std::string("gpu job args: ") + e.what());
  }
}

}  // namespace quern::jobs
