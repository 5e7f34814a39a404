// ABI 1.2: the job accessors appended to quern_job_callbacks, host_abi
// appended to the descriptor, the entry function's prototype. The accessors
// are answered by the host's own trampolines (host/plugin/job_callbacks.h,
// the table Executor::execute passes) and called through quern/job.h, as a
// C plugin calls them: every type, missing, wrong type, a buffer too small.
// Then what the helpers do when the host's table is shorter (a 1.0 / 1.1
// host), and the printf-style helpers. The C runner is in
// sdk_c_process_test.cpp, the C example in sdk_c_example_test.cpp.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "host/plugin/descriptor.h"
#include "host/plugin/job_callbacks.h"
#include "quern/executor.h"
#include "tests/plugin/recording_sink.h"
#include "tests/sdk/c_layer.h"

namespace {

using quern::plugin::JobCall;
using quern::testing::RecordingSink;

// --- Layout ----------------------------------------------------------------

TEST(Abi12, AppendsAtTheEndOfBothStructs) {
  static_assert(sizeof(void*) == 8, "offsets below are for LP64 targets");
  EXPECT_EQ(QUERN_ABI_MAJOR, 1);
  EXPECT_EQ(QUERN_ABI_MINOR, 2);
  using CB = quern_job_callbacks;
  // Right where 1.1's table ended (56 bytes), one pointer after the other.
  EXPECT_EQ(offsetof(CB, field_text), offsetof(CB, set_process_group) + sizeof(void*));
  EXPECT_EQ(offsetof(CB, field_text), 56u);
  EXPECT_EQ(offsetof(CB, env_entry), 56u + 10 * sizeof(void*));
  EXPECT_EQ(sizeof(CB), offsetof(CB, env_entry) + sizeof(void*));
  using D = quern_executor_descriptor;
  EXPECT_EQ(offsetof(D, host_abi), offsetof(D, resources) + sizeof(void*));
  EXPECT_EQ(sizeof(D), offsetof(D, host_abi) + sizeof(void*));

  static_assert(std::is_same_v<decltype(CB::field_text), int64_t (*)(quern_job_ctx*, int32_t, quern_errbuf)>);
  static_assert(std::is_same_v<decltype(CB::field_int), int32_t (*)(quern_job_ctx*, int32_t, int64_t*)>);
  static_assert(std::is_same_v<decltype(CB::arg_count), int64_t (*)(quern_job_ctx*)>);
  static_assert(std::is_same_v<decltype(CB::arg_name), int64_t (*)(quern_job_ctx*, uint64_t, quern_errbuf)>);
  static_assert(std::is_same_v<decltype(CB::arg_json), int64_t (*)(quern_job_ctx*, quern_str, quern_errbuf)>);
  static_assert(
      std::is_same_v<decltype(CB::arg_string), int64_t (*)(quern_job_ctx*, quern_str, quern_errbuf)>);
  static_assert(std::is_same_v<decltype(CB::arg_int), int32_t (*)(quern_job_ctx*, quern_str, int64_t*)>);
  static_assert(std::is_same_v<decltype(CB::arg_double), int32_t (*)(quern_job_ctx*, quern_str, double*)>);
  static_assert(std::is_same_v<decltype(CB::arg_bool), int32_t (*)(quern_job_ctx*, quern_str, int32_t*)>);
  static_assert(std::is_same_v<decltype(CB::env_count), int64_t (*)(quern_job_ctx*)>);
  static_assert(std::is_same_v<decltype(CB::env_entry), int64_t (*)(quern_job_ctx*, uint64_t, quern_errbuf)>);
  static_assert(std::is_same_v<decltype(D::host_abi), void (*)(uint16_t, uint16_t)>);
  // The prototype a C plugin's definition matches (-Wmissing-prototypes).
  static_assert(std::is_same_v<decltype(&QUERN_EXECUTOR_ENTRY_V1), quern_executor_entry_fn>);
}

TEST(Abi12, TheHostsTableIsFull) {
  const quern_job_callbacks* cb = JobCall::callbacks();
  EXPECT_EQ(cb->struct_size, sizeof(quern_job_callbacks));
  const quern_job job = quern_job_make(cb, nullptr);
  EXPECT_TRUE(quern_job_has_accessors(&job));
}

TEST(Abi12, HostAbiIsReadOnlyWhenStructSizeCoversIt) {
  static uint16_t told_minor = 0;
  quern_executor_descriptor d{};
  d.abi_major = 1;
  d.abi_minor = 2;
  d.name = "x";
  d.create = [](quern_str, quern_instance**, quern_errbuf) -> int32_t { return 1; };
  d.destroy = [](quern_instance*) {};
  d.execute = [](quern_instance*, quern_str, const quern_job_callbacks*, quern_job_ctx*) -> int32_t {
    return 0;
  };
  d.host_abi = [](uint16_t, uint16_t minor) { told_minor = minor; };
  quern_executor_descriptor copy{};
  quern::plugin::PluginInfo info;
  d.struct_size = static_cast<uint32_t>(offsetof(quern_executor_descriptor, host_abi) + 4);
  ASSERT_TRUE(quern::plugin::read_descriptor(&d, "x.so", copy, info));
  EXPECT_EQ(copy.host_abi, nullptr);  // half a pointer is no pointer
  d.struct_size = sizeof d;
  ASSERT_TRUE(quern::plugin::read_descriptor(&d, "x.so", copy, info));
  ASSERT_NE(copy.host_abi, nullptr);
  copy.host_abi(1, 2);
  EXPECT_EQ(told_minor, 2);
}

// --- The accessors through the host's trampolines --------------------------

const char* const kDocument = R"({
  "code": "echo hi", "language": "c_echo", "script_path": "", "id": 12, "attempt": 2, "timeout_s": 30,
  "workdir": "/tmp/w",
  "args": {"s": "text", "n": 42, "neg": -7, "big": 9223372036854775807, "huge": 9223372036854775808,
           "f": 1.5, "whole": 2.0, "t": true, "no": false, "nul": null, "list": [1, "two"],
           "obj": {"k": "v"}, "esc": "a\"b\\c\u00e9", "numstr": "3", "na\u00efve": 1},
  "env": {"PATH": "/usr/bin:/bin", "HOME": "/tmp/w", "X": "a=b"}})";

