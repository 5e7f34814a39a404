// Header-only C++17 helpers (POSIX) for executor plugins that run child
// processes. See docs/ARCHITECTURE.md §8. Unlike quern/executor.h, this file
// is behaviour, not contract: it may change between SDK versions (it is
// compiled into your plugin, so a plugin built against one version keeps
// its behaviour). Use what is outside `detail`.
//
// spawn(spec) starts one child the way every job's process must start: its
// own process group, default signal dispositions and an empty signal mask,
// exactly the descriptors it is given, its own working directory and
// environment; optionally killed when the spawning thread dies. Every
// process a plugin starts goes through it (run_process below, the python
// plugin's warm interpreter), so there is one place to change how jobs'
// processes start.
//
// run_process(spec, ctx, options) starts spec.argv in its own process group
// (setpgid(0, 0)), in spec.workdir, with exactly spec.env as its environment,
// stdin from spec.stdin_text (or /dev/null) and every other inherited fd
// closed. It reports the group to the host at once (ctx.set_process_group),
// forwards stdout/stderr line by line (ctx.log), and polls ctx.cancelled():
// on a stop request it sends SIGTERM to the group and SIGKILL after
// options.kill_grace. When the main child exits, the rest of its group gets
// SIGKILL so no background process of the job survives it, the pipes are
// drained with a short deadline (a stray that escaped the group must not
// block us), the child is reaped and ctx.set_process_group(0) is called.
//
// Errors in setting up the child (pipe, fork, chdir, exec) throw
// std::system_error; behind QUERN_EXECUTOR_PLUGIN they become
// QUERN_STATUS_INTERNAL with the message.
//
// Thread-safety: run_process may run on several threads at once (one child
// each). It never touches process-wide state such as signal dispositions:
// stdin is fed through a socket written with MSG_NOSIGNAL, so a child that
// closes its stdin early cannot raise SIGPIPE in the host. Between fork and
// exec the child only makes async-signal-safe system calls on data prepared
// before fork (no allocation), which is what a multithreaded parent requires.
#ifndef QUERN_PROCESS_HPP
#define QUERN_PROCESS_HPP

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

// "SIGKILL", "SIGSEGV", ... for error messages ("signal N" when unknown).
inline std::string signal_name(int sig) {
  switch (sig) {
    case SIGHUP:
      return "SIGHUP";
    case SIGINT:
      return "SIGINT";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGILL:
      return "SIGILL";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGKILL:
      return "SIGKILL";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGPIPE:
      return "SIGPIPE";
    case SIGALRM:
      return "SIGALRM";
    case SIGTERM:
      return "SIGTERM";
    case SIGXCPU:
      return "SIGXCPU";
    case SIGXFSZ:
      return "SIGXFSZ";
    default:
      return "signal " + std::to_string(sig);
  }
}

struct ProcessSpec {
  // argv[0] is the program: a path, or a name looked up in the PATH of env.
  std::vector<std::string> argv;
  // The child's complete environment, "NAME=value" entries.
  std::vector<std::string> env;
  // Working directory of the child; empty = inherit.
  std::string workdir;
  // Text fed to stdin; nullopt = /dev/null.
  std::optional<std::string> stdin_text;
};

struct ProcessOptions {
  // Between SIGTERM and SIGKILL when the job is stopped.
  std::chrono::milliseconds kill_grace{2000};
  // How long to keep reading the pipes after the main child exited.
  std::chrono::milliseconds drain_deadline{200};
  // Longer lines are split into pieces of this size.
  std::size_t max_line_bytes = 64 * 1024;
  // Bytes of stderr kept for ProcessResult::stderr_tail.
  std::size_t stderr_tail_bytes = 4 * 1024;
  // Optional: set by the plugin's interrupt(); treated as QUERN_CANCEL_REQUESTED.
  const std::atomic<bool>* interrupted = nullptr;
};

struct ProcessResult {
  int exit_code = -1;   // WEXITSTATUS, or -1 when killed by a signal
  int term_signal = 0;  // WTERMSIG, or 0 when it exited
  // Why the job was stopped — the ctx.cancelled() value that made us stop
  // the child, or that the host raised while it ran (read again after it
  // exited) — or QUERN_RUNNING when nobody stopped it.
  int32_t stop_reason = QUERN_RUNNING;
  std::string last_stdout_line;  // last stdout line that is not blank
  std::string stderr_tail;       // the last stderr_tail_bytes of stderr (whole lines when possible)
};

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

// Splits one output stream of a child into lines for ctx.log (pieces of
// options.max_line_bytes when longer), keeping the last non-blank stdout
// line and the stderr tail in `result` (run_process does this for you; for
// plugins that read a child's pipes themselves).
class OutputLines {
 public:
  OutputLines(int32_t stream, const JobContext& ctx, ProcessResult& result, const ProcessOptions& options)
      : stream_(stream), ctx_(ctx), result_(result), options_(options) {}

