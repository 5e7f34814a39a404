// Many worker processes (single-slot by default) against one database (issue 17,
// docs/BENCHMARKS.md), Windmill's published shape, and the latency of the
// queue's paths (modes other than load: workers_bench_modes.cpp):
//
//   quern_workers_bench --host /tmp/peers/sock --port 55433 --workers 50 --jobs 2000 --job-ms 100
//                       [--kind noop|bash] [--idle-seconds 20] [--sandbox none|bwrap] [--slots 1]
//   quern_workers_bench --mode latency --workers 10 [--samples 200]
//   quern_workers_bench --mode due --workers 10 [--samples 20] [--delay-ms 1500] [--retry-jobs 5]
//   quern_workers_bench --mode keyed --workers 2 --slots 4 [--jobs 20] [--job-ms 500]
//                       [--max-running 2 | --rate-max R --rate-window-ms M]
//   (every mode also takes --host, --port, --poll-interval 1s, --idle-seconds, --keep)
//
// The database `quern_workers_bench` is recreated and migrated (`quern
// migrate`); W `quern worker --group bench` processes (slots="S", default 1,
// from this build's bin/ folder) start and register. A worker holds 2
// connections: W x 2 + 10 above the server's max_connections is refused
// before anything starts (at 300, at most 145 workers). Then:
//
// idle (--idle-seconds S > 0, any mode): the CPU the idle workers use over S
// seconds, the cluster's PostgreSQL CPU and this database's transactions in
// the same window.
//
// load (the default mode): N jobs of D ms (noop `sleep_ms`, or bash `sleep
// D/1000`) are queued in one INSERT; from the database's own timestamps, wall
// = max(completed_at) - min(started_at), jobs/s = N / wall, efficiency = N x D
// / (W x S x wall). CPU of the worker processes and of PostgreSQL, and
// transactions, per job.
//
// latency: one noop job (sleep_ms 0) at a time on the idle fleet; submit ->
// start (started_at - created_at) and end to end (completed_at - created_at).
// due: jobs due D ms after their INSERT and 137 ms apart; lateness =
// started_at - scheduled_for; then failing jobs retried after 1 s and 2 s:
// lateness = the next attempt's started_at - retry_at.
// keyed: N jobs of D ms under one concurrency key (max_running K, or a rate
// of R per M ms); wall against the wall the limit allows, and the most jobs
// running (starting, for a rate) at once. Noop only.
//
// CPU: utime+stime of /proc/PID/stat in clock ticks. Workers: their own
// threads ("self") and their reaped children, the job processes ("children").
// PostgreSQL: the postmaster (with its reaped children) and every live child
// of it, i.e. the whole cluster, less the benchmark's own two backends.
// Transactions: xact_commit of pg_stat_database, less the benchmark's own
// polls; backends report them up to a second late, so the end of a window is
// read 1.5 s after it. Prints one JSON document.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "tests/bench/bench_support.h"
#include "tests/bench/process_support.h"
#include "tests/bench/workers_bench_modes.h"

using namespace quern::bench;
using namespace quern::bench::workers;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kMaxWorkers = 4096;

struct Sample {
  Clock::time_point at;
  long long worker_self = 0, worker_children = 0, postgres = 0;
};

Sample sample(const std::vector<pid_t>& workers, pid_t postmaster, const std::set<pid_t>& own_backends) {
  Sample s{Clock::now()};
  const CpuTicks w = cpu_ticks(workers);
  s.worker_self = w.self;
  s.worker_children = w.children;
  s.postgres = postgres_ticks(postmaster, own_backends);
  return s;
}

// Refuses, before anything starts, more workers than the server has connections for.
void check_connection_limit(const Args& a) {
  pqxx::connection c(database_url(a.host, a.port, "postgres"));
  const int64_t max_conns = scalar(c, "SHOW max_connections");
  const int64_t need = static_cast<int64_t>(a.workers) * a.conns_per_worker + 10;
  if (need > max_conns)
    throw std::runtime_error(std::to_string(a.workers) + " workers x " + std::to_string(a.conns_per_worker) +
                             " connections + 10 = " + std::to_string(need) +
                             " is more than the server's max_connections (" + std::to_string(max_conns) +
                             "); raise it or use fewer workers");
}

