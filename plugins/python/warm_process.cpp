#include "warm_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "quern/process.hpp"

namespace quern::python {
namespace {

std::system_error sys_error(int err, const std::string& what) {
  return std::system_error(err, std::generic_category(), what);
}

// An fd closed on scope exit unless released.
class OwnedFd {
 public:
  explicit OwnedFd(int fd = -1) : fd_(fd) {}
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

WarmProcess::WarmProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                         const std::string& workdir, std::chrono::milliseconds kill_grace)
    : kill_grace_(kill_grace) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/')
    throw std::invalid_argument("WarmProcess: argv[0] must be an absolute path");
  int p[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0) throw sys_error(errno, "socketpair");
  OwnedFd in_parent(p[0]), in_child(p[1]);
  if (::pipe2(p, O_CLOEXEC) != 0) throw sys_error(errno, "pipe");
  OwnedFd out_r(p[0]), out_w(p[1]);
  if (::pipe2(p, O_CLOEXEC) != 0) throw sys_error(errno, "pipe");
  OwnedFd err_r(p[0]), err_w(p[1]);
  if (::pipe2(p, O_CLOEXEC) != 0) throw sys_error(errno, "pipe");
  OwnedFd reply_r(p[0]), reply_w(p[1]);
  // Dies with the thread that started it (the worker's slot thread): a warm
  // interpreter must never outlive the host.
  sdk::SpawnSpec spec{argv, env, workdir, {in_child.get(), out_w.get(), err_w.get(), reply_w.get()},
                      true, {}};
  const pid_t pid = sdk::spawn(spec, "the warm interpreter");
  in_child.reset();
  out_w.reset();
  err_w.reset();
  reply_w.reset();
  pid_ = pid;
  try {
    for (const OwnedFd* fd : {&in_parent, &out_r, &err_r, &reply_r}) sdk::set_nonblocking(fd->get());
  } catch (...) {
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw;
  }
  in_fd_ = in_parent.release();
  out_fd_ = out_r.release();
  err_fd_ = err_r.release();
  reply_fd_ = reply_r.release();
#if defined(__linux__) && defined(SYS_pidfd_open)
  // Readable once the child exits, so exit is noticed at once; else the
  // 50 ms poll finds it.
  if (long fd = ::syscall(SYS_pidfd_open, pid, 0); fd >= 0) exit_fd_ = static_cast<int>(fd);
#endif
}

WarmProcess::~WarmProcess() {
  if (!reaped_) kill_and_reap();
  for (int* fd : {&in_fd_, &out_fd_, &err_fd_, &reply_fd_, &exit_fd_}) close_fd(*fd);
}

bool WarmProcess::exited() {
  if (reaped_) return true;
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
      info.si_pid == pid_) {
    kill_and_reap();
    return true;
  }
  return false;
}

void WarmProcess::kill_and_reap() {
  // The zombie is not reaped yet, so the group id cannot have been reused.
  ::kill(-pid_, SIGKILL);
  while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  for (int* fd : {&in_fd_, &out_fd_, &err_fd_, &reply_fd_, &exit_fd_}) close_fd(*fd);
}

std::string WarmProcess::reap_description() {
  if (WIFEXITED(status_)) return "exit code " + std::to_string(WEXITSTATUS(status_));
  if (WIFSIGNALED(status_)) return "killed by " + quern::sdk::signal_name(WTERMSIG(status_));
  return "ended";
}

