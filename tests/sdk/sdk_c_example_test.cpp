// The C example plugin (examples/plugins/c_echo) through the host's loader:
// it reads its arguments by name, logs, runs /bin/sh through the C runner,
// sets a result, honours cancel, timeout and interrupt; and as a 1.2 plugin
// it refuses an older host (create, when host_abi was never called) and
// fails a job whose callback table is too short.
//
// By default it loads the copy built in tree (tests/sdk/CMakeLists.txt, C11
// with -Werror); .ci/sdk-example sets QUERN_SDK_C_EXAMPLE_PLUGIN to the copy
// built OUT of tree against the installed SDK.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "host/plugin/plugin_registry.h"
#include "quern/executor.h"
#include "tests/plugin/recording_sink.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using quern::plugin::Executor;
using quern::plugin::PluginRegistry;
using quern::testing::RecordingSink;

fs::path plugin_path() {
  const char* env = std::getenv("QUERN_SDK_C_EXAMPLE_PLUGIN");
  return env != nullptr && *env != '\0' ? fs::path(env) : fs::path(QUERN_SDK_C_ECHO_IN_TREE);
}

// A job document as the worker builds it for a QUERN_CAP_SPAWNS_PROCESSES plugin.
std::string job(const json& args, const fs::path& workdir) {
  return json{{"id", 5},
              {"attempt", 1},
              {"language", "c_echo"},
              {"code", ""},
              {"script_path", ""},
              {"timeout_s", 60},
              {"args", args},
              {"workdir", workdir.string()},
              {"env", {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"HOME", workdir.string()}}}}
      .dump();
}

class CEcho : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = plugin_path();
    std::printf("c_echo plugin under test: %s\n", path_.c_str());
    ASSERT_TRUE(fs::exists(path_)) << path_;
    quern::Status loaded = registry_.load_file(path_);
    ASSERT_TRUE(loaded.is_ok()) << loaded.message();
    auto created = registry_.by_name("c_echo")->create("{}");
    ASSERT_TRUE(created.is_ok()) << created.message();
    executor_ = std::move(created.value());
    workdir_ = fs::temp_directory_path() /
               ("c_echo_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::create_directories(workdir_);
  }
  void TearDown() override { fs::remove_all(workdir_); }
  quern_status run(const json& args, RecordingSink& sink) {
    return executor_->execute(job(args, workdir_), sink);
  }

  fs::path path_, workdir_;
  PluginRegistry registry_;
  std::unique_ptr<Executor> executor_;
};

TEST_F(CEcho, DescribesItselfAndIsHealthy) {
  const auto& info = executor_->info();
  EXPECT_EQ(info.name, "c_echo");
  EXPECT_EQ(info.version, "1.0.0");
  EXPECT_EQ(info.abi_major, 1);
  EXPECT_EQ(info.abi_minor, 2);
  EXPECT_EQ(info.languages, std::vector<std::string>{"c_echo"});
  EXPECT_EQ(info.tags, std::vector<std::string>{"c_echo"});
  EXPECT_EQ(info.capabilities, static_cast<uint64_t>(QUERN_CAP_SPAWNS_PROCESSES));
  EXPECT_TRUE(executor_->health().is_ok());
}

TEST_F(CEcho, RunsTheChildAndReturnsTheMessage) {
  RecordingSink sink;
  ASSERT_EQ(run({{"message", "hi \"there\""}, {"times", 3}}, sink), QUERN_STATUS_SUCCESS)
      << sink.error().value_or("");
  EXPECT_EQ(json::parse(sink.result().value_or("null")),
            json::parse(R"({"message":"hi \"there\"","times":3})"));
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT), std::vector<std::string>(3, "hi \"there\""));
  EXPECT_EQ(sink.lines(QUERN_STREAM_SYSTEM),
            std::vector<std::string>{"c_echo: job 5 attempt 1: 3 line(s) to stdout, 0 s apart"});
  const auto groups = sink.process_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_GT(groups[0], 0);
  EXPECT_EQ(groups[1], 0);
  EXPECT_FALSE(sink.error().has_value());
}

TEST_F(CEcho, ToStderrAndDefaults) {
  RecordingSink sink;
  ASSERT_EQ(run({{"stderr", true}, {"message", "to err"}, {"delay_s", 0.01}}, sink), QUERN_STATUS_SUCCESS)
      << sink.error().value_or("");
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDERR), std::vector<std::string>{"to err"});
  EXPECT_TRUE(sink.lines(QUERN_STREAM_STDOUT).empty());
  EXPECT_EQ(sink.result(), R"({"message":"to err","times":1})");
}

TEST_F(CEcho, BadArgumentsFailWithTheReason) {
  const std::vector<std::pair<json, std::string>> cases = {
      {json::object(), "arg 'message' is required"},
      {{{"message", 5}}, "arg 'message' must be a string"},
      {{{"message", "m"}, {"times", "3"}}, "arg 'times' must be an integer from 1 to 1000"},
      {{{"message", "m"}, {"times", 1.5}}, "arg 'times' must be an integer from 1 to 1000"},
      {{{"message", "m"}, {"times", 0}}, "arg 'times' must be an integer from 1 to 1000"},
      {{{"message", "m"}, {"delay_s", -1}}, "arg 'delay_s' must be a number from 0 to 60"},
      {{{"message", "m"}, {"delay_s", "1"}}, "arg 'delay_s' must be a number from 0 to 60"},
      {{{"message", "m"}, {"stderr", "yes"}}, "arg 'stderr' must be true or false"},
  };
  for (const auto& [args, error] : cases) {
    SCOPED_TRACE(args.dump());
    RecordingSink sink;
    EXPECT_EQ(run(args, sink), QUERN_STATUS_FAILURE);
    EXPECT_EQ(sink.error(), error);
    EXPECT_TRUE(sink.process_groups().empty());  // nothing was started
  }
}

