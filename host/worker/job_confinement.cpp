#include "host/worker/job_confinement.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "quern/sandbox.h"

namespace quern::worker {

StatusOr<cgroup::Limits> JobConfinement::limits_for(const cgroup::Limits& group,
                                                    const nlohmann::ordered_json& job,
                                                    const cgroup::Tree* tree) {
  if (!job.is_object() || !job.contains("limits")) return group;
  auto asked = queue::limits_from_json(nlohmann::json(job["limits"]), "limits");
  if (!asked) return asked.status();
  auto tighter = [](int64_t a, int64_t b) { return a > 0 && b > 0 ? std::min(a, b) : std::max(a, b); };
  const cgroup::Limits l{tighter(group.memory_max, asked->memory_max),
                         tighter(group.pids_max, asked->pids_max),
                         tighter(group.cpu_max_milli, asked->cpu_max_milli)};
  if (l == group) return l;
  if (tree == nullptr)
    return Status::error("its limits need cgroups, which this worker's machine does not give it");
  if (Status s = tree->check(l); !s) return s;
  return l;
}

std::string JobConfinement::join_items(const cgroup::Job& cgroup) {
  std::string items;
  for (const std::string& procs : cgroup.procs_files())
    items += std::string(1, QUERN_SANDBOX_SEPARATOR) + "cgroup=" + procs;
  return items;
}

StatusOr<JobConfinement> JobConfinement::begin(const cgroup::Tree* tree, const cgroup::Limits& limits,
                                               const sandbox::Policy& policy, const std::string& setup_items,
                                               const std::string& name, const std::filesystem::path& workdir,
                                               nlohmann::ordered_json& env) {
  JobConfinement c;
  std::string setup = setup_items;
  if (tree != nullptr) {
    auto made = tree->create(name, limits);
    if (!made) return made.status().with_context("the job's cgroup");
    c.cgroup_ = std::move(made).value();
    setup += join_items(c.cgroup_);
  }
  if (policy.uid >= 0 &&
      ::chown(workdir.c_str(), static_cast<uid_t>(policy.uid), static_cast<gid_t>(policy.gid)) != 0)
    return Status::error("cannot hand the working directory " + workdir.string() + " to uid " +
                         std::to_string(policy.uid) + ": " + std::strerror(errno));
  env[QUERN_SETUP_ENV] = setup;
  return c;
}

cgroup::Usage JobConfinement::end() {
  if (cgroup_.empty()) return {};
  cgroup_.kill();
  cgroup::Usage u = cgroup_.usage();
  cgroup_.remove();
  return u;
}

void JobConfinement::account(const cgroup::Usage& usage, const cgroup::Limits& limits, queue::Completion& c) {
  nlohmann::json r = nlohmann::json::object();
  if (usage.peak_memory_bytes >= 0) r["peak_memory_bytes"] = usage.peak_memory_bytes;
  if (usage.cpu_us >= 0) r["cpu_ms"] = usage.cpu_us / 1000;
  if (usage.oom_kills > 0) r["oom_kills"] = usage.oom_kills;
  if (!r.empty()) c.resources = std::move(r);
  if (usage.oom_kills > 0 && c.status == queue::JobStatus::failure) {
    std::string why = "out of memory (limit " +
                      (limits.memory_max > 0 ? cgroup::format_bytes(limits.memory_max) : std::string("none"));
    if (usage.peak_memory_bytes >= 0) why += ", peak " + cgroup::format_bytes(usage.peak_memory_bytes);
    c.error = why + ")";  // the plugin saw only a SIGKILL; its stderr is in the log
  }
}

}  // namespace quern::worker
