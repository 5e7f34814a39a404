// quern/process.hpp on its own: paths the bash plugin does not exercise
// (stdin text, start-up failures, PATH lookup). The JobContext is wired to a
// RecordingSink through a real callback table, as the host would do.
#include <gtest/gtest.h>

#include <string>
#include <system_error>

#include "quern/process.hpp"
#include "tests/plugin/recording_sink.h"

namespace {

using quern::sdk::ProcessSpec;
using quern::sdk::run_process;
using quern::testing::RecordingSink;

RecordingSink& sink_of(quern_job_ctx* ctx) { return *reinterpret_cast<RecordingSink*>(ctx); }

// A callback table that forwards to a RecordingSink.
quern_job_callbacks callbacks() {
  quern_job_callbacks cb{};
  cb.struct_size = sizeof cb;
  cb.log_line = [](quern_job_ctx* c, int32_t s, quern_str l) { sink_of(c).log_line(s, {l.data, l.size}); };
  cb.progress = [](quern_job_ctx* c, double f) { sink_of(c).progress(f); };
  cb.is_cancelled = [](quern_job_ctx* c) { return sink_of(c).is_cancelled(); };
  cb.set_result = [](quern_job_ctx* c, quern_str j) { sink_of(c).set_result({j.data, j.size}); };
  cb.set_error = [](quern_job_ctx* c, quern_str m) { sink_of(c).set_error({m.data, m.size}); };
  cb.set_process_group = [](quern_job_ctx* c, int64_t p) { sink_of(c).set_process_group(p); };
  return cb;
}

class Process : public ::testing::Test {
 protected:
  quern::sdk::ProcessResult run(const ProcessSpec& spec) {
    quern::sdk::JobContext ctx(&cb_, reinterpret_cast<quern_job_ctx*>(&sink_));
    return run_process(spec, ctx);
  }
  quern_job_callbacks cb_ = callbacks();
  RecordingSink sink_;
};

TEST_F(Process, FeedsStdinTextAndReportsExitCode) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "cat; exit 7"};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.stdin_text = "line one\nlast line without newline";
  auto r = run(spec);
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.term_signal, 0);
  EXPECT_EQ(r.stop_reason, QUERN_RUNNING);
  EXPECT_EQ(sink_.lines(QUERN_STREAM_STDOUT),
            (std::vector<std::string>{"line one", "last line without newline"}));
  EXPECT_EQ(r.last_stdout_line, "last line without newline");
}

TEST_F(Process, LargeStdinWhileChildWritesDoesNotDeadlock) {
  // 4 MiB through cat: both directions exceed any pipe buffer.
  std::string text;
  for (int i = 0; i < 64 * 1024; ++i) text += std::string(63, 'a' + i % 26) + "\n";
  ProcessSpec spec;
  spec.argv = {"cat"};  // looked up in the PATH of spec.env
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.stdin_text = text;
  auto r = run(spec);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(sink_.lines(QUERN_STREAM_STDOUT).size(), 64u * 1024u);
}

TEST_F(Process, ChildClosingStdinEarlyIsNotAnError) {
  // Writing to a closed stdin must not raise SIGPIPE in this process.
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "exec 0<&-; echo closed"};
  spec.stdin_text = std::string(8 * 1024 * 1024, 'x');
  auto r = run(spec);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.last_stdout_line, "closed");
}

TEST_F(Process, EnvironmentIsExactlyTheGivenList) {
  ProcessSpec spec;
  spec.argv = {"/usr/bin/env"};
  spec.env = {"ONLY=this", "AND=that"};
  auto r = run(spec);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(sink_.lines(QUERN_STREAM_STDOUT), (std::vector<std::string>{"ONLY=this", "AND=that"}));
}

TEST_F(Process, ExecFailureThrowsNamingTheProgram) {
  ProcessSpec spec;
  spec.argv = {"/nonexistent/program"};
  try {
    run(spec);
    FAIL() << "expected std::system_error";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("exec '/nonexistent/program'"), std::string::npos) << e.what();
    EXPECT_EQ(e.code().value(), ENOENT);
  }
  // The group was reported and withdrawn.
  auto groups = sink_.process_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[1], 0);
}

TEST_F(Process, MissingWorkdirOrProgramThrows) {
  ProcessSpec spec;
  spec.argv = {"/bin/true"};
  spec.workdir = "/nonexistent/dir";
  EXPECT_THROW(run(spec), std::system_error);
  ProcessSpec not_on_path;
  not_on_path.argv = {"quern-no-such-program"};
  not_on_path.env = {"PATH=/usr/bin:/bin"};
  EXPECT_THROW(run(not_on_path), std::system_error);
}

}  // namespace
