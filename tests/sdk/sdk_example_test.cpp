// The SDK example plugin (examples/plugins/echo) through the host's loader.
//
// By default it loads the copy built in tree (tests/sdk/CMakeLists.txt), so
// that ctest covers the example's code. .ci/sdk-example sets
// QUERN_SDK_EXAMPLE_PLUGIN to the copy built OUT of tree against the
// installed SDK, which is the point: a third-party build loads and runs jobs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "host/plugin/plugin_registry.h"
#include "tests/plugin/recording_sink.h"

namespace {

namespace fs = std::filesystem;
using quern::plugin::Executor;
using quern::plugin::PluginRegistry;
using quern::testing::RecordingSink;

fs::path plugin_path() {
  const char* env = std::getenv("QUERN_SDK_EXAMPLE_PLUGIN");
  return env != nullptr && *env != '\0' ? fs::path(env) : fs::path(QUERN_SDK_ECHO_IN_TREE);
}

class EchoPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = plugin_path();
    // Printed so that a CI log shows which build was tested.
    std::printf("echo plugin under test: %s\n", path_.c_str());
    ASSERT_TRUE(fs::exists(path_)) << path_;
    quern::Status loaded = registry_.load_file(path_);
    ASSERT_TRUE(loaded.is_ok()) << loaded.message();
    const auto* plugin = registry_.for_language("echo");
    ASSERT_NE(plugin, nullptr);
    auto created = plugin->create("{}");
    ASSERT_TRUE(created.is_ok()) << created.message();
    executor_ = std::move(created.value());
  }

  fs::path path_;
  PluginRegistry registry_;
  std::unique_ptr<Executor> executor_;
};

TEST_F(EchoPlugin, DescribesItself) {
  const auto& info = executor_->info();
  EXPECT_EQ(info.name, "echo");
  EXPECT_EQ(info.version, "1.0.0");
  EXPECT_EQ(info.abi_major, QUERN_ABI_MAJOR);
  EXPECT_EQ(info.abi_minor, QUERN_ABI_MINOR);
  EXPECT_EQ(info.languages, std::vector<std::string>{"echo"});
  EXPECT_EQ(info.tags, std::vector<std::string>{"echo"});
  EXPECT_EQ(info.capabilities, 0u);
  EXPECT_EQ(fs::canonical(info.file), fs::canonical(path_));
}

TEST_F(EchoPlugin, ReportsNoResources) {
  // Built against ABI 1.1 but without the optional resources() member: the
  // wrapper leaves the pointer NULL, and the host reads null.
  EXPECT_FALSE(registry_.for_language("echo")->reports_resources());
  auto r = executor_->resources();
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_TRUE(r->is_null());
}

TEST_F(EchoPlugin, ReturnsArgsAndLogsEachInOrder) {
  RecordingSink sink;
  const std::string job =
      R"({"id":7,"attempt":1,"language":"echo","code":"","args":{"zeta":"z","alpha":2,"list":[1,"two"],"obj":{"k":null}}})";
  ASSERT_EQ(executor_->execute(job, sink), QUERN_STATUS_SUCCESS) << sink.error().value_or("");
  ASSERT_TRUE(sink.result().has_value());
  // Key order kept: ordered_json on both sides.
  EXPECT_EQ(nlohmann::ordered_json::parse(*sink.result()),
            nlohmann::ordered_json::parse(R"({"zeta":"z","alpha":2,"list":[1,"two"],"obj":{"k":null}})"));
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT),
            (std::vector<std::string>{"zeta=z", "alpha=2", R"(list=[1,"two"])", R"(obj={"k":null})"}));
  EXPECT_FALSE(sink.error().has_value());
}

TEST_F(EchoPlugin, NoArgsGiveAnEmptyObject) {
  RecordingSink sink;
  ASSERT_EQ(executor_->execute(R"({"id":1,"code":""})", sink), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(sink.result(), "{}");
  EXPECT_TRUE(sink.lines().empty());
}

TEST_F(EchoPlugin, NonObjectArgsFail) {
  RecordingSink sink;
  EXPECT_EQ(executor_->execute(R"({"id":1,"args":[1,2]})", sink), QUERN_STATUS_FAILURE);
  EXPECT_EQ(sink.error(), "args must be a JSON object");
  EXPECT_FALSE(sink.result().has_value());
}

TEST_F(EchoPlugin, MalformedJobIsAnInternalErrorNotACrash) {
  RecordingSink sink;
  EXPECT_EQ(executor_->execute("{not json", sink), QUERN_STATUS_INTERNAL);
  ASSERT_TRUE(sink.error().has_value());
  EXPECT_NE(sink.error()->find("internal error in executor"), std::string::npos) << *sink.error();
}

TEST_F(EchoPlugin, StopsWhenCanceledOrTimedOut) {
  {
    RecordingSink sink;
    sink.set_cancel_check([] { return QUERN_CANCEL_REQUESTED; });
    EXPECT_EQ(executor_->execute(R"({"args":{"a":1}})", sink), QUERN_STATUS_CANCELED);
    EXPECT_EQ(sink.error(), "canceled");
    EXPECT_TRUE(sink.lines().empty());
  }
  {
    RecordingSink sink;
    sink.set_cancel_check([] { return QUERN_TIMEOUT_REACHED; });
    EXPECT_EQ(executor_->execute(R"({"args":{"a":1}})", sink), QUERN_STATUS_TIMEOUT);
    EXPECT_EQ(sink.error(), "timed out");
  }
}

TEST_F(EchoPlugin, LoadsFromItsDirectoryAsAWorkerDoes) {
  // A worker loads its plugin directory, not single files.
  PluginRegistry dir_registry;
  quern::Status s = dir_registry.load_directory(path_.parent_path());
  ASSERT_TRUE(s.is_ok()) << s.message();
  ASSERT_NE(dir_registry.for_language("echo"), nullptr);
  EXPECT_EQ(dir_registry.for_language("echo")->info().name, "echo");
}

}  // namespace