class Accessors : public ::testing::Test {
 protected:
  explicit Accessors(const char* document = kDocument) : call_(sink_, document) {}
  // The text of an accessor through a large buffer, asserting a value.
  template <typename F>
  std::string text(F&& read) {
    char buf[512];
    int64_t n = read(buf, sizeof buf);
    EXPECT_GE(n, 0);
    return n < 0 ? "<" + std::to_string(n) + ">" : std::string(buf, static_cast<std::size_t>(n));
  }
  std::string field(int32_t f) {
    return text([&](char* b, std::size_t s) { return quern_field_text(&job_, f, b, s); });
  }
  std::string arg_string(const char* name) {
    return text([&](char* b, std::size_t s) { return quern_arg_string(&job_, name, b, s); });
  }
  std::string arg_json(const char* name) {
    return text([&](char* b, std::size_t s) { return quern_arg_json(&job_, name, b, s); });
  }

  RecordingSink sink_;
  JobCall call_;
  quern_job job_ = quern_job_make(JobCall::callbacks(), call_.ctx());
};

TEST_F(Accessors, TextAndIntegerFields) {
  EXPECT_EQ(field(QUERN_FIELD_CODE), "echo hi");
  EXPECT_EQ(field(QUERN_FIELD_LANGUAGE), "c_echo");
  EXPECT_EQ(field(QUERN_FIELD_SCRIPT_PATH), "");
  EXPECT_EQ(field(QUERN_FIELD_WORKDIR), "/tmp/w");
  int64_t v = -1;
  EXPECT_EQ(quern_field_int(&job_, QUERN_FIELD_ID, &v), 0);
  EXPECT_EQ(v, 12);
  EXPECT_EQ(quern_field_int(&job_, QUERN_FIELD_ATTEMPT, &v), 0);
  EXPECT_EQ(v, 2);
  EXPECT_EQ(quern_field_int(&job_, QUERN_FIELD_TIMEOUT_S, &v), 0);
  EXPECT_EQ(v, 30);
  // The other kind, or a field that does not exist.
  char buf[16] = "unchanged";
  EXPECT_EQ(quern_field_text(&job_, QUERN_FIELD_ID, buf, sizeof buf), QUERN_VALUE_WRONG_TYPE);
  EXPECT_STREQ(buf, "");
  v = 99;
  EXPECT_EQ(quern_field_int(&job_, QUERN_FIELD_CODE, &v), QUERN_VALUE_WRONG_TYPE);
  EXPECT_EQ(v, 99);  // left alone
  EXPECT_EQ(quern_field_text(&job_, 0, buf, sizeof buf), QUERN_VALUE_MISSING);
  EXPECT_EQ(quern_field_text(&job_, 99, buf, sizeof buf), QUERN_VALUE_MISSING);
  EXPECT_EQ(quern_field_int(&job_, 8, &v), QUERN_VALUE_MISSING);
}