WarmProcess::Outcome WarmProcess::exchange(std::string_view request, const sdk::JobContext& ctx,
                                           const std::function<int32_t()>& stop, Clock::time_point deadline) {
  Outcome out;
  if (reaped_) {
    out.exit_description = reap_description();
    return out;
  }
  sdk::ProcessOptions options;  // line and stderr-tail limits, as for standard jobs
  sdk::ProcessResult lines;     // collects the stderr tail of this exchange
  sdk::OutputLines out_lines(QUERN_STREAM_STDOUT, ctx, lines, options);
  sdk::OutputLines err_lines(QUERN_STREAM_STDERR, ctx, lines, options);
  std::size_t written = 0;
  std::vector<char> buf(64 * 1024);

  // Reads what fd has now; false at EAGAIN, EOF (fd closed) or error.
  auto read_some = [&](int& fd, auto&& consume) {
    if (fd < 0) return false;
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      consume(buf.data(), static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) close_fd(fd);
    return n < 0 && errno == EINTR;
  };
  auto to_out = [&](const char* d, std::size_t n) { out_lines.feed(d, n); };
  auto to_err = [&](const char* d, std::size_t n) { err_lines.feed(d, n); };
  auto to_reply = [&](const char* d, std::size_t n) { reply_buf_.append(d, n); };
  auto finish = [&] {
    out_lines.flush();
    err_lines.flush();
    sdk::finish_stderr_tail(lines.stderr_tail, options.stderr_tail_bytes);
    out.stderr_tail = std::move(lines.stderr_tail);
  };

  enum class Why { kNone, kStop, kDeadline, kReplyClosed } why = Why::kNone;
  bool exited = false, kill_sent = false;
  Clock::time_point kill_at{}, drain_until{};
  try {
    while (true) {
      // 1. A complete reply: the output written before it is in the pipes now.
      if (why == Why::kNone && !exited && reply_buf_.find('\n') != std::string::npos) {
        while (read_some(out_fd_, to_out)) {
        }
        while (read_some(err_fd_, to_err)) {
        }
        std::size_t nl = reply_buf_.find('\n');
        out.kind = Outcome::Kind::kReply;
        out.reply = reply_buf_.substr(0, nl);
        reply_buf_.erase(0, nl + 1);
        finish();
        return out;
      }
      // 2. Has it exited? (WNOWAIT keeps the zombie, so the group id stays ours.)
      if (!exited) {
        siginfo_t info;
        std::memset(&info, 0, sizeof info);
        if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == pid_) {
          exited = true;
          ::kill(-pid_, SIGKILL);  // what the job left in the group dies with it
          close_fd(in_fd_);
          drain_until = Clock::now() + options.drain_deadline;
        }
      }
      // 3. Stop requests, the deadline, a closed reply pipe.
      if (!exited) {
        const auto now = Clock::now();
        if (why == Why::kNone) {
          if (int32_t s = stop ? stop() : QUERN_RUNNING; s != QUERN_RUNNING) {
            why = Why::kStop;
            out.stop_reason = s;
            sdk::stop_signal(-pid_, SIGTERM);  // pid 1 of its sandbox: see stop_signal
            kill_at = now + kill_grace_;
          } else if (now >= deadline) {
            why = Why::kDeadline;
            ::kill(-pid_, SIGKILL);
            kill_sent = true;
          } else if (reply_fd_ < 0) {
            why = Why::kReplyClosed;
            ::kill(-pid_, SIGKILL);
            kill_sent = true;
          }
        } else if (!kill_sent && now >= kill_at) {
          ::kill(-pid_, SIGKILL);
          kill_sent = true;
        }
      }
      const bool pipes_open = out_fd_ >= 0 || err_fd_ >= 0 || reply_fd_ >= 0;
      if (exited && (!pipes_open || Clock::now() >= drain_until)) break;

      // 4. Wait for output, the reply, room for the request, or the exit.
      pollfd fds[5];
      int nfds = 0, out_i = -1, err_i = -1, reply_i = -1, in_i = -1;
      if (!exited && exit_fd_ >= 0) fds[nfds++] = {exit_fd_, POLLIN, 0};
      if (out_fd_ >= 0) {
        out_i = nfds;
        fds[nfds++] = {out_fd_, POLLIN, 0};
      }
      if (err_fd_ >= 0) {
        err_i = nfds;
        fds[nfds++] = {err_fd_, POLLIN, 0};
      }
      if (reply_fd_ >= 0) {
        reply_i = nfds;
        fds[nfds++] = {reply_fd_, POLLIN, 0};
      }
      if (in_fd_ >= 0 && written < request.size()) {
        in_i = nfds;
        fds[nfds++] = {in_fd_, POLLOUT, 0};
      }
      int timeout_ms = 50;
      if (exited) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(drain_until - Clock::now()).count();
        timeout_ms = static_cast<int>(left < 0 ? 0 : left < 50 ? left : 50);
      }
      if (::poll(nfds > 0 ? fds : nullptr, static_cast<nfds_t>(nfds), timeout_ms) < 0) {
        if (errno == EINTR) continue;
        throw sys_error(errno, "poll");
      }
      if (out_i >= 0 && fds[out_i].revents != 0) read_some(out_fd_, to_out);
      if (err_i >= 0 && fds[err_i].revents != 0) read_some(err_fd_, to_err);
      if (reply_i >= 0 && fds[reply_i].revents != 0) read_some(reply_fd_, to_reply);
      if (in_i >= 0 && fds[in_i].revents != 0) {
        ssize_t n = ::send(in_fd_, request.data() + written, request.size() - written, MSG_NOSIGNAL);
        if (n > 0) written += static_cast<std::size_t>(n);
        // EPIPE: the child is gone; step 2 notices.
        if (n < 0 && errno != EAGAIN && errno != EINTR) close_fd(in_fd_);
      }
    }
  } catch (...) {
    kill_and_reap();
    throw;
  }
  kill_and_reap();  // already exited: only reaps
  finish();
  switch (why) {
    case Why::kStop:
      out.kind = Outcome::Kind::kStopped;
      break;
    case Why::kDeadline:
      out.kind = Outcome::Kind::kDeadline;
      break;
    default:
      if (std::size_t nl = reply_buf_.find('\n'); nl != std::string::npos) {
        // It replied, then exited (the runner does so after a failed import).
        out.kind = Outcome::Kind::kReply;
        out.reply = reply_buf_.substr(0, nl);
      } else {
        out.kind = Outcome::Kind::kDied;
        out.exit_description = reap_description();
      }
      reply_buf_.clear();
  }
  return out;
}

}  // namespace quern::python
