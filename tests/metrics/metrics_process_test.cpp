// The metrics of real processes: `quern server`, `quern worker` and `quern
// agent`, each with --metrics-listen, against the test harness's PostgreSQL.
// Their scrapes pass `promtool check metrics`; the job counters say exactly
// how many jobs of a tag succeeded, failed and were retried; 10,000
// distinct script paths add no series; and a server's /readyz follows its
// database going away and coming back.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "host/auth/tokens.h"
#include "host/metrics/metrics_endpoint.h"
#include "host/pg/embedded_postgres.h"
#include "host/queue/queue.h"
#include "host/server/server.h"
#include "tests/http/http_test_client.h"
#include "tests/metrics/promtool.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::free_port;
using testing::wait_until;

// The value of the first sample whose line starts with `series` (name and
// labels as exposed), or -1.
double sample(const std::string& text, const std::string& series) {
  for (size_t at = 0; (at = text.find(series + " ", at)) != std::string::npos; ++at)
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
  return -1;
}

size_t count_series(const std::string& text) {
  size_t n = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t end = text.find('\n', at);
    if (text[at] != '#' && end != at) ++n;
    at = end == std::string::npos ? text.size() : end + 1;
  }
  return n;
}

class MetricsProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    url_ = testing::fresh_database_url(name_);
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q);
    q_ = std::move(q).value();
    port_ = free_port();
    config_ = std::filesystem::temp_directory_path() / (name_ + ".xml");
    std::ofstream(config_) << "<quern>\n  <plugins dir=\"" << testing::plugin_dir() << "\"/>\n"
                           << "  <queue heartbeat-interval=\"300ms\" poll-interval=\"200ms\"/>\n"
                           << "  <server listen=\"127.0.0.1:" << port_ << "\"/>\n</quern>\n";
  }

  // Starts a quern command with --metrics-listen 127.0.0.1:0; returns the
  // process and the metrics base URL it printed.
  std::unique_ptr<ChildProcess> start(const std::string& what, std::vector<std::string> args,
                                      std::string& base) {
    args.insert(args.begin(), testing::quern_binary());
    args.insert(args.end(), {"--metrics-listen", "127.0.0.1:0"});
    auto p = std::make_unique<ChildProcess>(
        args, std::filesystem::temp_directory_path() / (name_ + "-" + what + ".log"));
    const std::regex printed("metrics on (http://127\\.0\\.0\\.1:[0-9]+)/metrics");
    std::smatch m;
    EXPECT_TRUE(wait_until(
        [&] {
          const std::string out = p->output();
          if (std::regex_search(out, m, printed)) base = m[1];
          return !base.empty() || !p->running();
        },
        30s));
    EXPECT_FALSE(base.empty()) << what << " did not serve metrics:\n" << p->output();
    return p;
  }

  std::string scrape(const std::string& base) {
    auto r = testing::http_request("GET", base + "/metrics");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  }

  void expect_promtool_clean(const std::string& what, const std::string& text) {
    auto r = testing::check_metrics(
        text, (std::filesystem::temp_directory_path() / (name_ + "-" + what + ".prom")).string());
    EXPECT_EQ(r.exit_code, 0) << what << ": promtool check metrics:\n" << r.output;
  }

  std::vector<int64_t> push(const std::string& tag, int n, const nlohmann::ordered_json& args,
                            const std::string& path_prefix = "", int max_attempts = 1) {
    std::vector<queue::NewJob> jobs(n);
    for (int i = 0; i < n; ++i) {
      jobs[i].tag = tag;
      jobs[i].language = "noop";
      jobs[i].payload["args"] = args;
      if (!path_prefix.empty()) jobs[i].script_path = path_prefix + std::to_string(i);
      jobs[i].retry.max_attempts = max_attempts;
      jobs[i].retry.backoff = 1ms;
    }
    auto ids = q_->push_batch(jobs);
    EXPECT_TRUE(ids) << ids.message();
    return ids ? *ids : std::vector<int64_t>{};
  }

  std::string state_of(int64_t id) {
    auto r = q_->get_job(id);
    return r && *r ? (*r)->state + " " + (*r)->error : r ? "gone" : r.message();
  }

  bool all_done(const std::vector<int64_t>& ids) {
    for (int64_t id : ids) {
      auto r = q_->get_job(id);
      if (!r || !*r || ((*r)->state != "success" && (*r)->state != "failure")) return false;
    }
    return true;
  }

  std::string name_, url_;
  std::filesystem::path config_;
  int port_ = 0;
  std::unique_ptr<queue::Queue> q_;
};

