// The gpu executor through the real loader and a recording JobSink. Runs on
// machines without a GPU: discovery is either absent (no libnvidia-ml) or a
// configured inventory, and the jobs only print what they were given. The
// GpuRealDevice case needs an NVIDIA GPU and QUERN_REAL_GPU=1
// (tests/plugins/gpu/device_check.sh runs it).
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "host/jobs/job_builder.h"
#include "host/plugin/plugin_registry.h"
#include "host/worker/gpu_capacity.h"
#include "tests/plugin/recording_sink.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"
#include "tests/worker/gpu_fits_sql.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using quern::testing::RecordingSink;
using Clock = std::chrono::steady_clock;

// Four devices, two sizes: enough for pairs, best fit and "too big".
const char* kInventory = R"({"inventory": [
  {"index": 0, "uuid": "GPU-aaa", "name": "Test GPU", "memory_mb": 81920},
  {"index": 1, "uuid": "GPU-bbb", "name": "Test GPU", "memory_mb": 81920},
  {"index": 2, "uuid": "GPU-ccc", "name": "Small GPU", "memory_mb": 40960},
  {"index": 3, "uuid": "GPU-ddd", "name": "Small GPU", "memory_mb": 40960}]})";
const std::set<std::string> kUuids = {"GPU-aaa", "GPU-bbb", "GPU-ccc", "GPU-ddd"};

// Prints the variables a GPU job is given, as one JSON line, then runs `then`.
json print_env_command(const std::string& then = "") {
  return json::array(
      {"sh", "-c",
       "printf '{\"cvd\":\"%s\",\"nvd\":\"%s\",\"order\":\"%s\"}\\n' \"$CUDA_VISIBLE_DEVICES\" "
       "\"$NVIDIA_VISIBLE_DEVICES\" \"$CUDA_DEVICE_ORDER\"\n" +
           then});
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);) out.push_back(item);
  return out;
}

std::string unique_marker() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return std::to_string(::getpid()) + "0" + std::to_string(++counter) + "0" + std::to_string(rd() % 100000);
}

// Live (not zombie) processes whose command line contains marker.
std::size_t live_processes_with(const std::string& marker) {
  std::size_t n = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos || std::stoi(name) == ::getpid()) continue;
    std::ifstream cmdline(entry.path() / "cmdline", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (text.find(marker) == std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z') continue;
    ++n;
  }
  return n;
}

bool wait_until_gone(const std::string& marker) {
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < until) {
    if (live_processes_with(marker) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return live_processes_with(marker) == 0;
}

bool eventually(const std::function<bool()>& cond,
                std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  const auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

class GpuExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // QUERN_PLUGIN_DIR in the environment wins: device_check.sh may run a
    // build that was made under another path.
    const char* dir = ::getenv("QUERN_PLUGIN_DIR");
    quern::Status s =
        registry_.load_file(fs::path(dir != nullptr ? dir : QUERN_PLUGIN_DIR) / "libquern_gpu.so");
    ASSERT_TRUE(s.is_ok()) << s.message();
    char tmpl[] = "/tmp/quern-gpu-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  std::unique_ptr<quern::plugin::Executor> create(const std::string& config) {
    auto created = registry_.by_name("gpu")->create(config);
    EXPECT_TRUE(created.is_ok()) << created.message();
    return created.is_ok() ? std::move(created.value()) : nullptr;
  }

  // The job document as the host builds it, with a fresh workdir per job.
  std::string job(const json& args, const std::string& code = "") {
    fs::path workdir = root_ / ("job" + std::to_string(++jobs_));
    fs::create_directories(workdir);
    json j;
    j["id"] = jobs_;
    j["attempt"] = 1;
    j["language"] = "gpu";
    j["code"] = code;
    j["args"] = args;
    j["timeout_s"] = 60;
    j["workdir"] = workdir.string();
    j["env"] = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"HOME", workdir.string()}, {"LANG", "C.UTF-8"}};
    return j.dump();
  }

  static json result_of(const RecordingSink& sink) {
    auto r = sink.result();
    return r ? json::parse(*r) : json();
  }
  static std::vector<std::string> assigned(const RecordingSink& sink) {
    std::vector<std::string> uuids;
    const json result = result_of(sink);  // kept alive: the loop walks into it
    for (const auto& d : result["gpu"]["devices"]) uuids.push_back(d["uuid"]);
    return uuids;
  }

  // A job asking for all four devices, cancelled after 10 s: SUCCESS proves
  // that every device was free again.
  void expect_all_devices_free(quern::plugin::Executor& executor) {
    RecordingSink sink;
    const auto start = Clock::now();
    sink.set_cancel_check([&] {
      return Clock::now() - start > std::chrono::seconds(10) ? QUERN_CANCEL_REQUESTED : QUERN_RUNNING;
    });
    ASSERT_EQ(executor.execute(job({{"gpus", 4}, {"command", {"true"}}}), sink), QUERN_STATUS_SUCCESS)
        << sink.error().value_or("");
    EXPECT_EQ(assigned(sink).size(), 4u);
  }

  quern::plugin::PluginRegistry registry_;
  fs::path root_;
  int jobs_ = 0;
};

