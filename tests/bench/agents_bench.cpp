// Many `quern agent` processes behind one `quern server` (docs/BENCHMARKS.md):
// what the agents cost the server, PostgreSQL and themselves, busy and idle.
//
//   quern_agents_bench --agents 100 --jobs 2000 --job-ms 100
//   quern_agents_bench --agents 1000 --mode idle --idle-seconds 20
//   quern_agents_bench --agents 1 --slots 8 --jobs 20000 --job-ms 0
//   quern_agents_bench --agents 100 --mode trickle --jobs 200
//   (also: --host /tmp/peers/sock --port 55433, --handler-threads N and
//   --db-connections N for the server's <server>, --keep; --mode noop is the
//   last line's shape, each of its numbers overridable)
//
// The database `quern_agents_bench` on --host/--port (user postgres, trust;
// the peers' cluster by default) is recreated and migrated (`quern migrate`,
// from this build's bin/ folder). One `quern server` starts with a generated
// config (its <database url>, <server listen="127.0.0.1:0">, a plugins folder
// holding only this build's noop plugin) and --metrics-listen 127.0.0.1:0;
// the ports it picked are read from its log. `quern token create --role agent
// --group bench --tags noop` makes the agents' token (passed to them in
// QUERN_TOKEN, not on their command lines); A `quern agent --slots S`
// processes (ids agents-bench-0 ..) start with a config that names the same
// plugins folder and no database, and the benchmark waits until all A are
// live rows of kind 'agent' in quern.workers. Then, by --mode:
//
// load (default): N noop jobs of D ms (args {"sleep_ms": D}, tag and language
// noop) are queued in one INSERT into quern.queue, and waited for in
// quern.completed_jobs. From the database's own timestamps: wall =
// max(completed_at) - min(started_at), jobs/s = N / wall, efficiency = N x D /
// (A x S x wall) (null for D = 0), queue wait (started_at - created_at) p50
// and max. CPU per job of the agents (their own threads, and their reaped
// children), of the server and of PostgreSQL; transactions per job; the
// server's HTTP answers by route and status class (its /metrics).
//
// idle: with the A agents long-polling and no jobs, over --idle-seconds T:
// the server's CPU, RSS (VmRSS), threads and open files (peak of 1 s samples
// and last), the agents' CPU per agent and mean RSS, PostgreSQL's CPU, the
// connections held in the database (pg_stat_activity, less the benchmark's
// own; peak and last), transactions per second, and the server's HTTP
// answers per second by route and status class.
//
// noop: load with --agents 1 --slots 8 --jobs 20000 --job-ms 0 unless given:
// what one agent moves through the server when jobs cost nothing.
//
// trickle: --jobs no-op jobs pushed one at a time, each once the last has
// completed, with the A agents otherwise idle: submit -> start p50 and p99,
// and the server's and PostgreSQL's CPU and the transactions per job (the
// parked polls' own once-a-second re-checks included).
//
// Refused before anything starts, when the machine's limits that can be read
// cheaply cannot hold A agents: an agent keeps 2 keep-alive connections to the
// server (claims; heartbeats, logs and results), and the server answers
// beyond 2,048 connections (http::ServerLimits::max_connections) with 503, so
// A <= 1,016; the server's open files (RLIMIT_NOFILE, whose soft limit this
// program raises to the hard one for itself and its children) must hold 2 per
// agent + 256; the threads (an agent runs 4 + S; 6 + S are counted) must fit
// RLIMIT_NPROC, kernel.threads-max and kernel.pid_max with what runs now; and
// A x 8 MB (an agent's own memory is about 2 MB, RssAnon; the rest of its
// RSS is shared file pages) must fit in 80% of MemAvailable.
//
// CPU: utime+stime of /proc/PID/stat in clock ticks (tests/bench/process_support.h).
// PostgreSQL: the postmaster (with its reaped children) and every live child
// of it, i.e. the whole cluster, less the benchmark's own two backends (0 /
// null for a remote server). Transactions: xact_commit of pg_stat_database,
// less the benchmark's own polls; backends report them up to a second late,
// so the end of a window is read 1.5 s after it; the two /metrics scrapes of
// a window cost the server a read of the queue each (a transaction or two).
// Prints one JSON document. The modes are in agents_bench_modes.cpp.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "tests/bench/agents_bench_modes.h"

using namespace quern::bench;
using namespace quern::bench::agents;

