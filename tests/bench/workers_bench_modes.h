// What workers_bench.cpp (the driver: database, config, worker processes,
// the `load` mode) shares with the other modes (workers_bench_modes.cpp):
// the options, and a Context that a mode runs in.
//
// Contract of a mode: it is called once the W workers are registered and
// idle, with no job in the database; it queues its jobs with statements
// through Context::exec (so that the driver can tell its own transactions
// from the workers'), waits for them, computes its figures from the
// database's own timestamps (created_at, scheduled_for, started_at,
// completed_at, retry_at) and returns them as one JSON object, or throws
// std::runtime_error when a worker exits or a deadline passes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

namespace quern::bench::workers {

// Command-line options. Those whose default depends on the mode (jobs,
// job_ms, samples) are resolved by the driver after parsing.
struct Args {
  std::string host = "/tmp/peers/sock";
  int port = 55433;
  std::string db = "quern_workers_bench";
  std::string mode = "load";  // load | latency | due | keyed
  int workers = 10;
  int slots = 1;        // per worker: the group's slots attribute
  int jobs = 500;       // load: 500, keyed: 20
  int job_ms = 100;     // load: 100, keyed: 500
  int samples = 0;      // latency: 200, due: 20
  int delay_ms = 1500;  // due: the first job is due this long after its INSERT
  int retry_jobs = 5;   // due: failing jobs of the retry sub-measurement (0: none)
  int max_running = 2;  // keyed (0 = no cap; 0 by default when --rate-max is given)
  int rate_max = 0;     // keyed: starts per window (0 = no rate limit)
  int rate_window_ms = 1000;
  std::string poll_interval = "1s";  // the config's <queue poll-interval>
  std::string kind = "noop";
  double idle_seconds = 0;
  std::string sandbox = "none";
  int conns_per_worker = 2;
  bool keep = false;
  std::string setup_sql;  // a file of SQL run after the migration, before the workers start (A/B checks)
};

// A mode's view of the running benchmark.
struct Context {
  const Args& args;
  pqxx::connection& db;  // the measured database
  // Throws when a worker has exited, naming it, `during` and its log.
  std::function<void(const std::string& during)> check_workers;
  // Transactions committed in the measured database, less the benchmark's
  // own (polls). Backends report them up to a second late.
  std::function<int64_t()> xacts;
  int64_t polls = 0;  // statements run through exec(): one transaction each

  // Runs one statement in its own transaction (autocommit).
  pqxx::result exec(const std::string& sql) {
    ++polls;
    pqxx::nontransaction tx(db);
    return tx.exec(sql);
  }
};

// The modes (workers_bench_modes.cpp); each returns its figures.
nlohmann::json run_latency(Context& ctx);  // --samples: one job at a time, submit -> start
nlohmann::json run_due(Context& ctx);      // --samples --delay-ms --retry-jobs: scheduled jobs, retries
nlohmann::json run_keyed(Context& ctx);    // --jobs --job-ms --max-running | --rate-max: one key

}  // namespace quern::bench::workers
