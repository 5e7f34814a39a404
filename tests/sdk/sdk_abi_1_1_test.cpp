// ABI 1.1: `resources`, the capacity an instance offers, appended to the
// descriptor. Its place and type are pinned here; plugins built against the
// frozen 1.1 header (tests/sdk/abi_1_1: plain C, the raw snprintf-style
// protocol) and the current C++ wrapper report through it, run jobs on this
// host, and the host reads it only when the descriptor's struct_size covers
// it. That a 1.0 plugin reports nothing is in sdk_abi_test.cpp
// (Abi10Plugin.ReportsNoResources).
#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "host/plugin/plugin_registry.h"
#include "quern/executor.h"
#include "tests/plugin/recording_sink.h"

namespace {

using nlohmann::json;
using quern::plugin::Executor;
using quern::plugin::PluginRegistry;
using quern::testing::RecordingSink;

// 1.1 appended exactly one field, right where 1.0 ended (offset 96 on LP64,
// the size of the 1.0 descriptor, which sdk_abi_test pins against the frozen
// header); the struct grew by one pointer, and later minors append after it.
TEST(Abi11, ResourcesIsAppendedAtTheEnd) {
  static_assert(sizeof(void*) == 8, "offsets below are for LP64 targets");
  EXPECT_EQ(QUERN_ABI_MAJOR, 1);
  EXPECT_GE(QUERN_ABI_MINOR, 1);
  EXPECT_EQ(offsetof(quern_executor_descriptor, resources),
            offsetof(quern_executor_descriptor, interrupt) + sizeof(void*));
  EXPECT_EQ(offsetof(quern_executor_descriptor, resources), 96u);
  EXPECT_GE(sizeof(quern_executor_descriptor), 104u);
  static_assert(std::is_same_v<decltype(quern_executor_descriptor::resources),
                               int64_t (*)(quern_instance*, quern_errbuf)>);
}

TEST(Abi11, FrozenHeaderIsUnchanged) {
  // Recorded when the copy was frozen (sha256sum tests/sdk/abi_1_1/quern/executor.h),
  // as sdk/include/quern/executor.h was when 1.1 shipped. Never edit it.
  EXPECT_STREQ(QUERN_ABI_1_1_HEADER_SHA256,
               "ce215504906d3b6cce01e81bdf58a2a3c2148cbdd790c50743f45a2b878b8fe1");
}

class Abi11Plugin : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* file :
         {QUERN_ABI_1_1_PLUGIN, QUERN_ABI_1_1_PARTIAL_PLUGIN, QUERN_ABI_1_1_WRAPPER_PLUGIN}) {
      quern::Status loaded = registry_.load_file(file);
      ASSERT_TRUE(loaded.is_ok()) << loaded.message();
    }
  }
  std::unique_ptr<Executor> make(const std::string& plugin, const std::string& config) {
    auto created = registry_.by_name(plugin)->create(config);
    EXPECT_TRUE(created.is_ok()) << created.message();
    return created.is_ok() ? std::move(created.value()) : nullptr;
  }
  // How often the C fixture's resources() was called (its health says).
  static std::string calls(Executor& executor) { return executor.health().message(); }

  PluginRegistry registry_;
};

TEST_F(Abi11Plugin, DescriptorSaysOneDotOne) {
  const auto* plugin = registry_.by_name("abi_1_1");
  ASSERT_NE(plugin, nullptr);
  EXPECT_EQ(plugin->info().abi_major, 1);
  EXPECT_EQ(plugin->info().abi_minor, 1);
  EXPECT_TRUE(plugin->reports_resources());
  EXPECT_TRUE(registry_.by_name("abi_1_1_wrapper")->reports_resources());
}

TEST_F(Abi11Plugin, RunsAJobOnThisHost) {
  // Built against the frozen 1.1 header: its callback table ends where 1.1's
  // did, and the host's longer one serves it unchanged.
  auto ex = make("abi_1_1", "{}");
  ASSERT_NE(ex, nullptr);
  RecordingSink sink;
  ASSERT_EQ(ex->execute(R"({"id":1,"attempt":1,"language":"abi_1_1","code":"","args":{}})", sink),
            QUERN_STATUS_SUCCESS);
  EXPECT_EQ(sink.result(), R"({"abi":"1.1"})");
}

