// The autoscaler end to end, against real processes and the test harness's
// PostgreSQL: `quern up` scaling a local group from 0 to its max on a
// backlog and back to 0 when idle, with every job run exactly once; the same
// with a script that starts and stops `quern worker` processes itself; the
// KEDA endpoint answering what the decision function decides, behind its
// token; and a script that hangs, killed at its timeout and recorded as a
// failed event while the controller carries on.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "host/auth/tokens.h"
#include "host/autoscale/autoscale_store.h"
#include "host/autoscale/decision.h"
#include "host/config/config.h"
#include "host/queue/queue.h"
#include "host/worker/worker.h"
#include "tests/http/http_test_client.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::ChildProcess;
using testing::wait_until;
namespace fs = std::filesystem;

class AutoscaleProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    url_ = testing::fresh_database_url(name_);
    q_ = queue::Queue::connect(url_).value();
    dir_ = fs::temp_directory_path() / ("quern-autoscale-" + std::to_string(::getpid()) + "-" + name_);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    port_ = testing::free_port();
    auto tokens = auth::TokenStore::connect(url_).value();
    for (auto [role, out] :
         {std::pair{auth::Role::admin, &admin_}, std::pair{auth::Role::operator_, &operator_},
          std::pair{auth::Role::agent, &agent_}}) {
      auth::NewToken t;
      t.role = role;
      if (role == auth::Role::agent) {
        t.group = "g";
        t.tags = {"noop"};
      }
      *out = tokens->create(t).value().token;
    }
  }
  void TearDown() override {
    processes_.clear();  // stop them before their folder goes
    // Workers a script started (AScriptScales...), should a check have failed
    // before the script stopped them.
    std::ifstream pids(dir_ / "pids");
    for (std::string pid; std::getline(pids, pid);)
      if (!pid.empty()) ::kill(static_cast<pid_t>(std::stol(pid)), SIGKILL);
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  // A config with one group and its <autoscale> attributes.
  fs::path write_config(const std::string& group_attrs, const std::string& autoscale_attrs) {
    const fs::path path = dir_ / "quern.xml";
    std::ofstream(path)
        << "<quern>\n  <plugins dir=\"" << testing::plugin_dir() << "\"/>\n"
        << "  <database data-dir=\"" << (dir_ / "data").string() << "\"/>\n"
        << "  <queue heartbeat-interval=\"300ms\" poll-interval=\"200ms\" lease-timeout=\"5s\"/>\n"
        << "  <server listen=\"127.0.0.1:" << port_ << "\"/>\n"
        << "  <workers>\n    <group " << group_attrs << ">\n      <autoscale " << autoscale_attrs
        << "/>\n    </group>\n  </workers>\n</quern>\n";
    return path;
  }

  ChildProcess& start(const std::string& what, std::vector<std::string> args) {
    args.insert(args.begin(), testing::quern_binary());
    processes_.push_back(std::make_unique<ChildProcess>(args, (dir_ / (what + ".log")).string()));
    return *processes_.back();
  }

  testing::HttpResult get(const std::string& path, const std::string& token) {
    std::map<std::string, std::string> headers;
    if (!token.empty()) headers["Authorization"] = "Bearer " + token;
    return testing::http_request("GET", "http://127.0.0.1:" + std::to_string(port_) + path, "", headers);
  }

  // Live workers of a group, by the registry.
  int64_t live_workers(const std::string& group) {
    return std::stoll(q_->exec_scalar("SELECT count(*) FROM quern.workers WHERE worker_group = '" + group +
                                      "' AND last_seen_at > now() - interval '3 seconds'")
                          .value());
  }

  int64_t scalar(const std::string& sql) { return std::stoll(q_->exec_scalar(sql).value()); }

  // Queues n noop jobs of `sleep_ms` each in one statement.
  void queue_noop_jobs(int n, int sleep_ms) {
    ASSERT_TRUE(q_->exec_scalar(
        "INSERT INTO quern.queue (tag, language, payload) SELECT 'noop', 'noop', "
        "'{\"args\": {\"sleep_ms\": " +
        std::to_string(sleep_ms) + "}}'::json FROM generate_series(1, " + std::to_string(n) + ")"));
  }

  Json events() {
    auto r = get("/api/autoscaling/events?limit=1000", admin_);
    EXPECT_EQ(r.status, 200) << r.body;
    return Json::parse(r.body)["events"];
  }

  // Every job queued so far completed exactly once, successfully, on its
  // first attempt, and nothing is left in the queue.
  void expect_each_job_ran_once(int n) {
    EXPECT_EQ(scalar("SELECT count(*) FROM quern.queue"), 0);
    EXPECT_EQ(scalar("SELECT count(*) FROM quern.completed_jobs WHERE status = 'success' AND attempt = 1"),
              n);
    EXPECT_EQ(scalar("SELECT count(*) FROM quern.completed_jobs"), n);
  }

  std::string name_, url_;
  std::unique_ptr<queue::Queue> q_;
  fs::path dir_;
  int port_ = 0;
  std::string admin_, operator_, agent_;
  std::vector<std::unique_ptr<ChildProcess>> processes_;
};

