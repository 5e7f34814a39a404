// quern_server_bench: the API's figures for docs/BENCHMARKS.md.
//
//   quern_server_bench --host /tmp/peers/sock --port 55433 wait-result 500
//       run_wait_result round trips of a deployed no-op bash script
//       (`echo '{}'`) through HTTP, one at a time: p50/p99 latency.
//   quern_server_bench --host /tmp/peers/sock --port 55433 agent JOBS SLOTS
//       JOBS no-op jobs drained by one agent (the real agent code: HTTP long
//       polls, batched completions) with SLOTS slots: jobs/s.
//   quern_server_bench --host /tmp/peers/sock --port 55433 cancel JOBS
//       JOBS running no-op jobs canceled one at a time through the API: the
//       time from the cancel request to the job's is_cancelled() turning
//       non-zero on its worker (heartbeats 10 s apart, so only the NOTIFY
//       path counts): p50/p99.
//   quern_server_bench --host /tmp/peers/sock --port 55433 overhead 200
//       submit → result round trips of trivial scripts per executor, and
//       where a bash job's time goes (bash_phases_ms).
//   quern_server_bench --host /tmp/peers/sock --port 55433 jobs-page 100000
//       the UI's jobs page (GET /api/jobs, filtered and paged) with JOBS jobs in
//       the database: p50/p99 per query.
// --executor slot-process runs the plugins in slot processes (as Quern runs
// third-party plugins) instead of in the worker (the default); --sandbox
// bwrap runs every job process in the job sandbox (host/sandbox/sandbox.h),
// entered warm (quern/warm_sandbox.hpp); --sandbox bwrap-cold builds it with
// bubblewrap for every process (QUERN_SANDBOX_COLD=1), as before.
// The server, the worker and the agent run in this process, on loopback;
// the database `quern_server_bench` is recreated first.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include <pqxx/pqxx>

#include "host/agent/agent_source.h"
#include "host/agent/api_client.h"
#include "host/auth/tokens.h"
#include "host/server/server.h"
#include "host/worker/worker.h"
#include "tests/bench/bench_support.h"

using namespace std::chrono;
using Json = nlohmann::ordered_json;