TEST_F(Abi11Plugin, ReportsItsResources) {
  auto ex = make("abi_1_1", "{}");
  ASSERT_NE(ex, nullptr);
  auto r = ex->resources();
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_EQ(*r, json::parse(R"({"gpus":[{"index":0,"uuid":"GPU-fixture","memory_mb":1024}]})"));
  EXPECT_NE(calls(*ex).find("calls=1"), std::string::npos) << calls(*ex);  // it fit the first buffer

  // The registry's way: a short-lived instance with the given config.
  auto through_registry = registry_.resources("abi_1_1", "{}");
  ASSERT_TRUE(through_registry.is_ok()) << through_registry.message();
  EXPECT_EQ(*through_registry, *r);
}

TEST_F(Abi11Plugin, ALongAnswerIsAskedForAgainWithRoom) {
  auto ex = make("abi_1_1", R"({"mode":"big"})");
  auto r = ex->resources();
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_EQ((*r)["gpus"][0]["uuid"], "GPU-fixture");
  EXPECT_EQ((*r)["padding"].get<std::string>().size(), 10000u);
  EXPECT_NE(calls(*ex).find("calls=2"), std::string::npos) << calls(*ex);
}

TEST_F(Abi11Plugin, FailuresAndNonObjectsAreErrors) {
  auto failed = make("abi_1_1", R"({"mode":"fail"})")->resources();
  ASSERT_FALSE(failed.is_ok());
  EXPECT_EQ(failed.message(), "plugin 'abi_1_1': resources failed: fixture resources failed");

  auto array = make("abi_1_1", R"({"mode":"array"})")->resources();
  ASSERT_FALSE(array.is_ok());
  EXPECT_EQ(array.message(), "plugin 'abi_1_1': resources: must be a JSON object, got array");

  auto text = make("abi_1_1", R"({"mode":"notjson"})")->resources();
  ASSERT_FALSE(text.is_ok());
  EXPECT_EQ(text.message().rfind("plugin 'abi_1_1': resources is not valid JSON: parse error at line 1", 0),
            0u)
      << text.message();

  // A plugin that never fits: asked twice, then refused (no endless loop).
  auto ex = make("abi_1_1", R"({"mode":"grows"})");
  auto grows = ex->resources();
  ASSERT_FALSE(grows.is_ok());
  EXPECT_EQ(grows.message(), "plugin 'abi_1_1': resources: the text grew between two calls");
  EXPECT_NE(calls(*ex).find("calls=2"), std::string::npos) << calls(*ex);

  auto unknown = registry_.resources("no_such_plugin");
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_EQ(unknown.message(), "no plugin named 'no_such_plugin'");
}

TEST_F(Abi11Plugin, AFieldStructSizeDoesNotFullyCoverIsNotRead) {
  // struct_size ends 4 bytes into `resources`, whose pointer is set: the
  // host must treat it as absent, not call half a pointer.
  const auto* partial = registry_.by_name("abi_1_1_partial");
  ASSERT_NE(partial, nullptr);
  EXPECT_FALSE(partial->reports_resources());
  auto ex = make("abi_1_1_partial", "{}");
  auto r = ex->resources();
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_TRUE(r->is_null());
  EXPECT_NE(calls(*ex).find("calls=0"), std::string::npos) << calls(*ex);
  auto through_registry = registry_.resources("abi_1_1_partial");
  ASSERT_TRUE(through_registry.is_ok());
  EXPECT_TRUE(through_registry->is_null());
}

TEST_F(Abi11Plugin, TheCppWrapperReportsThroughTheSameProtocol) {
  auto r = registry_.resources("abi_1_1_wrapper", "{}");
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_EQ((*r)["gpus"], json::parse(R"([{"index":3,"uuid":"GPU-wrapped","memory_mb":2048}])"));
  EXPECT_EQ((*r)["note"].get<std::string>().size(), 6000u);  // longer than the first buffer

  // An exception in resources() becomes the failure's message, not a crash.
  auto thrown = registry_.resources("abi_1_1_wrapper", R"({"throw":true})");
  ASSERT_FALSE(thrown.is_ok());
  EXPECT_EQ(thrown.message(), "plugin 'abi_1_1_wrapper': resources failed: no capacity today");
}

}  // namespace
