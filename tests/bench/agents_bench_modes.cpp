// The agents benchmark's modes and its /metrics reading (agents_bench_modes.h).
#include "tests/bench/agents_bench_modes.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <sstream>

namespace quern::bench::agents {
namespace {

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

std::string label(const std::string& line, const std::string& name) {
  const auto at = line.find(name + "=\"");
  if (at == std::string::npos) return "";
  const auto from = at + name.size() + 2;
  return line.substr(from, line.find('"', from) - from);
}

}  // namespace

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
Json http_delta(const HttpCounts& a, const HttpCounts& b, double seconds) {
  Json req = Json::object();
  for (const auto& [k, v] : b.requests) {
    const auto it = a.requests.find(k);
    const double d = v - (it == a.requests.end() ? 0 : it->second);
    if (d > 0) req[k] = seconds > 0 ? d / seconds : d;
  }
  const double u = b.unavailable - a.unavailable;
  return {{seconds > 0 ? "requests_per_s" : "requests", req}, {"unavailable_503", u}};
}

namespace {

double secs(const Sample& s0, const Sample& s1) {
  return std::chrono::duration<double>(s1.at - s0.at).count();
}

}  // namespace

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

}  // namespace quern::bench::agents
