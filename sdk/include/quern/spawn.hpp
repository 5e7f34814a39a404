// Header-only C++17 (POSIX): how the SDK starts every job process,
// included by quern/process.hpp (which says what spawn() guarantees; use
// that header). Behaviour, not contract: compiled into your plugin.
//
// spawn() applies the host's confinement from the child's environment
// (QUERN_SANDBOX and QUERN_SETUP, quern/sandbox.h): the sandbox, entered
// warm where it can be (quern/warm_sandbox.hpp), else built by bubblewrap
// for the child; the job's cgroups, rlimits and user.
#ifndef QUERN_SPAWN_HPP
#define QUERN_SPAWN_HPP

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "quern/executor.hpp"
#include "quern/sandbox.h"

namespace quern::sdk {

namespace detail {

inline std::system_error sys_error(int err, const std::string& what) {
  return std::system_error(err, std::generic_category(), what);
}

// An fd closed on scope exit.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Resolves a program name without '/' against the PATH in env (the child's
// environment, not ours), done before fork so the child need not allocate.
inline std::string resolve_program(const std::string& name, const std::vector<std::string>& env) {
  if (name.find('/') != std::string::npos) return name;
  std::string_view path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& e : env)
    if (e.compare(0, 5, "PATH=") == 0) path = std::string_view(e).substr(5);
  while (true) {
    std::size_t colon = path.find(':');
    std::string dir(path.substr(0, colon));
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) break;
    path.remove_prefix(colon + 1);
  }
  throw sys_error(ENOENT, "program '" + name + "' not found in PATH");
}

// Closes every fd >= `from` except `keep`, in the child after fork.
inline void close_fds_from(int from, int keep) noexcept {
#if defined(__linux__) && defined(SYS_close_range)
  bool ok = true;
  if (keep >= from) {
    if (keep > from && ::syscall(SYS_close_range, from, keep - 1, 0) != 0) ok = false;
    if (ok && ::syscall(SYS_close_range, keep + 1, ~0U, 0) != 0) ok = false;
  } else if (::syscall(SYS_close_range, from, ~0U, 0) != 0) {
    ok = false;
  }
  if (ok) return;
#endif
  // Fallback (kernel before 5.9): sysconf is async-signal-safe in practice.
  long max = ::sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = from; fd < max; ++fd)
    if (fd != keep) ::close(fd);
}

}  // namespace detail

namespace detail {

// Whether pid is the first process of a pid namespace below ours that
// neither catches nor ignores sig (Linux /proc/<pid>/status: NSpid, SigCgt,
// SigIgn). False when that cannot be read.
inline bool shielded_init(pid_t pid, int sig) noexcept {
#if defined(__linux__)
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  auto field = [&buf](const char* name) -> const char* {
    const char* at = std::strstr(buf, name);
    return at != nullptr ? at + std::strlen(name) : nullptr;
  };
  // "NSpid:\t4242\t1": more than one namespace, and 1 in the innermost.
  const char* ns = field("\nNSpid:");
  if (ns == nullptr) return false;
  const char* end = std::strchr(ns, '\n');
  if (end == nullptr) end = ns + std::strlen(ns);
  const char* last = end;
  while (last > ns && (last[-1] == ' ' || last[-1] == '\t')) --last;
  const char* start = last;
  while (start > ns && start[-1] != ' ' && start[-1] != '\t') --start;
  if (last - start != 1 || *start != '1' || std::strpbrk(ns, "0123456789") == start) return false;
  const unsigned long long bit = 1ULL << (sig - 1);
  for (const char* mask : {"\nSigCgt:", "\nSigIgn:"}) {
    const char* m = field(mask);
    if (m == nullptr || (std::strtoull(m, nullptr, 16) & bit) != 0) return false;
  }
  return true;
#else
  (void)pid;
  (void)sig;
  return false;
#endif
}

}  // namespace detail

// kill(target, sig) for a stop request (sig SIGTERM, SIGINT or SIGHUP),
// where target is a pid or, negative, a process group. The kernel shields
// the first process of a pid namespace from signals it has no handler for,
// and a warm-sandboxed job's first process is one (quern/warm_sandbox.hpp):
// when that process (target's leader) neither catches nor ignores sig, it
// gets SIGKILL instead, which is what sig would have done to any other
// process. Returns kill()'s result.
inline int stop_signal(pid_t target, int sig) noexcept {
  const int rc = ::kill(target, sig);
  const pid_t leader = target < 0 ? -target : target;
  if (rc == 0 && leader > 1 && detail::shielded_init(leader, sig)) ::kill(leader, SIGKILL);
  return rc;
}

