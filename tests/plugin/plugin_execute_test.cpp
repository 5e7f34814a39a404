// Executing through the loader: the C++17 fixture built with executor.hpp,
// the plain C fixture, and the wrapper's own guarantees (exception barrier,
// callbacks read only within struct_size).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "host/plugin/plugin_registry.h"
#include "quern/executor.hpp"
#include "tests/plugin/recording_sink.h"

namespace {

namespace fs = std::filesystem;
using quern::plugin::Executor;
using quern::plugin::PluginRegistry;
using quern::testing::RecordingSink;

const fs::path kFixtures = QUERN_FIXTURE_DIR;

class Execute : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(registry_.load_file(kFixtures / "fixture_good.so").is_ok());
    ASSERT_TRUE(registry_.load_file(kFixtures / "c_good.so").is_ok());
  }
  std::unique_ptr<Executor> make(const std::string& name, const std::string& config = "{}") {
    auto created = registry_.by_name(name)->create(config);
    EXPECT_TRUE(created.is_ok()) << created.message();
    return created.is_ok() ? std::move(created.value()) : nullptr;
  }
  PluginRegistry registry_;
};

TEST_F(Execute, Cpp17FixtureReportsThroughEveryCallback) {
  auto ex = make("fixture_good");
  ASSERT_NE(ex, nullptr);
  RecordingSink sink;
  EXPECT_EQ(ex->execute(R"({"id":1})", sink), QUERN_STATUS_SUCCESS);
  ASSERT_EQ(sink.lines().size(), 2u);
  EXPECT_EQ(sink.lines()[0].stream, QUERN_STREAM_STDOUT);
  EXPECT_EQ(sink.lines()[0].text, "hello");
  EXPECT_EQ(sink.lines()[1].stream, QUERN_STREAM_STDERR);
  EXPECT_EQ(sink.lines()[1].text, "warn");
  EXPECT_EQ(sink.progress_values(), (std::vector<double>{0.5}));
  EXPECT_EQ(sink.result(), R"({"echo":{"id":1}})");
  EXPECT_FALSE(sink.error().has_value());
}

TEST_F(Execute, ExceptionInExecuteBecomesInternalWithMessage) {
  auto ex = make("fixture_good");
  RecordingSink sink;
  EXPECT_EQ(ex->execute(R"({"code":"throw"})", sink), QUERN_STATUS_INTERNAL);
  ASSERT_TRUE(sink.error().has_value());
  EXPECT_NE(sink.error()->find("boom"), std::string::npos) << *sink.error();
}

TEST_F(Execute, ExceptionInConstructorBecomesCreateError) {
  auto created = registry_.by_name("fixture_good")->create(R"({"fail":true})");
  ASSERT_FALSE(created.is_ok());
  EXPECT_NE(created.message().find("fixture create failure"), std::string::npos) << created.message();
  EXPECT_NE(created.message().find("fixture_good"), std::string::npos) << created.message();
}

TEST_F(Execute, OptionalMembersAreWiredWhenPresent) {
  auto ex = make("fixture_good");
  EXPECT_TRUE(ex->health().is_ok());
  EXPECT_TRUE(ex->prepare("{}").is_ok());
  quern::Status bad = ex->prepare(R"({"code":"bad"})");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.message().find("cannot prepare"), std::string::npos) << bad.message();
  ASSERT_TRUE(ex->prepare(R"({"code":"sick"})").is_ok());
  quern::Status health = ex->health();
  ASSERT_FALSE(health.is_ok());
  EXPECT_NE(health.message().find("sick"), std::string::npos) << health.message();
}

