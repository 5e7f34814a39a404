// The python executor's standard mode (one interpreter per job) through the
// real loader: results of main(**args), logs, failures, timeout and cancel
// leaving no process behind, the minimal environment, -I isolation, config.
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/plugins/python/python_test_support.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using quern::testing::PythonExecutorTest;
using quern::testing::RecordingSink;
using Clock = std::chrono::steady_clock;

using PythonStandard = PythonExecutorTest;

TEST_F(PythonStandard, ResultIsWhatMainReturnsForSeveralArgTypes) {
  ordered_json args = ordered_json::object();
  args["text"] = "a b";
  args["count"] = 42;
  args["ratio"] = 1.5;
  args["flag"] = true;
  args["items"] = {1, "x", nullptr};
  args["nested"] = {{"k", {{"deep", false}}}};
  args["nothing"] = nullptr;
  const char* code =
      "def main(text, count, ratio, flag, items, nested, nothing, default='d'):\n"
      "    return {'types': [type(v).__name__ for v in (text, count, ratio, flag, items, nested, nothing)],\n"
      "            'echo': [text, count * 2, ratio, not flag, items, nested['k'], nothing, default]}\n";
  RecordingSink sink;
  ASSERT_EQ(run(sink, code, args), QUERN_STATUS_SUCCESS) << sink.error().value_or("");
  EXPECT_EQ(ordered_json::parse(sink.result().value_or("")),
            ordered_json::parse(R"({"types": ["str", "int", "float", "bool", "list", "dict", "NoneType"],
                                    "echo": ["a b", 84, 1.5, false, [1, "x", null], {"deep": false}, null, "d"]})"));
  EXPECT_FALSE(sink.error().has_value());
}

TEST_F(PythonStandard, NoneAndNoReturnAreNull) {
  RecordingSink none;
  ASSERT_EQ(run(none, "def main():\n    return None\n"), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(none.result(), "null");
  RecordingSink implicit;
  ASSERT_EQ(run(implicit, "def main(**kwargs):\n    pass\n", {{"ignored", 1}}), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(implicit.result(), "null");
}

TEST_F(PythonStandard, PrintAndStderrAreLogsAndNeverTheResult) {
  const char* code =
      "import sys\n"
      "print('top-level line')\n"
      "def main():\n"
      "    print('{\"looks\": \"like json\"}')\n"
      "    print('to stderr', file=sys.stderr)\n"
      "    sys.stdout.write('partial, no newline')\n"
      "    return 5\n";
  RecordingSink sink;
  ASSERT_EQ(run(sink, code), QUERN_STATUS_SUCCESS) << sink.error().value_or("");
  EXPECT_EQ(sink.result(), "5");
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDOUT),
            (std::vector<std::string>{"top-level line", R"({"looks": "like json"})", "partial, no newline"}));
  EXPECT_EQ(sink.lines(QUERN_STREAM_STDERR), (std::vector<std::string>{"to stderr"}));
}

TEST_F(PythonStandard, ExceptionFailsWithTheTracebackNamingTheLine) {
  const char* code =
      "def helper(x):\n"
      "    if x > 1:\n"
      "        raise ValueError('bad input %d' % x)\n"  // line 3
      "def main(x):\n"
      "    return helper(x)\n";
  RecordingSink sink;
  ASSERT_EQ(run(sink, code, {{"x", 7}}), QUERN_STATUS_FAILURE);
  ASSERT_TRUE(sink.error().has_value());
  const std::string error = *sink.error();
  EXPECT_EQ(error.rfind("Traceback (most recent call last):", 0), 0u) << error;
  EXPECT_NE(error.find("main.py\", line 3, in helper"), std::string::npos) << error;
  EXPECT_NE(error.find("main.py\", line 5, in main"), std::string::npos) << error;
  EXPECT_NE(error.find("ValueError: bad input 7"), std::string::npos) << error;
  EXPECT_EQ(error.find("<string>"), std::string::npos) << "runner frames leaked: " << error;
  auto err_lines = sink.lines(QUERN_STREAM_STDERR);
  ASSERT_FALSE(err_lines.empty());
  EXPECT_EQ(err_lines.back(), "ValueError: bad input 7");  // also in the log
}

TEST_F(PythonStandard, ErrorsWhileLoadingAndMissingMainFail) {
  RecordingSink syntax;
  ASSERT_EQ(run(syntax, "def main(:\n    pass\n"), QUERN_STATUS_FAILURE);
  EXPECT_NE(syntax.error().value_or("").find("SyntaxError"), std::string::npos)
      << syntax.error().value_or("");
  RecordingSink no_main;
  ASSERT_EQ(run(no_main, "x = 1\n"), QUERN_STATUS_FAILURE);
  EXPECT_EQ(no_main.error(), "the script defines no main() function");
  RecordingSink bad_args;
  ASSERT_EQ(run(bad_args, "def main():\n    return 1\n", {{"surprise", 1}}), QUERN_STATUS_FAILURE);
  EXPECT_NE(bad_args.error().value_or("").find("unexpected keyword argument 'surprise'"), std::string::npos)
      << bad_args.error().value_or("");
}