TEST_F(GpuExecutorTest, WithoutNvmlItLoadsWithZeroGpusAndJobsFailClearly) {
  auto executor = create(R"({"nvml_library": "/nonexistent/libnvidia-ml.so.1"})");
  ASSERT_NE(executor, nullptr);
  quern::Status health = executor->health();
  ASSERT_FALSE(health.is_ok());
  EXPECT_NE(health.message().find("no NVIDIA driver: 0 GPUs"), std::string::npos) << health.message();
  RecordingSink sink;
  EXPECT_EQ(executor->execute(job({{"command", {"true"}}}), sink), QUERN_STATUS_FAILURE);
  EXPECT_EQ(sink.error().value_or("").rfind("no GPUs on this worker", 0), 0u) << sink.error().value_or("");
  EXPECT_TRUE(sink.process_groups().empty());  // nothing ran
}

TEST_F(GpuExecutorTest, DefaultDiscoveryOnThisMachine) {
  if (void* lib = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL)) {
    ::dlclose(lib);
    GTEST_SKIP() << "libnvidia-ml.so.1 is installed here; the no-driver path is covered by the test above";
  }
  auto executor = create("{}");
  ASSERT_NE(executor, nullptr);
  EXPECT_NE(executor->health().message().find("no NVIDIA driver: 0 GPUs"), std::string::npos)
      << executor->health().message();
  RecordingSink sink;
  EXPECT_EQ(executor->execute(job({{"gpus", 1}, {"command", {"true"}}}), sink), QUERN_STATUS_FAILURE);
  EXPECT_EQ(sink.error().value_or("").rfind("no GPUs on this worker", 0), 0u) << sink.error().value_or("");
}

TEST_F(GpuExecutorTest, JobSeesExactlyItsAssignedDevicesByUuid) {
  auto executor = create(kInventory);
  ASSERT_NE(executor, nullptr);
  EXPECT_TRUE(executor->health().is_ok());
  RecordingSink sink;
  ASSERT_EQ(executor->execute(job({{"gpus", 2}, {"command", print_env_command()}}), sink),
            QUERN_STATUS_SUCCESS)
      << sink.error().value_or("");
  json result = result_of(sink);
  EXPECT_EQ(result["exit_code"], 0);
  std::vector<std::string> seen = split(result["output"]["cvd"], ',');
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_NE(seen[0], seen[1]);
  for (const auto& u : seen) EXPECT_EQ(kUuids.count(u), 1u) << u;
  EXPECT_EQ(result["output"]["nvd"], result["output"]["cvd"]);
  EXPECT_EQ(result["output"]["order"], "PCI_BUS_ID");
  EXPECT_EQ(assigned(sink), seen);  // the metadata names the same devices, same order
  EXPECT_EQ(result["gpu"]["devices"][0]["name"].is_string(), true);
  EXPECT_TRUE(result["gpu"]["peak_memory_mb"].is_null());  // inventory: no NVML to sample
  EXPECT_TRUE(result["stdout_tail"].is_string());
}