TEST_F(Accessors, ArgumentNamesInTheSubmissionsOrder) {
  ASSERT_EQ(quern_arg_count(&job_), 15);
  std::vector<std::string> names;
  for (uint64_t i = 0; i < 15; ++i)
    names.push_back(text([&](char* b, std::size_t s) { return quern_arg_name(&job_, i, b, s); }));
  EXPECT_EQ(names, (std::vector<std::string>{"s", "n", "neg", "big", "huge", "f", "whole", "t", "no", "nul",
                                             "list", "obj", "esc", "numstr", "na\xc3\xafve"}));
  char buf[8];
  EXPECT_EQ(quern_arg_name(&job_, 15, buf, sizeof buf), QUERN_VALUE_MISSING);
}

TEST_F(Accessors, EachArgumentAsJsonText) {
  EXPECT_EQ(arg_json("s"), R"("text")");
  EXPECT_EQ(arg_json("n"), "42");
  EXPECT_EQ(arg_json("f"), "1.5");
  EXPECT_EQ(arg_json("whole"), "2.0");
  EXPECT_EQ(arg_json("nul"), "null");
  EXPECT_EQ(arg_json("list"), R"([1,"two"])");
  EXPECT_EQ(arg_json("obj"), R"({"k":"v"})");
  EXPECT_EQ(arg_json("esc"), "\"a\\\"b\\\\c\xc3\xa9\"");
  char buf[8];
  EXPECT_EQ(quern_arg_json(&job_, "absent", buf, sizeof buf), QUERN_VALUE_MISSING);
}

TEST_F(Accessors, Strings) {
  EXPECT_EQ(arg_string("s"), "text");
  EXPECT_EQ(arg_string("esc"), "a\"b\\c\xc3\xa9");  // unescaped UTF-8
  EXPECT_EQ(arg_string("numstr"), "3");
  char buf[8] = "x";
  EXPECT_EQ(quern_arg_string(&job_, "n", buf, sizeof buf), QUERN_VALUE_WRONG_TYPE);
  EXPECT_STREQ(buf, "");
  EXPECT_EQ(quern_arg_string(&job_, "nul", buf, sizeof buf), QUERN_VALUE_WRONG_TYPE);
  EXPECT_EQ(quern_arg_string(&job_, "absent", buf, sizeof buf), QUERN_VALUE_MISSING);
  EXPECT_EQ(quern_arg_string(&job_, "", buf, sizeof buf), QUERN_VALUE_MISSING);
}