  void feed(const char* data, std::size_t n) {
    buf_.append(data, n);
    std::size_t start = 0;
    while (true) {
      std::size_t nl = buf_.find('\n', start);
      if (nl == std::string::npos) {
        if (buf_.size() - start >= options_.max_line_bytes) {
          emit(std::string_view(buf_).substr(start, options_.max_line_bytes));
          start += options_.max_line_bytes;
          continue;
        }
        break;
      }
      std::size_t len = nl - start;
      // A line longer than the cap is forwarded in pieces.
      while (len > options_.max_line_bytes) {
        emit(std::string_view(buf_).substr(start, options_.max_line_bytes));
        start += options_.max_line_bytes;
        len -= options_.max_line_bytes;
      }
      emit(std::string_view(buf_).substr(start, len));
      start = nl + 1;
    }
    buf_.erase(0, start);
  }

  // At EOF: a partial last line is still a line.
  void flush() {
    if (!buf_.empty()) emit(buf_);
    buf_.clear();
  }

 private:
  void emit(std::string_view line) {
    ctx_.log(stream_, line);
    if (stream_ == QUERN_STREAM_STDOUT) {
      if (line.find_first_not_of(" \t\r") != std::string_view::npos) result_.last_stdout_line = line;
    } else {
      std::string& tail = result_.stderr_tail;
      tail.append(line.data(), line.size());
      tail.push_back('\n');
      // Trim in batches so that keeping the tail stays linear overall.
      if (tail.size() > 2 * options_.stderr_tail_bytes + 1)
        tail.erase(0, tail.size() - options_.stderr_tail_bytes - 1);
    }
  }

  int32_t stream_;
  const JobContext& ctx_;
  ProcessResult& result_;
  const ProcessOptions& options_;
  std::string buf_;
};

// Trims a stderr tail gathered by OutputLines to at most cap bytes, starting
// at a line boundary when one is near.
inline void finish_stderr_tail(std::string& tail, std::size_t cap) {
  if (!tail.empty() && tail.back() == '\n') tail.pop_back();
  if (tail.size() > cap) {
    std::size_t cut = tail.size() - cap;
    // Start at a line boundary when one is near.
    std::size_t nl = tail.find('\n', cut);
    tail.erase(0, nl != std::string::npos && nl - cut < 256 ? nl + 1 : cut);
  }
}

// Makes fd non-blocking; throws std::system_error.
inline void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    throw detail::sys_error(errno, "fcntl(O_NONBLOCK)");
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
};

// The child: async-signal-safe system calls only, no allocation, and no
// write to memory it shares with the parent but its own stack (with
// CLONE_VM it runs in the parent's address space) and errno. Never returns.
inline int spawn_child(void* arg) noexcept {
  const ChildPlan& c = *static_cast<const ChildPlan*>(arg);
  auto fail = [&c](int step) {
    int report[2] = {step, errno};
    ssize_t ignored = ::write(c.status_fd, report, sizeof report);
    (void)ignored;
    ::_exit(127);
  };
  if (::setpgid(0, 0) != 0) fail(0);
#if defined(__linux__)
  if (c.die_with_parent) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(1);
    if (::getppid() != c.parent) ::_exit(1);  // the parent died before prctl
  }
#endif
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
  if (int step = quern_setup_apply(c.setup); step != 0) fail(10 + step);
  for (int i = 0; i < c.nfds; ++i)
    if (::dup2(c.high_fds[i], i) < 0) fail(2);
  if (c.workdir != nullptr && ::chdir(c.workdir) != 0) fail(3);
  close_fds_from(c.nfds, c.status_fd);
  ::execve(c.program, c.argv, c.envp);
  fail(4);
  return 127;
}

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

}  // namespace detail

