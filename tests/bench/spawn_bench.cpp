// What starting one job process costs the process that starts it, as a
// function of that process's resident memory: quern::spawn (the SDK's
// sdk/include/quern/process.hpp, how every plugin starts job processes) of
// a trivial program, waited for, one at a time.
//
//   build/bin/quern_spawn_bench      --rss-mb 100 --spawns 300 [--program /bin/true]
//   build/bin/quern_spawn_bench_fork --rss-mb 100 --spawns 300
//   build/bin/quern_spawn_bench --sandbox none|cold|warm --spawns 300   (as root, as a worker)
//
// quern_spawn_bench is the SDK as shipped (vfork-style clone on Linux);
// quern_spawn_bench_fork is the same source built with
// QUERN_SPAWN_FORK_ONLY, i.e. plain fork(), for the side-by-side figures in
// docs/BENCHMARKS.md. --sandbox puts each child in the job sandbox a
// worker's default group gives it (host/sandbox: bubblewrap, jobs as
// nobody when root): "cold" builds it with bubblewrap per spawn, "warm"
// enters it kept warm (quern/warm_sandbox.hpp), each child in its own
// working directory under one jobs directory, as a worker's are.
// Prints one JSON line: p50/p99/mean in milliseconds.
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "host/sandbox/sandbox.h"
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
  std::string sandbox_mode = "none";
  app.add_option("--sandbox", sandbox_mode, "none, cold (bubblewrap per spawn) or warm")
      ->check(CLI::IsMember({"none", "cold", "warm"}));
  CLI11_PARSE(app, argc, argv);

  std::vector<char> ballast(static_cast<size_t>(rss_mb) << 20);
  std::memset(ballast.data(), 1, ballast.size());  // resident, not just reserved

  quern::sdk::SpawnSpec spec;
  spec.argv = {program};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.workdir = std::filesystem::temp_directory_path().string();
  std::filesystem::path jobs_dir;
  quern::sandbox::Policy policy;
  if (sandbox_mode != "none") {
    policy.mode = quern::sandbox::Mode::bwrap;
    if (quern::Status s = quern::sandbox::resolve_job_user(policy); !s) {
      std::fprintf(stderr, "%s\n", s.message().c_str());
      return 1;
    }
    if (sandbox_mode == "cold") ::setenv("QUERN_SANDBOX_COLD", "1", 1);
    jobs_dir = std::filesystem::temp_directory_path() / ("quern-spawn-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(jobs_dir);
    spec.env.push_back(std::string(QUERN_SANDBOX_ENV "=") +
                       quern::sandbox::encode(quern::sandbox::wrapper(policy)));
    spec.env.push_back(std::string(QUERN_SETUP_ENV "=") + quern::sandbox::setup_items(policy));
  }
  std::vector<double> ms;
  for (int i = 0; i < spawns + 10; ++i) {
    if (!jobs_dir.empty()) {  // a fresh working directory per child, as a worker's jobs get
      spec.workdir = (jobs_dir / std::to_string(i)).string();
      std::filesystem::create_directory(spec.workdir);
      if (policy.uid >= 0 && ::chown(spec.workdir.c_str(), policy.uid, policy.gid) != 0) return 1;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = quern::sdk::spawn(spec, "bench");
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "the child failed (status %d)\n", status);
      return 1;
    }
    if (!jobs_dir.empty()) std::filesystem::remove_all(spec.workdir);
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
                             {"sandbox", sandbox_mode},
                             {"program", program},
                             {"p50_ms", ms[ms.size() / 2]},
                             {"p99_ms", ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]},
                             {"mean_ms", sum / static_cast<double>(ms.size())}};
  std::printf("%s\n", out.dump().c_str());
  if (!jobs_dir.empty()) std::filesystem::remove_all(jobs_dir);
  return ballast.empty() || ballast[0] == 1 ? 0 : 1;  // keeps the ballast alive and used
}
