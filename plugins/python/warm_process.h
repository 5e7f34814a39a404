// A long-lived child process that answers requests one at a time: the warm
// interpreter of the python executor's dedicated mode (docs/PYTHON.md).
//
// The child runs in its own process group, in `workdir`, with exactly `env`,
// and gets SIGKILL when the thread that started it (in practice: the worker)
// dies (PR_SET_PDEATHSIG). Its fds: 0 = requests (a socket the parent writes
// with MSG_NOSIGNAL, so a dead child cannot raise SIGPIPE in the host),
// 1/2 = output pipes, 3 = reply pipe (one line per reply); every other
// inherited fd is closed.
//
// exchange() writes one request, then waits for one reply line while
// forwarding stdout/stderr lines to the job's context. Because the child
// flushes its output before writing a reply, every byte it wrote before the
// reply is in the output pipes when the reply arrives; exchange() drains them
// (and flushes a partial last line) before returning, so all of a job's output
// is logged to that job and none leaks into the next one.
//
// Thread-safety: none; one thread uses a WarmProcess at a time (the plugin
// instance's execute / prepare thread). The stop function is polled from that
// thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "quern/executor.hpp"

namespace quern::python {

class WarmProcess {
 public:
  using Clock = std::chrono::steady_clock;

  struct Outcome {
    enum class Kind {
      kReply,     // `reply` holds one line from fd 3
      kStopped,   // stop() asked for it; the process was killed (TERM, grace, KILL) and reaped
      kDeadline,  // the deadline passed first; the process was killed and reaped
      kDied,      // the process exited (or closed fd 3) without replying; reaped
    };
    Kind kind = Kind::kDied;
    std::string reply;
    int32_t stop_reason = QUERN_RUNNING;  // kStopped: what stop() returned
    std::string exit_description;         // kDied: "exit code 1", "killed by SIGKILL"
    std::string stderr_tail;              // stderr of this exchange (last ~4 KiB)
  };

  // Starts argv (argv[0] an absolute path). Throws std::system_error when
  // the child cannot be set up (pipe, fork, chdir, exec).
  WarmProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env,
              const std::string& workdir, std::chrono::milliseconds kill_grace);
  // Kills the process group (SIGKILL) and reaps the child.
  ~WarmProcess();
  WarmProcess(const WarmProcess&) = delete;
  WarmProcess& operator=(const WarmProcess&) = delete;

  // Also the process group id.
  pid_t pid() const { return pid_; }
  // True once the child has exited (or was killed and reaped). Non-blocking.
  bool exited();

  // Sends `request` (empty: send nothing, only wait; used for the ready
  // line), then waits for one reply line. Output lines go to ctx (a
  // JobContext without callbacks drops them). stop() is polled at least every
  // 50 ms; a non-QUERN_RUNNING value kills the process. After anything but
  // kReply the process is gone and this object only answers exited() = true.
  Outcome exchange(std::string_view request, const sdk::JobContext& ctx, const std::function<int32_t()>& stop,
                   Clock::time_point deadline);

 private:
  // SIGKILLs the group, reaps the child, closes the pipes.
  void kill_and_reap();
  std::string reap_description();

  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  int in_fd_ = -1, out_fd_ = -1, err_fd_ = -1, reply_fd_ = -1, exit_fd_ = -1;
  std::chrono::milliseconds kill_grace_;
  std::string reply_buf_;  // bytes of fd 3 past the last complete line
};

}  // namespace quern::python
