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
// Prints one JSON document.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "tests/bench/bench_support.h"
#include "tests/bench/process_support.h"

using namespace quern::bench;

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int kConnsPerAgent = 2;            // HTTP keep-alive connections an agent holds
constexpr int kServerMaxConnections = 2048;  // http::ServerLimits::max_connections
// Measured (agent_threads_first, agent_rss_anon_mb_mean): an agent runs 4
// threads + 1 per slot, and holds 2 MB of its own (RssAnon; its other ~15 MB
// of RSS are file pages that the agents share). Counted with a margin.
constexpr int kThreadsPerAgent = 6;  // besides one per slot
constexpr int kAgentMemMb = 8;
constexpr const char* kGroup = "bench";

struct Args {
  std::string host = "/tmp/peers/sock";
  int port = 55433;
  std::string db = "quern_agents_bench";
  std::string mode = "load";  // load | idle | noop | trickle
  int agents = 10;
  int slots = 1;
  int jobs = 500;
  int job_ms = 100;
  double idle_seconds = 10;
  int handler_threads = 0;  // 0: the server's default
  int db_connections = 0;   // 0: the server's default
  bool keep = false;
};

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

std::string agent_id(int i) { return "agents-bench-" + std::to_string(i); }

// --- The server's /metrics ---------------------------------------------------

// GET http://127.0.0.1:port/path: the body of a 200; throws otherwise.
std::string http_get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("metrics: cannot connect to port " + std::to_string(port));
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
    throw std::runtime_error("metrics: cannot send the request");
  std::string in;
  std::optional<size_t> need;  // header + Content-Length, once known
  char buf[65536];
  while (!need || in.size() < *need) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
    if (!need)
      if (const auto end = in.find("\r\n\r\n"); end != std::string::npos) {
        std::string head = in.substr(0, end);
        for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (const auto cl = head.find("content-length:"); cl != std::string::npos)
          need = end + 4 + std::stoul(head.substr(cl + 15));
      }
  }
  const auto end = in.find("\r\n\r\n");
  if (in.rfind("HTTP/1.1 200", 0) != 0 || end == std::string::npos)
    throw std::runtime_error("metrics: unexpected answer: " + in.substr(0, in.find('\r')));
  return in.substr(end + 4);
}

// The server's HTTP answers so far: "METHOD ROUTE CODE" -> count, and 503s.
struct HttpCounts {
  std::map<std::string, double> requests;
  double unavailable = 0;
};

std::string label(const std::string& line, const std::string& name) {
  const auto at = line.find(name + "=\"");
  if (at == std::string::npos) return "";
  const auto from = at + name.size() + 2;
  return line.substr(from, line.find('"', from) - from);
}

HttpCounts scrape(int metrics_port) {
  HttpCounts c;
  std::istringstream in(http_get(metrics_port, "/metrics"));
  for (std::string line; std::getline(in, line);) {
    const auto sp = line.rfind(' ');
    if (line.empty() || line[0] == '#' || sp == std::string::npos) continue;
    if (line.rfind("quern_http_requests_total{", 0) == 0)
      c.requests[label(line, "method") + " " + label(line, "route") + " " + label(line, "code")] +=
          std::stod(line.substr(sp + 1));
    else if (line.rfind("quern_http_unavailable_total", 0) == 0)
      c.unavailable += std::stod(line.substr(sp + 1));
  }
  return c;
}

// b - a: {"METHOD ROUTE CODE": count (or per second when seconds > 0)}, and 503s.
Json http_delta(const HttpCounts& a, const HttpCounts& b, double seconds = 0) {
  Json req = Json::object();
  for (const auto& [k, v] : b.requests) {
    const auto it = a.requests.find(k);
    const double d = v - (it == a.requests.end() ? 0 : it->second);
    if (d > 0) req[k] = seconds > 0 ? d / seconds : d;
  }
  const double u = b.unavailable - a.unavailable;
  return {{seconds > 0 ? "requests_per_s" : "requests", req}, {"unavailable_503", u}};
}

// --- Measuring ---------------------------------------------------------------