// The issue's end-to-end case: min 0, max 4, 500 queued 100 ms jobs.
TEST_F(AutoscaleProcess, LocalScalesFromZeroToMaxDrainsAndReturnsToZeroRunningEachJobOnce) {
  const fs::path config = write_config("name='burst' slots='4' tags='noop' plugins='noop' sandbox='none'",
                                       "integration='local' min='0' max='4' tick='500ms' cooldown='1s' "
                                       "idle-before-zero='2s' occupancy-short='1s' occupancy-long='2s'");
  ChildProcess& up = start("up", {"up", "--config", config.string(), "--database-url", url_});
  ASSERT_TRUE(
      wait_until([&] { return up.output().find("ready.") != std::string::npos || !up.running(); }, 60s))
      << up.output();
  ASSERT_TRUE(up.running()) << up.output();
  // At zero: no worker runs, and the queue says what will happen to a job.
  ASSERT_TRUE(wait_until([&] { return get("/api/autoscaling/groups/burst", operator_).status == 200; }, 10s));
  EXPECT_EQ(live_workers("burst"), 0);
  queue_noop_jobs(500, 100);
  const auto queued_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return live_workers("burst") > 0; }, 15s)) << up.output();
  const auto first_up = std::chrono::steady_clock::now() - queued_at;
  // One tick (500 ms) plus a worker's start-up: well under 10 s here.
  EXPECT_LT(first_up, 10s);
  auto queue = get("/api/queue", operator_);
  EXPECT_EQ(queue.status, 200);
  EXPECT_TRUE(wait_until([&] { return live_workers("burst") == 4; }, 15s)) << up.output();
  ASSERT_TRUE(wait_until([&] { return scalar("SELECT count(*) FROM quern.completed_jobs") == 500; }, 120s))
      << up.output();
  // Back to zero once idle for idle-before-zero.
  ASSERT_TRUE(wait_until([&] { return live_workers("burst") == 0; }, 30s)) << up.output();
  expect_each_job_ran_once(500);
  const Json ev = events();
  ASSERT_GE(ev.size(), 2u) << ev.dump(2);
  const Json& first = ev.back();  // newest first
  EXPECT_EQ(first["from"], 0);
  EXPECT_EQ(first["to"], 4);
  EXPECT_EQ(first["rule"], "scale-from-zero");
  EXPECT_EQ(first["outcome"], "ok");
  EXPECT_EQ(ev.front()["to"], 0);
  EXPECT_EQ(ev.front()["rule"], "idle");
  for (const Json& e : ev) EXPECT_EQ(e["outcome"], "ok") << e.dump();
  auto group = Json::parse(get("/api/autoscaling/groups/burst", operator_).body);
  EXPECT_EQ(group["desired"], 0);
  EXPECT_EQ(group["integration"], "local");
  // Stopping `quern up` leaves no worker process of the group behind.
  up.signal(SIGTERM);
  EXPECT_EQ(up.wait_exit(60s), 0) << up.output();
  using namespace std::string_literals;
  EXPECT_TRUE(testing::processes_with_marker("burst\0--worker-id\0burst-"s).empty());
}

// A job queued for a group at zero: `GET /api/queue` says the group is being
// scaled up instead of a bare "not served" (dry-run: nothing starts).
TEST_F(AutoscaleProcess, TheQueueSaysAGroupAtZeroIsScalingUp) {
  const fs::path config = write_config("name='g' slots='2' tags='noop' plugins='noop'",
                                       "integration='keda' min='0' max='5' tick='200ms'");
  ChildProcess& server = start("server", {"server", "--config", config.string(), "--database-url", url_});
  ASSERT_TRUE(wait_until([&] { return get("/api/autoscaling/groups/g", operator_).status == 200; }, 30s))
      << server.output();
  queue_noop_jobs(1, 0);
  ASSERT_TRUE(wait_until(
      [&] { return Json::parse(get("/api/autoscaling/groups/g", operator_).body)["desired"] == 1; }, 10s))
      << server.output();
  const Json tags = Json::parse(get("/api/queue", operator_).body)["tags"];
  ASSERT_EQ(tags.size(), 1u) << tags.dump();
  EXPECT_EQ(tags[0]["served"], false);
  EXPECT_TRUE(std::regex_search(tags[0].value("autoscale", ""),
                                std::regex("^scaling group g up from 0 \\(requested at 20[0-9-]+T")))
      << tags.dump();
}

