// ABI 1.0 compatibility: a plain C plugin built against the FROZEN 1.0 header
// (tests/sdk/abi_1_0, never sdk/include) loads into the current host and runs
// jobs through every descriptor function and callback; and the current
// executor.h keeps every 1.0 offset, size, type and constant.
//
// tests/plugin/plugin_registry_test.cpp (Abi.DescriptorAndCallbackLayoutIsStable)
// pins the current header's offsets to literal numbers; this file instead
// compares the current header with the frozen one, so that the check cannot
// be "fixed" by editing one file's numbers along with executor.h.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "host/plugin/plugin_registry.h"
#include "quern/executor.h"
#include "tests/plugin/recording_sink.h"
#include "tests/sdk/abi_1_0_fields.h"

namespace {

namespace fs = std::filesystem;
using quern::plugin::Executor;
using quern::plugin::PluginRegistry;
using quern::testing::RecordingSink;

// --- The current header against the frozen numbers -------------------------

std::map<std::string, quern_abi_row> by_name(const quern_abi_row* rows, uint64_t n) {
  std::map<std::string, quern_abi_row> out;
  for (uint64_t i = 0; i < n; ++i) out[rows[i].what] = rows[i];
  return out;
}

TEST(Abi10, FrozenHeaderIsUnchanged) {
  // Recorded when the copy was frozen (sha256sum tests/sdk/abi_1_0/quern/executor.h).
  // The copy IS ABI 1.0 as shipped: never edit it; add abi_1_1/ for 1.1.
  EXPECT_STREQ(QUERN_ABI_1_0_HEADER_SHA256,
               "9fe281f23d837e9d099a61940fd6ea036bd2cdb93023815ffe9c7fd33c94d64a");
}

TEST(Abi10, EveryFieldKeepsItsOffsetAndSize) {
  static const quern_abi_row current[] = {QUERN_ABI_1_0_FIELDS(QUERN_ABI_FIELD_ROW)};
  ASSERT_EQ(std::size(current), quern_abi_1_0_field_count);
  const auto frozen = by_name(quern_abi_1_0_fields, quern_abi_1_0_field_count);
  for (const auto& row : current) {
    SCOPED_TRACE(row.what);
    auto it = frozen.find(row.what);
    ASSERT_NE(it, frozen.end());
    EXPECT_EQ(row.offset, it->second.offset) << "offset moved: an ABI break";
    EXPECT_EQ(row.value, it->second.value) << "size changed: an ABI break";
  }
}

TEST(Abi10, StructsOnlyGrow) {
  static const quern_abi_row current[] = {QUERN_ABI_1_0_STRUCTS(QUERN_ABI_STRUCT_ROW)};
  const auto frozen = by_name(quern_abi_1_0_structs, quern_abi_1_0_struct_count);
  for (const auto& row : current) {
    SCOPED_TRACE(row.what);
    auto it = frozen.find(row.what);
    ASSERT_NE(it, frozen.end());
    EXPECT_GE(row.value, it->second.value) << "struct shrank: an ABI break";
  }
  // The strings and the error buffer are passed by value: they cannot grow.
  EXPECT_EQ(sizeof(quern_str), frozen.at("quern_str").value);
  EXPECT_EQ(sizeof(quern_errbuf), frozen.at("quern_errbuf").value);
}

TEST(Abi10, ConstantsKeepTheirValues) {
  static const quern_abi_row current[] = {QUERN_ABI_1_0_CONSTANTS(QUERN_ABI_CONSTANT_ROW)};
  const auto frozen = by_name(quern_abi_1_0_constants, quern_abi_1_0_constant_count);
  for (const auto& row : current) {
    SCOPED_TRACE(row.what);
    auto it = frozen.find(row.what);
    ASSERT_NE(it, frozen.end());
    EXPECT_EQ(row.value, it->second.value);
  }
  // A minor version only grows within major 1.
  EXPECT_GE(QUERN_ABI_MINOR, 0);
  EXPECT_STREQ(QUERN_EXECUTOR_ENTRY_V1_NAME, quern_abi_1_0_entry_name);
}

// Offsets and sizes do not see a changed parameter list; these do, at
// compile time. Spelled out as 1.0 declared them.
template <typename Field, typename Expected>
constexpr bool same = std::is_same_v<Field, Expected>;
using D = quern_executor_descriptor;
using CB = quern_job_callbacks;
static_assert(same<decltype(quern_str::data), const char*>);
static_assert(same<decltype(quern_str::size), uint64_t>);
static_assert(same<decltype(quern_errbuf::data), char*>);
static_assert(same<decltype(quern_errbuf::size), uint64_t>);
static_assert(same<decltype(CB::struct_size), uint32_t>);
static_assert(same<decltype(CB::reserved), uint32_t>);
static_assert(same<decltype(CB::log_line), void (*)(quern_job_ctx*, int32_t, quern_str)>);
static_assert(same<decltype(CB::progress), void (*)(quern_job_ctx*, double)>);
static_assert(same<decltype(CB::is_cancelled), int32_t (*)(quern_job_ctx*)>);
static_assert(same<decltype(CB::set_result), void (*)(quern_job_ctx*, quern_str)>);
static_assert(same<decltype(CB::set_error), void (*)(quern_job_ctx*, quern_str)>);
static_assert(same<decltype(CB::set_process_group), void (*)(quern_job_ctx*, int64_t)>);
static_assert(same<decltype(D::struct_size), uint32_t>);
static_assert(same<decltype(D::abi_major), uint16_t>);
static_assert(same<decltype(D::abi_minor), uint16_t>);
static_assert(same<decltype(D::name), const char*>);
static_assert(same<decltype(D::version), const char*>);
static_assert(same<decltype(D::languages), const char*>);
static_assert(same<decltype(D::tags), const char*>);
static_assert(same<decltype(D::capabilities), uint64_t>);
static_assert(same<decltype(D::create), int32_t (*)(quern_str, quern_instance**, quern_errbuf)>);
static_assert(same<decltype(D::destroy), void (*)(quern_instance*)>);
static_assert(same<decltype(D::prepare), int32_t (*)(quern_instance*, quern_str, quern_errbuf)>);
static_assert(same<decltype(D::execute),
                   int32_t (*)(quern_instance*, quern_str, const quern_job_callbacks*, quern_job_ctx*)>);
static_assert(same<decltype(D::health), int32_t (*)(quern_instance*, quern_errbuf)>);
static_assert(same<decltype(D::interrupt), void (*)(quern_instance*)>);
static_assert(same<quern_executor_entry_fn, const quern_executor_descriptor* (*)(void)>);
static_assert(sizeof(quern_status) == sizeof(int32_t), "execute returns quern_status values as int32_t");

// --- A 1.0 plugin in the current host ----------------------------------------

class Abi10Plugin : public ::testing::Test {
 protected:
  void SetUp() override {
    quern::Status loaded = registry_.load_file(QUERN_ABI_1_0_PLUGIN);
    ASSERT_TRUE(loaded.is_ok()) << loaded.message();
    plugin_ = registry_.for_language("abi10");
    ASSERT_NE(plugin_, nullptr);
  }
  std::unique_ptr<Executor> make(const std::string& config = "{}") {
    auto created = plugin_->create(config);
    EXPECT_TRUE(created.is_ok()) << created.message();
    return created.is_ok() ? std::move(created.value()) : nullptr;
  }
  PluginRegistry registry_;
  const quern::plugin::LoadedPlugin* plugin_ = nullptr;
};

TEST_F(Abi10Plugin, DescriptorReadsAsWritten) {
  const auto& info = plugin_->info();
  EXPECT_EQ(info.name, "abi_1_0");
  EXPECT_EQ(info.version, "1.0.0");
  EXPECT_EQ(info.abi_major, 1);
  EXPECT_EQ(info.abi_minor, 0);
  EXPECT_EQ(info.languages, (std::vector<std::string>{"abi10", "abi10-alt"}));
  EXPECT_EQ(info.tags, std::vector<std::string>{"abi10"});
  EXPECT_EQ(info.capabilities, static_cast<uint64_t>(QUERN_CAP_DEDICATED));
  EXPECT_EQ(registry_.for_language("abi10-alt"), plugin_);
}

TEST_F(Abi10Plugin, ReportsNoResources) {
  // Its struct_size ends before ABI 1.1's `resources`: the host never reads
  // past it, and the plugin reports nothing (null), without an error.
  EXPECT_FALSE(plugin_->reports_resources());
  auto ex = make();
  ASSERT_NE(ex, nullptr);
  auto r = ex->resources();
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_TRUE(r->is_null());
  auto through_registry = registry_.resources("abi_1_0");
  ASSERT_TRUE(through_registry.is_ok()) << through_registry.message();
  EXPECT_TRUE(through_registry->is_null());
}

TEST_F(Abi10Plugin, RunsAJobThroughEveryCallback) {
  auto ex = make();
  ASSERT_NE(ex, nullptr);
  RecordingSink sink;
  ASSERT_EQ(ex->execute(R"({"id":1,"attempt":1,"language":"abi10","code":"","args":{}})", sink),
            QUERN_STATUS_SUCCESS)
      << sink.error().value_or("");
  const auto lines = sink.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].stream, QUERN_STREAM_STDOUT);
  EXPECT_EQ(lines[0].text, "out");
  EXPECT_EQ(lines[1].stream, QUERN_STREAM_STDERR);
  EXPECT_EQ(lines[1].text, "err");
  EXPECT_EQ(lines[2].stream, QUERN_STREAM_SYSTEM);
  EXPECT_EQ(lines[2].text, "sys");
  EXPECT_EQ(sink.progress_values(), std::vector<double>{0.5});
  EXPECT_GE(sink.cancel_calls(), 1);
  EXPECT_EQ(sink.process_groups(), std::vector<int64_t>{0});
  EXPECT_EQ(sink.result(), R"({"abi":"1.0","prepared":0})");
  EXPECT_FALSE(sink.error().has_value());
}