// How spawn() starts a child.
struct SpawnSpec {
  // argv[0] is the program: a path, or a name looked up in the PATH of env.
  std::vector<std::string> argv;
  // The child's complete environment, "NAME=value" entries.
  std::vector<std::string> env;
  // Working directory of the child; empty = inherit.
  std::string workdir;
  // The child's descriptors: fds[i] becomes descriptor i in the child (0, 1,
  // 2, then 3 ...); every other descriptor is closed there. The parent keeps
  // its own copies open (close the child's ends after spawn returns).
  std::vector<int> fds;
  // SIGKILL the child when the thread that spawned it exits (Linux
  // PR_SET_PDEATHSIG): for long-lived helpers that must not outlive the host.
  bool die_with_parent = false;
  // Called in the parent with the pid (= process group id) as soon as the
  // group exists, before the exec is confirmed: report it to the host here
  // (ctx.set_process_group), so the host can stop a child stuck on its way
  // to exec. When spawn then throws, the child is already reaped.
  std::function<void(pid_t)> started;
};

}  // namespace quern::sdk

// Define QUERN_SPAWN_FORK_ONLY (to 1) before including this file to start
// children with plain fork() instead (the benchmark's baseline); sanitizer
// builds do, as their runtimes do not follow a CLONE_VM child.
#if defined(QUERN_SPAWN_FORK_ONLY)
#elif defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define QUERN_SPAWN_FORK_ONLY 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define QUERN_SPAWN_FORK_ONLY 1
#endif
#endif

#include "quern/warm_sandbox.hpp"