namespace {

using namespace std::chrono_literals;

constexpr int kConnsPerAgent = 2;            // HTTP keep-alive connections an agent holds
constexpr int kServerMaxConnections = 2048;  // http::ServerLimits::max_connections
// Measured (agent_threads_first, agent_rss_anon_mb_mean): an agent runs 4
// threads + 1 per slot, and holds 2 MB of its own (RssAnon; its other ~15 MB
// of RSS are file pages that the agents share). Counted with a margin.
constexpr int kThreadsPerAgent = 6;  // besides one per slot
constexpr int kAgentMemMb = 8;
constexpr const char* kGroup = "bench";

// --- Limits ------------------------------------------------------------------

long long read_number(const std::string& file) {
  long long v = -1;
  std::ifstream(file) >> v;
  return v;
}

// Threads on the machine now: the 4th field of /proc/loadavg is running/total.
long long threads_now() {
  std::string a, b, c, d;
  std::ifstream("/proc/loadavg") >> a >> b >> c >> d;
  const auto slash = d.find('/');
  return slash == std::string::npos ? -1 : std::stoll(d.substr(slash + 1));
}

// Throws, naming the limit, when the machine cannot hold the agents;
// raises RLIMIT_NOFILE's soft limit (inherited by the children) as needed.
void check_limits(const Args& a) {
  const long long A = a.agents;
  const long long conns = A * kConnsPerAgent + 16;
  if (conns > kServerMaxConnections)
    throw std::runtime_error(std::to_string(A) + " agents keep about " + std::to_string(conns) +
                             " connections to the server, more than the " +
                             std::to_string(kServerMaxConnections) +
                             " it accepts (http::ServerLimits::max_connections): at most " +
                             std::to_string((kServerMaxConnections - 16) / kConnsPerAgent) + " agents");
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  const rlim_t files = static_cast<rlim_t>(A * kConnsPerAgent + 256);
  if (nofile.rlim_max != RLIM_INFINITY && nofile.rlim_max < files)
    throw std::runtime_error("the server needs about " + std::to_string(files) + " open files for " +
                             std::to_string(A) + " agents; the hard limit is " +
                             std::to_string(nofile.rlim_max) + " (ulimit -Hn)");
  if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < files) {
    nofile.rlim_cur = files;
    if (::setrlimit(RLIMIT_NOFILE, &nofile) != 0)
      throw std::runtime_error("cannot raise the open files limit to " + std::to_string(files));
  }
  const long long threads = A * (kThreadsPerAgent + a.slots) + 64 + std::max(0LL, threads_now());
  rlimit nproc{};
  ::getrlimit(RLIMIT_NPROC, &nproc);
  if (::geteuid() != 0 && nproc.rlim_cur != RLIM_INFINITY && static_cast<long long>(nproc.rlim_cur) < threads)
    throw std::runtime_error(std::to_string(A) + " agents of " + std::to_string(a.slots) +
                             " slots and what runs now need about " + std::to_string(threads) +
                             " threads; the process limit is " + std::to_string(nproc.rlim_cur) +
                             " (ulimit -u)");
  for (const char* f : {"/proc/sys/kernel/threads-max", "/proc/sys/kernel/pid_max"})
    if (const long long max = read_number(f); max > 0 && max < threads)
      throw std::runtime_error(std::to_string(A) + " agents and what runs now need about " +
                               std::to_string(threads) + " threads; " + f + " is " + std::to_string(max));
  long long avail_kb = -1;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);)
    if (line.rfind("MemAvailable:", 0) == 0) avail_kb = std::stoll(line.substr(13));
  const long long need_mb = A * kAgentMemMb;
  if (avail_kb > 0 && need_mb * 1024 > avail_kb * 8 / 10)
    throw std::runtime_error(std::to_string(A) + " agents need about " + std::to_string(need_mb) +
                             " MB; 80% of MemAvailable is " + std::to_string(avail_kb * 8 / 10 / 1024) +
                             " MB");
}

// --- Files and processes -----------------------------------------------------

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s)
    out += c == '&'   ? "&amp;"
           : c == '<' ? "&lt;"
           : c == '>' ? "&gt;"
           : c == '"' ? "&quot;"
                      : std::string(1, c);
  return out;
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// dir/plugins holding only this build's noop plugin (a link).
std::filesystem::path noop_plugin_dir(const std::filesystem::path& dir,
                                      const std::filesystem::path& plugins) {
  const auto so = plugins / "libquern_noop.so";
  if (!std::filesystem::exists(so))
    throw std::runtime_error("no " + so.string() + ": build the quern_noop target");
  const auto out = dir / "plugins";
  std::filesystem::create_directories(out);
  std::filesystem::create_symlink(so, out / "libquern_noop.so");
  return out;
}

