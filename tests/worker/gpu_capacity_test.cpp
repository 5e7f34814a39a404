// GPU capacity (from a plugin's resources) against GPU requests (from a job's
// args): parsing, validation messages, and the "can this worker ever run it"
// rule as the claim applies it (quern.gpu_fits, with every device free).
#include "host/worker/gpu_capacity.h"
#include "host/jobs/job_builder.h"

#include <gtest/gtest.h>

#include <climits>
#include <string>

#include "tests/worker/gpu_fits_sql.h"

namespace {

using nlohmann::json;
using quern::jobs::gpu_request_from_args;
using quern::jobs::GpuRequest;
using quern::worker::gpu_capacity_from_resources;
using quern::worker::GpuCapacity;

bool can_ever_meet(const GpuCapacity& c, const GpuRequest& r) {
  return quern::testing::claim_would_fit(c, r);
}

GpuCapacity capacity(const char* resources) {
  auto parsed = gpu_capacity_from_resources(json::parse(resources));
  EXPECT_TRUE(parsed.is_ok()) << parsed.message();
  return parsed.is_ok() ? parsed.value() : GpuCapacity{};
}

GpuRequest request(const char* args) {
  auto parsed = gpu_request_from_args(json::parse(args));
  EXPECT_TRUE(parsed.is_ok()) << parsed.message();
  return parsed.is_ok() ? parsed.value() : GpuRequest{-1, -1};
}

std::string capacity_error(const char* resources) {
  auto parsed = gpu_capacity_from_resources(json::parse(resources));
  EXPECT_FALSE(parsed.is_ok()) << resources;
  return parsed.message();
}

std::string request_error(const char* args) {
  auto parsed = gpu_request_from_args(json::parse(args));
  EXPECT_FALSE(parsed.is_ok()) << args;
  return parsed.message();
}

TEST(GpuCapacity, ReadsWhatTheGpuPluginReports) {
  // The gpu plugin's own format, extra fields included.
  GpuCapacity c = capacity(R"({"gpus": [
      {"index": 0, "uuid": "GPU-aaa", "name": "Test GPU", "memory_mb": 81920},
      {"index": 1, "uuid": "GPU-bbb", "name": "Small GPU", "memory_mb": 40960}]})");
  EXPECT_EQ(c.memory_mb, (std::vector<int>{81920, 40960}));
}

TEST(GpuCapacity, NoGpusAndUnknownKindsAreNotErrors) {
  EXPECT_TRUE(capacity(R"({"gpus": []})").memory_mb.empty());
  EXPECT_TRUE(capacity(R"({})").memory_mb.empty());
  EXPECT_EQ(capacity(R"({"tpus": [1], "gpus": [{"memory_mb": 0}]})").memory_mb, std::vector<int>{0});
  EXPECT_EQ(capacity(R"({"gpus": [{"memory_mb": 99999999999}]})").memory_mb, std::vector<int>{INT_MAX});
}

TEST(GpuCapacity, MalformedResourcesAreRefusedNamingThePlace) {
  EXPECT_EQ(capacity_error("null"), "gpu resources: must be a JSON object, got null");
  EXPECT_EQ(capacity_error("[]"), "gpu resources: must be a JSON object, got array");
  EXPECT_EQ(capacity_error(R"({"gpus": {}})"), "gpu resources: \"gpus\" must be an array");
  EXPECT_EQ(capacity_error(R"({"gpus": [{"memory_mb": 1}, 7]})"), "gpu resources: gpus[1] must be an object");
  EXPECT_EQ(capacity_error(R"({"gpus": [{"uuid": "GPU-x"}]})"),
            "gpu resources: gpus[0] has no \"memory_mb\"");
  for (const char* bad : {R"({"gpus": [{"memory_mb": -1}]})", R"({"gpus": [{"memory_mb": 1.5}]})",
                          R"({"gpus": [{"memory_mb": "80g"}]})", R"({"gpus": [{"memory_mb": null}]})"}) {
    EXPECT_EQ(capacity_error(bad), "gpu resources: gpus[0].memory_mb must be a non-negative integer") << bad;
  }
}