TEST_F(Execute, OptionalMembersAbsentInCPluginAreNoOps) {
  auto ex = make("fixture_c");
  EXPECT_TRUE(ex->prepare("{}").is_ok());
  EXPECT_TRUE(ex->health().is_ok());
  ex->interrupt();
  RecordingSink sink;
  EXPECT_EQ(ex->execute("{}", sink), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(sink.result(), "42");
}

TEST_F(Execute, UnknownStatusFromPluginIsInternal) {
  auto ex = make("fixture_c");
  RecordingSink sink;
  EXPECT_EQ(ex->execute(R"({"code":"unknown-status"})", sink), QUERN_STATUS_INTERNAL);
  ASSERT_TRUE(sink.error().has_value());
  EXPECT_NE(sink.error()->find("unknown status 99"), std::string::npos) << *sink.error();
}

TEST_F(Execute, CancelAndTimeoutAreSeenThroughIsCancelled) {
  auto ex = make("fixture_good");
  for (int32_t why : {QUERN_CANCEL_REQUESTED, QUERN_TIMEOUT_REACHED}) {
    RecordingSink sink;
    std::atomic<int> calls{0};
    sink.set_cancel_check([&] { return ++calls > 3 ? why : QUERN_RUNNING; });
    quern_status expected = why == QUERN_TIMEOUT_REACHED ? QUERN_STATUS_TIMEOUT : QUERN_STATUS_CANCELED;
    EXPECT_EQ(ex->execute(R"({"code":"wait-cancel"})", sink), expected);
    EXPECT_EQ(sink.process_groups(), (std::vector<int64_t>{4242, 0}));
  }
}

TEST_F(Execute, InterruptFromAnotherThreadStopsExecute) {
  auto ex = make("fixture_good");
  RecordingSink sink;
  std::atomic<bool> polled{false};
  sink.set_cancel_check([&] {
    polled = true;
    return QUERN_RUNNING;
  });
  std::thread stopper([&] {
    // Interrupt once execute is demonstrably running.
    while (!polled) std::this_thread::yield();
    ex->interrupt();
  });
  EXPECT_EQ(ex->execute(R"({"code":"wait-cancel"})", sink), QUERN_STATUS_CANCELED);
  stopper.join();
}

// The wrapper must not read callbacks past the host's struct_size: an older
// host passes a shorter table. Fields beyond it hold poison that would crash
// if called.
TEST(Sdk, JobContextReadsOnlyCallbacksCoveredByStructSize) {
  static int logged;
  logged = 0;
  quern_job_callbacks cb{};
  cb.log_line = [](quern_job_ctx*, int32_t, quern_str) { ++logged; };
  cb.progress = [](quern_job_ctx*, double) { ++logged; };
  cb.is_cancelled = reinterpret_cast<int32_t (*)(quern_job_ctx*)>(0x1);
  cb.set_result = reinterpret_cast<void (*)(quern_job_ctx*, quern_str)>(0x1);
  cb.set_error = reinterpret_cast<void (*)(quern_job_ctx*, quern_str)>(0x1);
  cb.set_process_group = reinterpret_cast<void (*)(quern_job_ctx*, int64_t)>(0x1);
  cb.struct_size = static_cast<uint32_t>(offsetof(quern_job_callbacks, is_cancelled));
  quern::sdk::JobContext ctx(&cb, nullptr);
  ctx.log(QUERN_STREAM_STDOUT, "x");
  ctx.progress(1.0);
  EXPECT_EQ(logged, 2);
  EXPECT_EQ(ctx.cancelled(), QUERN_RUNNING);
  ctx.set_result("1");
  ctx.set_error("e");
  ctx.set_process_group(1);

  quern::sdk::JobContext none(nullptr, nullptr);
  EXPECT_EQ(none.cancelled(), QUERN_RUNNING);
  none.log(QUERN_STREAM_STDOUT, "ignored");
}

TEST(Sdk, ErrorTextIsTruncatedAndTerminated) {
  char buf[8];
  std::memset(buf, 'x', sizeof buf);
  quern::sdk::detail::write_error(quern_errbuf{buf, sizeof buf}, "0123456789");
  EXPECT_STREQ(buf, "0123456");
  quern::sdk::detail::write_error(quern_errbuf{nullptr, 0}, "ignored");  // must not crash
}

}  // namespace