TEST_F(PythonStandard, NonSerialisableResultFailsClearly) {
  RecordingSink sink;
  ASSERT_EQ(run(sink, "def main():\n    return {'a': {1, 2}}\n"), QUERN_STATUS_FAILURE);
  EXPECT_NE(sink.error().value_or("").find("main() returned a value that is not JSON-serialisable"),
            std::string::npos)
      << sink.error().value_or("");
  EXPECT_NE(sink.error().value_or("").find("set"), std::string::npos);
  RecordingSink nan;
  ASSERT_EQ(run(nan, "def main():\n    return float('nan')\n"), QUERN_STATUS_FAILURE);
  EXPECT_NE(nan.error().value_or("").find("not JSON-serialisable"), std::string::npos);
}

TEST_F(PythonStandard, SystemExitFailsUnlessZero) {
  RecordingSink three;
  ASSERT_EQ(run(three, "import sys\ndef main():\n    sys.exit(3)\n"), QUERN_STATUS_FAILURE);
  EXPECT_NE(three.error().value_or("").find("SystemExit: 3"), std::string::npos)
      << three.error().value_or("");
  RecordingSink zero;
  ASSERT_EQ(run(zero, "import sys\ndef main():\n    sys.exit(0)\n"), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(zero.result(), "null");
  // os._exit skips the runner entirely: the exit code and stderr tail say why.
  RecordingSink hard;
  ASSERT_EQ(
      run(hard,
          "import os, sys\ndef main():\n    print('bye', file=sys.stderr, flush=True)\n    os._exit(4)\n"),
      QUERN_STATUS_FAILURE);
  EXPECT_EQ(hard.error(), "exit code 4\nbye");
}

TEST_F(PythonStandard, TimeoutKillsTheInterpreterAndItsChildrenQuickly) {
  // The interpreter's command line holds the workdir (which holds the
  // marker); its child sleep holds the marker too.
  const char* code =
      "import subprocess, time\n"
      "def main(marker):\n"
      "    subprocess.Popen(['sleep', '300.' + marker])\n"
      "    print('started', flush=True)\n"
      "    time.sleep(300)\n";
  RecordingSink sink;
  std::atomic<size_t> seen_alive{0};
  sink.set_cancel_check([&] {
    if (seen_alive > 0) return QUERN_TIMEOUT_REACHED;
    if (sink.lines(QUERN_STREAM_STDOUT).empty()) return QUERN_RUNNING;
    size_t alive = quern::testing::processes_with_marker(marker_).size();
    if (alive < 2) return QUERN_RUNNING;
    seen_alive = alive;
    return QUERN_TIMEOUT_REACHED;
  });
  const auto start = Clock::now();
  EXPECT_EQ(run(sink, code, {{"marker", marker_}}), QUERN_STATUS_TIMEOUT);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  EXPECT_GE(seen_alive.load(), 2u);
  EXPECT_EQ(sink.error(), "timed out");
  EXPECT_TRUE(quern::testing::wait_until(
      [&] { return quern::testing::processes_with_marker(marker_).empty(); }, std::chrono::seconds(5)))
      << "processes of the job still alive";
  auto groups = sink.process_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_GT(groups[0], 0);
  EXPECT_EQ(groups[1], 0);
}

TEST_F(PythonStandard, CancelAndInterruptAreCanceled) {
  const char* code = "import time\ndef main():\n    print('started', flush=True)\n    time.sleep(300)\n";
  RecordingSink canceled;
  canceled.set_cancel_check(
      [&] { return canceled.lines(QUERN_STREAM_STDOUT).empty() ? QUERN_RUNNING : QUERN_CANCEL_REQUESTED; });
  EXPECT_EQ(run(canceled, code), QUERN_STATUS_CANCELED);

  RecordingSink interrupted;
  std::atomic<bool> started{false};
  interrupted.set_cancel_check([&] {
    if (!interrupted.lines(QUERN_STREAM_STDOUT).empty()) started = true;
    return QUERN_RUNNING;
  });
  std::thread stopper([&] {
    quern::testing::wait_until([&] { return started.load(); }, std::chrono::seconds(30));
    executor_->interrupt();
  });
  EXPECT_EQ(run(interrupted, code), QUERN_STATUS_CANCELED);
  stopper.join();
  EXPECT_TRUE(quern::testing::wait_until(
      [&] { return quern::testing::processes_with_marker(marker_).empty(); }, std::chrono::seconds(5)));
}

TEST_F(PythonStandard, EnvironmentIsMinimalAndCwdIsTheWorkdir) {
  ::setenv("QUERN_SECRET_TEST", "x", 1);
  const char* code =
      "import os, sys\n"
      "def main():\n"
      "    return {'secret': os.environ.get('QUERN_SECRET_TEST'), 'cwd': os.getcwd(),\n"
      "            'keys': sorted(os.environ), 'stdin': sys.stdin.read()}\n";
  RecordingSink sink;
  quern_status st = run(sink, code, ordered_json::object(), 77);
  ::unsetenv("QUERN_SECRET_TEST");
  ASSERT_EQ(st, QUERN_STATUS_SUCCESS) << sink.error().value_or("");
  ordered_json r = ordered_json::parse(sink.result().value_or("null"));
  EXPECT_TRUE(r["secret"].is_null());
  EXPECT_EQ(r["cwd"], fs::canonical(workdir_).string());
  EXPECT_EQ(r["keys"], ordered_json::parse(R"(["HOME", "LANG", "PATH", "QUERN_JOB_ID", "TMPDIR"])"))
      << r["keys"].dump();
  EXPECT_EQ(r["stdin"], "");  // /dev/null, not the args pipe
}

TEST_F(PythonStandard, IsolatedModeIgnoresPythonPath) {
  // A module that would be importable if PYTHONPATH counted.
  fs::path lib = workdir_ / "lib";
  fs::create_directories(lib);
  std::ofstream(lib / "leaky.py") << "VALUE = 1\n";
  ::setenv("PYTHONPATH", lib.c_str(), 1);
  ordered_json j = ordered_json::parse(
      job("import sys\n"
          "def main(lib):\n"
          "    try:\n"
          "        import leaky\n"
          "        imported = True\n"
          "    except ImportError:\n"
          "        imported = False\n"
          "    return {'imported': imported, 'isolated': sys.flags.isolated, 'in_path': lib in sys.path}\n",
          {{"lib", lib.string()}}));
  j["env"]["PYTHONPATH"] = lib.string();  // even the job's own env does not count under -I
  RecordingSink sink;
  quern_status st = executor_->execute(j.dump(), sink);
  ::unsetenv("PYTHONPATH");
  ASSERT_EQ(st, QUERN_STATUS_SUCCESS) << sink.error().value_or("");
  EXPECT_EQ(ordered_json::parse(*sink.result()),
            ordered_json::parse(R"({"imported": false, "isolated": 1, "in_path": false})"));

  // The plugin's own python_path setting is how a module directory is added.
  auto with_path = create(ordered_json({{"python_path", {lib.string()}}}).dump());
  ASSERT_NE(with_path, nullptr);
  RecordingSink sink2;
  ASSERT_EQ(with_path->execute(job("import leaky\ndef main():\n    return leaky.VALUE\n"), sink2),
            QUERN_STATUS_SUCCESS)
      << sink2.error().value_or("");
  EXPECT_EQ(sink2.result(), "1");
}

TEST_F(PythonStandard, ReportsAndClearsItsProcessGroup) {
  RecordingSink sink;
  ASSERT_EQ(run(sink, "import os\ndef main():\n    return [os.getpid(), os.getpgid(0)]\n"),
            QUERN_STATUS_SUCCESS);
  ordered_json r = ordered_json::parse(*sink.result());
  auto groups = sink.process_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0], r[0].get<int64_t>());  // the interpreter leads its own group
  EXPECT_EQ(groups[0], r[1].get<int64_t>());
  EXPECT_EQ(groups[1], 0);
}