// Starts spec.argv in a new process group whose id is the returned pid (set
// in the child and in the parent, so it exists before spawn returns), with
// default signal dispositions and an empty signal mask. Throws
// std::system_error "starting <what>: <step>" (setpgid,
// prctl(PR_SET_PDEATHSIG), joining the job's cgroup, ..., redirecting stdio,
// chdir to '<dir>', exec '<program>') when the child cannot be set up; the
// child is reaped first. QUERN_SANDBOX and QUERN_SETUP in spec.env are the
// host's confinement (quern/sandbox.h): applied, and not passed on.
// Between clone and exec the child makes only async-signal-safe calls on
// data prepared before, as a multithreaded parent requires
// (detail::start_child says how the child is started, and why).
inline pid_t spawn(const SpawnSpec& spec, std::string_view what = "child process") {
  using detail::Fd;
  using detail::sys_error;
  if (spec.argv.empty()) throw std::invalid_argument("spawn: empty argv");
  std::string program = detail::resolve_program(spec.argv[0], spec.env);
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // The host's sandbox (quern/sandbox.h): out of the child's environment,
  // around its command line.
  std::string sandbox;
  std::string setup_text;  // QUERN_SETUP, parsed in place below: setup points into it
  for (const auto& e : spec.env) {
    if (e.rfind(QUERN_SANDBOX_ENV "=", 0) == 0)
      sandbox = e.substr(sizeof(QUERN_SANDBOX_ENV));
    else if (e.rfind(QUERN_SETUP_ENV "=", 0) == 0)
      setup_text = e.substr(sizeof(QUERN_SETUP_ENV));
    else
      envp.push_back(const_cast<char*>(e.c_str()));
  }
  envp.push_back(nullptr);
  quern_setup setup;
  if (quern_setup_parse(setup_text.data(), &setup) != 0)
    throw std::system_error(
        std::make_error_code(std::errc::invalid_argument),
        "starting " + std::string(what) + ": the host's " QUERN_SETUP_ENV " is not understood");
  std::unique_ptr<char*, decltype(&std::free)> wrapped(nullptr, &std::free);
  if (!sandbox.empty()) {
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

  detail::ChildPlan plan{status_w.get(), spec.die_with_parent, ::getpid(),  &setup,     nfds, high_raw.data(),
                         workdir,        program.c_str(),      argv.data(), envp.data()};
  const pid_t pid = detail::start_child(plan);
  if (pid < 0) throw sys_error(errno, "fork");

  // Parent. Also set the group here so that it exists before anyone signals
  // it, whichever of the two runs first (EACCES: the child already exec'd).
  ::setpgid(pid, pid);
  high.clear();
  status_w.reset();
  if (spec.started) spec.started(pid);
  int report[2] = {0, 0};
  ssize_t n;
  do n = ::read(status_r.get(), report, sizeof report);
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof report)) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    std::string step;
    switch (report[0]) {
      case 0:
        step = "setpgid";
        break;
      case 1:
        step = "prctl(PR_SET_PDEATHSIG)";
        break;
      case 2:
        step = "redirecting stdio";
        break;
      case 3:
        step = "chdir to '" + spec.workdir + "'";
        break;
      case 11:
      case 12:
      case 13:
        step = quern_setup_step_(report[0] - 10);
        break;
      default:
        step = "exec '" + program + "'";
        break;
    }
    throw sys_error(report[1], "starting " + std::string(what) + ": " + step);
  }
  return pid;
}

// Runs one child process to completion; see the top of this file.
inline ProcessResult run_process(const ProcessSpec& spec, const JobContext& ctx,
                                 const ProcessOptions& options = {}) {
  using Clock = std::chrono::steady_clock;
  using detail::Fd;
  using detail::sys_error;
  if (spec.argv.empty()) throw std::invalid_argument("run_process: empty argv");

  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw sys_error(errno, "pipe");
  Fd out_r(p[0]), out_w(p[1]);
  if (::pipe2(p, O_CLOEXEC) != 0) throw sys_error(errno, "pipe");
  Fd err_r(p[0]), err_w(p[1]);
  Fd in_parent, in_child;
  if (spec.stdin_text) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw sys_error(errno, "socketpair");
    in_parent.reset(sv[0]);
    in_child.reset(sv[1]);
  } else {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw sys_error(errno, "open /dev/null");
    in_child.reset(fd);
  }

  SpawnSpec child{spec.argv,    spec.env,
                  spec.workdir, {in_child.get(), out_w.get(), err_w.get()},
                  false,        [&ctx](pid_t group) { ctx.set_process_group(group); }};
  pid_t pid;
  try {
    pid = spawn(child);
  } catch (...) {
    ctx.set_process_group(0);  // reported by `started`; the child is gone
    throw;
  }
  const pid_t pgid = pid;
  out_w.reset();
  err_w.reset();
  in_child.reset();
  int status = 0;

  ProcessResult result;
  set_nonblocking(out_r.get());
  set_nonblocking(err_r.get());
  std::size_t stdin_written = 0;
  if (in_parent.get() >= 0) {
    set_nonblocking(in_parent.get());
    if (spec.stdin_text->empty()) in_parent.reset();
  }
  OutputLines out_lines(QUERN_STREAM_STDOUT, ctx, result, options);
  OutputLines err_lines(QUERN_STREAM_STDERR, ctx, result, options);

  // Readable once the child exits (Linux 5.3+), so exit is noticed at once
  // even after the child closed its pipes; else the 50 ms poll finds it.
  Fd exit_fd;
#if defined(__linux__) && defined(SYS_pidfd_open)
  if (long fd = ::syscall(SYS_pidfd_open, pid, 0); fd >= 0) exit_fd.reset(static_cast<int>(fd));
