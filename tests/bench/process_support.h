// What the benchmarks that run Quern as processes share (workers_bench.cpp,
// agents_bench.cpp): spawning `quern ...` with its output in a log file,
// stopping the children on every way out (their destructor, and SIGINT,
// SIGTERM and SIGHUP through stop_children_on_signals()), `quern migrate`,
// and the CPU, memory and threads of processes read from /proc.
// Header-only: each benchmark is one program.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace quern::bench {

namespace detail {
// The children a signal stops: a slot per child ever tracked (never reused;
// 0 once it has been stopped or reaped). Lock-free atomics, so that the
// signal handler may read them.
constexpr int kMaxTracked = 16384;
inline std::atomic<pid_t> g_tracked[kMaxTracked];
inline std::atomic<int> g_ntracked{0};

inline void on_stop_signal(int sig) {
  for (int i = 0, n = g_ntracked.load(); i < n; ++i)
    if (pid_t p = g_tracked[i].load(); p > 0) ::kill(p, SIGTERM);
  ::_exit(128 + sig);
}
}  // namespace detail

// SIGINT, SIGTERM and SIGHUP send SIGTERM to every tracked child (those of a
// Children) and end the program with 128 + the signal.
inline void stop_children_on_signals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, detail::on_stop_signal);
}

// Starts args[0] (a path) with args; its stdout goes to `log` and its stderr
// to `err_log`, or to `log` as well when that is empty. Throws when it cannot start.
inline pid_t spawn(std::vector<std::string> args, const std::filesystem::path& log,
                   const std::filesystem::path& err_log = {}) {
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (err_log.empty())
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  else
    posix_spawn_file_actions_addopen(&fa, 2, err_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argp[0], &fa, nullptr, argp.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0] + ": " + std::strerror(rc));
  return pid;
}

// Runs args to its end (output as spawn()); its exit status, -1 when killed.
inline int run_to_end(std::vector<std::string> args, const std::filesystem::path& log,
                      const std::filesystem::path& err_log = {}) {
  const pid_t p = spawn(std::move(args), log, err_log);
  int st = 0;
  while (::waitpid(p, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Child processes that are stopped on every way out: SIGTERM, then SIGKILL
// after `grace`, by stop() or the destructor; a signal to the program stops
// them too (stop_children_on_signals()).
struct Children {
  std::vector<pid_t> pids;  // 0: reaped
  std::vector<int> slots;   // their slots in detail::g_tracked
  std::chrono::milliseconds grace{30000};

  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() { stop(); }

  void add(pid_t pid) {
    const int slot = detail::g_ntracked.load();
    if (slot >= detail::kMaxTracked) {
      ::kill(pid, SIGTERM);
      throw std::runtime_error("more than " + std::to_string(detail::kMaxTracked) + " child processes");
    }
    detail::g_tracked[slot] = pid;
    detail::g_ntracked = slot + 1;
    pids.push_back(pid);
    slots.push_back(slot);
  }

  void stop() {
    using namespace std::chrono_literals;
    for (pid_t p : pids)
      if (p > 0) ::kill(p, SIGTERM);
    const auto end = std::chrono::steady_clock::now() + grace;
    for (pid_t& p : pids) {
      while (p > 0) {
        int st = 0;
        if (::waitpid(p, &st, WNOHANG) != 0)
          p = 0;
        else if (std::chrono::steady_clock::now() > end)
          ::kill(p, SIGKILL);
        else
          std::this_thread::sleep_for(5ms);
      }
    }
    for (int s : slots) detail::g_tracked[s] = 0;
    pids.clear();
    slots.clear();
  }

  // A child that has already exited: its index (it is reaped), or -1.
  int exited() {
    for (size_t i = 0; i < pids.size(); ++i) {
      int st = 0;
      if (pids[i] > 0 && ::waitpid(pids[i], &st, WNOHANG) == pids[i]) {
        pids[i] = 0;
        detail::g_tracked[slots[i]] = 0;
        return static_cast<int>(i);
      }
    }
    return -1;
  }
};

// `quern migrate`, waited for (its output in dir/migrate.log); throws when it fails.
inline void migrate(const std::string& quern, const std::filesystem::path& config, const std::string& db_url,
                    const std::filesystem::path& dir) {
  if (run_to_end({quern, "migrate", "--config", config.string(), "--database-url", db_url},
                 dir / "migrate.log") != 0)
    throw std::runtime_error("quern migrate failed (see " + (dir / "migrate.log").string() + ")");
}

// /proc/PID/stat fields after "(comm)": [1] ppid, [11] utime, [12] stime,
// [13] cutime, [14] cstime. Empty when the process is gone.
inline std::vector<long long> stat_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(f, s)) return {};
  const auto close = s.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream in(s.substr(close + 2));
  std::vector<long long> v;
  std::string t;
  while (in >> t && v.size() < 15) v.push_back(t[0] == '-' || std::isdigit(t[0]) ? std::stoll(t) : 0);
  return v.size() == 15 ? v : std::vector<long long>{};
}

// CPU in clock ticks of some processes: their own threads (utime + stime)
// and their reaped children (cutime + cstime).
struct CpuTicks {
  long long self = 0, children = 0;
};
inline CpuTicks cpu_ticks(const std::vector<pid_t>& pids) {
  CpuTicks t;
  for (pid_t p : pids)
    if (p > 0)
      if (auto v = stat_of(p); !v.empty()) {
        t.self += v[11] + v[12];
        t.children += v[13] + v[14];
      }
  return t;
}

// CPU in clock ticks of a whole PostgreSQL cluster: the postmaster (with its
// reaped children) and every live child of it, less the pids in `except`
// (a benchmark's own backends). 0 when postmaster <= 0 (a remote server).
inline long long postgres_ticks(pid_t postmaster, const std::set<pid_t>& except) {
  long long ticks = 0;
  if (postmaster <= 0) return ticks;
  if (auto v = stat_of(postmaster); !v.empty()) ticks += v[11] + v[12] + v[13] + v[14];
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const pid_t pid = std::stoi(name);
    if (except.count(pid)) continue;
    if (auto v = stat_of(pid); !v.empty() && v[1] == postmaster) ticks += v[11] + v[12];
  }
  return ticks;
}

// The postmaster of a local backend (its parent), or 0 when it is not local.
inline pid_t postmaster_of(pid_t backend) {
  auto v = stat_of(backend);
  return v.empty() ? 0 : static_cast<pid_t>(v[1]);
}

inline double ticks_to_s(long long ticks) {
  return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A numeric field of /proc/PID/status ("VmRSS" in kB, "Threads"); -1 when
// the process or the field is not there.
inline long long proc_status(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.size() > field.size() && line.compare(0, field.size(), field) == 0 && line[field.size()] == ':')
      return std::stoll(line.substr(field.size() + 1));
  return -1;
}

// The open file descriptors of a process (-1 when they cannot be read).
inline long long open_fds(pid_t pid) {
  std::error_code ec;
  long long n = 0;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
       !ec && it != end; it.increment(ec))
    ++n;
  return ec ? -1 : n;
}

// The 1, 5 and 15 minute load averages, as /proc/loadavg writes them: other
// load on the machine makes the figures noisy.
inline std::string loadavg() {
  std::string s;
  std::getline(std::ifstream("/proc/loadavg"), s);
  return s.substr(0, s.find(' ', s.find(' ', s.find(' ') + 1) + 1));
}

}  // namespace quern::bench