namespace {

struct Args {
  std::string host = "/tmp/peers/sock";
  int port = 55433;
  std::string db = "quern_server_bench";
  std::string test = "wait-result";
  int jobs = 500;
  int slots = 8;
  // Where the plugins run: in-process (the default for Quern's own plugins)
  // or slot-process (the default for every other plugin).
  std::string executor = "in-process";
  std::string sandbox = "none";  // bwrap: every job process in the sandbox (host/sandbox)
};

std::string token(const std::string& db_url, quern::auth::Role role, std::vector<std::string> tags = {}) {
  auto store = quern::auth::TokenStore::connect(db_url).value();
  quern::auth::NewToken t;
  t.role = role;
  if (role == quern::auth::Role::agent) t.group = "bench";
  t.tags = std::move(tags);
  return store->create(t).value().token;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Quern API benchmark"};
  app.add_option("--host", a.host);
  app.add_option("--port", a.port);
  app.add_option("--executor", a.executor, "in-process (default, as for Quern's own plugins) or slot-process")
      ->check(CLI::IsMember({"in-process", "slot-process"}));
  app.add_option("--sandbox", a.sandbox,
                 "none (default), bwrap (job processes in the sandbox, kept warm) or bwrap-cold (bubblewrap "
                 "per process)")
      ->check(CLI::IsMember({"none", "bwrap", "bwrap-cold"}));
  app.add_option("test", a.test)->required();
  app.add_option("jobs", a.jobs);
  app.add_option("slots", a.slots);
  CLI11_PARSE(app, argc, argv);
  try {
    quern::bench::recreate_database(a.host, a.port, a.db);
    const std::string db_url = quern::bench::database_url(a.host, a.port, a.db);
    quern::server::ServerOptions so;
    so.port = 0;
    so.api.database_url = db_url;
    quern::server::Server server(so);
    if (auto s = server.start(); !s) throw std::runtime_error(s.message());
    const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
    quern::plugin::PluginRegistry plugins;
    if (auto s = plugins.load_directory(QUERN_PLUGIN_DIR); !s) throw std::runtime_error(s.message());
    Json out{{"system", "quern"},
             {"test", a.test},
             {"jobs", a.jobs},
             {"executor", a.executor},
             {"sandbox", a.sandbox}};
    // Every worker below: its plugins in its own process, or each in slot processes.
    auto worker_options = [&] {
      quern::worker::WorkerOptions wo;
      if (a.sandbox != "none") wo.sandbox.mode = quern::sandbox::Mode::bwrap;
      if (a.sandbox == "bwrap-cold") ::setenv("QUERN_SANDBOX_COLD", "1", 1);
      if (a.executor == "in-process")
        for (const auto& p : plugins.plugins()) wo.in_process_plugins.push_back(p->info().name);
      return wo;
    };

    if (a.test == "wait-result") {
      quern::worker::WorkerOptions wo = worker_options();
      wo.database_url = db_url;
      wo.tags = {"bash"};
      wo.slots = 4;
      quern::worker::Worker w(wo, plugins);
      if (auto s = w.start(); !s) throw std::runtime_error(s.message());
      const std::string dev = token(db_url, quern::auth::Role::developer);
      quern::agent::ApiClient client(base, dev);
      client
          .call("POST", "/api/scripts",
                {{"path", "f/bench/noop"}, {"language", "bash"}, {"content", "echo '{}'"}})
          .value();
      std::vector<double> samples;
      for (int i = 0; i < a.jobs + 10; ++i) {
        auto t0 = steady_clock::now();
        auto r = client.request("POST", "/api/jobs/run_wait_result/p/f/bench/noop", "{}");
        if (!r || r->status != 200)
          throw std::runtime_error("run_wait_result failed: " + (r ? r->body : r.message()));
        if (i >= 10) samples.push_back(duration<double, std::milli>(steady_clock::now() - t0).count());
      }
      out["p50_ms"] = quern::bench::percentile(samples, 0.5);
      out["p99_ms"] = quern::bench::percentile(samples, 0.99);
      w.stop();
      w.wait();
    } else if (a.test == "overhead") {
      // Per-job overhead per executor: run_wait_result round trips of trivial
      // scripts (their own run time is negligible), one at a time.
      const std::string dev = token(db_url, quern::auth::Role::developer);
      quern::agent::ApiClient client(base, dev);
      struct Case {
        std::string name, language, path, content;
        bool dedicated;
      };
      const std::vector<Case> cases = {
          {"bash", "bash", "f/bench/bash", "echo \"{\\\"t\\\": $EPOCHREALTIME}\"", false},
          {"python standard", "python3", "f/bench/py", "def main():\n    return 1\n", false},
          {"python dedicated", "python3", "f/bench/pyd", "def main():\n    return 1\n", true},
          {"python dedicated fibo(10)", "python3", "f/bench/fibo",
           "def fibo(n):\n    return n if n < 2 else fibo(n - 1) + fibo(n - 2)\n\ndef main(n=10):\n    "
           "return fibo(n)\n",
           true},
          {"sql select 1", "sql", "f/bench/sql", "select 1", false},
          {"http GET local", "http", "f/bench/http", "", false},
      };
      quern::worker::WorkerOptions wo = worker_options();
      wo.database_url = db_url;
      wo.tags = {"bash", "python3", "sql", "http"};
      wo.slots = 2;
      wo.dedicated_scripts = {"f/bench/pyd", "f/bench/fibo"};
      wo.plugin_configs["sql"] =
          Json{{"resources", {{"main", {{"url", db_url}}}}}, {"default_resource", "main"}}.dump();
      wo.plugin_configs["http"] = Json{{"allowed_hosts", {"127.0.0.1"}}}.dump();
      quern::worker::Worker w(wo, plugins);
      if (auto s = w.start(); !s) throw std::runtime_error(s.message());
      std::this_thread::sleep_for(1500ms);  // the registry row makes the dedicated tags live for routing
      Json results = Json::array();
      for (const auto& c : cases) {
        client
            .call("POST", "/api/scripts",
                  {{"path", c.path}, {"language", c.language}, {"content", c.content}})
            .value();
        const std::string body =
            c.language == "http" ? Json{{"args", {{"url", base + "/healthz"}}}}.dump() : "{}";
        std::vector<double> samples;
        for (int i = 0; i < a.jobs + 10; ++i) {
          auto t0 = steady_clock::now();
          auto r = client.request("POST", "/api/jobs/run_wait_result/p/" + c.path, body);
          if (!r || r->status != 200)
            throw std::runtime_error(c.name + " failed: " + (r ? r->body : r.message()));
          if (i >= 10) samples.push_back(duration<double, std::milli>(steady_clock::now() - t0).count());
        }
        results.push_back({{"executor", c.name},
                           {"p50_ms", quern::bench::percentile(samples, 0.5)},
                           {"p99_ms", quern::bench::percentile(samples, 0.99)}});
      }
      // Every executor's split by the database's clock, medians in ms:
      // submit → claim (the job's insert to its claim) and claim → stored
      // (to the completing transaction's start); the rest of a round trip is
      // the API's: the request in, the outcome's way back out.
      {
        pqxx::connection pc(db_url);
        pqxx::nontransaction ptx(pc);
        for (size_t i = 0; i < cases.size(); ++i) {  // results[i] is cases[i]'s
          Json& r = results[i];
          auto m = ptx.exec_params1(
              "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - "
              "created_at)), "
              "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at)) "
              "FROM quern.completed_jobs WHERE script_path = $1",
              cases[i].path);
          r["submit_to_claim_ms"] = m[0].as<double>() * 1000;
          r["claim_to_stored_ms"] = m[1].as<double>() * 1000;
        }
      }
      out["round_trips"] = results;
      // Where a bash job's round trip goes, from the database's clock and the
      // script's own ($EPOCHREALTIME): submit → claim, claim → the script
      // running (working directory, confinement, spawn, bash's start), and
      // the script → its outcome stored (exit, clean-up, logs and outcome
      // written). Medians, ms.
      pqxx::connection c(db_url);
      pqxx::nontransaction tx(c);
      auto r = tx.exec1(
          "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at)), "
          "percentile_cont(0.5) WITHIN GROUP (ORDER BY (result->>'t')::float8 - extract(epoch FROM "
          "started_at)), "
          "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at) - "
          "(result->>'t')::float8) "
          "FROM quern.completed_jobs WHERE script_path = 'f/bench/bash'");
      out["bash_phases_ms"] = {{"submit_to_claim", r[0].as<double>() * 1000},
                               {"claim_to_script", r[1].as<double>() * 1000},
                               {"script_to_stored", r[2].as<double>() * 1000}};
      w.stop();
      w.wait();
    } else if (a.test == "cancel") {
      std::mutex mu;
      std::condition_variable cv;
      std::map<int64_t, steady_clock::time_point> started, stopped;  // guarded by mu
      quern::worker::WorkerOptions wo = worker_options();
      wo.database_url = db_url;
      wo.tags = {"noop"};
      wo.slots = 2;
      wo.heartbeat_interval = 10s;
      wo.on_job_start = [&](const quern::queue::ClaimedJob& j) {
        std::lock_guard lock(mu);
        started[j.id] = steady_clock::now();
        cv.notify_all();
      };
      wo.on_stop_requested = [&](int64_t id, int32_t reason) {
        if (reason != QUERN_CANCEL_REQUESTED) return;
        std::lock_guard lock(mu);
        stopped[id] = steady_clock::now();
        cv.notify_all();
      };
      quern::worker::Worker w(wo, plugins);
      if (auto s = w.start(); !s) throw std::runtime_error(s.message());
      const std::string dev = token(db_url, quern::auth::Role::developer);
      quern::agent::ApiClient client(base, dev);
      std::vector<double> samples;
      for (int i = 0; i < a.jobs + 5; ++i) {
        auto run = client.call("POST", "/api/jobs/run_inline",
                               {{"language", "noop"}, {"content", ""}, {"args", {{"sleep_ms", 30000}}}});
        const int64_t id = run.value()["id"].get<int64_t>();
        {
          std::unique_lock lock(mu);
          if (!cv.wait_for(lock, 10s, [&] { return started.count(id) > 0; }))
            throw std::runtime_error("job " + std::to_string(id) + " did not start");
        }
        const auto t0 = steady_clock::now();
        client.call("POST", "/api/jobs/" + std::to_string(id) + "/cancel", Json::object()).value();
        std::unique_lock lock(mu);
        if (!cv.wait_for(lock, 15s, [&] { return stopped.count(id) > 0; }))
          throw std::runtime_error("job " + std::to_string(id) + " was not stopped");
        if (i >= 5) samples.push_back(duration<double, std::milli>(stopped[id] - t0).count());
      }
      out["p50_ms"] = quern::bench::percentile(samples, 0.5);
      out["p99_ms"] = quern::bench::percentile(samples, 0.99);
      out["max_ms"] = quern::bench::percentile(samples, 1.0);
      w.stop();
      w.wait();
    } else if (a.test == "jobs-page") {
      // The UI's jobs page with JOBS jobs in the database (90 % finished, in
      // quern.completed_jobs; the rest waiting): each page the UI asks for,
      // timed through HTTP on loopback (an upper bound of the server's time),
      // after 5 warm-up requests. p50/p99 over 50 requests each.
      {
        pqxx::connection c(db_url);
        pqxx::nontransaction tx(c);
        const int finished = a.jobs * 9 / 10;
        tx.exec(
            "INSERT INTO quern.completed_jobs (id, tag, language, script_path, payload, priority, "
            "scheduled_for, created_at, started_at, completed_at, status, attempt, result) "
            "SELECT i, 'tag' || (i % 10), 'bash', 'f/bench/s' || (i % 100), '{\"args\": {}}', 50, now(), "
            "now() - (i || ' ms')::interval, now(), now(), "
            "(ARRAY['success','failure','canceled','timeout'])[1 + i % 4], 1, 'null' "
            "FROM generate_series(1, " +
            std::to_string(finished) + ") i");
        tx.exec("SELECT setval(pg_get_serial_sequence('quern.queue', 'id'), " + std::to_string(finished) +
                ")");
        tx.exec(
            "INSERT INTO quern.queue (tag, language, script_path) SELECT 'tag' || (i % 10), 'bash', "
            "'f/bench/s' || (i % 100) FROM generate_series(1, " +
            std::to_string(a.jobs - finished) + ") i");
        tx.exec("ANALYZE quern.completed_jobs");
        tx.exec("ANALYZE quern.queue");
      }
      quern::agent::ApiClient client(base, token(db_url, quern::auth::Role::operator_));
      const int64_t middle = a.jobs / 2;
      Json pages = Json::object();
      for (const std::string& query :
           {std::string("limit=50"), std::string("limit=50&state=failure"), std::string("limit=50&tag=tag3"),
            std::string("limit=50&script_path=f/bench/s42"), "limit=50&before_id=" + std::to_string(middle),
            std::string("limit=50&state=queued")}) {
        std::vector<double> samples;
        for (int i = 0; i < 55; ++i) {
          auto t0 = steady_clock::now();
          auto r = client.request("GET", "/api/jobs?" + query, "");
          if (!r || r->status != 200) throw std::runtime_error("GET /api/jobs?" + query + " failed");
          if (i >= 5) samples.push_back(duration<double, std::milli>(steady_clock::now() - t0).count());
        }
        pages[query] = {{"p50_ms", quern::bench::percentile(samples, 0.5)},
                        {"p99_ms", quern::bench::percentile(samples, 0.99)}};
      }
      out["pages"] = pages;
    } else if (a.test == "agent") {
      out["slots"] = a.slots;
      auto q = quern::queue::Queue::connect(db_url).value();
      std::vector<quern::queue::NewJob> jobs(a.jobs);
      for (auto& j : jobs) {
        j.language = "noop";
        j.tag = "noop";
      }
      q->push_batch(jobs).value();
      const std::string agent_token = token(db_url, quern::auth::Role::agent, {"noop"});
      quern::worker::WorkerOptions wo = worker_options();
      wo.worker_id = "bench-agent";
      wo.kind = "agent";
      wo.tags = {"noop"};
      wo.slots = a.slots;
      wo.recover_expired_leases = false;
      wo.source_factory = [&]() -> quern::StatusOr<std::unique_ptr<quern::worker::JobSource>> {
        return std::unique_ptr<quern::worker::JobSource>(new quern::agent::AgentJobSource(base, agent_token));
      };
      quern::worker::Worker w(wo, plugins);
      auto t0 = steady_clock::now();
      if (auto s = w.start(); !s) throw std::runtime_error(s.message());
      while (w.stats().completed < a.jobs) std::this_thread::sleep_for(2ms);
      const double ms = duration<double, std::milli>(steady_clock::now() - t0).count();
      out["ms"] = ms;
      out["jobs_per_s"] = a.jobs / (ms / 1000);
      w.stop();
      w.wait();
    } else {
      throw std::runtime_error("unknown test " + a.test);
    }
    server.stop();
    std::cout << out.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "quern_server_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