TEST_F(Abi10Plugin, FailureCarriesTheError) {
  auto ex = make();
  RecordingSink sink;
  EXPECT_EQ(ex->execute(R"({"args":{"fail":true}})", sink), QUERN_STATUS_FAILURE);
  EXPECT_EQ(sink.error(), "failed on purpose");
}

TEST_F(Abi10Plugin, CreatePrepareAndHealthReportThroughTheErrorBuffer) {
  auto refused = plugin_->create(R"({"refuse":true})");
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.message().find("abi_1_0 fixture refuses this config"), std::string::npos)
      << refused.message();

  auto ex = make();
  ASSERT_NE(ex, nullptr);
  EXPECT_TRUE(ex->health().is_ok());
  quern::Status bad = ex->prepare(R"({"code":"bad"})");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.message().find("cannot prepare"), std::string::npos) << bad.message();
  ASSERT_TRUE(ex->prepare(R"({"code":"sick"})").is_ok());
  quern::Status health = ex->health();
  ASSERT_FALSE(health.is_ok());
  EXPECT_NE(health.message().find("abi_1_0 fixture is sick"), std::string::npos) << health.message();

  RecordingSink sink;
  ASSERT_EQ(ex->execute(R"({"args":{}})", sink), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(sink.result(), R"({"abi":"1.0","prepared":1})");
}

TEST_F(Abi10Plugin, StopsOnCancelTimeoutAndInterrupt) {
  auto ex = make();
  {
    RecordingSink sink;
    sink.set_cancel_check([] { return QUERN_CANCEL_REQUESTED; });
    EXPECT_EQ(ex->execute(R"({"args":{"wait":true}})", sink), QUERN_STATUS_CANCELED);
    EXPECT_EQ(sink.error(), "canceled");
  }
  {
    RecordingSink sink;
    sink.set_cancel_check([] { return QUERN_TIMEOUT_REACHED; });
    EXPECT_EQ(ex->execute(R"({"args":{"wait":true}})", sink), QUERN_STATUS_TIMEOUT);
    EXPECT_EQ(sink.error(), "timed out");
  }
  {
    // interrupt() from another thread while execute() polls.
    RecordingSink sink;
    std::atomic<bool> started{false};
    sink.set_cancel_check([&] {
      started = true;
      return QUERN_RUNNING;
    });
    std::thread stopper([&] {
      while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ex->interrupt();
    });
    EXPECT_EQ(ex->execute(R"({"args":{"wait":true}})", sink), QUERN_STATUS_CANCELED);
    stopper.join();
  }
}

}  // namespace
