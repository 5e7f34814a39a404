// The sandbox every job process runs in (docs/ARCHITECTURE.md §8): a
// bubblewrap wrapper the host decides and the SDK's spawn applies.
//
// The worker turns a group's policy into a wrapper — bwrap's arguments,
// with the token {workdir} where the job's directory goes — and hands it to
// the plugin in the job's environment as QUERN_SANDBOX (quern/sandbox.h has
// the encoding). quern::sdk::spawn() and the C runner take it out of the
// child's environment and start the child through it, so a plugin that
// spawns through the SDK with the job's environment gets the sandbox with
// no code of its own. In the sandbox a job has:
//   - new user, pid, ipc, uts and cgroup namespaces (the job is uid/gid
//     65534 inside; its pid namespace dies with it, so nothing it started
//     outlives it, setsid'd or not), and a new network namespace when the
//     group says network="none";
//   - the system read-only (/usr, /etc and the merged-/usr links), its
//     working directory as the only writable place, a private /tmp, its own
//     /proc and a minimal /dev (with NVIDIA's device nodes, for GPU jobs);
//     nothing else of the machine: not the
//     worker's data directory, config, plugins, the embedded cluster's
//     socket or other jobs;
//   - --die-with-parent: the sandbox ends with the process that spawned it.
//
// Thread-safety: pure functions; probe() runs a child process.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "host/cgroup/cgroup.h"
#include "host/common/status.h"

namespace quern::sandbox {

enum class Mode { none, bwrap };
enum class Network { host, none };

struct Policy {
  Mode mode = Mode::none;
  Network network = Network::host;
  std::filesystem::path bwrap = "/usr/bin/bwrap";
  // Mode::none chosen by the operator (sandbox="none" in the config): each
  // job that starts processes gets a log line saying it ran unsandboxed.
  // False for embedders and tests that just leave the default.
  bool announce_none = false;

  // Per-job limits. cgroup ones are applied by the worker (host/cgroup);
  // the rest by the job's process itself through QUERN_SETUP.
  cgroup::Limits limits;
  int64_t tmp_size = 0;  // bytes of the sandbox's private /tmp; 0 = the tmpfs default
  int64_t nofile = 0;    // RLIMIT_NOFILE; 0 = the worker's own
  // Who jobs run as when the worker is root (Mode::bwrap only): a user name
  // or uid; resolve_job_user() sets uid/gid, -1 = jobs keep the worker's user.
  std::string job_user = "nobody";
  int64_t uid = -1, gid = -1;
};

// Sets policy.uid/gid from job_user when the worker runs as root with a
// sandbox; leaves them -1 otherwise. Fails when the user does not exist.
Status resolve_job_user(Policy& policy);

// The part of QUERN_SETUP (quern/sandbox.h) that is the same for every job
// of the policy: nofile, core=0, user. The worker adds each job's cgroups.
std::string setup_items(const Policy& policy);

// bwrap's arguments for policy, up to and including "--"; the job's
// directory appears as the token {workdir}. Empty for Mode::none.
std::vector<std::string> wrapper(const Policy& policy);

// The wrapper encoded for QUERN_SANDBOX (quern/sandbox.h): the arguments
// joined by the unit separator '\x1f'. Empty for Mode::none.
std::string encode(const std::vector<std::string>& wrapper);

// Builds a sandbox once, around /bin/true in a scratch directory, exactly as
// jobs will get it. OK, or why not and how to fix it (bwrap missing, user
// namespaces disabled, ...). Always OK for Mode::none.
Status probe(const Policy& policy);

// "none", "bwrap (network host)", "bwrap (network none), memory-max 256 MiB,
// pids-max 100, jobs as uid 65534": for logs and the workers API.
std::string describe(const Policy& policy);

}  // namespace quern::sandbox
