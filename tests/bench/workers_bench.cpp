// Many single-slot worker processes against one database (issue 17,
// docs/BENCHMARKS.md), Windmill's published shape:
//
//   quern_workers_bench --host /tmp/peers/sock --port 55433 --workers 50 --jobs 2000 --job-ms 100
//                       [--kind noop|bash] [--idle-seconds 20] [--sandbox none|bwrap]
//
// The database `quern_workers_bench` is recreated and migrated (`quern
// migrate`); W `quern worker --group bench` processes (slots="1", from this
// build's bin/ folder) start and register. A worker holds 3 connections:
// W x 3 + 10 above the server's max_connections is refused before anything
// starts (the peers' cluster has 300: at most 96 workers). Then:
//
// idle (--idle-seconds S > 0): the CPU the idle workers use over S seconds,
// the cluster's PostgreSQL CPU and this database's transactions in the same
// window.
//
// load: N jobs of D ms (noop `sleep_ms`, or bash `sleep D/1000`) are queued in
// one INSERT; from the database's own timestamps, wall = max(completed_at) -
// min(started_at), jobs/s = N / wall, efficiency = N x D / (W x wall). CPU of
// the worker processes and of PostgreSQL, and transactions, per job.
//
// CPU: utime+stime of /proc/PID/stat in clock ticks. Workers: their own
// threads ("self") and their reaped children, the job processes ("children").
// PostgreSQL: the postmaster (with its reaped children) and every live child
// of it, i.e. the whole cluster, less the benchmark's own two backends.
// Transactions: xact_commit of pg_stat_database, less the benchmark's own
// polls; backends report them up to a second late, so the end of a window is
// read 1.5 s after it. Prints one JSON document.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "tests/bench/bench_support.h"

extern char** environ;

using namespace quern::bench;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Args {
  std::string host = "/tmp/peers/sock";
  int port = 55433;
  std::string db = "quern_workers_bench";
  int workers = 10;
  int jobs = 500;
  int job_ms = 100;
  std::string kind = "noop";
  double idle_seconds = 0;
  std::string sandbox = "none";
  int conns_per_worker = 3;
  bool keep = false;
};

// Worker pids, for the signal handler: SIGINT/SIGTERM/SIGHUP stop them too.
constexpr int kMaxWorkers = 4096;
pid_t g_pids[kMaxWorkers];
std::atomic<int> g_npids{0};

extern "C" void on_signal(int sig) {
  for (int i = 0, n = g_npids.load(); i < n; ++i)
    if (g_pids[i] > 0) ::kill(g_pids[i], SIGTERM);
  ::_exit(128 + sig);
}

pid_t spawn(std::vector<std::string> args, const std::filesystem::path& log) {
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argp[0], &fa, nullptr, argp.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0] + ": " + std::strerror(rc));
  return pid;
}

// Stops every worker on every way out: SIGTERM, then SIGKILL after 30 s.
struct Workers {
  std::vector<pid_t> pids;
  ~Workers() { stop(); }
  void stop() {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, SIGTERM);
    const auto end = Clock::now() + 30s;
    for (pid_t& p : pids) {
      while (p > 0) {
        int st = 0;
        if (::waitpid(p, &st, WNOHANG) != 0)
          p = 0;
        else if (Clock::now() > end)
          ::kill(p, SIGKILL);
        else
          std::this_thread::sleep_for(5ms);
      }
    }
    pids.clear();
    g_npids = 0;
  }
  // A worker that has already exited: its index, or -1.
  int exited() {
    for (size_t i = 0; i < pids.size(); ++i) {
      int st = 0;
      if (pids[i] > 0 && ::waitpid(pids[i], &st, WNOHANG) == pids[i]) {
        pids[i] = 0;
        return static_cast<int>(i);
      }
    }
    return -1;
  }
};