namespace quern::sdk {
namespace detail {

// Everything the child of spawn() needs between clone and exec, prepared
// before it: the child only reads it.
struct ChildPlan {
  int status_fd;
  bool die_with_parent;
  pid_t parent;
  const quern_setup* setup;
  int nfds;
  const int* high_fds;  // nfds descriptors, placed at 0..nfds-1
  const char* workdir;  // or null
  const char* program;
  char* const* argv;
  char* const* envp;
  const WarmPlan* warm;  // null: no warm sandbox to enter
};

// Reports step and errno to the parent and exits.
[[noreturn]] inline void child_fail(const ChildPlan& c, int step) noexcept {
  int report[2] = {step, errno};
  ssize_t ignored = ::write(c.status_fd, report, sizeof report);
  (void)ignored;
  ::_exit(127);
}

// What every child does last: its own process group, default signal
// dispositions and an empty mask, setup (when not null), the parent-death
// signal, its descriptors and working directory, exec. Never returns.
[[noreturn]] inline void child_exec(const ChildPlan& c, const quern_setup* setup, bool die_with_parent,
                                    bool check_parent) noexcept {
  if (::setpgid(0, 0) != 0) child_fail(c, 0);
  // Dispositions set to "ignore" and blocked signals survive exec; the
  // child must start with defaults. (The handler table is the child's own
  // copy: spawn does not pass CLONE_SIGHAND.)
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  ::sigprocmask(SIG_SETMASK, &empty_mask, nullptr);
  if (setup != nullptr)
    if (int step = quern_setup_apply(setup); step != 0) child_fail(c, 10 + step);
#if defined(__linux__)
  // After the setup: the kernel clears the parent-death signal when the
  // process's user or group changes (setup's user=), which would leave a
  // root worker's helpers running as the job user after the worker died.
  if (die_with_parent) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(c, 1);
    if (check_parent && ::getppid() != c.parent) ::_exit(1);  // the parent died before prctl
  }
#else
  (void)die_with_parent;
  (void)check_parent;
#endif
  for (int i = 0; i < c.nfds; ++i)
    if (::dup2(c.high_fds[i], i) < 0) child_fail(c, 2);
  if (c.workdir != nullptr && ::chdir(c.workdir) != 0) child_fail(c, 3);
  close_fds_from(c.nfds, c.status_fd);
  ::execve(c.program, c.argv, c.envp);
  child_fail(c, 4);
}

#if QUERN_WARM_SANDBOX_SUPPORTED
// The job's process of a warm spawn, pid 1 of its own pid namespace (see
// quern/warm_sandbox.hpp): its /proc, its user, the sandbox's user
// namespace, then what every child does. It dies with the spawning thread,
// as bubblewrap's --die-with-parent made it.
inline int warm_job_child(void* arg) noexcept {
  const ChildPlan& c = *static_cast<const ChildPlan*>(arg);
  const WarmPlan& w = *c.warm;
  if (warm_proc() != 0) child_fail(c, kWarmProc);
  if (int step = quern_setup_apply(w.inner); step != 0) child_fail(c, 10 + step);
  // Not when the mount namespace's owner is the sandbox's user namespace
  // and the unprivileged path entered it already.
  if ((w.as_root || w.sandbox->owner_fd >= 0) && ::setns(w.sandbox->user_fd, CLONE_NEWUSER) != 0)
    child_fail(c, kWarmUser);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(c, kWarmUser);
  child_exec(c, nullptr, true, false);
}

// The first child of a warm spawn: joins the job's cgroups and rlimits,
// enters the warm namespaces, makes the job's own, sets its mounts up, and
// starts the job's process as a child of the spawning process
// (CLONE_PARENT), whose pid it reports before exiting.
[[noreturn]] inline void warm_child(const ChildPlan& c) noexcept {
  const WarmPlan& w = *c.warm;
  const WarmSandbox& s = *w.sandbox;
  if (int step = quern_setup_apply(w.outer); step != 0) child_fail(c, 10 + step);
  // As root, the mount namespace is entered with the init namespace's
  // privileges; otherwise as the owner of the user namespace owning it.
  if (!w.as_root && ::setns(s.owner_fd >= 0 ? s.owner_fd : s.user_fd, CLONE_NEWUSER) != 0)
    child_fail(c, kWarmEnter);
  if (::setns(s.mnt_fd, CLONE_NEWNS) != 0) child_fail(c, kWarmEnter);
  if (s.net_fd >= 0 && ::setns(s.net_fd, CLONE_NEWNET) != 0) child_fail(c, kWarmEnter);
  if (::unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP) != 0)
    child_fail(c, kWarmUnshare);
  if (::sethostname(s.hostname.data(), s.hostname.size()) != 0) child_fail(c, kWarmUnshare);
  if (warm_mounts(w) != 0) child_fail(c, kWarmMounts);
  pid_t job;
#if defined(QUERN_SPAWN_FORK_ONLY)
  job = static_cast<pid_t>(::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (job == 0) warm_job_child(const_cast<ChildPlan*>(&c));
#else
  job = ::clone(&warm_job_child, static_cast<char*>(w.stack) + w.stack_size,
                CLONE_VM | CLONE_VFORK | CLONE_PARENT | SIGCHLD, const_cast<ChildPlan*>(&c));
#endif
  if (job < 0) child_fail(c, kWarmClone);
  int report[2] = {kWarmPid, static_cast<int>(job)};
  ssize_t ignored = ::write(c.status_fd, report, sizeof report);
  (void)ignored;
  ::_exit(0);
}
#endif

// The child: async-signal-safe system calls only, no allocation, and no
// write to memory it shares with the parent but its own stack (with
// CLONE_VM it runs in the parent's address space) and errno. Never returns.
inline int spawn_child(void* arg) noexcept {
  const ChildPlan& c = *static_cast<const ChildPlan*>(arg);
#if QUERN_WARM_SANDBOX_SUPPORTED
  if (c.warm != nullptr) warm_child(c);
#endif
  child_exec(c, c.setup, c.die_with_parent, true);
}

// Starts the child of `plan`; returns its pid, or -1 with errno.
//
// On Linux, vfork-style: clone(CLONE_VM | CLONE_VFORK) on a stack of its
// own. fork() copies the parent's page tables, which costs time in
// proportion to the parent's resident memory (13 ms for a 100 MB parent on
// a small VM, docs/BENCHMARKS.md); sharing the address space costs nothing,
// and CLONE_VFORK suspends only this thread until the child has exec'd (or
// failed). Every signal is blocked in this thread around the clone, so no
// handler of the parent's can run in the child before it resets them.
inline pid_t start_child(ChildPlan& plan) {
#if defined(__linux__) && !defined(QUERN_SPAWN_FORK_ONLY)
  constexpr std::size_t kStack = 128 * 1024;
  void* stack =
      ::mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return -1;
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid =
      ::clone(&spawn_child, static_cast<char*>(stack) + kStack, CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
  const int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::munmap(stack, kStack);  // the child has exec'd or exited: its stack is free
  errno = clone_errno;
  return pid;
#else
  const pid_t pid = ::fork();
  if (pid == 0) spawn_child(&plan);
  return pid;
#endif
}

// Names a failed step of the child (ChildPlan's reports) for an error message.
inline std::string child_step_name(int step, const std::string& workdir, const std::string& program) {
  switch (step) {
    case 0:
      return "setpgid";
    case 1:
      return "prctl(PR_SET_PDEATHSIG)";
    case 2:
      return "redirecting stdio";
    case 3:
      return "chdir to '" + workdir + "'";
    case 11:
    case 12:
    case 13:
      return quern_setup_step_(step - 10);
    case 4:
      return "exec '" + program + "'";
    default:
      return warm_step_name(step);
  }
}

// A step of a warm spawn failed: spawn() goes cold instead.
struct WarmStepError : std::system_error {
  WarmStepError(int err, const std::string& what) : std::system_error(err, std::generic_category(), what) {}
};

// spawn() with the sandbox's wrapper decided: warm when `warm` is set, else
// bubblewrap per spawn (wrapper non-empty) or none.
inline pid_t spawn_prepared(const SpawnSpec& spec, std::string_view what, const std::string& sandbox,
                            const quern_setup& setup, const std::shared_ptr<WarmSandbox>& warm) {
  std::string program = resolve_program(spec.argv[0], spec.env);
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : spec.env)
    if (e.rfind(QUERN_SANDBOX_ENV "=", 0) != 0 && e.rfind(QUERN_SETUP_ENV "=", 0) != 0)
      envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  std::unique_ptr<char*, decltype(&std::free)> wrapped(nullptr, &std::free);
  if (!sandbox.empty() && !warm) {
    wrapped.reset(quern_sandbox_argv(sandbox.c_str(), spec.workdir.c_str(), program.c_str(), argv.data()));
    if (!wrapped)
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "starting " + std::string(what) + ": the sandbox needs a working directory");
    argv.clear();
    for (char** a = wrapped.get(); *a != nullptr; ++a) argv.push_back(*a);
    argv.push_back(nullptr);
    program = argv[0];
  }
  const char* workdir = spec.workdir.empty() ? nullptr : spec.workdir.c_str();
  const int nfds = static_cast<int>(spec.fds.size());

