// The script, keda and dry-run integrations (see integration.h).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "host/autoscale/integration.h"

namespace quern::autoscale {
namespace {

struct ScriptResult {
  int exit_code = -1;  // 128+N when killed by signal N
  bool timed_out = false;
  std::string output;  // stdout and stderr, the last `keep` bytes
};

// Milliseconds left until `deadline` (>= 0), for poll().
int ms_until(std::chrono::steady_clock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// Runs argv with exactly `env`, killing its whole process group at timeout.
// Async-signal-safe between fork and exec (the controller's process has
// threads).
ScriptResult run_with_timeout(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                              std::chrono::milliseconds timeout, size_t keep = 2048) {
  ScriptResult result;
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int p[2];
  if (argv.empty() || ::pipe2(p, O_CLOEXEC) != 0) {
    result.output = argv.empty() ? "no command" : std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    result.output = std::string("fork: ") + std::strerror(errno);
    ::close(p[0]);
    ::close(p[1]);
    return result;
  }
  if (pid == 0) {
    // The controller's thread may run with shutdown signals blocked.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setpgid(0, 0);
    int in = ::open("/dev/null", O_RDONLY);
    if (in < 0 || ::dup2(in, 0) < 0 || ::dup2(p[1], 1) < 0 || ::dup2(p[1], 2) < 0) ::_exit(126);
    ::execve(args[0], args.data(), envp.data());
    const char msg[] = "cannot execute the autoscale script\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: no race with the kill below
  ::close(p[1]);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  bool open = true;
  while (open) {
    pollfd pfd{p[0], POLLIN, 0};
    const int n = ::poll(&pfd, 1, ms_until(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      result.timed_out = true;
      break;
    }
    const ssize_t got = ::read(p[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      open = false;
      break;
    }
    result.output.append(buf, static_cast<size_t>(got));
    if (result.output.size() > 2 * keep) result.output.erase(0, result.output.size() - keep);
  }
  ::close(p[0]);
  // The pipe closes when the script and everything it started are gone or
  // closed it; a script that exits while a child keeps the pipe open counts
  // as still running. At the timeout, the whole group goes. After a normal
  // exit nothing is killed: what a script starts on purpose (setsid'd
  // daemons) may not have left the group yet.
  if (result.timed_out) ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (result.output.size() > keep) result.output.erase(0, result.output.size() - keep);
  while (!result.output.empty() && (result.output.back() == '\n' || result.output.back() == ' '))
    result.output.pop_back();
  return result;
}

class ScriptIntegration : public Integration {
 public:
  explicit ScriptIntegration(const config::WorkerGroup& g) : group_(g) {}

  int initial_count(std::optional<int> recorded, const Signals& signals) override {
    return recorded.value_or(static_cast<int>(signals.live_workers));
  }

  Status apply(int from, int to, const Decision& d) override {
    std::vector<std::string> env = {
        "QUERN_AUTOSCALE_GROUP=" + group_.name,     "QUERN_AUTOSCALE_FROM=" + std::to_string(from),
        "QUERN_AUTOSCALE_TO=" + std::to_string(to), "QUERN_AUTOSCALE_SLOTS=" + std::to_string(group_.slots),
        "QUERN_AUTOSCALE_RULE=" + d.rule,           "QUERN_AUTOSCALE_REASON=" + d.reason};
    const char* path = std::getenv("PATH");
    env.push_back(std::string("PATH=") + (path ? path : "/usr/local/bin:/usr/bin:/bin"));
    const config::Autoscale& a = *group_.autoscale;
    ScriptResult r = run_with_timeout({a.script.string()}, env, a.script_timeout);
    if (r.timed_out)
      return Status::error(a.script.string() + " timed out after " +
                           std::to_string(a.script_timeout.count()) + "ms and was killed" +
                           (r.output.empty() ? "" : ": " + r.output));
    if (r.exit_code != 0)
      return Status::error(a.script.string() + " exited with " + std::to_string(r.exit_code) +
                           (r.output.empty() ? "" : ": " + r.output));
    return Status::ok();
  }

 private:
  const config::WorkerGroup group_;
};

// keda and dry-run: the decision is recorded (and, for KEDA, served); the
// count in effect is what was last recorded.
class PassiveIntegration : public Integration {
 public:
  explicit PassiveIntegration(bool dry_run, int min) : dry_run_(dry_run), min_(min) {}
  int initial_count(std::optional<int> recorded, const Signals&) override { return recorded.value_or(min_); }
  Status apply(int, int, const Decision&) override { return Status::ok(); }
  const char* success_outcome() const override { return dry_run_ ? "dry-run" : "ok"; }

 private:
  const bool dry_run_;
  const int min_;
};

}  // namespace

std::unique_ptr<Integration> make_script_integration(const config::WorkerGroup& group) {
  return std::make_unique<ScriptIntegration>(group);
}

std::unique_ptr<Integration> make_passive_integration(const config::WorkerGroup& group) {
  return std::make_unique<PassiveIntegration>(group.autoscale->integration == "dry-run",
                                              group.autoscale->min);
}

}  // namespace quern::autoscale
