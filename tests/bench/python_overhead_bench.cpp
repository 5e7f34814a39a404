// Per-job overhead of the python executor: standard mode (one interpreter per
// job) against dedicated mode (one warm interpreter, prepared once), for a job
// that does nothing: `def main(): return 1`. Measures the wall time of
// Executor::execute through the real loader; creating the job's working
// directory (the host's work) is outside the measurement.
//
//   build-p1/bin/python_overhead_bench [jobs=200] [interpreter=/usr/bin/python3]
//
// Prints p50 / p99 / mean / max in milliseconds for each mode (docs/PYTHON.md).
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "host/plugin/plugin_registry.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// Keeps only what the benchmark checks: the result.
class QuietSink : public quern::plugin::JobSink {
 public:
  void log_line(int32_t, std::string_view) override {}
  void progress(double) override {}
  int32_t is_cancelled() override { return QUERN_RUNNING; }
  void set_result(std::string_view json) override { result = json; }
  void set_error(std::string_view message) override { error = message; }
  void set_process_group(int64_t) override {}
  std::string result, error;
};

void report(const char* mode, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  double sum = 0;
  for (double v : ms) sum += v;
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))]; };
  std::printf("%-10s jobs=%zu  p50=%.2f ms  p99=%.2f ms  mean=%.2f ms  max=%.2f ms\n", mode, ms.size(),
              pct(0.50), pct(0.99), sum / ms.size(), ms.back());
}

}  // namespace

int main(int argc, char** argv) {
  const int jobs = argc > 1 ? std::atoi(argv[1]) : 200;
  const std::string interpreter = argc > 2 ? argv[2] : "/usr/bin/python3";
  if (jobs <= 0) {
    std::fprintf(stderr, "usage: %s [jobs] [interpreter]\n", argv[0]);
    return 2;
  }
  quern::plugin::PluginRegistry registry;
  if (auto s = registry.load_file(fs::path(QUERN_PLUGIN_DIR) / "libquern_python.so"); !s.is_ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  auto created = registry.by_name("python")->create(ordered_json({{"interpreter", interpreter}}).dump());
  if (!created.is_ok()) {
    std::fprintf(stderr, "%s\n", created.message().c_str());
    return 1;
  }
  auto executor = std::move(created.value());
  const std::string code = "def main():\n    return 1\n";
  const fs::path root = fs::temp_directory_path() / ("quern-python-bench-" + std::to_string(::getpid()));

  auto run = [&](int i) {
    const fs::path workdir = root / std::to_string(i);
    fs::create_directories(workdir);
    ordered_json job = {{"id", i},
                        {"attempt", 1},
                        {"language", "python3"},
                        {"code", code},
                        {"args", ordered_json::object()},
                        {"timeout_s", 60},
                        {"workdir", workdir.string()},
                        {"env",
                         {{"PATH", "/usr/local/bin:/usr/bin:/bin"},
                          {"HOME", workdir.string()},
                          {"TMPDIR", workdir.string()},
                          {"LANG", "C.UTF-8"}}}};
    const std::string text = job.dump();
    QuietSink sink;
    const auto start = Clock::now();
    quern_status st = executor->execute(text, sink);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    fs::remove_all(workdir);
    if (st != QUERN_STATUS_SUCCESS || sink.result != "1") {
      std::fprintf(stderr, "job %d: status %d, result '%s', error '%s'\n", i, st, sink.result.c_str(),
                   sink.error.c_str());
      std::exit(1);
    }
    return ms;
  };

  std::vector<double> standard, dedicated;
  run(-1);  // warm the page cache for the interpreter
  for (int i = 0; i < jobs; ++i) standard.push_back(run(i));
  const auto prep_start = Clock::now();
  if (auto s = executor->prepare(ordered_json({{"code", code}, {"language", "python3"}}).dump());
      !s.is_ok()) {
    std::fprintf(stderr, "prepare: %s\n", s.message().c_str());
    return 1;
  }
  const double prepare_ms = std::chrono::duration<double, std::milli>(Clock::now() - prep_start).count();
  for (int i = 0; i < jobs; ++i) dedicated.push_back(run(jobs + i));
  fs::remove_all(root);

  std::printf("interpreter %s, `def main(): return 1`, wall time of execute()\n", interpreter.c_str());
  report("standard", standard);
  report("dedicated", dedicated);
  std::printf("prepare (start + import, once): %.2f ms\n", prepare_ms);
  return 0;
}
