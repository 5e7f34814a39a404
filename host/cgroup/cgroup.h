// Control groups for jobs: limits, accounting and a kill that nothing
// escapes (docs/ARCHITECTURE.md §8).
//
// Each worker keeps its jobs under <its own cgroup>/quern/<worker>/ and each
// job that starts processes gets <job id>-<attempt> there, in every
// hierarchy it needs:
//   - cgroup v2 (the unified hierarchy, Debian 12's default): one directory
//     with the memory, pids and cpu controllers it was given. On v2 a cgroup
//     with children that have controllers may hold no process, so a worker
//     whose own cgroup holds processes first moves them into
//     <own>/quern.supervisor (systemd: run it with Delegate=yes).
//   - hybrid machines (v2 mounted without those controllers, v1 memory / pids
//     / cpu beside it): the v1 hierarchy for each controller v2 lacks, and the
//     v2 directory as well when v2 is writable, for cgroup.kill and cpu.stat.
// The job's process joins every directory before it execs (the SDK's spawn,
// quern/sandbox.h), so all it starts, setsid'd or double-forked, is inside;
// killing the cgroups at the end of the job ends all of it.
//
// Thread-safety: Tree is immutable after open(); create() and the Job
// methods touch only their own directories, so any thread may call them.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "host/common/status.h"

namespace quern::cgroup {

// A job's limits; 0 = no limit.
struct Limits {
  int64_t memory_max = 0;     // bytes, swap included where the kernel can count it
  int64_t pids_max = 0;       // tasks (processes and threads)
  int64_t cpu_max_milli = 0;  // thousandths of a CPU: 1500 = one and a half CPUs
  bool operator==(const Limits&) const = default;
};

// What a job used; -1 = unknown.
struct Usage {
  int64_t peak_memory_bytes = -1;
  int64_t cpu_us = -1;
  int64_t oom_kills = 0;  // processes the kernel killed for memory
};

// What a cgroup that outlives a job (a warm process's) used between two
// readings of Job::usage(): CPU time and OOM kills as differences, the
// peak as the later reading has it (see Job::reset_peak()).
Usage used_between(const Usage& before, const Usage& after);

class Job {
 public:
  Job() = default;
  ~Job();  // kill() and remove(), if not done
  Job(Job&& other) noexcept;
  Job& operator=(Job&& other) noexcept;

  bool empty() const { return dirs_.empty(); }
  // cgroup.procs of each directory: the files a process joins by writing "0".
  std::vector<std::string> procs_files() const;
  // SIGKILLs every process in the job's cgroups (v2: cgroup.kill; v1: each
  // listed process, until none is left or a second has passed).
  void kill();
  // Sends the stop signal sig (quern::sdk::stop_signal: SIGKILL for a
  // warm-sandboxed job's pid 1 that has no handler for it) to every process
  // in the job's cgroup whose name (/proc/PID/comm) is not `except`: a job's
  // own processes, not the sandbox around them.
  void signal(int sig, const std::string& except) const;
  // Read before remove(): what the job's processes used, counted by the kernel.
  Usage usage() const;
  // Starts peak_memory_bytes afresh from the current usage, where the
  // hierarchy allows it (v1 memory); on v2 the peak stays the cgroup's
  // lifetime high-water mark. For a cgroup that outlives one job (a warm
  // process's), so that each job's peak is its own.
  void reset_peak() const;
  // rmdir()s the directories, waiting up to `wait` for killed processes to
  // leave. False (and the directories stay, for the next worker's reap) when
  // something is still inside.
  bool remove(std::chrono::milliseconds wait = std::chrono::seconds(2));

 private:
  friend class Tree;
  std::vector<std::filesystem::path> dirs_;
  std::filesystem::path v2_, memory_v1_, pids_v1_, cpuacct_v1_;
};

class Tree {
 public:
  // Finds the hierarchies and creates the worker's directory in each one
  // it will use. `limits` are those the worker's jobs may ask for: when one
  // needs a controller this machine does not give, the error says which and
  // how to fix it. Without limits, a machine with no usable cgroups gives a
  // Tree that creates empty Jobs (kill at the end is then the pid namespace's).
  static StatusOr<std::unique_ptr<Tree>> open(const std::string& worker_id, const Limits& limits);
  ~Tree();  // removes the worker's directories (if empty)

  // Kills and removes every job cgroup a previous worker of this id left.
  // Returns how many it found.
  int reap();
  // A cgroup for one job; an empty Job when the machine has none to give.
  StatusOr<Job> create(const std::string& name, const Limits& limits) const;
  // Whether create() can enforce each of these limits (a script's own may
  // need a controller the group's limits did not); the error names what is
  // missing.
  Status check(const Limits& limits) const;
  // "cgroup v2", "cgroup v1 memory,pids + v2", or "none".
  std::string describe() const { return description_; }

 private:
  Tree() = default;
  std::filesystem::path v2_, memory_v1_, pids_v1_, cpu_v1_, cpuacct_v1_;  // the worker's dirs; empty = unused
  bool v2_memory_ = false, v2_pids_ = false, v2_cpu_ = false;
  std::string description_;
};

// "256 MiB", "1.5 GiB", "512 KiB", "100 B": for messages.
std::string format_bytes(int64_t bytes);

}  // namespace quern::cgroup