  // The child's descriptors are copied above every target number first, so
  // that placing one never overwrites another still to be placed.
  const int high_base = nfds + 10;
  std::vector<Fd> high(spec.fds.size());
  std::vector<int> high_raw(spec.fds.size());
  for (std::size_t i = 0; i < spec.fds.size(); ++i) {
    int fd = ::fcntl(spec.fds[i], F_DUPFD_CLOEXEC, high_base);
    if (fd < 0) throw sys_error(errno, "fcntl(F_DUPFD_CLOEXEC)");
    high[i].reset(fd);
    high_raw[i] = fd;
  }
  // Reports a failed step to the parent; closes itself on exec.
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw sys_error(errno, "pipe");
  Fd status_r(p[0]), status_w(p[1]);
  {
    int fd = ::fcntl(status_w.get(), F_DUPFD_CLOEXEC, high_base);
    if (fd < 0) throw sys_error(errno, "fcntl(F_DUPFD_CLOEXEC)");
    status_w.reset(fd);
  }

  // A warm spawn: the job's user is switched to by its process, the rest of
  // the setup by the first child (quern/warm_sandbox.hpp).
  quern_setup outer = setup, inner;
  outer.uid = outer.gid = -1;
  std::memset(&inner, 0, sizeof inner);
  inner.nofile = inner.core = -1;
  inner.uid = setup.uid;
  inner.gid = setup.gid;
  std::vector<const char*> prefixes;
  WarmPlan warm_plan{};
  struct Stack {
    void* base = MAP_FAILED;
    std::size_t size = 0;
    ~Stack() {
      if (base != MAP_FAILED) ::munmap(base, size);
    }
  } job_stack;
  if (warm) {
    for (const std::string& d : warm->jobs_dir_prefixes) prefixes.push_back(d.c_str());
    prefixes.push_back(nullptr);
    job_stack.size = 128 * 1024;
    job_stack.base = ::mmap(nullptr, job_stack.size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (job_stack.base == MAP_FAILED) throw sys_error(errno, "mmap");
    warm_plan = WarmPlan{warm.get(), ::geteuid() == 0, &outer,         &inner,
                         workdir,    prefixes.data(),  job_stack.base, job_stack.size};
  }

  ChildPlan plan{status_w.get(),
                 spec.die_with_parent,
                 ::getpid(),
                 &setup,
                 nfds,
                 high_raw.data(),
                 workdir,
                 program.c_str(),
                 argv.data(),
                 envp.data(),
                 warm ? &warm_plan : nullptr};
  const pid_t first = start_child(plan);
  if (first < 0) throw sys_error(errno, "fork");
  high.clear();
  status_w.reset();

  // The child's reports until the pipe closes (every copy of it is gone at
  // exec or exit): a failed step, or, for a warm spawn, the job's pid.
  pid_t pid = warm ? -1 : first;
  if (!warm) {
    // Set the group here too so that it exists before anyone signals it,
    // whichever of the two runs first (EACCES: the child already exec'd).
    ::setpgid(pid, pid);
    if (spec.started) spec.started(pid);
  }
  int failed[2] = {-1, 0};
  while (true) {
    int report[2] = {0, 0};
    ssize_t n = ::read(status_r.get(), report, sizeof report);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof report)) break;
    if (warm && report[0] == kWarmPid)
      pid = report[1];
    else if (failed[0] < 0)
      std::memcpy(failed, report, sizeof report);
  }
  if (warm) {
    int status = 0;
    while (::waitpid(first, &status, 0) < 0 && errno == EINTR) {
    }
    if (failed[0] < 0 && pid < 0) failed[0] = kWarmClone, failed[1] = ECHILD;
  }
  if (failed[0] >= 0) {
    if (pid > 0)
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    std::string message =
        "starting " + std::string(what) + ": " + child_step_name(failed[0], spec.workdir, program);
    if (failed[0] >= kWarmEnter) throw WarmStepError(failed[1], message);
    throw std::system_error(failed[1], std::generic_category(), message);
  }
  if (warm) {
    ::setpgid(pid, pid);
    if (spec.started) spec.started(pid);
  }
  return pid;
}

}  // namespace detail