TEST_F(GpuExecutorTest, DefaultIsOneDeviceAndBestFitKeepsBigDevicesFree) {
  auto executor = create(kInventory);
  RecordingSink small, big;
  ASSERT_EQ(executor->execute(job({{"command", print_env_command()}}), small), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(assigned(small), std::vector<std::string>{"GPU-ccc"});
  ASSERT_EQ(executor->execute(job({{"memory_mb", 50000}, {"command", print_env_command()}}), big),
            QUERN_STATUS_SUCCESS);
  EXPECT_EQ(assigned(big), std::vector<std::string>{"GPU-aaa"});
}

TEST_F(GpuExecutorTest, CodeRunsAsBashOrPythonWithTheSameEnvironment) {
  auto executor = create(kInventory);
  RecordingSink bash, python;
  ASSERT_EQ(
      executor->execute(job({{"gpus", 1}}, "echo \"{\\\"cvd\\\": \\\"$CUDA_VISIBLE_DEVICES\\\"}\"\n"), bash),
      QUERN_STATUS_SUCCESS)
      << bash.error().value_or("");
  EXPECT_EQ(result_of(bash)["output"]["cvd"], assigned(bash).at(0));
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  const std::string code =
      "import json, os\nprint(json.dumps({'cvd': os.environ['CUDA_VISIBLE_DEVICES']}))\n";
  ASSERT_EQ(executor->execute(job({{"gpus", 1}, {"python", true}, {"code", code}}), python),
            QUERN_STATUS_SUCCESS)
      << python.error().value_or("");
  EXPECT_EQ(result_of(python)["output"]["cvd"], assigned(python).at(0));
}

TEST_F(GpuExecutorTest, TwoConcurrentJobsOnTwoInstancesNeverShareADevice) {
  for (int round = 0; round < 3; ++round) {
    auto first = create(kInventory), second = create(kInventory);
    const fs::path release = root_ / ("release" + std::to_string(round));
    const json command =
        print_env_command("while [ ! -e '" + release.string() + "' ]; do sleep 0.02; done\n");
    RecordingSink a, b;
    std::atomic<int> at_barrier{0};
    quern_status sa{}, sb{};
    auto run = [&](quern::plugin::Executor& e, RecordingSink& sink, quern_status& st) {
      std::string doc = job({{"gpus", 2}, {"command", command}});
      ++at_barrier;
      while (at_barrier < 2) std::this_thread::yield();  // start both at once
      st = e.execute(doc, sink);
    };
    std::thread ta(run, std::ref(*first), std::ref(a), std::ref(sa));
    std::thread tb(run, std::ref(*second), std::ref(b), std::ref(sb));
    // Both hold their devices at the same time before either is released.
    bool both = eventually(
        [&] { return !a.lines(QUERN_STREAM_STDOUT).empty() && !b.lines(QUERN_STREAM_STDOUT).empty(); });
    std::ofstream(release.string()) << "go";
    ta.join();
    tb.join();
    ASSERT_TRUE(both);
    ASSERT_EQ(sa, QUERN_STATUS_SUCCESS) << a.error().value_or("");
    ASSERT_EQ(sb, QUERN_STATUS_SUCCESS) << b.error().value_or("");
    std::set<std::string> all;
    for (const auto* sink : {&a, &b}) {
      std::vector<std::string> seen = split(result_of(*sink)["output"]["cvd"], ',');
      ASSERT_EQ(seen.size(), 2u);
      all.insert(seen.begin(), seen.end());
    }
    EXPECT_EQ(all, kUuids) << "the two jobs shared a device";
  }
}

TEST_F(GpuExecutorTest, JobWaitsWhileOtherSlotsHoldTheDevicesThenRuns) {
  auto first = create(kInventory), second = create(kInventory);
  const fs::path release = root_ / "release";
  RecordingSink holder, waiter;
  std::thread t([&] {
    first->execute(job({{"gpus", 3},
                        {"command", print_env_command("while [ ! -e '" + release.string() +
                                                      "' ]; do sleep 0.02; done\n")}}),
                   holder);
  });
  ASSERT_TRUE(eventually([&] { return !holder.lines(QUERN_STREAM_STDOUT).empty(); }));
  quern_status st{};
  std::thread w([&] { st = second->execute(job({{"gpus", 2}, {"command", print_env_command()}}), waiter); });
  ASSERT_TRUE(eventually([&] {
    for (const auto& l : waiter.lines(QUERN_STREAM_SYSTEM))
      if (l.find("waiting for 2 GPUs") != std::string::npos) return true;
    return false;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(waiter.lines(QUERN_STREAM_STDOUT).empty()) << "ran while the devices were held";
  EXPECT_GT(waiter.cancel_calls(), 0);  // it polls for cancellation while waiting
  std::ofstream(release.string()) << "go";
  t.join();
  w.join();
  EXPECT_EQ(st, QUERN_STATUS_SUCCESS) << waiter.error().value_or("");
  EXPECT_EQ(assigned(waiter).size(), 2u);
}

TEST_F(GpuExecutorTest, RequestsThisWorkerCanNeverMeetFailWithoutRunning) {
  auto executor = create(kInventory);
  RecordingSink too_many, too_big;
  EXPECT_EQ(executor->execute(job({{"gpus", 5}, {"command", {"true"}}}), too_many), QUERN_STATUS_FAILURE);
  EXPECT_EQ(too_many.error().value_or("").rfind("gpu request cannot be met on this worker:", 0), 0u)
      << too_many.error().value_or("");
  EXPECT_EQ(executor->execute(job({{"gpus", 1}, {"memory_mb", 100000}, {"command", {"true"}}}), too_big),
            QUERN_STATUS_FAILURE);
  EXPECT_EQ(too_big.error().value_or("").rfind("gpu request cannot be met on this worker:", 0), 0u)
      << too_big.error().value_or("");
  EXPECT_TRUE(too_many.process_groups().empty());
  EXPECT_TRUE(too_big.process_groups().empty());
  // Three devices have 40 GB or more: three fit, so it's only "too many" at 3 x 80 GB.
  RecordingSink three_big;
  EXPECT_EQ(executor->execute(job({{"gpus", 3}, {"memory_mb", 81920}, {"command", {"true"}}}), three_big),
            QUERN_STATUS_FAILURE);
  EXPECT_NE(three_big.error().value_or("").find("2 of them that large"), std::string::npos)
      << three_big.error().value_or("");
}

TEST_F(GpuExecutorTest, BadArgsAreReported) {
  auto executor = create(kInventory);
  for (const json& args :
       {json{{"gpus", 0}, {"command", {"true"}}}, json{{"gpus", "two"}, {"command", {"true"}}},
        json{{"command", json::array()}}, json{{"command", {"true"}}, {"code", "true"}}, json::object()}) {
    RecordingSink sink;
    EXPECT_EQ(executor->execute(job(args), sink), QUERN_STATUS_FAILURE) << args.dump();
    EXPECT_EQ(sink.error().value_or("").rfind("gpu job args: ", 0), 0u) << sink.error().value_or("");
  }
}

TEST_F(GpuExecutorTest, DevicesAreReleasedAfterFailure) {
  auto executor = create(kInventory);
  RecordingSink sink;
  EXPECT_EQ(executor->execute(job({{"gpus", 4}, {"command", {"sh", "-c", "echo broken >&2; exit 3"}}}), sink),
            QUERN_STATUS_FAILURE);
  EXPECT_EQ(sink.error().value_or(""), "exit code 3\nbroken");
  EXPECT_EQ(result_of(sink)["exit_code"], 3);
  expect_all_devices_free(*executor);
}

TEST_F(GpuExecutorTest, TimeoutAndCancelKillTheJobAndReleaseTheDevices) {
  auto executor = create(kInventory);
  for (int32_t why : {QUERN_TIMEOUT_REACHED, QUERN_CANCEL_REQUESTED, QUERN_SHUTDOWN}) {
    const std::string marker = unique_marker();
    RecordingSink sink;
    sink.set_cancel_check([&] { return sink.lines(QUERN_STREAM_STDOUT).empty() ? QUERN_RUNNING : why; });
    const auto start = Clock::now();
    quern_status st = executor->execute(
        job({{"gpus", 4}, {"command", {"sh", "-c", "sleep 300.$0 & echo started; sleep 300.$0", marker}}}),
        sink);
    EXPECT_EQ(st, why == QUERN_TIMEOUT_REACHED ? QUERN_STATUS_TIMEOUT : QUERN_STATUS_CANCELED);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
    EXPECT_TRUE(wait_until_gone(marker)) << "a process of the job survived";
    expect_all_devices_free(*executor);
  }
}

TEST_F(GpuExecutorTest, CancelWhileWaitingForDevices) {
  auto first = create(kInventory), second = create(kInventory);
  const fs::path release = root_ / "release";
  RecordingSink holder, waiter;
  std::thread t([&] {
    first->execute(
        job({{"gpus", 4},
             {"command",
              {"sh", "-c", "echo held; while [ ! -e '" + release.string() + "' ]; do sleep 0.02; done"}}}),
        holder);
  });
  ASSERT_TRUE(eventually([&] { return !holder.lines(QUERN_STREAM_STDOUT).empty(); }));
  waiter.set_cancel_check(
      [&] { return waiter.lines(QUERN_STREAM_SYSTEM).empty() ? QUERN_RUNNING : QUERN_TIMEOUT_REACHED; });
  const auto start = Clock::now();
  EXPECT_EQ(second->execute(job({{"gpus", 1}, {"command", {"true"}}}), waiter), QUERN_STATUS_TIMEOUT);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  EXPECT_NE(waiter.error().value_or("").find("while waiting for GPUs"), std::string::npos);
  std::ofstream(release.string()) << "go";
  t.join();
  expect_all_devices_free(*second);
}

TEST_F(GpuExecutorTest, InventoryConfigIsValidated) {
  const auto* gpu = registry_.by_name("gpu");
  EXPECT_FALSE(gpu->create(R"({"inventory": [{"index": 0}]})").is_ok());
  EXPECT_FALSE(gpu->create(R"({"inventory": [{"uuid": "GPU-x"}, {"uuid": "GPU-x"}]})").is_ok());
  EXPECT_FALSE(gpu->create(R"({"inventory": {}})").is_ok());
  auto subset = create(R"({"inventory": [{"uuid": "GPU-x"}, {"uuid": "GPU-y"}], "devices": [1]})");
  RecordingSink sink;
  ASSERT_EQ(subset->execute(job({{"command", print_env_command()}}), sink), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(assigned(sink), std::vector<std::string>{"GPU-y"});
}

TEST_F(GpuExecutorTest, ResourcesListTheDevicesAfterTheDevicesFilter) {
  auto all = registry_.resources("gpu", kInventory);
  ASSERT_TRUE(all.is_ok()) << all.message();
  EXPECT_EQ(*all, json::parse(R"({"gpus": [
      {"index": 0, "uuid": "GPU-aaa", "name": "Test GPU", "memory_mb": 81920},
      {"index": 1, "uuid": "GPU-bbb", "name": "Test GPU", "memory_mb": 81920},
      {"index": 2, "uuid": "GPU-ccc", "name": "Small GPU", "memory_mb": 40960},
      {"index": 3, "uuid": "GPU-ddd", "name": "Small GPU", "memory_mb": 40960}]})"));

  json filtered = json::parse(kInventory);
  filtered["devices"] = {3, 1};
  auto some = registry_.resources("gpu", filtered.dump());
  ASSERT_TRUE(some.is_ok()) << some.message();
  ASSERT_EQ((*some)["gpus"].size(), 2u);
  EXPECT_EQ((*some)["gpus"][0]["uuid"], "GPU-bbb");  // by index, as assigned
  EXPECT_EQ((*some)["gpus"][1]["uuid"], "GPU-ddd");

  auto none = registry_.resources("gpu", R"({"nvml_library": "/nonexistent/libnvidia-ml.so.1"})");
  ASSERT_TRUE(none.is_ok()) << none.message();
  EXPECT_EQ(*none, json::parse(R"({"gpus": []})"));
}

// The host keeps jobs a worker can never run queued: the claim's rule
// (quern.gpu_fits) and the plugin must agree on what can be met, and the
// host's request parser on the messages for bad args.
TEST_F(GpuExecutorTest, HostCapacityLogicAgreesWithThePlugin) {
  auto resources = registry_.resources("gpu", kInventory);
  ASSERT_TRUE(resources.is_ok()) << resources.message();
  auto capacity = quern::worker::gpu_capacity_from_resources(*resources);
  ASSERT_TRUE(capacity.is_ok()) << capacity.message();
  auto executor = create(kInventory);
  for (const json& req : {json{{"gpus", 5}}, json{{"gpus", 4}}, json{{"memory_mb", 100000}},
                          json{{"gpus", 3}, {"memory_mb", 81920}}, json{{"gpus", 2}, {"memory_mb", 81920}},
                          json{{"gpus", 4}, {"memory_mb", 40960}}, json::object()}) {
    SCOPED_TRACE(req.dump());
    json args = req;
    args["command"] = {"true"};
    auto request = quern::jobs::gpu_request_from_args(args);
    ASSERT_TRUE(request.is_ok()) << request.message();
    RecordingSink sink;
    const quern_status st = executor->execute(job(args), sink);
    const bool refused = sink.error().value_or("").rfind("gpu request cannot be met", 0) == 0;
    EXPECT_EQ(!refused, quern::testing::claim_would_fit(*capacity, *request)) << sink.error().value_or("");
    if (!refused) {
      EXPECT_EQ(st, QUERN_STATUS_SUCCESS) << sink.error().value_or("");
    }
  }
  for (const json& bad : {json{{"gpus", 0}}, json{{"gpus", "two"}}, json{{"gpus", -2}}, json{{"gpus", 1.5}},
                          json{{"memory_mb", -1}}, json{{"memory_mb", "80g"}}}) {
    SCOPED_TRACE(bad.dump());
    json args = bad;
    args["command"] = {"true"};
    RecordingSink sink;
    ASSERT_EQ(executor->execute(job(args), sink), QUERN_STATUS_FAILURE);
    auto request = quern::jobs::gpu_request_from_args(args);
    ASSERT_FALSE(request.is_ok());
    EXPECT_EQ(request.message(), sink.error().value_or(""));
  }
}

TEST_F(GpuExecutorTest, QuernPluginsShowsTheGpuCapacity) {
  const char* dir = ::getenv("QUERN_PLUGIN_DIR");
  const std::string plugins = dir != nullptr ? dir : QUERN_PLUGIN_DIR;
  // From root_ and without QUERN_CONFIG: no config file adds plugins or settings.
  const std::string out = (root_ / "plugins.txt").string();
  quern::testing::ChildProcess child(
      {"/bin/sh", "-c", "cd \"$0\" && exec env -u QUERN_CONFIG \"$1\" plugins --plugin-dir \"$2\"",
       root_.string(), quern::testing::quern_binary(), plugins},
      out);
  ASSERT_NE(child.wait_exit(std::chrono::seconds(30)), -1) << child.output();
  const std::string text = child.output();
  // Without a driver 0 GPUs; on a GPU machine as many as NVML sees.
  // The ABI the plugin was built with: the current header's.
  const std::string prefix = "\ngpu (ABI 1." + std::to_string(QUERN_ABI_MINOR) + "): ";
  const auto line = text.find(prefix);
  ASSERT_NE(line, std::string::npos) << text;
  EXPECT_NE(text.find("\nRESOURCES\n"), std::string::npos) << text;
  if (void* lib = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL)) {
    ::dlclose(lib);
  } else {
    EXPECT_EQ(text.compare(line, prefix.size() + 7, prefix + "0 GPUs\n"), 0) << text;
  }
  EXPECT_EQ(text.find("\nbash (ABI"), std::string::npos) << "bash reports no resources:\n" << text;
}

// Needs an NVIDIA GPU: the job asks for one device and, through the CUDA
// driver API (ctypes, libcuda.so.1), lists what it can see and allocates
// 256 MB for a moment so that the peak-memory sampling has something to see.
TEST_F(GpuExecutorTest, RealGpuJobSeesExactlyItsAssignedDevice) {
  const char* flag = ::getenv("QUERN_REAL_GPU");
  if (flag == nullptr || std::string(flag) != "1")
    GTEST_SKIP() << "set QUERN_REAL_GPU=1 on a machine with an NVIDIA GPU";
  auto executor = create("{}");
  ASSERT_NE(executor, nullptr);
  ASSERT_TRUE(executor->health().is_ok()) << executor->health().message();
  const std::string code = R"PY(import ctypes, json, time
cuda = ctypes.CDLL("libcuda.so.1")
def ok(r, what):
    if r != 0: raise SystemExit(f"{what} failed: {r}")
ok(cuda.cuInit(0), "cuInit")
n = ctypes.c_int()
ok(cuda.cuDeviceGetCount(ctypes.byref(n)), "cuDeviceGetCount")
uuids = []
for i in range(n.value):
    dev = ctypes.c_int()
    ok(cuda.cuDeviceGet(ctypes.byref(dev), i), "cuDeviceGet")
    raw = (ctypes.c_ubyte * 16)()
    ok(cuda.cuDeviceGetUuid(raw, dev), "cuDeviceGetUuid")
    h = bytes(raw).hex()
    uuids.append(f"GPU-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}")
dev = ctypes.c_int()
ok(cuda.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
ctx = ctypes.c_void_p()
ok(cuda.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev), "cuCtxCreate")
ptr = ctypes.c_uint64()
ok(cuda.cuMemAlloc_v2(ctypes.byref(ptr), 256 << 20), "cuMemAlloc")
time.sleep(1.5)
print(json.dumps({"count": n.value, "uuids": uuids}))
)PY";
  RecordingSink sink;
  ASSERT_EQ(executor->execute(job({{"gpus", 1}, {"python", true}, {"code", code}}), sink),
            QUERN_STATUS_SUCCESS)
      << sink.error().value_or("");
  json result = result_of(sink);
  std::cout << "result: " << result.dump() << "\n";
  ASSERT_EQ(result["gpu"]["devices"].size(), 1u);
  EXPECT_EQ(result["output"]["count"], 1) << "the job saw more than its device";
  EXPECT_EQ(result["output"]["uuids"][0], result["gpu"]["devices"][0]["uuid"]);
  ASSERT_TRUE(result["gpu"]["peak_memory_mb"].is_number()) << result.dump();
  EXPECT_GE(result["gpu"]["peak_memory_mb"].get<int64_t>(), 256);
}

}  // namespace
