// Shared fixture of the python executor tests: the real plugin through the
// real loader, a fresh working directory per test, and the job document as
// the host builds it.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "host/plugin/plugin_registry.h"
#include "tests/plugin/recording_sink.h"
#include "tests/support/child_process.h"

namespace quern::testing {

// Digits unique to this test process and call: put into a job's command
// lines (and the workdir's name) to find its processes in /proc.
inline std::string unique_marker() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return std::to_string(::getpid()) + "0" + std::to_string(++counter) + "0" + std::to_string(rd() % 100000);
}

class PythonExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status s = registry_.load_file(std::filesystem::path(QUERN_PLUGIN_DIR) / "libquern_python.so");
    ASSERT_TRUE(s.is_ok()) << s.message();
    executor_ = create("{}");
    ASSERT_NE(executor_, nullptr);
    marker_ = unique_marker();
    std::string tmpl = "/tmp/quern-python-test-" + marker_ + "-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    workdir_ = tmpl;
  }
  void TearDown() override {
    executor_.reset();
    std::error_code ec;
    std::filesystem::remove_all(workdir_, ec);
  }

  std::unique_ptr<plugin::Executor> create(const std::string& config) {
    auto created = registry_.by_name("python")->create(config);
    EXPECT_TRUE(created.is_ok()) << created.message();
    return created.is_ok() ? std::move(created.value()) : nullptr;
  }

  // The job document as the host builds it (the host gives every job a fresh
  // directory; these tests reuse one per test, which the plugin allows).
  std::string job(const std::string& code,
                  const nlohmann::ordered_json& args = nlohmann::ordered_json::object(), int64_t id = 1) {
    nlohmann::ordered_json j;
    j["id"] = id;
    j["attempt"] = 1;
    j["language"] = "python3";
    j["code"] = code;
    j["args"] = args;
    j["timeout_s"] = 60;
    j["workdir"] = workdir_.string();
    j["env"] = {{"PATH", "/usr/local/bin:/usr/bin:/bin"},
                {"HOME", workdir_.string()},
                {"TMPDIR", workdir_.string()},
                {"LANG", "C.UTF-8"},
                {"QUERN_JOB_ID", std::to_string(id)}};
    return j.dump();
  }
  quern_status run(RecordingSink& sink, const std::string& code,
                   const nlohmann::ordered_json& args = nlohmann::ordered_json::object(), int64_t id = 1) {
    return executor_->execute(job(code, args, id), sink);
  }
  // The script document prepare() receives: the job without args.
  static std::string script(const std::string& code, const std::string& hash = "") {
    nlohmann::ordered_json j;
    j["code"] = code;
    j["language"] = "python3";
    if (!hash.empty()) j["hash"] = hash;
    return j.dump();
  }

  plugin::PluginRegistry registry_;
  std::unique_ptr<plugin::Executor> executor_;
  std::filesystem::path workdir_;
  std::string marker_;
};

// True when no process with this pid exists any more (a reaped child).
inline bool process_gone(int64_t pid) { return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

// True while pid exists and is not a zombie (an orphan's zombie waits for
// whoever reaps orphans here, which may be slow or nobody in a container).
inline bool process_running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

}  // namespace quern::testing
