// host/metrics without a database: the registry's exposition passes
// promtool, label values are bounded, occupancy windows add up, listen
// addresses are parsed strictly, and the probes answer over real HTTP.
#include "host/metrics/metrics.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "host/metrics/http_metrics.h"
#include "host/metrics/job_metrics.h"
#include "host/metrics/metrics_endpoint.h"
#include "tests/http/http_test_client.h"
#include "tests/metrics/promtool.h"

namespace quern::metrics {
namespace {

using namespace std::chrono_literals;

std::string scratch(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("quern-metrics-" + name + ".txt")).string();
}

TEST(Metrics, EveryKindOfMetricScrapesAsValidPrometheusText) {
  Metrics m;
  m.add_collector(process_collector());
  WorkerMetrics w(m, "default");
  w.claimed(3, 2ms);
  w.job_started("bash", 150ms);
  w.job_finished("bash", "success", 40ms);
  w.job_finished("bash", "failure", 3s);
  w.retried(1);
  w.handed_back(2);
  w.slots(1, 4);
  w.heartbeat_ok();
  HttpMetrics h(m);
  h.request_done("GET", "/api/jobs/{id}", 200, 3ms);
  h.request_done("", "", 404, 1ms);
  h.request_done("POST", "/api/run/{path+}", 503, 1ms);
  h.streams_changed(+1);
  const std::string text = m.scrape();
  auto r = testing::check_metrics(text, scratch("kinds"));
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << text;
  for (const char* needle :
       {"quern_jobs_completed_total{group=\"default\",outcome=\"success\",tag=\"bash\"} 1",
        "quern_jobs_completed_total{group=\"default\",outcome=\"failure\",tag=\"bash\"} 1",
        "quern_job_retries_total{group=\"default\"} 1", "quern_jobs_handed_back_total{group=\"default\"} 2",
        "quern_worker_jobs_claimed_total{group=\"default\"} 3",
        "quern_worker_slots{group=\"default\",state=\"busy\"} 1",
        "quern_worker_slots{group=\"default\",state=\"idle\"} 3", "quern_http_unavailable_total 1",
        "quern_http_sse_streams_open 1", "route=\"/api/jobs/{id}\"", "route=\"none\"",
        "process_resident_memory_bytes", "process_cpu_seconds_total",
        "quern_lease_recoveries_total{outcome=\"requeued\"} 0"})
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
}

TEST(Metrics, ALabelTakesBoundedValuesThenOther) {
  LabelLimit l(3);
  EXPECT_EQ(l.admit("a"), "a");
  EXPECT_EQ(l.admit("b"), "b");
  EXPECT_EQ(l.admit("c"), "c");
  EXPECT_EQ(l.admit("d"), "_other");
  EXPECT_EQ(l.admit("a"), "a");  // admitted once, always
  Metrics m;
  WorkerMetrics w(m, "g");
  for (int i = 0; i < 5000; ++i) w.job_finished("tag-" + std::to_string(i), "success", 1ms);
  const std::string text = m.scrape();
  size_t series = 0;
  for (size_t at = 0; (at = text.find("quern_jobs_completed_total{", at)) != std::string::npos; ++at)
    ++series;
  EXPECT_EQ(series, 257u);  // 256 tags + "_other"
  EXPECT_NE(text.find("tag=\"_other\"} 4744"), std::string::npos);
}

TEST(Metrics, OccupancyIsBusySlotTimeOverSlotTimeInEachWindow) {
  const auto t0 = Occupancy::Clock::now();
  Occupancy o(t0);
  o.set(0, 4, t0);
  EXPECT_DOUBLE_EQ(o.ratio(15s, t0 + 10s), 0.0);
  o.set(4, 4, t0 + 10s);  // fully busy from 10 s on
  EXPECT_NEAR(o.ratio(15s, t0 + 20s), 10.0 / 15.0, 1e-9);
  EXPECT_NEAR(o.ratio(300s, t0 + 20s), 0.5, 1e-9);  // only 20 s have passed
  o.set(1, 4, t0 + 20s);
  EXPECT_NEAR(o.ratio(15s, t0 + 30s), (5 * 4 + 10 * 1) / 60.0, 1e-9);  // 5 s of 4 busy, 10 s of 1
  // An hour later, with 1 of 4 busy all along, every window says 0.25.
  EXPECT_NEAR(o.ratio(15s, t0 + 3630s), 0.25, 1e-9);
  EXPECT_NEAR(o.ratio(1800s, t0 + 3630s), 0.25, 1e-9);
  o.set(0, 0, t0 + 3630s);  // no slots: nothing to be busy with
  EXPECT_NEAR(o.ratio(15s, t0 + 3700s), 0.0, 1e-9);
}

TEST(Metrics, ListenAddressesAreParsedStrictly) {
  auto a = parse_listen_address("127.0.0.1:9421");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9421);
  a = parse_listen_address(":0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "0.0.0.0");
  a = parse_listen_address("[::1]:80");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "::1");
  for (const char* bad : {"9421", "host:", "host:http", "host:70000", "host:-1", "host:123456"}) {
    auto b = parse_listen_address(bad);
    ASSERT_FALSE(b) << bad;
    EXPECT_NE(b.message().find(bad), std::string::npos) << b.message();
  }
}

TEST(Metrics, TheListenerServesMetricsAndProbesAnonymously) {
  Metrics m;
  m.add_collector(process_collector());
  bool ready = false;
  MetricsServer server(m, [&] { return ready ? Status::ok() : Status::unavailable("the database is away"); });
  ASSERT_TRUE(server.start("127.0.0.1:0"));
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  auto r = testing::http_request("GET", base + "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("process_start_time_seconds"), std::string::npos);
  EXPECT_EQ(testing::http_request("GET", base + "/healthz").status, 200);
  r = testing::http_request("GET", base + "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("the database is away"), std::string::npos);
  ready = true;
  EXPECT_EQ(testing::http_request("GET", base + "/readyz").status, 200);
  EXPECT_EQ(testing::http_request("GET", base + "/api/jobs").status, 404);  // nothing else is served
  // The address in use is refused, naming it.
  MetricsServer second(m, nullptr);
  Status s = second.start("127.0.0.1:" + std::to_string(server.port()));
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find(std::to_string(server.port())), std::string::npos) << s.message();
}

}  // namespace
}  // namespace quern::metrics