TEST_F(MetricsProcessTest, ServerWorkerAndAgentScrapesPassPromtoolAndCountEveryJobExactly) {
  std::string server_base, worker_base, agent_base;
  auto server = start("server", {"server", "--config", config_, "--database-url", url_}, server_base);
  auto worker = start(
      "worker", {"worker", "--config", config_, "--database-url", url_, "--tags", "noop", "--slots", "4"},
      worker_base);
  auth::NewToken t;
  t.role = auth::Role::agent;
  t.group = "edge";
  t.tags = {"edge"};
  auto store = auth::TokenStore::connect(url_);
  ASSERT_TRUE(store);
  auto token = (*store)->create(t);
  ASSERT_TRUE(token);
  auto agent = start("agent",
                     {"agent", "--server", "http://127.0.0.1:" + std::to_string(port_), "--token",
                      token->token, "--slots", "2", "--config", config_},
                     agent_base);
  if (HasFailure()) return;

  constexpr int kSucceed = 37, kFail = 11, kRetried = 5, kAgent = 9;
  std::vector<int64_t> ids = push("noop", kSucceed, {{"result", 1}});
  for (int64_t id : push("noop", kFail, {{"fail", "expected"}})) ids.push_back(id);
  // Retried once each (two attempts), then failed for good: 5 retries, 5 failures.
  for (int64_t id : push("noop", kRetried, {{"fail", "again"}}, "", 2)) ids.push_back(id);
  for (int64_t id : push("edge", kAgent, {{"result", 2}})) ids.push_back(id);
  ASSERT_TRUE(wait_until([&] { return all_done(ids); }, 60s)) << worker->output() << agent->output();

  // The database shows a job done a moment before its worker has counted
  // it (the count follows the completion's reply): scrape until every job
  // is counted, then check each series.
  const std::regex group_of("quern_jobs_completed_total\\{group=\"([^\"]*)\"");
  std::smatch g;
  std::string w, group;
  wait_until(
      [&] {
        w = scrape(worker_base);
        if (!std::regex_search(w, g, group_of)) return false;
        group = g[1];
        return sample(w, "quern_job_duration_seconds_count{group=\"" + group + "\",tag=\"noop\"}") >=
               kSucceed + kFail + kRetried;
      },
      10s);
  expect_promtool_clean("worker", w);
  ASSERT_FALSE(group.empty()) << w;
  EXPECT_EQ(sample(w, "quern_jobs_completed_total{group=\"" + group + "\",outcome=\"success\",tag=\"noop\"}"),
            kSucceed);
  EXPECT_EQ(sample(w, "quern_jobs_completed_total{group=\"" + group + "\",outcome=\"failure\",tag=\"noop\"}"),
            kFail + kRetried);
  EXPECT_EQ(sample(w, "quern_job_retries_total{group=\"" + group + "\"}"), kRetried);
  EXPECT_EQ(sample(w, "quern_job_duration_seconds_count{group=\"" + group + "\",tag=\"noop\"}"),
            kSucceed + kFail + kRetried);
  EXPECT_EQ(sample(w, "quern_job_queue_wait_seconds_count{group=\"" + group + "\",tag=\"noop\"}"),
            kSucceed + kFail + 2 * kRetried);  // every start, retries included
  EXPECT_GE(sample(w, "quern_worker_jobs_claimed_total{group=\"" + group + "\"}"),
            kSucceed + kFail + 2 * kRetried);
  EXPECT_EQ(sample(w, "quern_worker_slots{group=\"" + group + "\",state=\"idle\"}"), 4);
  EXPECT_GE(sample(w, "quern_worker_heartbeat_age_seconds{group=\"" + group + "\"}"), 0);
  EXPECT_GT(sample(w, "process_resident_memory_bytes"), 0);

  std::string a;
  wait_until(
      [&] {
        return sample(a = scrape(agent_base),
                      "quern_jobs_completed_total{group=\"edge\",outcome=\"success\",tag=\"edge\"}") >=
               kAgent;
      },
      10s);
  expect_promtool_clean("agent", a);
  EXPECT_EQ(sample(a, "quern_jobs_completed_total{group=\"edge\",outcome=\"success\",tag=\"edge\"}"), kAgent);

  // The server: queue depth (empty now) and the live worker and agent.
  const std::string s = scrape(server_base);
  expect_promtool_clean("server", s);
  EXPECT_EQ(sample(s, "quern_database_up"), 1);
  EXPECT_EQ(sample(s, "quern_agents_connected"), 1) << s;
  EXPECT_EQ(sample(s, "quern_workers_live{group=\"edge\",kind=\"agent\"}"), 1) << s;
  // The agent's API calls were counted by route template, never by path.
  EXPECT_GT(
      sample(s, "quern_http_requests_total{code=\"2xx\",method=\"POST\",route=\"/api/agent/complete\"}"), 0)
      << s;
  // Waiting work shows per tag.
  push("nobody-serves-this", 3, {{"result", 1}});
  const std::string s2 = [&] {
    std::string text;
    wait_until(
        [&] {
          return sample(text = scrape(server_base), "quern_queue_due_jobs{tag=\"nobody-serves-this\"}") == 3;
        },
        10s);
    return text;
  }();
  EXPECT_EQ(sample(s2, "quern_queue_waiting_jobs{tag=\"nobody-serves-this\"}"), 3) << s2;
  EXPECT_GE(sample(s2, "quern_queue_oldest_due_age_seconds{tag=\"nobody-serves-this\"}"), 0);
  // Probes on the metrics address.
  EXPECT_EQ(testing::http_request("GET", server_base + "/readyz").status, 200);
  EXPECT_EQ(testing::http_request("GET", worker_base + "/readyz").status, 200);
  EXPECT_EQ(testing::http_request("GET", agent_base + "/healthz").status, 200);
  for (auto* p : {agent.get(), worker.get(), server.get()}) {
    p->signal(SIGTERM);
    EXPECT_EQ(p->wait_exit(30s), 0) << p->output();
  }
}

