// The autoscaler's cold start and scale-out, with integration="local" on a
// real `quern up` (docs/BENCHMARKS.md, "Autoscaling"):
//
//   quern_autoscale_bench --host /tmp/peers/sock --port 55433 [--tries 20] [--backlogs 3]
//
// cold-start: the group is at 0 workers; one noop job is queued; the time
// from its created_at to its started_at (both the database's clock) covers
// the controller's wake-up on the tag's NOTIFY, its decision, the `quern
// worker` process starting, loading its plugin, registering and claiming.
// Then the group goes back to 0 (idle-before-zero 1s) and the next try
// starts. p50 and max over the tries.
//
// full-scale: from 0, 400 noop jobs of 100 ms are queued in one statement;
// the time until `max` (4) workers of the group are registered.
//
// The database `quern_autoscale_bench` is recreated first. Prints one JSON
// document.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
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
  std::string db = "quern_autoscale_bench";
  int tries = 20;
  int backlogs = 3;
};

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Quern autoscaling benchmark (integration=local on quern up)"};
  app.add_option("--host", a.host);
  app.add_option("--port", a.port);
  app.add_option("--tries", a.tries, "cold starts to time");
  app.add_option("--backlogs", a.backlogs, "backlog-to-full-scale runs to time");
  CLI11_PARSE(app, argc, argv);
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  const std::string quern = (self.parent_path() / "quern").string();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "quern-autoscale-bench";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  pid_t up = 0;  // `quern up`, stopped on every way out
  try {
    recreate_database(a.host, a.port, a.db);
    const std::string db_url = database_url(a.host, a.port, a.db);
    const std::filesystem::path config = dir / "quern.xml";
    std::ofstream(config)
        << "<quern>\n  <plugins dir=\"" << (self.parent_path().parent_path() / "plugins").string()
        << "\"/>\n  <database data-dir=\"" << (dir / "data").string() << "\"/>\n"
        << "  <workers>\n    <group name=\"bench\" slots=\"4\" tags=\"noop\" plugins=\"noop\">\n"
        << "      <autoscale integration=\"local\" min=\"0\" max=\"4\" tick=\"500ms\" "
           "cooldown=\"1s\" idle-before-zero=\"1s\" occupancy-short=\"1s\" occupancy-long=\"2s\"/>\n"
        << "    </group>\n  </workers>\n</quern>\n";
    std::vector<std::string> args = {quern,  "up",         "--config", config.string(), "--database-url",
                                     db_url, "--no-server"};
    std::vector<char*> argp;
    for (auto& s : args) argp.push_back(s.data());
    argp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, (dir / "up.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&up, argp[0], &fa, nullptr, argp.data(), environ) != 0)
      throw std::runtime_error("cannot start " + quern);
    pqxx::connection c(db_url);
    auto live = [&] {
      return scalar(c,
                    "SELECT count(*) FROM quern.workers WHERE worker_group = 'bench' "
                    "AND last_seen_at > now() - interval '5 seconds'");
    };
    auto at_zero = [&] {
      return scalar(c,
                    "SELECT count(*) FROM quern.autoscale_groups WHERE worker_group = 'bench' "
                    "AND desired = 0") == 1 &&
             live() == 0;
    };
    // `quern up` migrates the new database first.
    auto migrated = [&] {
      return scalar(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'autoscale_groups'") > 0;
    };
    if (!wait_for(migrated, 60s) || !wait_for(at_zero, 60s))
      throw std::runtime_error("the group never reached 0 (see " + dir.string() + ")");
    std::vector<double> cold_ms;
    for (int i = 0; i < a.tries; ++i) {
      if (!wait_for(at_zero, 60s)) throw std::runtime_error("the group did not return to 0");
      const int64_t id =
          scalar(c, "INSERT INTO quern.queue (tag, language) VALUES ('noop', 'noop') RETURNING id");
      const std::string done = "SELECT count(*) FROM quern.completed_jobs WHERE id = " + std::to_string(id);
      if (!wait_for([&] { return scalar(c, done) == 1; }, 60s)) throw std::runtime_error("the job never ran");
      cold_ms.push_back(
          static_cast<double>(scalar(c,
                                     "SELECT (extract(epoch FROM started_at - created_at) * 1e6)"
                                     "::bigint FROM quern.completed_jobs WHERE id = " +
                                         std::to_string(id))) /
          1000.0);
    }
    std::vector<double> full_ms;
    for (int i = 0; i < a.backlogs; ++i) {
      if (!wait_for(at_zero, 60s)) throw std::runtime_error("the group did not return to 0");
      const auto t0 = Clock::now();
      scalar(c,
             "INSERT INTO quern.queue (tag, language, payload) SELECT 'noop', 'noop', "
             "'{\"args\": {\"sleep_ms\": 100}}'::json FROM generate_series(1, 400)");
      if (!wait_for([&] { return live() == 4; }, 60s)) throw std::runtime_error("never reached 4 workers");
      full_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (!wait_for([&] { return scalar(c, "SELECT count(*) FROM quern.queue") == 0; }, 120s))
        throw std::runtime_error("the backlog never drained");
    }
    ::kill(up, SIGTERM);
    int status = 0;
    ::waitpid(up, &status, 0);
    nlohmann::json out{{"system", "quern"},
                       {"test", "autoscale"},
                       {"cold_start_ms",
                        {{"tries", cold_ms.size()},
                         {"p50", percentile(cold_ms, 0.5)},
                         {"max", percentile(cold_ms, 1.0)},
                         {"all", cold_ms}}},
                       {"backlog_to_full_scale_ms",
                        {{"runs", full_ms.size()}, {"p50", percentile(full_ms, 0.5)}, {"all", full_ms}}}};
    std::cout << out.dump() << std::endl;
    std::filesystem::remove_all(dir);
    return 0;
  } catch (const std::exception& e) {
    if (up > 0) ::kill(up, SIGTERM);
    std::cerr << "quern_autoscale_bench: " << e.what() << std::endl;
    return 1;
  }
}