// The server's config: the database, any free port, the noop plugin.
std::filesystem::path write_server_config(const Args& a, const std::filesystem::path& dir,
                                          const std::filesystem::path& plugins, const std::string& db_url) {
  const auto config = dir / "server.xml";
  std::ofstream f(config);
  f << "<quern>\n  <database url=\"" << xml_escape(db_url) << "\" data-dir=\""
    << xml_escape((dir / "data").string()) << "\"/>\n"
    << "  <plugins dir=\"" << xml_escape(plugins.string()) << "\"/>\n"
    << "  <server listen=\"127.0.0.1:0\"";
  if (a.handler_threads > 0) f << " handler-threads=\"" << a.handler_threads << "\"";
  if (a.db_connections > 0) f << " db-connections=\"" << a.db_connections << "\"";
  f << "/>\n</quern>\n";
  return config;
}

// The agents' config: the noop plugin, no database.
std::filesystem::path write_agent_config(const std::filesystem::path& dir,
                                         const std::filesystem::path& plugins) {
  const auto config = dir / "agent.xml";
  std::ofstream(config) << "<quern>\n  <database data-dir=\"" << xml_escape((dir / "data").string())
                        << "\"/>\n  <plugins dir=\"" << xml_escape(plugins.string()) << "\"/>\n</quern>\n";
  return config;
}

// `quern token create --role agent --group bench --tags noop`: the token it prints.
std::string create_agent_token(const std::string& quern, const std::filesystem::path& config,
                               const std::string& db_url, const std::filesystem::path& dir) {
  const auto out = dir / "token.out", log = dir / "token.log";
  const int rc =
      run_to_end({quern, "token", "create", "--config", config.string(), "--database-url", db_url, "--role",
                  "agent", "--group", kGroup, "--tags", "noop", "--label", "quern_agents_bench"},
                 out, log);
  std::string token;
  std::getline(std::ifstream(out), token);
  std::filesystem::remove(out);
  if (rc != 0 || token.empty())
    throw std::runtime_error("quern token create failed (see " + log.string() + ")");
  return token;
}

