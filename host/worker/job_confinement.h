// What confines one job's processes beyond the sandbox's wrapper: its
// cgroup (limits, accounting, a kill nothing escapes), its QUERN_SETUP
// (quern/sandbox.h: cgroups to join, rlimits, the unprivileged user), and
// the ownership of its working directory when jobs run as another user.
//
// Used by one slot thread per job: begin() before the plugin runs, end()
// after it returned (and after the process group was killed).
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "host/cgroup/cgroup.h"
#include "host/queue/queue.h"
#include "host/sandbox/sandbox.h"

namespace quern::worker {

class JobConfinement {
 public:
  // The limits a job runs under: its document's "limits" (a script's or a
  // run request's, queue::JobLimits) within the group's, the smaller of
  // each. An error when the job's limits do not parse or need a controller
  // this worker's cgroups (tree; null = none) lack: never silently weaker.
  static StatusOr<cgroup::Limits> limits_for(const cgroup::Limits& group, const nlohmann::ordered_json& job,
                                             const cgroup::Tree* tree);

  // QUERN_SETUP's items that make a spawned process join `cgroup` (empty
  // for an empty cgroup), to append to the policy's items.
  static std::string join_items(const cgroup::Job& cgroup);

  // Creates the job's cgroup `name` under tree (none when tree is null) with
  // limits, hands workdir to the policy's job user, and sets QUERN_SETUP in env
  // (setup_items, then the items that join the job's cgroup).
  static StatusOr<JobConfinement> begin(const cgroup::Tree* tree, const cgroup::Limits& limits,
                                        const sandbox::Policy& policy, const std::string& setup_items,
                                        const std::string& name, const std::filesystem::path& workdir,
                                        nlohmann::ordered_json& env);

  // Kills whatever of the job is still running, reads what it used, and
  // removes its cgroup. Call once.
  cgroup::Usage end();

  // When the kernel killed the job's processes for memory, a failed
  // completion says so: "out of memory (limit 256 MiB, peak 256 MiB)".
  // Records the usage on the completion either way.
  // The job's cgroup; empty() when it has none.
  const cgroup::Job& cgroup() const { return cgroup_; }

  static void account(const cgroup::Usage& usage, const cgroup::Limits& limits,
                      queue::Completion& completion);

 private:
  cgroup::Job cgroup_;
};

}  // namespace quern::worker
