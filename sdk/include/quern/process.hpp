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
#include "quern/spawn.hpp"

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
            stop_signal(-pgid, SIGTERM);
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