// `quern run` for a tag no live worker serves says so at once, and what will
// run it: the autoscaler scaling the group up, or which group of the config
// would; the job is queued either way.
TEST_F(AutoscaleProcess, QuernRunSaysWhatWillRunAJobNoLiveWorkerServes) {
  const fs::path config = write_config("name='g' slots='2' tags='noop' plugins='noop'",
                                       "integration='keda' min='0' max='5' tick='200ms'");
  ChildProcess& server = start("server", {"server", "--config", config.string(), "--database-url", url_});
  ASSERT_TRUE(wait_until([&] { return get("/api/autoscaling/groups/g", operator_).status == 200; }, 30s))
      << server.output();
  auto run = [&](const std::string& language) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r =
        testing::run_to_end({testing::quern_binary(), "run", "--config", config.string(), "--database-url",
                             url_, "--language", language, "--code", "true", "--no-wait"},
                            (dir_ / ("run-" + language + ".log")).string(), 30s);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    return r.output;
  };
  EXPECT_TRUE(std::regex_search(run("noop"),
                                std::regex("note: (scaling group g up from 0|group g is at 0 workers)")));
  const std::string unserved = run("bash");
  EXPECT_NE(unserved.find("note: no live worker serves tag bash; it waits until one does (no group of " +
                          config.string() + " serves it"),
            std::string::npos)
      << unserved;
  EXPECT_EQ(scalar("SELECT count(*) FROM quern.queue"), 2);  // both queued
}

// KEDA's metrics-api reads `desired`: it is what decide() makes of the same
// signals; the route needs a token whose role may read it.
TEST_F(AutoscaleProcess, TheKedaEndpointAnswersWhatTheDecisionFunctionDecided) {
  const fs::path config = write_config("name='g' slots='2' tags='noop' plugins='noop'",
                                       "integration='keda' min='0' max='5' tick='200ms' lookahead='0'");
  ChildProcess& server = start("server", {"server", "--config", config.string(), "--database-url", url_,
                                          "--metrics-listen", "127.0.0.1:0"});
  ASSERT_TRUE(wait_until([&] { return get("/api/autoscaling/groups/g", operator_).status == 200; }, 30s))
      << server.output();
  EXPECT_EQ(Json::parse(get("/api/autoscaling/groups/g", operator_).body)["desired"], 0);
  queue_noop_jobs(7, 0);
  // The decision function on the same signals, from zero.
  const config::Config cfg = config::load_config(config).value();
  auto store = autoscale::AutoscaleStore::connect(url_).value();
  const autoscale::Signals signals = store->signals("g", {"noop"}, 0ms, 35s).value();
  EXPECT_EQ(signals.runnable, 7);
  autoscale::History history;
  autoscale::observe(history, *cfg.groups[0].autoscale, signals, autoscale::Clock::now());
  const autoscale::Decision expected =
      autoscale::decide(*cfg.groups[0].autoscale, 2, signals, history, autoscale::Clock::now());
  EXPECT_EQ(expected.desired, 4);  // ceil(7 / 2)
  Json answer;
  ASSERT_TRUE(wait_until(
      [&] {
        answer = Json::parse(get("/api/autoscaling/groups/g", operator_).body);
        return answer["desired"] == expected.desired;
      },
      10s))
      << answer.dump() << "\n"
      << server.output();
  // The rule of the decision that moved the count: the group's own "rule"
  // is the latest tick's, which may already hold at 4 on a slow machine.
  const Json ev = events();
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back()["to"], expected.desired) << ev.dump();
  EXPECT_EQ(ev.back()["rule"], expected.rule) << ev.dump();
  EXPECT_EQ(answer["integration"], "keda");
  // Only with a token that may read it.
  EXPECT_EQ(get("/api/autoscaling/groups/g", "").status, 401);
  EXPECT_EQ(get("/api/autoscaling/groups/g", "qrn_bogus").status, 401);
  EXPECT_EQ(get("/api/autoscaling/groups/g", agent_).status, 403);
  EXPECT_EQ(get("/api/autoscaling/groups/nope", operator_).status, 404);
  EXPECT_EQ(get("/api/autoscaling/groups/a%20b", operator_).status, 400);
  EXPECT_EQ(get("/api/autoscaling/events?limit=0", operator_).status, 400);
  EXPECT_EQ(get("/api/autoscaling/events?color=red", operator_).status, 400);
  // And the same number as a Prometheus gauge, for KEDA's prometheus scaler.
  std::smatch m;
  const std::string out = server.output();
  ASSERT_TRUE(std::regex_search(out, m, std::regex("metrics on (http://127\\.0\\.0\\.1:[0-9]+)/metrics")))
      << out;
  const std::string metrics = testing::http_request("GET", std::string(m[1]) + "/metrics").body;
  EXPECT_NE(metrics.find("quern_autoscale_desired_workers{group=\"g\"} 4"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("quern_autoscale_events_total{direction=\"up\",group=\"g\",outcome=\"ok\"} 1"),
            std::string::npos)
      << metrics;
}