TEST_F(CEcho, StopsOnCancelTimeoutAndInterrupt) {
  const json slow = {{"message", "tick"}, {"times", 1000}, {"delay_s", 0.05}};
  for (int32_t why : {QUERN_CANCEL_REQUESTED, QUERN_TIMEOUT_REACHED}) {
    RecordingSink sink;
    sink.set_cancel_check(
        [&sink, why] { return sink.lines(QUERN_STREAM_STDOUT).empty() ? QUERN_RUNNING : why; });
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(run(slow, sink), why == QUERN_TIMEOUT_REACHED ? QUERN_STATUS_TIMEOUT : QUERN_STATUS_CANCELED);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    EXPECT_EQ(sink.error(), why == QUERN_TIMEOUT_REACHED ? "timed out" : "canceled");
    EXPECT_FALSE(sink.result().has_value());
  }
  RecordingSink sink;
  std::thread interrupter([&] {
    while (sink.lines(QUERN_STREAM_STDOUT).empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    executor_->interrupt();
  });
  EXPECT_EQ(run(slow, sink), QUERN_STATUS_CANCELED);
  interrupter.join();
  EXPECT_EQ(sink.error(), "canceled");
}

// The plugin's own descriptor from a library loaded with dlopen.
const quern_executor_descriptor* descriptor_of(void* handle) {
  auto entry = reinterpret_cast<quern_executor_entry_fn>(dlsym(handle, QUERN_EXECUTOR_ENTRY_V1_NAME));
  return entry != nullptr ? entry() : nullptr;
}

TEST_F(CEcho, FailsAJobWhenTheHostsTableIsTooShort) {
  // The library the registry loaded (told host ABI 1.2), driven directly
  // with a 1.1 host's table: 56 bytes, no accessors.
  void* handle = dlopen(path_.c_str(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(handle, nullptr) << dlerror();
  const quern_executor_descriptor* d = descriptor_of(handle);
  ASSERT_NE(d, nullptr);
  char err[256] = "";
  quern_instance* instance = nullptr;
  ASSERT_EQ(d->create({"{}", 2}, &instance, {err, sizeof err}), 0) << err;

  RecordingSink sink;
  quern_job_callbacks table{};
  table.struct_size = offsetof(quern_job_callbacks, field_text);
  table.set_error = [](quern_job_ctx* c, quern_str m) {
    reinterpret_cast<RecordingSink*>(c)->set_error({m.data, m.size});
  };
  const std::string doc = job({{"message", "m"}}, workdir_);
  EXPECT_EQ(d->execute(instance, {doc.data(), doc.size()}, &table, reinterpret_cast<quern_job_ctx*>(&sink)),
            QUERN_STATUS_FAILURE);
  EXPECT_EQ(
      sink.error(),
      "c_echo needs a Quern host of ABI 1.2 or later (the job accessors); this host's callback table has "
      "56 bytes");
  d->destroy(instance);
  dlclose(handle);
}

TEST(CEchoOnAnOlderHost, CreateRefusesUntilTheHostSaysOneDotTwo) {
  // A copy of its own (another inode: a separate load, with its own static
  // state) that no registry told anything: as an older host loads it.
  const fs::path copy = fs::temp_directory_path() / "libquern_c_echo_older_host_test.so";
  fs::copy_file(plugin_path(), copy, fs::copy_options::overwrite_existing);
  void* handle = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << dlerror();
  const quern_executor_descriptor* d = descriptor_of(handle);
  ASSERT_NE(d, nullptr);
  ASSERT_NE(d->host_abi, nullptr);
  char err[256] = "";
  quern_instance* instance = nullptr;
  EXPECT_NE(d->create({"{}", 2}, &instance, {err, sizeof err}), 0);
  EXPECT_STREQ(err, "c_echo needs a Quern host of ABI 1.2 or later (the job accessors); this host is older");
  EXPECT_EQ(instance, nullptr);
  d->host_abi(1, 1);
  EXPECT_NE(d->create({"{}", 2}, &instance, {err, sizeof err}), 0);
  d->host_abi(1, 2);
  ASSERT_EQ(d->create({"{}", 2}, &instance, {err, sizeof err}), 0) << err;
  d->destroy(instance);
  dlclose(handle);
  fs::remove(copy);
}

TEST_F(CEcho, LoadsFromItsDirectoryAsAWorkerDoes) {
  PluginRegistry dir_registry;
  quern::Status s = dir_registry.load_directory(path_.parent_path());
  ASSERT_TRUE(s.is_ok()) << s.message();
  ASSERT_NE(dir_registry.for_language("c_echo"), nullptr);
  EXPECT_EQ(dir_registry.for_language("c_echo")->info().name, "c_echo");
}

}  // namespace
