// The sandbox and limits tests' way of running code as a job: a worker for
// bash and python jobs with the given confinement, and one job to its end.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

#include "host/queue/queue.h"
#include "host/worker/worker.h"
#include "tests/support/child_process.h"

namespace quern::testing {

// A started in-process worker for tags bash and python3 (slots slots) whose
// jobs are confined by policy, keeping the dedicated scripts warm.
inline std::unique_ptr<worker::Worker> start_confined_worker(const std::string& url,
                                                             const plugin::PluginRegistry& registry,
                                                             const sandbox::Policy& policy, int slots,
                                                             const std::vector<std::string>& dedicated = {}) {
  worker::WorkerOptions o;
  o.database_url = url;
  o.tags = {"bash", "python3"};
  o.slots = slots;
  o.poll_interval = std::chrono::milliseconds(100);
  o.kill_grace = std::chrono::milliseconds(500);
  o.in_process_plugins = {"bash", "python"};
  o.sandbox = policy;
  o.dedicated_scripts = dedicated;
  auto w = std::make_unique<worker::Worker>(o, registry);
  const Status s = w->start();
  EXPECT_TRUE(s) << s.message();
  return w;
}

// Pushes j and returns its record once it has ended.
inline queue::JobRecord run_to_end(queue::Queue& q, const queue::NewJob& j) {
  const int64_t id = q.push(j).value();
  std::optional<queue::JobRecord> rec;
  EXPECT_TRUE(wait_until(
      [&] {
        auto r = q.get_job(id);
        if (r && *r && (*r)->state != "queued" && (*r)->state != "running") rec = **r;
        return rec.has_value();
      },
      std::chrono::seconds(60)));
  return rec.value_or(queue::JobRecord{});
}

// language "bash" or "python3"; timeout_s 0 = the worker's default;
// limits: the job document's "limits" (queue::JobLimits), null = none.
inline queue::JobRecord run_job(queue::Queue& q, const std::string& language, const std::string& code,
                                int timeout_s = 0, const nlohmann::json& limits = nullptr) {
  queue::NewJob j;
  j.tag = language;
  j.language = language == "python3" ? "python3" : "bash";
  j.payload["code"] = code;
  if (!limits.is_null()) j.payload["limits"] = limits;
  j.timeout_s = timeout_s;
  return run_to_end(q, j);
}

}  // namespace quern::testing
