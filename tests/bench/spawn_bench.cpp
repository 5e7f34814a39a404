// What starting one job process costs the process that starts it, as a
// function of that process's resident memory: quern::spawn (the SDK's
// sdk/include/quern/process.hpp, how every plugin starts job processes) of
// a trivial program, waited for, one at a time.
//
//   build/bin/quern_spawn_bench      --rss-mb 100 --spawns 300 [--program /bin/true]
//   build/bin/quern_spawn_bench_fork --rss-mb 100 --spawns 300
//
// quern_spawn_bench is the SDK as shipped (vfork-style clone on Linux);
// quern_spawn_bench_fork is the same source built with
// QUERN_SPAWN_FORK_ONLY, i.e. plain fork(), for the side-by-side figures in
// docs/BENCHMARKS.md. Prints one JSON line: p50/p99/mean in milliseconds.
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "quern/process.hpp"

int main(int argc, char** argv) {
  CLI::App app{"quern::spawn of a trivial program from a process of a given size"};
  int rss_mb = 0, spawns = 300;
  std::string program = "/bin/true";
  app.add_option("--rss-mb", rss_mb, "Resident memory to hold (touched) while spawning")
      ->check(CLI::Range(0, 16384));
  app.add_option("--spawns", spawns, "Processes to start (after 10 unmeasured)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--program", program, "What to run");
  CLI11_PARSE(app, argc, argv);

  std::vector<char> ballast(static_cast<size_t>(rss_mb) << 20);
  std::memset(ballast.data(), 1, ballast.size());  // resident, not just reserved

  quern::sdk::SpawnSpec spec;
  spec.argv = {program};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.workdir = std::filesystem::temp_directory_path().string();
  std::vector<double> ms;
  for (int i = 0; i < spawns + 10; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = quern::sdk::spawn(spec, "bench");
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (i >= 10)
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  double sum = 0;
  for (double x : ms) sum += x;
#ifdef QUERN_SPAWN_FORK_ONLY
  const char* how = "fork";
#else
  const char* how = "vfork-style clone";
#endif
  nlohmann::ordered_json out{{"spawn", how},
                             {"rss_mb", rss_mb},
                             {"spawns", spawns},
                             {"program", program},
                             {"p50_ms", ms[ms.size() / 2]},
                             {"p99_ms", ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]},
                             {"mean_ms", sum / static_cast<double>(ms.size())}};
  std::printf("%s\n", out.dump().c_str());
  return ballast.empty() || ballast[0] == 1 ? 0 : 1;  // keeps the ballast alive and used
}