TEST(GpuRequest, DefaultsAsThePluginDoes) {
  GpuRequest r = request("{}");
  EXPECT_EQ(r.gpus, 1);
  EXPECT_EQ(r.memory_mb, 0);
  r = request(R"({"gpus": 2, "memory_mb": 40000, "command": ["true"]})");
  EXPECT_EQ(r.gpus, 2);
  EXPECT_EQ(r.memory_mb, 40000);
  EXPECT_EQ(request(R"({"memory_mb": null})").memory_mb, 0);
  // Non-object args are {} to the plugin too (it then fails on "nothing to
  // run", which is not a capacity matter).
  EXPECT_EQ(request("[1, 2]").gpus, 1);
  EXPECT_EQ(request("null").gpus, 1);
  // More than any worker has: clamped, never an overflow.
  EXPECT_EQ(request(R"({"gpus": 9999999999})").gpus, INT_MAX);
}

TEST(GpuRequest, BadValuesGetThePluginsMessages) {
  EXPECT_EQ(request_error(R"({"gpus": 0})"), "gpu job args: \"gpus\" must be at least 1");
  for (const char* bad : {R"({"gpus": -1})", R"({"gpus": 1.5})", R"({"gpus": "2"})", R"({"gpus": null})",
                          R"({"gpus": true})", R"({"gpus": 18446744073709551615})"}) {
    EXPECT_EQ(request_error(bad), "gpu job args: \"gpus\" must be a non-negative integer") << bad;
  }
  for (const char* bad : {R"({"memory_mb": -5})", R"({"memory_mb": "40g"})", R"({"memory_mb": 0.5})"}) {
    EXPECT_EQ(request_error(bad), "gpu job args: \"memory_mb\" must be a non-negative integer") << bad;
  }
}

TEST(CanEverMeet, CountsDevicesLargeEnough) {
  const GpuCapacity four{{81920, 81920, 40960, 40960}};
  EXPECT_TRUE(can_ever_meet(four, GpuRequest{1, 0}));
  EXPECT_TRUE(can_ever_meet(four, GpuRequest{4, 0}));
  EXPECT_FALSE(can_ever_meet(four, GpuRequest{5, 0}));
  EXPECT_TRUE(can_ever_meet(four, GpuRequest{4, 40960}));  // "at least": equal is enough
  EXPECT_TRUE(can_ever_meet(four, GpuRequest{2, 50000}));
  EXPECT_FALSE(can_ever_meet(four, GpuRequest{3, 50000}));
  EXPECT_FALSE(can_ever_meet(four, GpuRequest{1, 81921}));
  EXPECT_FALSE(can_ever_meet(four, GpuRequest{INT_MAX, 0}));
}

TEST(CanEverMeet, AWorkerWithoutGpusMeetsNothing) {
  EXPECT_FALSE(can_ever_meet(GpuCapacity{}, GpuRequest{1, 0}));
  // Unknown memory (0) satisfies only requests without a memory need.
  const GpuCapacity unknown{{0}};
  EXPECT_TRUE(can_ever_meet(unknown, GpuRequest{1, 0}));
  EXPECT_FALSE(can_ever_meet(unknown, GpuRequest{1, 1}));
}

TEST(GpuCapacity, RoundTripsThroughParsersAsTheClaimWillUseThem) {
  // A worker reporting no GPUs never meets the default request.
  EXPECT_FALSE(can_ever_meet(capacity(R"({"gpus": []})"), request("{}")));
  EXPECT_TRUE(
      can_ever_meet(capacity(R"({"gpus": [{"memory_mb": 16384}]})"), request(R"({"memory_mb": 16000})")));
}

}  // namespace
