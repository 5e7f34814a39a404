// Real child processes for integration tests (`quern worker` etc.), with
// output captured to a file and waits bounded by deadlines.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace quern::testing {

class ChildProcess {
 public:
  // Starts argv[0] (a path) with argv; stdout and stderr go to log_file.
  // Throws std::runtime_error if the fork fails.
  ChildProcess(std::vector<std::string> argv, std::string log_file);
  ~ChildProcess();  // SIGKILL + reap if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig);
  // Waits for the exit; returns the exit status (128+signal when killed), or
  // -1 if the deadline passed first.
  int wait_exit(std::chrono::milliseconds timeout);
  bool running();
  std::string output() const;  // the log file's text so far
  const std::string& log_file() const { return log_file_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_file_;
};

// Runs argv (argv[0] a path) to its end, output captured to log_file: its
// exit status (-1 when it ran past timeout; it is then killed) and output.
struct Finished {
  int status = -1;
  std::string output;
};
Finished run_to_end(std::vector<std::string> argv, const std::string& log_file,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Polls cond every few milliseconds until it is true or timeout passes.
bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout);

// A loopback TCP port that was free a moment ago (for a child process's
// --listen; the child binds it right after).
int free_port();

// Live (non-zombie) processes whose command line contains marker. While a
// process execs, its command line reads empty for a moment (the kernel sets
// the new one up after switching memory), so a process seen here mid-chain
// (`setsid bash -c 'exec -a M ...'`) can briefly vanish; pass as_argv0 to
// match only processes whose argv[0] is exactly marker: `exec -a M` at the
// end of its chain, which execs no more.
std::vector<pid_t> processes_with_marker(const std::string& marker, bool as_argv0 = false);

}  // namespace quern::testing