// Writes dir/quern.xml: one group "bench" of S slots serving tag and plugin `kind`.
std::filesystem::path write_config(const Args& a, const std::filesystem::path& dir,
                                   const std::filesystem::path& plugins) {
  const std::filesystem::path config = dir / "quern.xml";
  std::ofstream(config) << "<quern>\n  <plugins dir=\"" << plugins.string() << "\"/>\n"
                        << "  <database data-dir=\"" << (dir / "data").string() << "\"/>\n"
                        << "  <queue poll-interval=\"" << a.poll_interval << "\"/>\n"
                        << "  <workers>\n    <group name=\"bench\" slots=\"" << a.slots << "\" tags=\""
                        << a.kind << "\" plugins=\"" << a.kind << "\" sandbox=\"" << a.sandbox << "\"/>\n"
                        << "  </workers>\n</quern>\n";
  return config;
}

// Starts W workers bench-0 .. bench-(W-1), each logging to dir/<id>.log.
void start_workers(Children& workers, int n, const std::string& quern, const std::filesystem::path& config,
                   const std::string& db_url, const std::filesystem::path& dir) {
  for (int i = 0; i < n; ++i) {
    const std::string id = "bench-" + std::to_string(i);
    workers.add(spawn({quern, "worker", "--config", config.string(), "--database-url", db_url, "--group",
                       "bench", "--worker-id", id},
                      dir / (id + ".log")));
  }
}

// Waits until all W workers are in quern.workers; the seconds it took.
double wait_registered(Context& ctx) {
  const auto t_start = Clock::now();
  const auto deadline = t_start + 60s + ctx.args.workers * 500ms;
  while (ctx.exec("SELECT count(*) FROM quern.workers WHERE worker_group = 'bench' "
                  "AND last_seen_at > now() - interval '60 seconds'")[0][0]
             .as<int64_t>() < ctx.args.workers) {
    ctx.check_workers("start-up");
    if (Clock::now() > deadline) throw std::runtime_error("the workers did not all register in time");
    std::this_thread::sleep_for(20ms);
  }
  return std::chrono::duration<double>(Clock::now() - t_start).count();
}

// CPU of the workers and of the whole PostgreSQL cluster (see the top of this file).
struct Meter {
  const std::vector<pid_t>& workers;
  pid_t postmaster = 0;  // 0: a remote server, no PostgreSQL CPU
  std::set<pid_t> own;   // the benchmark's own backends
  double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));

  Sample now() const { return sample(workers, postmaster, own); }
  double cpu_s(long long ticks) const { return static_cast<double>(ticks) / tick; }
  nlohmann::json postgres(double v) const { return postmaster > 0 ? nlohmann::json(v) : nullptr; }
};

double secs(const Sample& s0, const Sample& s1) {
  return std::chrono::duration<double>(s1.at - s0.at).count();
}

// idle: the idle workers' CPU and transactions over --idle-seconds.
nlohmann::json measure_idle(Context& ctx, const Meter& m) {
  const double W = ctx.args.workers;
  const int64_t x0 = ctx.xacts();
  const Sample s0 = m.now();
  std::this_thread::sleep_for(std::chrono::duration<double>(ctx.args.idle_seconds));
  const Sample s1 = m.now();
  std::this_thread::sleep_for(1500ms);
  const int64_t x1 = ctx.xacts();
  const double t = secs(s0, s1), w = m.cpu_s(s1.worker_self - s0.worker_self);
  const double pg = m.cpu_s(s1.postgres - s0.postgres);
  return {{"seconds", t},
          {"worker_cpu_s", w},
          {"worker_cpu_pct_of_core_per_worker", 100.0 * w / t / W},
          {"postgres_whole_cluster_cpu_s", m.postgres(pg)},
          {"postgres_cpu_pct_of_core", m.postgres(100.0 * pg / t)},
          {"xacts", x1 - x0},
          {"xacts_per_s", static_cast<double>(x1 - x0) / t},
          {"xacts_per_s_per_worker", static_cast<double>(x1 - x0) / t / W}};
}

