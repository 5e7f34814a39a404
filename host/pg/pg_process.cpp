#include "host/pg/pg_process.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace quern::pg {

StatusOr<RunAs> resolve_run_as(const std::string& os_user) {
  RunAs as;
  if (::geteuid() != 0) return as;
  std::vector<std::string> candidates;
  if (!os_user.empty())
    candidates = {os_user};
  else
    candidates = {"postgres", "nobody"};
  for (const std::string& name : candidates) {
    struct passwd pw {};
    struct passwd* found = nullptr;
    char buf[4096];
    if (::getpwnam_r(name.c_str(), &pw, buf, sizeof buf, &found) != 0 || found == nullptr) continue;
    if (pw.pw_uid == 0)
      return Status::error("OS user " + name + " is root; PostgreSQL refuses to run as root");
    as.switch_user = true;
    as.user = name;
    as.uid = pw.pw_uid;
    as.gid = pw.pw_gid;
    as.home = pw.pw_dir ? pw.pw_dir : "/";
    int n = 64;
    as.groups.resize(n);
    if (::getgrouplist(name.c_str(), pw.pw_gid, as.groups.data(), &n) < 0) {
      as.groups.resize(n);
      ::getgrouplist(name.c_str(), pw.pw_gid, as.groups.data(), &n);
    }
    as.groups.resize(n);
    return as;
  }
  return Status::error("running as root and no OS user to run PostgreSQL as (tried " +
                       (os_user.empty() ? std::string("postgres, nobody") : os_user) + ")");
}

CommandResult run_command(const std::vector<std::string>& argv, const RunAs& as) {
  CommandResult res;
  for (const std::string& a : argv) res.command += (res.command.empty() ? "" : " ") + a;
  if (as.switch_user) res.command = "(as " + as.user + ") " + res.command;

  // Everything the child needs is prepared before fork: after fork in a
  // multi-threaded process only async-signal-safe calls are allowed.
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    if (kv.rfind("PG", 0) == 0) continue;  // PGHOST, PGPORT, PGDATA...: would redirect the tools
    if (as.switch_user &&
        (kv.rfind("HOME=", 0) == 0 || kv.rfind("USER=", 0) == 0 || kv.rfind("LOGNAME=", 0) == 0))
      continue;
    env_store.push_back(kv);
  }
  if (as.switch_user) {
    env_store.push_back("HOME=" + as.home);
    env_store.push_back("USER=" + as.user);
    env_store.push_back("LOGNAME=" + as.user);
  }
  std::vector<char*> envp;
  for (std::string& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  // PATH lookup done here (execvpe's search is not async-signal-safe to reason about).
  std::string path = argv.empty() ? std::string() : argv[0];
  if (!path.empty() && path.find('/') == std::string::npos) {
    const char* p = ::getenv("PATH");
    std::string dirs = p ? p : "/usr/bin:/bin";
    size_t start = 0;
    std::string found;
    while (start <= dirs.size()) {
      size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      std::string cand = dirs.substr(start, end - start) + "/" + path;
      if (::access(cand.c_str(), X_OK) == 0) {
        found = cand;
        break;
      }
      start = end + 1;
    }
    if (found.empty()) {
      res.output = path + ": not found in PATH";
      return res;
    }
    path = found;
  }

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    res.output = std::string("pipe: ") + std::strerror(errno);
    return res;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    res.output = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return res;
  }
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::close_range(3, ~0U, 0);
    if (as.switch_user) {
      if (::setgroups(as.groups.size(), as.groups.data()) != 0 || ::setgid(as.gid) != 0 ||
          ::setuid(as.uid) != 0) {
        static const char msg[] = "cannot switch to the PostgreSQL OS user\n";
        (void)!::write(2, msg, sizeof msg - 1);
        ::_exit(126);
      }
    }
    if (::chdir("/") != 0) ::_exit(126);  // the target user may not be able to read our cwd
    ::execve(path.c_str(), args.data(), envp.data());
    static const char msg[] = "exec failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(fds[1]);
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      res.output.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status))
    res.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    res.exit_code = 128 + WTERMSIG(status);
  return res;
}

}  // namespace quern::pg