// The server's ports (API, metrics) from its log, once it has printed both.
struct ServerPorts {
  int api = 0, metrics = 0;
};
ServerPorts wait_server(Children& server, const std::filesystem::path& log) {
  static const std::regex api(R"(listening on http://[^\s:]+:(\d+))"),
      metrics(R"(metrics on http://[^\s:]+:(\d+)/metrics)");
  const auto deadline = Clock::now() + 60s;
  while (true) {
    const std::string text = read_text(log);
    std::smatch m1, m2;
    if (std::regex_search(text, m1, api) && std::regex_search(text, m2, metrics))
      return {std::stoi(m1[1]), std::stoi(m2[1])};
    if (server.exited() >= 0)
      throw std::runtime_error("quern server exited at start (see " + log.string() + ")");
    if (Clock::now() > deadline)
      throw std::runtime_error("quern server did not start in 60 s (see " + log.string() + ")");
    std::this_thread::sleep_for(20ms);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Quern: many `quern agent` processes behind one `quern server`"};
  app.add_option("--host", a.host, "PostgreSQL: socket folder or host");
  app.add_option("--port", a.port, "PostgreSQL: port");
  app.add_option("--mode", a.mode,
                 "load (default), idle, noop (load: 1 agent x 8 slots, 20000 jobs of 0 ms), or trickle "
                 "(--jobs no-op jobs one after the other)")
      ->check(CLI::IsMember({"load", "idle", "noop", "trickle"}));
  auto* opt_agents =
      app.add_option("--agents", a.agents, "agent processes (10)")->check(CLI::Range(1, 16000));
  auto* opt_slots = app.add_option("--slots", a.slots, "slots per agent (1)")->check(CLI::Range(1, 1024));
  auto* opt_jobs = app.add_option("--jobs", a.jobs, "load: jobs queued in one INSERT (500)")
                       ->check(CLI::Range(1, 10000000));
  auto* opt_job_ms = app.add_option("--job-ms", a.job_ms, "load: each job's sleep_ms (100; 0: no sleep)")
                         ->check(CLI::Range(0, 3600000));
  app.add_option("--idle-seconds", a.idle_seconds, "idle: the window (10)")->check(CLI::Range(0.5, 3600.0));
  app.add_option("--handler-threads", a.handler_threads,
                 "the server's <server handler-threads> (its default)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--db-connections", a.db_connections, "the server's <server db-connections> (its default)")
      ->check(CLI::Range(1, 1000));
  app.add_flag("--keep", a.keep, "keep the configs and the logs");
  CLI11_PARSE(app, argc, argv);
  if (a.mode == "noop") {
    if (!opt_agents->count()) a.agents = 1;
    if (!opt_slots->count()) a.slots = 8;
    if (!opt_jobs->count()) a.jobs = 20000;
    if (!opt_job_ms->count()) a.job_ms = 0;
  }
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  const std::string quern = (self.parent_path() / "quern").string();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "quern-agents-bench";
  stop_children_on_signals();
  ::setenv("QUERN_LOG_LEVEL", "info", 1);  // the server's ports are read from its info lines
  Children server;                         // stopped after the agents (declared first)
  Children agents;
  try {
    check_limits(a);
    recreate_database(a.host, a.port, a.db);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string db_url = database_url(a.host, a.port, a.db);
    const auto plugins = noop_plugin_dir(dir, self.parent_path().parent_path() / "plugins");
    const auto server_config = write_server_config(a, dir, plugins, db_url);
    const auto agent_config = write_agent_config(dir, plugins);
    migrate(quern, server_config, db_url, dir);
    ::setenv("QUERN_TOKEN", create_agent_token(quern, server_config, db_url, dir).c_str(), 1);
    server.add(spawn({quern, "server", "--config", server_config.string(), "--database-url", db_url,
                      "--metrics-listen", "127.0.0.1:0"},
                     dir / "server.log"));
    const ServerPorts ports = wait_server(server, dir / "server.log");
    const std::string server_url = "http://127.0.0.1:" + std::to_string(ports.api);
    for (int i = 0; i < a.agents; ++i)
      agents.add(spawn({quern, "agent", "--server", server_url, "--slots", std::to_string(a.slots),
                        "--worker-id", agent_id(i), "--config", agent_config.string()},
                       dir / (agent_id(i) + ".log")));
    pqxx::connection c(db_url);
    pqxx::connection stats(database_url(a.host, a.port, "postgres"));
    Bench b{a, dir, server, agents, c, stats, 0, {}, ports.metrics};
    b.own = {static_cast<pid_t>(b.exec("SELECT pg_backend_pid()")[0][0].as<int64_t>()),
             static_cast<pid_t>(scalar(stats, "SELECT pg_backend_pid()"))};
    b.postmaster = postmaster_of(*b.own.begin());
    const double register_s = b.wait_registered();
    std::this_thread::sleep_for(2s);  // let start-up settle (and its statistics reach pg_stat_database)
    const int64_t connections = b.connections();
    Json out{{"system", "quern"},
             {"test", "agents"},
             {"mode", a.mode},
             {"agents", a.agents},
             {"slots_per_agent", a.slots},
             {"server",
              {{"handler_threads", a.handler_threads > 0 ? Json(a.handler_threads) : Json("default")},
               {"db_connections", a.db_connections > 0 ? Json(a.db_connections) : Json("default")}}},
             {"register_s", register_s},
             {"db_connections", connections},
             {"processes_at_start", b.processes()}};
    if (a.mode == "idle") {
      out["idle"] = run_idle(b);
    } else if (a.mode == "trickle") {
      out["jobs"] = a.jobs;
      out["trickle"] = run_trickle(b);
    } else {
      out["jobs"] = a.jobs;
      out["job_ms"] = a.job_ms;
      out["load"] = run_load(b, out);
    }
    agents.stop();
    server.stop();
    std::cout << out.dump() << std::endl;
    if (!a.keep) std::filesystem::remove_all(dir);
    return 0;
  } catch (const std::exception& e) {
    agents.stop();
    server.stop();
    std::cerr << "quern_agents_bench: " << e.what();
    if (std::filesystem::exists(dir)) std::cerr << " (logs in " << dir.string() << ")";
    std::cerr << std::endl;
    return 1;
  }
}
