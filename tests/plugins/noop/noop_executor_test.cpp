// The noop executor through the real loader.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "host/plugin/plugin_registry.h"
#include "tests/plugin/recording_sink.h"

namespace {

using quern::testing::RecordingSink;
using Clock = std::chrono::steady_clock;

class NoopExecutor : public ::testing::Test {
 protected:
  void SetUp() override {
    quern::Status s = registry_.load_file(std::filesystem::path(QUERN_PLUGIN_DIR) / "libquern_noop.so");
    ASSERT_TRUE(s.is_ok()) << s.message();
    auto created = registry_.by_name("noop")->create();
    ASSERT_TRUE(created.is_ok()) << created.message();
    executor_ = std::move(created.value());
  }
  quern_status run(RecordingSink& sink, const std::string& args) {
    return executor_->execute(R"({"id":7,"attempt":1,"language":"noop","code":"","args":)" + args + "}",
                              sink);
  }
  quern::plugin::PluginRegistry registry_;
  std::unique_ptr<quern::plugin::Executor> executor_;
};

TEST_F(NoopExecutor, DefaultResultIsOk) {
  RecordingSink sink;
  EXPECT_EQ(run(sink, "{}"), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(sink.result(), R"({"ok":true})");
  EXPECT_TRUE(sink.lines().empty());
  EXPECT_TRUE(sink.process_groups().empty());
}

TEST_F(NoopExecutor, ResultAndLogLinesFromArgs) {
  RecordingSink sink;
  EXPECT_EQ(run(sink, R"({"log":["one","two"],"result":{"n":[1,2]}})"), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(sink.result(), R"({"n":[1,2]})");
}

TEST_F(NoopExecutor, FailWithMessage) {
  RecordingSink sink;
  EXPECT_EQ(run(sink, R"({"fail":"no luck"})"), QUERN_STATUS_FAILURE);
  EXPECT_EQ(sink.error(), "no luck");
}

TEST_F(NoopExecutor, SleepsForTheRequestedTime) {
  RecordingSink sink;
  const auto start = Clock::now();
  EXPECT_EQ(run(sink, R"({"sleep_ms":60})"), QUERN_STATUS_SUCCESS);
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(60));
  EXPECT_GT(sink.cancel_calls(), 1);
}

TEST_F(NoopExecutor, TimeoutAndCancelStopTheSleep) {
  for (int32_t why : {QUERN_TIMEOUT_REACHED, QUERN_CANCEL_REQUESTED, QUERN_SHUTDOWN}) {
    RecordingSink sink;
    std::atomic<int> calls{0};
    sink.set_cancel_check([&] { return ++calls >= 3 ? why : QUERN_RUNNING; });
    const auto start = Clock::now();
    quern_status expected = why == QUERN_TIMEOUT_REACHED ? QUERN_STATUS_TIMEOUT : QUERN_STATUS_CANCELED;
    EXPECT_EQ(run(sink, R"({"sleep_ms":600000})"), expected);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  }
}

TEST_F(NoopExecutor, InterruptStopsTheSleep) {
  RecordingSink sink;
  std::atomic<bool> polled{false};
  sink.set_cancel_check([&] {
    polled = true;
    return QUERN_RUNNING;
  });
  std::thread stopper([&] {
    while (!polled) std::this_thread::yield();
    executor_->interrupt();
  });
  EXPECT_EQ(run(sink, R"({"sleep_ms":600000})"), QUERN_STATUS_CANCELED);
  stopper.join();
}

TEST_F(NoopExecutor, MalformedJobIsInternalError) {
  RecordingSink sink;
  EXPECT_EQ(executor_->execute("not json", sink), QUERN_STATUS_INTERNAL);
  ASSERT_TRUE(sink.error().has_value());
  EXPECT_NE(sink.error()->find("parse"), std::string::npos) << *sink.error();
}

}  // namespace
