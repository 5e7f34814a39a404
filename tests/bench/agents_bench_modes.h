// What agents_bench.cpp (the driver: database, configs, the server and agent
// processes, the machine's limits) shares with its modes
// (agents_bench_modes.cpp): the options, and the Bench a mode runs in.
//
// Contract of a mode: called once the A agents are registered and idle, with
// no job in the database; it queues its jobs through Bench::exec (so that the
// benchmark's own transactions are told from the rest), waits for them and
// returns its figures as one JSON object, or throws std::runtime_error when a
// process exits or a deadline passes.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "tests/bench/bench_support.h"
#include "tests/bench/process_support.h"

namespace quern::bench::agents {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using namespace std::chrono_literals;

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

inline std::string agent_id(int i) { return "agents-bench-" + std::to_string(i); }

// The server's HTTP answers so far: "METHOD ROUTE CODE" -> count, and 503s.
struct HttpCounts {
  std::map<std::string, double> requests;
  double unavailable = 0;
};
// The server's /metrics (its metrics port): HTTP answers so far.
HttpCounts scrape(int metrics_port);
// b - a: {"METHOD ROUTE CODE": count (or per second when seconds > 0)}, and 503s.
Json http_delta(const HttpCounts& a, const HttpCounts& b, double seconds = 0);

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

// The modes (see the top of agents_bench.cpp).
Json run_idle(Bench& b);
Json run_load(Bench& b, Json& out);
Json run_trickle(Bench& b);

}  // namespace quern::bench::agents