TEST_F(Accessors, Integers) {
  int64_t v = 0;
  EXPECT_EQ(quern_arg_int(&job_, "n", &v), 0);
  EXPECT_EQ(v, 42);
  EXPECT_EQ(quern_arg_int(&job_, "neg", &v), 0);
  EXPECT_EQ(v, -7);
  EXPECT_EQ(quern_arg_int(&job_, "big", &v), 0);
  EXPECT_EQ(v, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(quern_arg_int(&job_, "na\xc3\xafve", &v), 0);
  EXPECT_EQ(v, 1);
  v = 5;
  for (const char* wrong : {"huge", "f", "whole", "numstr", "t", "nul", "list", "s"}) {
    EXPECT_EQ(quern_arg_int(&job_, wrong, &v), QUERN_VALUE_WRONG_TYPE) << wrong;
    EXPECT_EQ(v, 5) << wrong;
  }
  EXPECT_EQ(quern_arg_int(&job_, "absent", &v), QUERN_VALUE_MISSING);
  // The same through the C compilation of quern/job.h.
  EXPECT_EQ(quern_test_c_arg_int(&job_, "n", &v), 0);
  EXPECT_EQ(v, 42);
  EXPECT_EQ(quern_test_c_arg_int(&job_, "f", &v), QUERN_VALUE_WRONG_TYPE);
}

TEST_F(Accessors, DoublesAndBooleans) {
  double d = 0;
  EXPECT_EQ(quern_arg_double(&job_, "f", &d), 0);
  EXPECT_EQ(d, 1.5);
  EXPECT_EQ(quern_arg_double(&job_, "n", &d), 0);
  EXPECT_EQ(d, 42.0);
  EXPECT_EQ(quern_arg_double(&job_, "whole", &d), 0);
  EXPECT_EQ(d, 2.0);
  EXPECT_EQ(quern_arg_double(&job_, "huge", &d), 0);
  EXPECT_EQ(d, 9223372036854775808.0);
  for (const char* wrong : {"s", "t", "nul", "numstr", "obj"})
    EXPECT_EQ(quern_arg_double(&job_, wrong, &d), QUERN_VALUE_WRONG_TYPE) << wrong;
  EXPECT_EQ(quern_arg_double(&job_, "absent", &d), QUERN_VALUE_MISSING);

  int32_t b = 7;
  EXPECT_EQ(quern_arg_bool(&job_, "t", &b), 0);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(quern_arg_bool(&job_, "no", &b), 0);
  EXPECT_EQ(b, 0);
  for (const char* wrong : {"n", "s", "nul", "numstr"})
    EXPECT_EQ(quern_arg_bool(&job_, wrong, &b), QUERN_VALUE_WRONG_TYPE) << wrong;
  EXPECT_EQ(quern_arg_bool(&job_, "absent", &b), QUERN_VALUE_MISSING);
}

TEST_F(Accessors, EnvironmentEntriesInOrder) {
  ASSERT_EQ(quern_env_count(&job_), 3);
  std::vector<std::string> entries;
  for (uint64_t i = 0; i < 3; ++i)
    entries.push_back(text([&](char* b, std::size_t s) { return quern_env_entry(&job_, i, b, s); }));
  EXPECT_EQ(entries, (std::vector<std::string>{"PATH=/usr/bin:/bin", "HOME=/tmp/w", "X=a=b"}));
  char buf[8];
  EXPECT_EQ(quern_env_entry(&job_, 3, buf, sizeof buf), QUERN_VALUE_MISSING);

  // As an execve-ready array with room for two more.
  std::size_t count = 99;
  char** env = quern_env_dup(&job_, 2, &count);
  ASSERT_NE(env, nullptr);
  EXPECT_EQ(count, 3u);
  EXPECT_STREQ(env[0], "PATH=/usr/bin:/bin");
  EXPECT_STREQ(env[2], "X=a=b");
  EXPECT_EQ(env[3], nullptr);
  EXPECT_EQ(env[4], nullptr);
  EXPECT_EQ(env[5], nullptr);
  quern_strv_free(env);
}

TEST_F(Accessors, ABufferTooSmallGetsWhatFitsAndTheWholeLength) {
  char buf[8];
  std::memset(buf, 'x', sizeof buf);
  EXPECT_EQ(quern_arg_string(&job_, "s", buf, 3), 4);  // "text": did not fit
  EXPECT_STREQ(buf, "te");
  EXPECT_EQ(buf[3], 'x');                              // nothing written past size
  EXPECT_EQ(quern_arg_string(&job_, "s", buf, 4), 4);  // 4 >= 4: still did not fit (no room for the NUL)
  EXPECT_STREQ(buf, "tex");
  EXPECT_EQ(quern_arg_string(&job_, "s", buf, 5), 4);
  EXPECT_STREQ(buf, "text");
  EXPECT_EQ(quern_arg_string(&job_, "s", buf, 1), 4);
  EXPECT_STREQ(buf, "");
  EXPECT_EQ(quern_arg_string(&job_, "s", nullptr, 0), 4);  // only the length
  EXPECT_EQ(quern_field_text(&job_, QUERN_FIELD_CODE, nullptr, 0), 7);
  EXPECT_EQ(quern_arg_json(&job_, "list", buf, 2), 9);
  EXPECT_STREQ(buf, "[");
  EXPECT_EQ(quern_env_entry(&job_, 0, buf, sizeof buf), 18);
  EXPECT_STREQ(buf, "PATH=/u");
}

TEST_F(Accessors, DupHelpersAllocateTheWholeText) {
  int64_t status = 0;
  char* code = quern_field_text_dup(&job_, QUERN_FIELD_CODE, &status);
  ASSERT_NE(code, nullptr);
  EXPECT_STREQ(code, "echo hi");
  EXPECT_EQ(status, 7);
  std::free(code);
  char* name = quern_arg_name_dup(&job_, 1, nullptr);
  EXPECT_STREQ(name, "n");
  std::free(name);
  EXPECT_EQ(quern_arg_string_dup(&job_, "n", &status), nullptr);
  EXPECT_EQ(status, QUERN_VALUE_WRONG_TYPE);
  EXPECT_EQ(quern_arg_json_dup(&job_, "absent", &status), nullptr);
  EXPECT_EQ(status, QUERN_VALUE_MISSING);
  EXPECT_EQ(quern_env_entry_dup(&job_, 9, &status), nullptr);
  EXPECT_EQ(status, QUERN_VALUE_MISSING);
}

TEST(AccessorsLongText, DupHelpersAskAgainWithRoom) {
  // Longer than the helpers' first buffer (256 bytes) and the callers' usual ones.
  const std::string long_text(5000, 'z');
  const std::string doc = R"({"code":")" + long_text + R"(","args":{"a":")" + long_text + R"("}})";
  RecordingSink sink;
  JobCall call(sink, doc);
  const quern_job job = quern_job_make(JobCall::callbacks(), call.ctx());
  int64_t status = 0;
  char* code = quern_field_text_dup(&job, QUERN_FIELD_CODE, &status);
  ASSERT_NE(code, nullptr);
  EXPECT_EQ(status, 5000);
  EXPECT_EQ(std::string(code), long_text);
  std::free(code);
  char* json = quern_arg_json_dup(&job, "a", &status);
  ASSERT_NE(json, nullptr);
  EXPECT_EQ(std::string(json), "\"" + long_text + "\"");
  std::free(json);
}

TEST(AccessorsOddDocuments, NoArgsNoEnvNotJsonReadAsMissing) {
  for (const char* doc : {"{}", R"({"args": [1, 2], "env": "x"})", "[1, 2]", "not json", ""}) {
    SCOPED_TRACE(doc);
    RecordingSink sink;
    JobCall call(sink, doc);
    const quern_job job = quern_job_make(JobCall::callbacks(), call.ctx());
    char buf[8];
    int64_t v = 0;
    EXPECT_EQ(quern_arg_count(&job), 0);
    EXPECT_EQ(quern_env_count(&job), 0);
    EXPECT_EQ(quern_arg_name(&job, 0, buf, sizeof buf), QUERN_VALUE_MISSING);
    EXPECT_EQ(quern_arg_int(&job, "a", &v), QUERN_VALUE_MISSING);
    EXPECT_EQ(quern_field_text(&job, QUERN_FIELD_CODE, buf, sizeof buf), QUERN_VALUE_MISSING);
    EXPECT_EQ(quern_field_int(&job, QUERN_FIELD_ID, &v), QUERN_VALUE_MISSING);
    EXPECT_EQ(quern_env_entry(&job, 0, buf, sizeof buf), QUERN_VALUE_MISSING);
  }
}

TEST(AccessorsThreads, ManyPluginThreadsAtOnce) {
  // The document is parsed once, whichever thread asks first.
  RecordingSink sink;
  JobCall call(sink, kDocument);
  const quern_job job = quern_job_make(JobCall::callbacks(), call.ctx());
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        int64_t v = 0;
        char buf[16];
        if (quern_arg_int(&job, "n", &v) != 0 || v != 42) ++wrong;
        if (quern_arg_string(&job, "s", buf, sizeof buf) != 4 || std::strcmp(buf, "text") != 0) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

// --- A host whose table is shorter -------------------------------------------

TEST(ShortTable, AccessorsSayUnsupportedAndTheRestStillWorks) {
  RecordingSink sink;
  JobCall call(sink, kDocument);
  quern_job_callbacks table = *JobCall::callbacks();
  table.struct_size = offsetof(quern_job_callbacks, field_text);  // a 1.1 host's table: 56 bytes
  const quern_job job = quern_job_make(&table, call.ctx());
  EXPECT_FALSE(quern_job_has_accessors(&job));
  char buf[16] = "unchanged";
  int64_t i = 0;
  double d = 0;
  int32_t b = 0;
  EXPECT_EQ(quern_field_text(&job, QUERN_FIELD_CODE, buf, sizeof buf), QUERN_VALUE_UNSUPPORTED);
  EXPECT_STREQ(buf, "unchanged");  // not touched: nothing was called
  EXPECT_EQ(quern_field_int(&job, QUERN_FIELD_ID, &i), QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_arg_count(&job), QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_arg_name(&job, 0, buf, sizeof buf), QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_arg_json(&job, "s", buf, sizeof buf), QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_arg_string(&job, "s", buf, sizeof buf), QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_arg_int(&job, "n", &i), QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_arg_double(&job, "f", &d), QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_arg_bool(&job, "t", &b), QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_env_count(&job), QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_env_entry(&job, 0, buf, sizeof buf), QUERN_VALUE_UNSUPPORTED);
  int64_t status = 0;
  EXPECT_EQ(quern_arg_string_dup(&job, "s", &status), nullptr);
  EXPECT_EQ(status, QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_env_dup(&job, 1, nullptr), nullptr);
  // The 1.0 callbacks are covered: they work.
  quern_logf(&job, QUERN_STREAM_STDOUT, "still %s", "here");
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT), std::vector<std::string>{"still here"});
}