// integration="script": the operator's script starts and stops `quern
// worker` processes itself; it records each call, and every job runs once.
TEST_F(AutoscaleProcess, AScriptScalesOutAndInAndRecordsEachCall) {
  const fs::path calls = dir_ / "calls.txt";
  const fs::path script = dir_ / "scale.sh";
  const fs::path config = dir_ / "quern.xml";
  // Starts workers up to TO (setsid'd, so that they outlive the script) and
  // stops the newest ones down to TO with SIGTERM (their graceful stop).
  std::ofstream(script) << "#!/bin/sh\nset -eu\ncd " << dir_.string() << "\n"
                        << "echo \"$QUERN_AUTOSCALE_GROUP $QUERN_AUTOSCALE_FROM $QUERN_AUTOSCALE_TO "
                           "$QUERN_AUTOSCALE_SLOTS $QUERN_AUTOSCALE_RULE\" >> "
                        << calls.string() << "\n"
                        << "touch pids\nn=$(wc -l < pids)\n"
                        << "while [ \"$n\" -lt \"$QUERN_AUTOSCALE_TO\" ]; do\n"
                        << "  n=$((n + 1))\n"
                        << "  setsid " << testing::quern_binary() << " worker --config " << config.string()
                        << " --database-url '" << url_ << "' --group ext --worker-id ext-" << ::getpid()
                        << "-$n"
                        << " </dev/null >>worker-$n.log 2>&1 &\n"
                        << "  echo $! >> pids\n"
                        << "done\n"
                        << "while [ \"$n\" -gt \"$QUERN_AUTOSCALE_TO\" ]; do\n"
                        << "  kill -TERM \"$(tail -n 1 pids)\"\n"
                        << "  sed -i '$d' pids\n"
                        << "  n=$((n - 1))\n"
                        << "done\n";
  ::chmod(script.c_str(), 0755);
  write_config("name='ext' slots='4' tags='noop' plugins='noop' sandbox='none'",
               "integration='script' script='scale.sh' min='0' max='3' tick='500ms' cooldown='1s' "
               "idle-before-zero='2s' occupancy-short='1s' occupancy-long='2s' script-timeout='10s'");
  ChildProcess& server = start("server", {"server", "--config", config.string(), "--database-url", url_});
  ASSERT_TRUE(wait_until([&] { return get("/api/autoscaling/groups/ext", operator_).status == 200; }, 30s))
      << server.output();
  queue_noop_jobs(500, 100);
  ASSERT_TRUE(wait_until([&] { return live_workers("ext") == 3; }, 20s)) << server.output();
  ASSERT_TRUE(wait_until([&] { return scalar("SELECT count(*) FROM quern.completed_jobs") == 500; }, 120s))
      << server.output();
  ASSERT_TRUE(wait_until([&] { return live_workers("ext") == 0; }, 30s)) << server.output();
  expect_each_job_ran_once(500);
  std::ifstream in(calls);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines.front(), "ext 0 3 4 scale-from-zero");
  // The last call stops the last workers once the group is idle.
  EXPECT_TRUE(std::regex_match(lines.back(), std::regex("ext [1-3] 0 4 idle"))) << lines.back();
  // The script's last call stops the workers before it returns, and the
  // server records its event only once it returned: wait for that record.
  Json ev;
  EXPECT_TRUE(wait_until(
      [&] {
        ev = events();
        return ev.size() >= lines.size();
      },
      15s));
  EXPECT_EQ(ev.size(), lines.size());  // one event per call
  for (const Json& e : ev) EXPECT_EQ(e["outcome"], "ok") << e.dump();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(30s), 0) << server.output();
}