// /proc/PID/stat fields after "(comm)": [1] ppid, [11] utime, [12] stime,
// [13] cutime, [14] cstime. Empty when the process is gone.
std::vector<long long> stat_of(pid_t pid) {
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

struct Sample {
  Clock::time_point at;
  long long worker_self = 0, worker_children = 0, postgres = 0;
};

Sample sample(const std::vector<pid_t>& workers, pid_t postmaster, const std::set<pid_t>& own_backends) {
  Sample s{Clock::now()};
  for (pid_t p : workers)
    if (auto v = stat_of(p); !v.empty()) {
      s.worker_self += v[11] + v[12];
      s.worker_children += v[13] + v[14];
    }
  if (postmaster <= 0) return s;
  if (auto v = stat_of(postmaster); !v.empty()) s.postgres += v[11] + v[12] + v[13] + v[14];
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const pid_t pid = std::stoi(name);
    if (own_backends.count(pid)) continue;
    if (auto v = stat_of(pid); !v.empty() && v[1] == postmaster) s.postgres += v[11] + v[12];
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Quern: many single-slot `quern worker` processes against one database"};
  app.add_option("--host", a.host);
  app.add_option("--port", a.port);
  app.add_option("--workers", a.workers, "single-slot worker processes")->check(CLI::Range(1, kMaxWorkers));
  app.add_option("--jobs", a.jobs, "jobs queued in one statement")->check(CLI::Range(1, 10000000));
  app.add_option("--job-ms", a.job_ms, "each job's duration")->check(CLI::Range(0, 3600000));
  app.add_option("--kind", a.kind, "noop (sleep_ms) or bash (sleep)")->check(CLI::IsMember({"noop", "bash"}));
  app.add_option("--idle-seconds", a.idle_seconds, "measure the idle workers first")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--sandbox", a.sandbox, "the group's sandbox")->check(CLI::IsMember({"none", "bwrap"}));
  app.add_option("--conns-per-worker", a.conns_per_worker, "connections a worker may open (for the refusal)");
  app.add_flag("--keep", a.keep, "keep the config and the workers' logs");
  CLI11_PARSE(app, argc, argv);
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  const std::string quern = (self.parent_path() / "quern").string();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "quern-workers-bench";
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, on_signal);
  Workers workers;
  try {
    {
      pqxx::connection c(database_url(a.host, a.port, "postgres"));
      const int64_t max_conns = scalar(c, "SHOW max_connections");
      const int64_t need = static_cast<int64_t>(a.workers) * a.conns_per_worker + 10;
      if (need > max_conns)
        throw std::runtime_error(
            std::to_string(a.workers) + " workers x " + std::to_string(a.conns_per_worker) +
            " connections + 10 = " + std::to_string(need) + " is more than the server's max_connections (" +
            std::to_string(max_conns) + "); raise it or use fewer workers");
    }
    recreate_database(a.host, a.port, a.db);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string db_url = database_url(a.host, a.port, a.db);
    const std::filesystem::path config = dir / "quern.xml";
    std::ofstream(config) << "<quern>\n  <plugins dir=\""
                          << (self.parent_path().parent_path() / "plugins").string() << "\"/>\n"
                          << "  <database data-dir=\"" << (dir / "data").string() << "\"/>\n"
                          << "  <queue poll-interval=\"1s\"/>\n"
                          << "  <workers>\n    <group name=\"bench\" slots=\"1\" tags=\"" << a.kind
                          << "\" plugins=\"" << a.kind << "\" sandbox=\"" << a.sandbox << "\"/>\n"
                          << "  </workers>\n</quern>\n";
    {
      const pid_t m = spawn({quern, "migrate", "--config", config.string(), "--database-url", db_url},
                            dir / "migrate.log");
      int st = 0;
      ::waitpid(m, &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        throw std::runtime_error("quern migrate failed (see " + (dir / "migrate.log").string() + ")");
    }
    for (int i = 0; i < a.workers; ++i) {
      const std::string id = "bench-" + std::to_string(i);
      workers.pids.push_back(spawn({quern, "worker", "--config", config.string(), "--database-url", db_url,
                                    "--group", "bench", "--worker-id", id},
                                   dir / (id + ".log")));
      g_pids[i] = workers.pids.back();
      g_npids = i + 1;
    }
    pqxx::connection c(db_url);  // polls
    pqxx::connection stats(
        database_url(a.host, a.port, "postgres"));  // pg_stat_database, outside the measured database
    const std::set<pid_t> own = {static_cast<pid_t>(scalar(c, "SELECT pg_backend_pid()")),
                                 static_cast<pid_t>(scalar(stats, "SELECT pg_backend_pid()"))};
    pid_t postmaster = 0;  // a remote server: no PostgreSQL CPU
    if (auto v = stat_of(*own.begin()); !v.empty()) postmaster = static_cast<pid_t>(v[1]);
    int64_t polls = 0;  // the benchmark's own transactions in the measured database
    auto poll = [&](const std::string& sql) {
      ++polls;
      return scalar(c, sql);
    };
    auto xacts = [&] {
      return scalar(stats, "SELECT xact_commit FROM pg_stat_database WHERE datname = " + stats.quote(a.db)) -
             polls;
    };
    const auto t_start = Clock::now();
    const auto reg_deadline = t_start + 60s + a.workers * 500ms;
    while (poll("SELECT count(*) FROM quern.workers WHERE worker_group = 'bench' "
                "AND last_seen_at > now() - interval '60 seconds'") < a.workers) {
      if (int i = workers.exited(); i >= 0)
        throw std::runtime_error("worker bench-" + std::to_string(i) + " exited (see " +
                                 (dir / ("bench-" + std::to_string(i) + ".log")).string() + ")");
      if (Clock::now() > reg_deadline) throw std::runtime_error("the workers did not all register in time");
      std::this_thread::sleep_for(20ms);
    }
    const double register_s = std::chrono::duration<double>(Clock::now() - t_start).count();
    std::this_thread::sleep_for(2s);  // let start-up settle (and its statistics reach pg_stat_database)
    const int64_t connections = poll(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()");
    const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    auto cpu_s = [&](long long ticks) { return static_cast<double>(ticks) / tick; };
    auto secs = [](const Sample& s0, const Sample& s1) {
      return std::chrono::duration<double>(s1.at - s0.at).count();
    };
    const double W = a.workers;
    nlohmann::json out{{"system", "quern"},
                       {"test", "workers"},
                       {"kind", a.kind},
                       {"workers", a.workers},
                       {"slots_per_worker", 1},
                       {"jobs", a.jobs},
                       {"job_ms", a.job_ms},
                       {"register_s", register_s},
                       {"db_connections", connections},
                       {"db_connections_per_worker", static_cast<double>(connections) / W}};
    if (a.idle_seconds > 0) {
      const int64_t x0 = xacts();
      const Sample s0 = sample(workers.pids, postmaster, own);
      std::this_thread::sleep_for(std::chrono::duration<double>(a.idle_seconds));
      const Sample s1 = sample(workers.pids, postmaster, own);
      std::this_thread::sleep_for(1500ms);
      const int64_t x1 = xacts();
      const double t = secs(s0, s1), w = cpu_s(s1.worker_self - s0.worker_self);
      const double pg = cpu_s(s1.postgres - s0.postgres);
      out["idle"] = {{"seconds", t},
                     {"worker_cpu_s", w},
                     {"worker_cpu_pct_of_core_per_worker", 100.0 * w / t / W},
                     {"postgres_whole_cluster_cpu_s", postmaster > 0 ? nlohmann::json(pg) : nullptr},
                     {"postgres_cpu_pct_of_core", postmaster > 0 ? nlohmann::json(100.0 * pg / t) : nullptr},
                     {"xacts", x1 - x0},
                     {"xacts_per_s", static_cast<double>(x1 - x0) / t},
                     {"xacts_per_s_per_worker", static_cast<double>(x1 - x0) / t / W}};
    }
    // Load.
    std::string payload;
    if (a.kind == "noop") {
      payload = nlohmann::json{{"args", {{"sleep_ms", a.job_ms}}}}.dump();
    } else {
      std::ostringstream sec;
      sec << static_cast<double>(a.job_ms) / 1000.0;
      payload = nlohmann::json{{"code", "sleep " + sec.str()}, {"args", nlohmann::json::object()}}.dump();
    }
    std::string loadavg;  // other load on the machine makes the figures noisy
    std::getline(std::ifstream("/proc/loadavg"), loadavg);
    out["loadavg_before_load"] =
        loadavg.substr(0, loadavg.find(' ', loadavg.find(' ', loadavg.find(' ') + 1) + 1));
    const int64_t x0 = xacts();
    const Sample s0 = sample(workers.pids, postmaster, own);
    poll("INSERT INTO quern.queue (tag, language, payload) SELECT " + c.quote(a.kind) + ", " +
         c.quote(a.kind) + ", " + c.quote(payload) + "::json FROM generate_series(1, " +
         std::to_string(a.jobs) + ")");
    const double ideal_s = static_cast<double>(a.jobs) * a.job_ms / 1000.0 / W;
    const auto load_deadline = Clock::now() + std::chrono::duration<double>(10 * ideal_s + 60);
    while (poll("SELECT count(*) FROM quern.completed_jobs") < a.jobs) {
      if (int i = workers.exited(); i >= 0)
        throw std::runtime_error("worker bench-" + std::to_string(i) + " exited during the load (see " +
                                 (dir / ("bench-" + std::to_string(i) + ".log")).string() + ")");
      if (Clock::now() > load_deadline) throw std::runtime_error("the jobs did not all complete in time");
      std::this_thread::sleep_for(50ms);
    }
    const Sample s1 = sample(workers.pids, postmaster, own);
    std::this_thread::sleep_for(1500ms);
    const int64_t x1 = xacts();
    pqxx::nontransaction tx(c);
    ++polls;
    const auto r = tx.exec(
        "SELECT count(*) FILTER (WHERE status <> 'success'), "
        "extract(epoch FROM max(completed_at) - min(started_at)), "
        "extract(epoch FROM avg(completed_at - started_at)) * 1000, "
        "extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - created_at)) * 1000, "
        "extract(epoch FROM max(started_at - created_at)) * 1000 FROM quern.completed_jobs")[0];
    tx.commit();
    const double wall = r[1].as<double>(), N = a.jobs;
    const double ws = cpu_s(s1.worker_self - s0.worker_self),
                 wc = cpu_s(s1.worker_children - s0.worker_children);
    const double pg = cpu_s(s1.postgres - s0.postgres);
    out["load"] = {{"wall_s", wall},
                   {"jobs_per_s", N / wall},
                   {"efficiency_pct", 100.0 * N * a.job_ms / 1000.0 / (W * wall)},
                   {"ideal_wall_s", ideal_s},
                   {"not_success", r[0].as<int64_t>()},
                   {"mean_job_ms", r[2].as<double>()},
                   {"queue_wait_ms", {{"p50", r[3].as<double>()}, {"max", r[4].as<double>()}}},
                   {"window_s", secs(s0, s1)},
                   {"worker_cpu_s", {{"self", ws}, {"children", wc}}},
                   {"worker_cpu_ms_per_job", {{"self", 1000 * ws / N}, {"children", 1000 * wc / N}}},
                   {"postgres_whole_cluster_cpu_s", postmaster > 0 ? nlohmann::json(pg) : nullptr},
                   {"postgres_cpu_ms_per_job", postmaster > 0 ? nlohmann::json(1000 * pg / N) : nullptr},
                   {"xacts", x1 - x0},
                   {"xacts_per_job", static_cast<double>(x1 - x0) / N}};
    workers.stop();
    std::cout << out.dump() << std::endl;
    if (!a.keep) std::filesystem::remove_all(dir);
    return 0;
  } catch (const std::exception& e) {
    workers.stop();
    std::cerr << "quern_workers_bench: " << e.what();
    if (std::filesystem::exists(dir)) std::cerr << " (logs in " << dir.string() << ")";
    std::cerr << std::endl;
    return 1;
  }
}
