// WorkerTelemetry: what a heartbeat may carry into the registry. An agent's
// heartbeat is client input, so every field is checked and bounded.
#include "host/queue/worker_telemetry.h"

#include <gtest/gtest.h>

namespace quern::queue {
namespace {

using Json = nlohmann::json;

TEST(WorkerTelemetry, RoundTripsThroughJson) {
  WorkerTelemetry t;
  t.rss_bytes = 123456789;
  t.cpu_seconds = 12.5;
  t.occupancy_15s = 1;
  t.occupancy_5m = 0.5;
  t.occupancy_30m = 0.25;
  t.heartbeat_interval_ms = 10000;
  t.plugins = {{"bash", "ok"}, {"python", "unchecked"}, {"sql", "plugin 'sql': unhealthy: no route"}};
  auto back = WorkerTelemetry::from_json(t.to_json(), "telemetry");
  ASSERT_TRUE(back) << back.message();
  EXPECT_EQ(back->to_json(), t.to_json());
  EXPECT_EQ(back->plugins.at("sql"), "plugin 'sql': unhealthy: no route");
}

TEST(WorkerTelemetry, UnknownRssAndCpuAreLeftOut) {
  const Json j = WorkerTelemetry{}.to_json();
  EXPECT_FALSE(j.contains("rss_bytes"));
  EXPECT_FALSE(j.contains("cpu_seconds"));
  auto back = WorkerTelemetry::from_json(j, "telemetry");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->rss_bytes, -1);
}

TEST(WorkerTelemetry, RefusesWhatIsNotTelemetryNamingTheField) {
  struct Case {
    Json doc;
    std::string names;
  };
  const Case cases[] = {
      {Json::array(), "telemetry: expected an object"},
      {{{"rss_bytes", -1}}, "telemetry.rss_bytes"},
      {{{"rss_bytes", 1.5}}, "telemetry.rss_bytes"},
      {{{"rss_bytes", 18446744073709551615ull}}, "telemetry.rss_bytes"},
      {{{"cpu_seconds", "1"}}, "telemetry.cpu_seconds"},
      {{{"occupancy", {{"15s", 1.5}}}}, "telemetry.occupancy.15s"},
      {{{"occupancy", {{"1h", 0.5}}}}, "unknown window '1h'"},
      {{{"plugins", {{"bash", 1}}}}, "telemetry.plugins.bash"},
      {{{"plugins", {{std::string(65, 'p'), "ok"}}}}, "a plugin name"},
      {{{"plugins", {{std::string("a\0b", 3), "ok"}}}}, "without NUL"},
      {{{"secret", true}}, "unknown field 'secret'"},
  };
  for (const Case& c : cases) {
    auto t = WorkerTelemetry::from_json(c.doc, "telemetry");
    ASSERT_FALSE(t) << c.doc.dump();
    EXPECT_EQ(t.status().code(), StatusCode::invalid_argument);
    EXPECT_NE(t.message().find(c.names), std::string::npos) << t.message();
  }
}

TEST(WorkerTelemetry, BoundsWhatItKeeps) {
  Json many = Json::object();
  for (size_t i = 0; i <= WorkerTelemetry::kMaxPlugins; ++i) many["p" + std::to_string(i)] = "ok";
  EXPECT_FALSE(WorkerTelemetry::from_json(Json{{"plugins", many}}, "telemetry"));

  // A long reason is cut, not refused; cut inside a UTF-8 sequence, it stays valid.
  std::string why(WorkerTelemetry::kMaxHealthText - 1, 'x');
  why += "\xC3\xA9 and more";  // é straddles the cut
  auto t = WorkerTelemetry::from_json(Json{{"plugins", {{"bash", why}}}}, "telemetry");
  ASSERT_TRUE(t) << t.message();
  const std::string& kept = t->plugins.at("bash");
  EXPECT_LE(kept.size(), WorkerTelemetry::kMaxHealthText + 3);
  EXPECT_NO_THROW((void)Json(kept).dump());  // valid UTF-8: storable as jsonb
}

}  // namespace
}  // namespace quern::queue