TEST(ShortTable, AFieldOnlyPartlyCoveredOrNullIsAbsent) {
  RecordingSink sink;
  JobCall call(sink, kDocument);
  quern_job_callbacks table = *JobCall::callbacks();
  table.struct_size = offsetof(quern_job_callbacks, field_text) + 4;
  quern_job job = quern_job_make(&table, call.ctx());
  char buf[16];
  EXPECT_EQ(quern_field_text(&job, QUERN_FIELD_CODE, buf, sizeof buf), QUERN_VALUE_UNSUPPORTED);
  table = *JobCall::callbacks();
  table.env_entry = nullptr;
  EXPECT_FALSE(quern_job_has_accessors(&job));
  EXPECT_EQ(quern_env_entry(&job, 0, buf, sizeof buf), QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_env_count(&job), 3);  // the others are there
  // No table at all (a plugin's own bug) is not a crash either.
  const quern_job none = quern_job_make(nullptr, nullptr);
  EXPECT_EQ(quern_arg_count(&none), QUERN_VALUE_UNSUPPORTED);
  EXPECT_EQ(quern_cancelled(&none), QUERN_RUNNING);
  quern_log(&none, QUERN_STREAM_STDOUT, "nowhere");
}

// --- printf-style helpers ------------------------------------------------------