// CPU ticks of the agents, the server and PostgreSQL at one moment.
struct Sample {
  Clock::time_point at;
  CpuTicks agents, server;
  long long postgres = 0;
};

struct Bench {
  const Args& a;
  std::filesystem::path dir;
  Children& server;
  Children& agents;
  pqxx::connection& db;     // polls, in the measured database
  pqxx::connection& stats;  // pg_stat_*, from the postgres database
  pid_t postmaster = 0;     // 0: a remote server
  std::set<pid_t> own;      // the benchmark's own backends
  int metrics_port = 0;
  int64_t polls = 0;

  pqxx::result exec(const std::string& sql) {
    ++polls;
    pqxx::nontransaction tx(db);
    return tx.exec(sql);
  }
  // Transactions committed in the measured database, less the benchmark's polls.
  int64_t xacts() {
    return scalar(stats, "SELECT xact_commit FROM pg_stat_database WHERE datname = " + stats.quote(a.db)) -
           polls;
  }
  int64_t connections() {
    std::string own_list;
    for (pid_t p : own) own_list += (own_list.empty() ? "" : ",") + std::to_string(p);
    return scalar(stats, "SELECT count(*) FROM pg_stat_activity WHERE datname = " + stats.quote(a.db) +
                             " AND pid NOT IN (" + own_list + ")");
  }
  Sample sample() const {
    return {Clock::now(), cpu_ticks(agents.pids), cpu_ticks(server.pids), postgres_ticks(postmaster, own)};
  }
  Json pg(double v) const { return postmaster > 0 ? Json(v) : Json(nullptr); }
  pid_t server_pid() const { return server.pids.empty() ? 0 : server.pids[0]; }

  // Throws when the server or an agent has exited, naming it and its log.
  void check(const std::string& during) {
    if (server.exited() >= 0)
      throw std::runtime_error("the server exited during " + during + " (see " +
                               (dir / "server.log").string() + ")");
    if (int i = agents.exited(); i >= 0)
      throw std::runtime_error("agent " + agent_id(i) + " exited during " + during + " (see " +
                               (dir / (agent_id(i) + ".log")).string() + ")");
  }

  // Waits until the A agents are live rows of kind 'agent'; the seconds it took.
  double wait_registered() {
    const auto t0 = Clock::now();
    const auto deadline = t0 + 60s + a.agents * 200ms;
    while (exec("SELECT count(*) FROM quern.workers WHERE kind = 'agent' "
                "AND last_seen_at > now() - interval '60 seconds'")[0][0]
               .as<int64_t>() < a.agents) {
      check("start-up");
      if (Clock::now() > deadline) throw std::runtime_error("the agents did not all register in time");
      std::this_thread::sleep_for(50ms);
    }
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }

  // The server's memory, threads and files, and the agents' mean RSS, now.
  Json processes() const {
    const pid_t s = server_pid();
    long long rss = 0, anon = 0, n = 0;
    for (pid_t p : agents.pids)
      if (const long long kb = p > 0 ? proc_status(p, "VmRSS") : -1; kb >= 0) {
        rss += kb;
        anon += std::max(0LL, proc_status(p, "RssAnon"));
        ++n;
      }
    const auto mean_mb = [&](long long kb) { return n ? static_cast<double>(kb) / 1024 / n : 0.0; };
    return {{"server_rss_mb", static_cast<double>(proc_status(s, "VmRSS")) / 1024},
            {"server_threads", proc_status(s, "Threads")},
            {"server_open_files", open_fds(s)},
            {"agent_rss_mb_mean", mean_mb(rss)},
            {"agent_rss_anon_mb_mean", mean_mb(anon)},
            {"agent_threads_first", agents.pids.empty() ? -1 : proc_status(agents.pids[0], "Threads")}};
  }
};

double secs(const Sample& s0, const Sample& s1) {
  return std::chrono::duration<double>(s1.at - s0.at).count();
}