TEST_F(MetricsProcessTest, TenThousandDistinctScriptPathsAddNoSeries) {
  std::string base;
  auto worker =
      start("worker",
            {"worker", "--config", config_, "--database-url", url_, "--tags", "noop", "--slots", "8"}, base);
  if (HasFailure()) return;
  auto first = push("noop", 10, {{"result", 1}}, "f/first/");
  ASSERT_TRUE(wait_until([&] { return all_done(first); }, 30s)) << worker->output() << state_of(first.at(0));
  const size_t before = count_series(scrape(base));
  push("noop", 10000, {{"result", 1}}, "f/many/script-");
  ASSERT_TRUE(wait_until(
      [&] {
        auto waiting = q_->count_waiting();
        auto running = q_->count_running();
        return waiting && running && *waiting == 0 && *running == 0;
      },
      300s))
      << worker->output();
  const std::string after = scrape(base);
  EXPECT_EQ(count_series(after), before) << after;
  EXPECT_EQ(after.find("f/many/"), std::string::npos);
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait_exit(30s), 0) << worker->output();
}

TEST_F(MetricsProcessTest, ReadyzFollowsTheDatabaseGoingAwayAndComingBack) {
  const auto dir = std::filesystem::path(QUERN_BUILD_DIR) / ("metrics-" + name_);
  std::filesystem::remove_all(dir);
  pg::EmbeddedOptions o;
  o.data_dir = dir / "pgdata";
  o.database = "quern";
  o.port = 5434;
  o.settings = {"fsync = off"};
  auto pg = pg::EmbeddedPostgres::start(o);
  ASSERT_TRUE(pg) << pg.message();
  server::ServerOptions so;
  so.port = 0;
  so.api.database_url = (*pg)->url();
  metrics::Metrics m;
  so.metrics = &m;
  server::Server server(so);
  ASSERT_TRUE(server.start());
  metrics::MetricsServer probes(m, [&] { return server.ready(); });
  ASSERT_TRUE(probes.start("127.0.0.1:0"));
  const std::string base = "http://127.0.0.1:" + std::to_string(probes.port());
  auto status = [&] { return testing::http_request("GET", base + "/readyz", "", {}, 10s).status; };
  EXPECT_EQ(status(), 200);
  ASSERT_TRUE((*pg)->stop());
  EXPECT_TRUE(wait_until([&] { return status() == 503; }, 20s));
  const std::string down = testing::http_request("GET", base + "/metrics").body;
  EXPECT_EQ(sample(down, "quern_database_up"), 0) << down;
  EXPECT_EQ(testing::http_request("GET", base + "/healthz").status, 200);  // alive all along
  auto again = pg::EmbeddedPostgres::start(o);
  ASSERT_TRUE(again) << again.message();
  EXPECT_TRUE(wait_until([&] { return status() == 200; }, 30s));
  probes.stop();
  server.stop();
  (*again)->stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace quern