TEST(PrintfHelpers, LogfFormatsOneLineAndDropsATrailingNewline) {
  RecordingSink sink;
  JobCall call(sink, "{}");
  const quern_job job = quern_job_make(JobCall::callbacks(), call.ctx());
  quern_logf(&job, QUERN_STREAM_STDERR, "%s has %d %s\n", "ada", 3, "cats");
  quern_test_c_logf(&job, QUERN_STREAM_SYSTEM, "n", 7);  // compiled as C
  const std::string long_text(3000, 'y');                // past the 1 KiB first buffer
  quern_logf(&job, QUERN_STREAM_STDOUT, "[%s]", long_text.c_str());
  quern_log(&job, QUERN_STREAM_STDOUT, "plain");
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDERR), std::vector<std::string>{"ada has 3 cats"});
  EXPECT_EQ(sink.lines(QUERN_STREAM_SYSTEM), std::vector<std::string>{"n=7"});
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT), (std::vector<std::string>{"[" + long_text + "]", "plain"}));
}

TEST(PrintfHelpers, SetErrorfAndStopStatus) {
  RecordingSink sink;
  JobCall call(sink, "{}");
  const quern_job job = quern_job_make(JobCall::callbacks(), call.ctx());
  quern_set_errorf(&job, "exit code %d: %s", 2, "boom");
  EXPECT_EQ(sink.error(), "exit code 2: boom");
  const std::string long_text(2000, 'e');
  quern_test_c_set_errorf(&job, long_text.c_str());
  EXPECT_EQ(sink.error(), long_text);
  EXPECT_EQ(quern_stop_status(&job, QUERN_TIMEOUT_REACHED), QUERN_STATUS_TIMEOUT);
  EXPECT_EQ(sink.error(), "timed out");
  EXPECT_EQ(quern_stop_status(&job, QUERN_CANCEL_REQUESTED), QUERN_STATUS_CANCELED);
  EXPECT_EQ(sink.error(), "canceled");
  EXPECT_EQ(quern_stop_status(&job, QUERN_SHUTDOWN), QUERN_STATUS_CANCELED);
  EXPECT_EQ(sink.error(), "stopped: worker shutting down");
  quern_set_result(&job, R"({"ok":true})");
  EXPECT_EQ(sink.result(), R"({"ok":true})");
}

}  // namespace