// idle: the long-polling agents, the server and PostgreSQL over --idle-seconds.
Json run_idle(Bench& b) {
  const double A = b.a.agents;
  const HttpCounts h0 = scrape(b.metrics_port);
  const int64_t x0 = b.xacts();
  const Sample s0 = b.sample();
  const auto end =
      s0.at + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(b.a.idle_seconds));
  long long rss_peak = 0, threads_peak = 0, files_peak = 0;
  int64_t conns_peak = 0, conns = 0;
  while (true) {
    b.check("the idle window");
    const pid_t s = b.server_pid();
    rss_peak = std::max(rss_peak, proc_status(s, "VmRSS"));
    threads_peak = std::max(threads_peak, proc_status(s, "Threads"));
    files_peak = std::max(files_peak, open_fds(s));
    conns = b.connections();
    conns_peak = std::max(conns_peak, conns);
    const auto now = Clock::now();
    if (now >= end) break;
    std::this_thread::sleep_for(std::min<Clock::duration>(end - now, 1s));
  }
  const Sample s1 = b.sample();
  const HttpCounts h1 = scrape(b.metrics_port);
  const Json procs = b.processes();
  rss_peak = std::max(rss_peak, static_cast<long long>(procs["server_rss_mb"].get<double>() * 1024));
  threads_peak = std::max(threads_peak, procs["server_threads"].get<long long>());
  files_peak = std::max(files_peak, procs["server_open_files"].get<long long>());
  std::this_thread::sleep_for(1500ms);
  const int64_t x1 = b.xacts();
  const double t = secs(s0, s1);
  const double server = ticks_to_s(s1.server.self - s0.server.self);
  const double agents = ticks_to_s(s1.agents.self - s0.agents.self);
  const double pg = ticks_to_s(s1.postgres - s0.postgres);
  return {
      {"seconds", t},
      {"server_cpu_s", server},
      {"server_cpu_pct_of_core", 100.0 * server / t},
      {"server_rss_mb", {{"peak", static_cast<double>(rss_peak) / 1024}, {"last", procs["server_rss_mb"]}}},
      {"server_threads", {{"peak", threads_peak}, {"last", procs["server_threads"]}}},
      {"server_open_files", {{"peak", files_peak}, {"last", procs["server_open_files"]}}},
      {"agent_cpu_s", agents},
      {"agent_cpu_pct_of_core_per_agent", 100.0 * agents / t / A},
      {"agent_rss_mb_mean", procs["agent_rss_mb_mean"]},
      {"agent_rss_anon_mb_mean", procs["agent_rss_anon_mb_mean"]},
      {"agent_threads_first", procs["agent_threads_first"]},
      {"postgres_whole_cluster_cpu_s", b.pg(pg)},
      {"postgres_cpu_pct_of_core", b.pg(100.0 * pg / t)},
      {"db_connections", {{"peak", conns_peak}, {"last", conns}}},
      {"xacts", x1 - x0},
      {"xacts_per_s", static_cast<double>(x1 - x0) / t},
      {"xacts_per_s_per_agent", static_cast<double>(x1 - x0) / t / A},
      {"http", http_delta(h0, h1, t)}};
}