// A script that hangs is killed at its timeout and recorded as a failed
// event; the count stays, the controller retries later and keeps deciding.
TEST_F(AutoscaleProcess, AHangingScriptIsKilledAtItsTimeoutAndRecordedAsFailed) {
  const fs::path script = dir_ / "hang.sh";
  std::ofstream(script) << "#!/bin/sh\necho starting the workers\nexec sleep 1000\n";
  ::chmod(script.c_str(), 0755);
  const fs::path config = write_config("name='ext' slots='1' tags='noop' plugins='noop'",
                                       "integration='script' script='hang.sh' max='2' tick='200ms' "
                                       "script-timeout='500ms' cooldown='1s'");
  ChildProcess& server = start("server", {"server", "--config", config.string(), "--database-url", url_});
  ASSERT_TRUE(wait_until([&] { return get("/api/autoscaling/groups/ext", operator_).status == 200; }, 30s))
      << server.output();
  queue_noop_jobs(1, 0);
  Json ev;
  ASSERT_TRUE(wait_until(
      [&] {
        ev = events();
        return ev.size() >= 2;  // the failure, and its retry after the cooldown
      },
      20s))
      << server.output();
  for (const Json& e : ev) {
    EXPECT_EQ(e["outcome"], "failed");
    EXPECT_EQ(e["to"], 1);
    EXPECT_NE(
        e["error"].get<std::string>().find("timed out after 500ms and was killed: starting the workers"),
        std::string::npos)
        << e.dump();
  }
  // Killed, not left behind; and the recorded count is still 0.
  EXPECT_TRUE(wait_until([&] { return testing::processes_with_marker("sleep 1000").empty(); }, 5s));
  EXPECT_EQ(Json::parse(get("/api/autoscaling/groups/ext", operator_).body)["desired"], 0);
  EXPECT_TRUE(server.running());
}

// A local worker killed with SIGKILL cleans up nothing itself, and its
// replacement has another id, so it would never reap what the dead one left.
// Its parent, which reaps the process, ends that: the processes of its job
// cgroups (a setsid'd one here: with sandbox="none" no pid namespace ends
// it) and its directories.
TEST_F(AutoscaleProcess, WhatAKilledLocalWorkerLeftIsEndedByItsParent) {
  const fs::path config = write_config("name='sturdy' slots='1' tags='bash' plugins='bash' sandbox='none'",
                                       "integration='local' min='1' max='1' tick='300ms' cooldown='1s'");
  ChildProcess& up = start("up", {"up", "--config", config.string(), "--database-url", url_});
  ASSERT_TRUE(wait_until([&] { return live_workers("sturdy") == 1; }, 60s)) << up.output();
  const std::string marker = "quern_left_behind_" + std::to_string(::getpid());
  // Runs once: the attempt after the worker's lease expires finds the flag.
  const std::string flag = (dir_ / "ran").string();
  queue::NewJob j;
  j.tag = j.language = "bash";
  j.payload["code"] = "[ -e " + flag + " ] && exit 0\ntouch " + flag + "\nsetsid bash -c 'exec -a " + marker +
                      " sleep 1000' </dev/null >/dev/null 2>&1 &\nsleep 1000\n";
  ASSERT_TRUE(q_->push(j));
  ASSERT_TRUE(wait_until([&] { return !testing::processes_with_marker(marker, true).empty(); }, 30s))
      << up.output();
  using namespace std::string_literals;
  const auto workers = testing::processes_with_marker("--worker-id\0sturdy-"s);
  ASSERT_EQ(workers.size(), 1u) << up.output();
  std::string id;
  {
    std::ifstream cmdline("/proc/" + std::to_string(workers[0]) + "/cmdline");
    for (std::string arg, last; std::getline(cmdline, arg, '\0'); last = arg)
      if (last == "--worker-id") id = arg;
  }
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(fs::exists(worker::default_jobs_dir(id)));
  // While the worker lives (it holds its jobs directory's lock), a clean-up
  // after it touches nothing.
  EXPECT_EQ(worker::clean_up_after(id), 0);
  EXPECT_FALSE(testing::processes_with_marker(marker).empty());
  ::kill(workers[0], SIGKILL);
  EXPECT_TRUE(wait_until([&] { return testing::processes_with_marker(marker).empty(); }, 30s))
      << "the setsid'd process outlived its killed worker\n"
      << up.output();
  EXPECT_TRUE(wait_until(
      [&] { return up.output().find("job cgroup(s) worker " + id + " left") != std::string::npos; }, 10s))
      << up.output();
  EXPECT_FALSE(fs::exists(worker::default_jobs_dir(id)));
  for (pid_t pid : testing::processes_with_marker(marker)) ::kill(pid, SIGKILL);
  up.signal(SIGTERM);
  EXPECT_EQ(up.wait_exit(60s), 0) << up.output();
}

}  // namespace
}  // namespace quern