TEST(PythonConfig, InterpreterIsResolvedAtCreateAndSettingsAreChecked) {
  quern::plugin::PluginRegistry registry;
  ASSERT_TRUE(registry.load_file(fs::path(QUERN_PLUGIN_DIR) / "libquern_python.so").is_ok());
  const auto* python = registry.by_name("python");
  ASSERT_NE(python, nullptr);
  EXPECT_EQ(python->info().languages, (std::vector<std::string>{"python3", "python"}));
  EXPECT_EQ(python->info().tags, (std::vector<std::string>{"python3"}));
  EXPECT_EQ(python->info().capabilities, uint64_t{QUERN_CAP_SPAWNS_PROCESSES | QUERN_CAP_DEDICATED});
  EXPECT_EQ(registry.for_language("python"), python);
  EXPECT_TRUE(python->create(R"({"interpreter": "/usr/bin/python3"})").is_ok());
  auto missing = python->create(R"({"interpreter": "/nonexistent/python3"})");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.message().find("/nonexistent/python3"), std::string::npos) << missing.message();
  char plain[] = "/tmp/quern-python-plain-XXXXXX";  // mode 0600: no execute bit
  int fd = ::mkstemp(plain);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto not_executable = python->create(ordered_json({{"interpreter", plain}}).dump());
  ::unlink(plain);
  ASSERT_FALSE(not_executable.is_ok());
  EXPECT_NE(not_executable.message().find("not executable"), std::string::npos) << not_executable.message();
  EXPECT_FALSE(python->create(R"({"python_path": "relative"})").is_ok());
  EXPECT_FALSE(python->create(R"({"python_path": ["relative/dir"]})").is_ok());
  EXPECT_FALSE(python->create(R"({"isolated": "yes"})").is_ok());
  EXPECT_FALSE(python->create("{oops").is_ok());
  auto executor = python->create("{}");
  ASSERT_TRUE(executor.is_ok());
  EXPECT_TRUE(executor.value()->health().is_ok());
}

}  // namespace