// load: N noop jobs of D ms in one INSERT (see the top of this file).
Json run_load(Bench& b, Json& out) {
  const Args& a = b.a;
  const double slots = static_cast<double>(a.agents) * a.slots, N = a.jobs;
  const std::string payload = Json{{"args", {{"sleep_ms", a.job_ms}}}}.dump();
  out["loadavg_before_load"] = loadavg();
  const HttpCounts h0 = scrape(b.metrics_port);
  const int64_t x0 = b.xacts();
  const Sample s0 = b.sample();
  b.exec("INSERT INTO quern.queue (tag, language, payload) SELECT 'noop', 'noop', " + b.db.quote(payload) +
         "::json FROM generate_series(1, " + std::to_string(a.jobs) + ")");
  const double ideal_s = N * a.job_ms / 1000.0 / slots;
  // At least 50 jobs/s: a D = 0 run has no ideal to scale.
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(10 * ideal_s + 60 + N / 50));
  while (b.exec("SELECT count(*) FROM quern.completed_jobs")[0][0].as<int64_t>() < a.jobs) {
    b.check("the load");
    if (Clock::now() > deadline) throw std::runtime_error("the jobs did not all complete in time");
    std::this_thread::sleep_for(50ms);
  }
  const Sample s1 = b.sample();
  const HttpCounts h1 = scrape(b.metrics_port);
  const Json procs = b.processes();
  std::this_thread::sleep_for(1500ms);
  const int64_t x1 = b.xacts();
  const auto r = b.exec(
      "SELECT count(*) FILTER (WHERE status <> 'success'), "
      "extract(epoch FROM max(completed_at) - min(started_at)), "
      "extract(epoch FROM avg(completed_at - started_at)) * 1000, "
      "extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - created_at)) * 1000, "
      "extract(epoch FROM max(started_at - created_at)) * 1000, count(DISTINCT worker_id) "
      "FROM quern.completed_jobs")[0];
  const double wall = r[1].as<double>();
  const double as = ticks_to_s(s1.agents.self - s0.agents.self),
               ac = ticks_to_s(s1.agents.children - s0.agents.children);
  const double server = ticks_to_s(s1.server.self - s0.server.self);
  const double pg = ticks_to_s(s1.postgres - s0.postgres);
  return {
      {"wall_s", wall},
      {"jobs_per_s", N / wall},
      {"efficiency_pct", a.job_ms > 0 ? Json(100.0 * N * a.job_ms / 1000.0 / (slots * wall)) : Json(nullptr)},
      {"ideal_wall_s", ideal_s},
      {"not_success", r[0].as<int64_t>()},
      {"agents_used", r[5].as<int64_t>()},
      {"mean_job_ms", r[2].as<double>()},
      {"queue_wait_ms", {{"p50", r[3].as<double>()}, {"max", r[4].as<double>()}}},
      {"window_s", secs(s0, s1)},
      {"agent_cpu_s", {{"self", as}, {"children", ac}}},
      {"agent_cpu_ms_per_job", {{"self", 1000 * as / N}, {"children", 1000 * ac / N}}},
      {"server_cpu_s", server},
      {"server_cpu_ms_per_job", 1000 * server / N},
      {"postgres_whole_cluster_cpu_s", b.pg(pg)},
      {"postgres_cpu_ms_per_job", b.pg(1000 * pg / N)},
      {"xacts", x1 - x0},
      {"xacts_per_job", static_cast<double>(x1 - x0) / N},
      {"processes_after", procs},
      {"http", http_delta(h0, h1)}};
}

// trickle: N no-op jobs, each pushed once the one before it has completed,
// to A idle agents: what one job costs when every agent waits for it.
Json run_trickle(Bench& b) {
  const HttpCounts h0 = scrape(b.metrics_port);
  const int64_t x0 = b.xacts();
  const Sample s0 = b.sample();
  for (int i = 0; i < b.a.jobs; ++i) {
    const std::string id =
        b.exec(
             "INSERT INTO quern.queue (tag, language, payload) VALUES ('noop', 'noop', '{\"args\": {}}') "
             "RETURNING id")[0][0]
            .c_str();
    const auto deadline = Clock::now() + 30s;
    while (b.exec("SELECT count(*) FROM quern.completed_jobs WHERE id = " + id)[0][0].as<int64_t>() == 0) {
      b.check("the trickle");
      if (Clock::now() > deadline) throw std::runtime_error("job " + id + " did not complete in 30 s");
      std::this_thread::sleep_for(1ms);
    }
  }
  const Sample s1 = b.sample();
  const HttpCounts h1 = scrape(b.metrics_port);
  std::this_thread::sleep_for(1500ms);
  const int64_t x1 = b.xacts();
  const auto r =
      b.exec(
           "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - "
           "created_at) * 1000) FROM quern.completed_jobs")[0][0]
          .as<std::string>();
  const double N = b.a.jobs, t = secs(s0, s1);
  return {{"seconds", t},
          {"submit_to_start_ms_p50_p99", r},
          {"server_cpu_ms_per_job", 1000 * ticks_to_s(s1.server.self - s0.server.self) / N},
          {"postgres_cpu_ms_per_job", b.pg(1000 * ticks_to_s(s1.postgres - s0.postgres) / N)},
          {"xacts_per_job", static_cast<double>(x1 - x0) / N},
          {"http", http_delta(h0, h1)}};
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