// load: N jobs of D ms in one INSERT (see the top of this file).
nlohmann::json run_load(Context& ctx, const Meter& m, nlohmann::json& out) {
  const Args& a = ctx.args;
  const double W = a.workers, slots = W * a.slots;
  std::string payload;
  if (a.kind == "noop") {
    payload = nlohmann::json{{"args", {{"sleep_ms", a.job_ms}}}}.dump();
  } else {
    std::ostringstream sec;
    sec << static_cast<double>(a.job_ms) / 1000.0;
    payload = nlohmann::json{{"code", "sleep " + sec.str()}, {"args", nlohmann::json::object()}}.dump();
  }
  out["loadavg_before_load"] = loadavg();  // other load on the machine makes the figures noisy
  pqxx::connection& c = ctx.db;
  const int64_t x0 = ctx.xacts();
  const Sample s0 = m.now();
  ctx.exec("INSERT INTO quern.queue (tag, language, payload) SELECT " + c.quote(a.kind) + ", " +
           c.quote(a.kind) + ", " + c.quote(payload) + "::json FROM generate_series(1, " +
           std::to_string(a.jobs) + ")");
  const double ideal_s = static_cast<double>(a.jobs) * a.job_ms / 1000.0 / slots;
  const auto load_deadline = Clock::now() + std::chrono::duration<double>(10 * ideal_s + 60);
  while (ctx.exec("SELECT count(*) FROM quern.completed_jobs")[0][0].as<int64_t>() < a.jobs) {
    ctx.check_workers("the load");
    if (Clock::now() > load_deadline) throw std::runtime_error("the jobs did not all complete in time");
    std::this_thread::sleep_for(50ms);
  }
  const Sample s1 = m.now();
  std::this_thread::sleep_for(1500ms);
  const int64_t x1 = ctx.xacts();
  const auto r = ctx.exec(
      "SELECT count(*) FILTER (WHERE status <> 'success'), "
      "extract(epoch FROM max(completed_at) - min(started_at)), "
      "extract(epoch FROM avg(completed_at - started_at)) * 1000, "
      "extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - created_at)) * 1000, "
      "extract(epoch FROM max(started_at - created_at)) * 1000 FROM quern.completed_jobs")[0];
  const double wall = r[1].as<double>(), N = a.jobs;
  const double ws = m.cpu_s(s1.worker_self - s0.worker_self),
               wc = m.cpu_s(s1.worker_children - s0.worker_children);
  const double pg = m.cpu_s(s1.postgres - s0.postgres);
  return {{"wall_s", wall},
          {"jobs_per_s", N / wall},
          {"efficiency_pct", 100.0 * N * a.job_ms / 1000.0 / (slots * wall)},
          {"ideal_wall_s", ideal_s},
          {"not_success", r[0].as<int64_t>()},
          {"mean_job_ms", r[2].as<double>()},
          {"queue_wait_ms", {{"p50", r[3].as<double>()}, {"max", r[4].as<double>()}}},
          {"window_s", secs(s0, s1)},
          {"worker_cpu_s", {{"self", ws}, {"children", wc}}},
          {"worker_cpu_ms_per_job", {{"self", 1000 * ws / N}, {"children", 1000 * wc / N}}},
          {"postgres_whole_cluster_cpu_s", m.postgres(pg)},
          {"postgres_cpu_ms_per_job", m.postgres(1000 * pg / N)},
          {"xacts", x1 - x0},
          {"xacts_per_job", static_cast<double>(x1 - x0) / N}};
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Quern: many `quern worker` processes against one database"};
  app.add_option("--host", a.host);
  app.add_option("--port", a.port);
  app.add_option("--mode", a.mode, "load (default), latency, due or keyed")
      ->check(CLI::IsMember({"load", "latency", "due", "keyed"}));
  app.add_option("--workers", a.workers, "worker processes")->check(CLI::Range(1, kMaxWorkers));
  app.add_option("--slots", a.slots, "slots per worker (the group's slots)")->check(CLI::Range(1, 1024));
  auto* jobs = app.add_option("--jobs", a.jobs, "jobs queued in one statement (load: 500, keyed: 20)")
                   ->check(CLI::Range(1, 10000000));
  auto* job_ms = app.add_option("--job-ms", a.job_ms, "each job's duration (load: 100, keyed: 500)")
                     ->check(CLI::Range(0, 3600000));
  auto* samples = app.add_option("--samples", a.samples, "latency: jobs one at a time (200); due: jobs (20)")
                      ->check(CLI::Range(1, 1000000));
  app.add_option("--delay-ms", a.delay_ms, "due: the first job's delay")->check(CLI::Range(0, 3600000));
  app.add_option("--retry-jobs", a.retry_jobs, "due: failing, retried jobs (0: none)")
      ->check(CLI::Range(0, 100000));
  auto* max_running = app.add_option("--max-running", a.max_running, "keyed: the key's max_running (2)")
                          ->check(CLI::Range(0, 100000));
  auto* rate_max = app.add_option("--rate-max", a.rate_max, "keyed: the key's starts per window")
                       ->check(CLI::Range(0, 1000000));
  app.add_option("--rate-window-ms", a.rate_window_ms, "keyed: the rate's window")
      ->check(CLI::Range(1, 86400000));
  app.add_option("--poll-interval", a.poll_interval, "the config's <queue poll-interval>");
  app.add_option("--kind", a.kind, "noop (sleep_ms) or bash (sleep); load only")
      ->check(CLI::IsMember({"noop", "bash"}));
  app.add_option("--idle-seconds", a.idle_seconds, "measure the idle workers first")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--sandbox", a.sandbox, "the group's sandbox")->check(CLI::IsMember({"none", "bwrap"}));
  app.add_option("--conns-per-worker", a.conns_per_worker, "connections a worker may open (for the refusal)");
  app.add_option("--setup-sql", a.setup_sql, "SQL file run after the migration (e.g. an older quern.claim())")
      ->check(CLI::ExistingFile);
  app.add_flag("--keep", a.keep, "keep the config and the workers' logs");
  CLI11_PARSE(app, argc, argv);
  // Defaults that depend on the mode.
  if (a.mode == "keyed") {
    if (!jobs->count()) a.jobs = 20;
    if (!job_ms->count()) a.job_ms = 500;
    if (rate_max->count() && !max_running->count()) a.max_running = 0;  // a rate instead of a cap
  }
  if (!samples->count()) a.samples = a.mode == "due" ? 20 : 200;
  if (a.mode != "load" && a.kind != "noop") {
    std::cerr << "quern_workers_bench: --mode " << a.mode << " runs noop jobs only" << std::endl;
    return 2;
  }
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  const std::string quern = (self.parent_path() / "quern").string();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "quern-workers-bench";
  stop_children_on_signals();
  Children workers;
  try {
    check_connection_limit(a);
    recreate_database(a.host, a.port, a.db);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string db_url = database_url(a.host, a.port, a.db);
    const auto config = write_config(a, dir, self.parent_path().parent_path() / "plugins");
    migrate(quern, config, db_url, dir);
    if (!a.setup_sql.empty()) {
      std::ifstream in(a.setup_sql);
      const std::string sql((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      pqxx::connection setup(db_url);
      pqxx::nontransaction(setup).exec(sql);
    }
    start_workers(workers, a.workers, quern, config, db_url, dir);
    pqxx::connection c(db_url);  // polls
    pqxx::connection stats(
        database_url(a.host, a.port, "postgres"));  // pg_stat_database, outside the measured database
    Context ctx{a, c, {}, {}};  // check_workers and xacts are set below: xacts reads ctx.polls
    ctx.check_workers = [&](const std::string& during) {
      if (int i = workers.exited(); i >= 0)
        throw std::runtime_error("worker bench-" + std::to_string(i) + " exited during " + during + " (see " +
                                 (dir / ("bench-" + std::to_string(i) + ".log")).string() + ")");
    };
    ctx.xacts = [&] {
      return scalar(stats, "SELECT xact_commit FROM pg_stat_database WHERE datname = " + stats.quote(a.db)) -
             ctx.polls;
    };
    Meter meter{workers.pids, 0, {}};
    meter.own = {static_cast<pid_t>(ctx.exec("SELECT pg_backend_pid()")[0][0].as<int64_t>()),
                 static_cast<pid_t>(scalar(stats, "SELECT pg_backend_pid()"))};
    meter.postmaster = postmaster_of(*meter.own.begin());
    const double register_s = wait_registered(ctx);
    std::this_thread::sleep_for(2s);  // let start-up settle (and its statistics reach pg_stat_database)
    const int64_t connections =
        ctx.exec(
               "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
               "AND pid <> pg_backend_pid()")[0][0]
            .as<int64_t>();
    nlohmann::json out{{"system", "quern"},
                       {"test", "workers"},
                       {"kind", a.kind},
                       {"workers", a.workers},
                       {"slots_per_worker", a.slots},
                       {"register_s", register_s},
                       {"db_connections", connections},
                       {"db_connections_per_worker", static_cast<double>(connections) / a.workers}};
    if (a.mode == "load") {
      out["jobs"] = a.jobs;
      out["job_ms"] = a.job_ms;
    } else {
      out["mode"] = a.mode;
      out["poll_interval"] = a.poll_interval;
    }
    if (a.idle_seconds > 0) out["idle"] = measure_idle(ctx, meter);
    if (a.mode == "load")
      out["load"] = run_load(ctx, meter, out);
    else if (a.mode == "latency")
      out["latency"] = run_latency(ctx);
    else if (a.mode == "due")
      out["due"] = run_due(ctx);
    else
      out["keyed"] = run_keyed(ctx);
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