// Starts spec.argv in a new process group whose id is the returned pid (set
// in the child and in the parent, so it exists before spawn returns), with
// default signal dispositions and an empty signal mask. Throws
// std::system_error "starting <what>: <step>" (setpgid,
// prctl(PR_SET_PDEATHSIG), joining the job's cgroup, ..., redirecting stdio,
// chdir to '<dir>', exec '<program>') when the child cannot be set up; the
// child is reaped first. QUERN_SANDBOX and QUERN_SETUP in spec.env are the
// host's confinement (quern/sandbox.h): applied, and not passed on; the
// sandbox is entered warm when it can be (quern/warm_sandbox.hpp), else
// built by bubblewrap for this child.
// Between clone and exec the child makes only async-signal-safe calls on
// data prepared before, as a multithreaded parent requires
// (detail::start_child says how the child is started, and why).
inline pid_t spawn(const SpawnSpec& spec, std::string_view what = "child process") {
  if (spec.argv.empty()) throw std::invalid_argument("spawn: empty argv");
  // The host's sandbox (quern/sandbox.h): out of the child's environment,
  // around its command line.
  std::string sandbox;
  std::string setup_text;  // QUERN_SETUP, parsed in place below: setup points into it
  for (const auto& e : spec.env) {
    if (e.rfind(QUERN_SANDBOX_ENV "=", 0) == 0)
      sandbox = e.substr(sizeof(QUERN_SANDBOX_ENV));
    else if (e.rfind(QUERN_SETUP_ENV "=", 0) == 0)
      setup_text = e.substr(sizeof(QUERN_SETUP_ENV));
  }
  quern_setup setup;
  if (quern_setup_parse(setup_text.data(), &setup) != 0)
    throw std::system_error(
        std::make_error_code(std::errc::invalid_argument),
        "starting " + std::string(what) + ": the host's " QUERN_SETUP_ENV " is not understood");
  // Warm when it can be: a failed warm step rebuilds the warm sandbox and
  // tries once more, then goes cold. Only a warm step's failure does; the
  // job's own (exec, chdir) would fail the same way cold.
  const std::string user =
      setup.uid >= 0 ? "user=" + std::to_string(setup.uid) + ":" + std::to_string(setup.gid) : std::string();
  for (int attempt = 0; !sandbox.empty() && attempt < 2; ++attempt) {
    std::shared_ptr<detail::WarmSandbox> warm =
        detail::WarmSandboxes::instance().get(sandbox, spec.workdir, user);
    if (!warm) break;
    try {
      pid_t pid = detail::spawn_prepared(spec, what, sandbox, setup, warm);
      detail::WarmSandboxes::instance().succeeded(warm);
      return pid;
    } catch (const detail::WarmStepError&) {
      detail::WarmSandboxes::instance().failed(warm);
    }
  }
  return detail::spawn_prepared(spec, what, sandbox, setup, nullptr);
}

}  // namespace quern::sdk

#endif  // QUERN_SPAWN_HPP