#endif

  bool exited = false;
  bool term_sent = false, kill_sent = false;
  Clock::time_point kill_at{}, drain_until{};
  std::vector<char> buf(64 * 1024);

  auto read_some = [&](Fd& fd, OutputLines& lines) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n > 0) {
      lines.feed(buf.data(), static_cast<std::size_t>(n));
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      lines.flush();
      fd.reset();
    }
  };

  // Whatever goes wrong from here on (bad_alloc, poll failing), the child
  // must not outlive this call unreaped.
  try {
    while (true) {
      // 1. Has the main child exited? (WNOWAIT: keep the zombie, so its pid,
      //    which is the group id, cannot be reused while we signal the group.)
      if (!exited) {
        siginfo_t info;
        std::memset(&info, 0, sizeof info);
        if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == pid) {
          exited = true;
          ::kill(-pgid, SIGKILL);  // background processes of the job die with it
          in_parent.reset();
          drain_until = Clock::now() + options.drain_deadline;
        }
      }
      // 2. Stop requests.
      if (!exited) {
        if (!term_sent) {
          int32_t why = ctx.cancelled();
          if (why == QUERN_RUNNING && options.interrupted != nullptr &&
              options.interrupted->load(std::memory_order_relaxed))
            why = QUERN_CANCEL_REQUESTED;
          if (why != QUERN_RUNNING) {
            result.stop_reason = why;
            ::kill(-pgid, SIGTERM);
            term_sent = true;
            kill_at = Clock::now() + options.kill_grace;
          }
        } else if (!kill_sent && Clock::now() >= kill_at) {
          ::kill(-pgid, SIGKILL);
          kill_sent = true;
        }
      }
      const bool pipes_open = out_r.get() >= 0 || err_r.get() >= 0;
      if (exited && (!pipes_open || Clock::now() >= drain_until)) break;

      // 3. Wait for output (at most 50 ms, so the checks above stay timely).
      pollfd fds[4];
      int nfds = 0;
      int out_i = -1, err_i = -1, in_i = -1;
      if (!exited && exit_fd.get() >= 0) fds[nfds++] = {exit_fd.get(), POLLIN, 0};
      if (out_r.get() >= 0) {
        out_i = nfds;
        fds[nfds++] = {out_r.get(), POLLIN, 0};
      }
      if (err_r.get() >= 0) {
        err_i = nfds;
        fds[nfds++] = {err_r.get(), POLLIN, 0};
      }
      if (in_parent.get() >= 0) {
        in_i = nfds;
        fds[nfds++] = {in_parent.get(), POLLOUT, 0};
      }
      int timeout_ms = 50;
      if (exited) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(drain_until - Clock::now()).count();
        timeout_ms = static_cast<int>(left < 0 ? 0 : left < 50 ? left : 50);
      }
      if (nfds == 0) {
        ::poll(nullptr, 0, timeout_ms);  // pipes closed, no pidfd: only waiting for the child
        continue;
      }
      int r = ::poll(fds, static_cast<nfds_t>(nfds), timeout_ms);
      if (r < 0) {
        if (errno == EINTR) continue;
        throw sys_error(errno, "poll");
      }
      if (out_i >= 0 && fds[out_i].revents != 0) read_some(out_r, out_lines);
      if (err_i >= 0 && fds[err_i].revents != 0) read_some(err_r, err_lines);
      if (in_i >= 0 && fds[in_i].revents != 0) {
        const std::string& text = *spec.stdin_text;
        ssize_t n =
            ::send(in_parent.get(), text.data() + stdin_written, text.size() - stdin_written, MSG_NOSIGNAL);
        if (n > 0) stdin_written += static_cast<std::size_t>(n);
        // Done, or the child closed its end (EPIPE): either way stdin is over.
        if (stdin_written == text.size() || (n < 0 && errno != EAGAIN && errno != EINTR)) in_parent.reset();
      }
    }
    // A stray outside the group may still hold a pipe: stop reading, keep what we have.
    if (out_r.get() >= 0) out_lines.flush();
    if (err_r.get() >= 0) err_lines.flush();
  } catch (...) {
    ::kill(-pgid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ctx.set_process_group(0);
    throw;
  }

  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ctx.set_process_group(0);
  // The host may have stopped the group itself (its watchdog signals it on a
  // timeout or cancel) before we polled: read why once more, so a child that
  // exited 0 after SIGTERM is not taken for a normal end.
  if (result.stop_reason == QUERN_RUNNING) {
    int32_t why = ctx.cancelled();
    if (why == QUERN_RUNNING && options.interrupted != nullptr &&
        options.interrupted->load(std::memory_order_relaxed))
      why = QUERN_CANCEL_REQUESTED;
    result.stop_reason = why;
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  finish_stderr_tail(result.stderr_tail, options.stderr_tail_bytes);
  return result;
}

}  // namespace quern::sdk

#endif  // QUERN_PROCESS_HPP
