// The gpu executor: runs a job's program on whole NVIDIA GPUs assigned to it
// exclusively. docs/GPU.md is the user-facing description.
//
// Config (create): {"inventory": [{"index", "uuid", "name", "memory_mb"}, ...]
// (optional: the devices, instead of asking NVML), "nvml_library":
// "libnvidia-ml.so.1", "devices": [index, ...] (optional: use only these),
// "python": "/usr/bin/python3", "bash": "/bin/bash", "sample_interval_ms": 200}.
// Without an inventory, NVML is loaded with dlopen and asked for the devices
// once, here; no library or no driver is not an error: the instance has zero
// GPUs and health() says so.
//
// Job args: {"gpus": k (default 1), "memory_mb": m (optional, per device,
// total memory), "command": [argv...] | "code": text (else the job's own code),
// "python": bool (code is a python script; else a bash script)}.
//  - a request no device set of this worker can meet (k > GPUs, too little
//    memory) → FAILURE "gpu request cannot be met on this worker: ..."; zero
//    GPUs → FAILURE "no GPUs on this worker ...". Neither is retried here:
//    routing to a capable worker is the host's job, from what resources()
//    reports (docs/GPU.md); these failures are the fallback;
//  - else k devices are taken from the process-wide DeviceAllocator (waiting,
//    while polling is_cancelled, when other slots hold them), preferring the
//    smallest devices that fit so big ones stay free for big requests;
//  - the program runs through run_process in the job's workdir with the
//    host's env plus CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES set to the
//    devices' UUIDs and CUDA_DEVICE_ORDER=PCI_BUS_ID;
//  - the devices are released when execute returns, however it returns.
// Result: {"exit_code", "output" (last stdout line if JSON, else null),
// "stdout_tail"?, "gpu": {"devices": [{"index","uuid","name"}],
// "peak_memory_mb": n | null, "peak_memory_method"?}}. Status as in bash:
// exit ≠ 0 / signal → FAILURE, timeout → TIMEOUT, cancel / shutdown /
// interrupt() → CANCELED.
//
// Resources (ABI 1.1): {"gpus": [{"index","uuid","name","memory_mb"}, ...]},
// the devices after the "devices" filter; {"gpus": []} with zero GPUs.
//
// Thread-safety: one execute at a time per instance (the host's rule);
// interrupt() from any thread; instances share only the allocator.
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "device_allocator.h"
#include "job_monitor.h"
#include "nvml.h"
#include "quern/executor.hpp"
#include "quern/gpu.hpp"
#include "quern/limits.h"
#include "quern/process.hpp"

namespace quern::gpu {
namespace {

using nlohmann::ordered_json;
using quern::sdk::JobContext;

// realpath of an interpreter, or "" when it is not there (only jobs that
// need it fail then, with a clear message).
std::string resolve(const std::string& path) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr || ::access(resolved, X_OK) != 0) return {};
  return resolved;
}

std::string plural(std::size_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

// A job's GPU request and program, from its args.
struct Request {
  std::size_t gpus = 1;
  std::optional<uint64_t> memory_mb;
  std::vector<std::string> command;  // empty: run `code`
  std::string code;
  bool python = false;
};

Request parse_request(const ordered_json& job) {
  Request r;
  ordered_json args = ordered_json::object();
  if (auto it = job.find("args"); it != job.end() && it->is_object()) args = *it;
  const sdk::GpuRequestArgs wanted = sdk::parse_gpu_request(args);  // the host routes by the same parse
  r.gpus = wanted.gpus;
  r.memory_mb = wanted.memory_mb;
  if (auto it = args.find("python"); it != args.end()) {
    if (!it->is_boolean()) throw std::invalid_argument("\"python\" must be true or false");
    r.python = it->get<bool>();
  }
  const bool has_command = args.contains("command"), has_code = args.contains("code");
  if (has_command && has_code) throw std::invalid_argument("give \"command\" or \"code\", not both");
  if (has_command) {
    const ordered_json& c = args["command"];
    if (!c.is_array() || c.empty())
      throw std::invalid_argument("\"command\" must be a non-empty array of strings");
    for (const auto& a : c) {
      if (!a.is_string()) throw std::invalid_argument("\"command\" must be a non-empty array of strings");
      r.command.push_back(a.get<std::string>());
    }
  } else if (has_code) {
    if (!args["code"].is_string()) throw std::invalid_argument("\"code\" must be a string");
    r.code = args["code"].get<std::string>();
  } else {
    r.code = job.value("code", std::string());
  }
  if (r.command.empty() && r.code.find_first_not_of(" \t\r\n") == std::string::npos)
    throw std::invalid_argument("nothing to run: give \"command\" (an argv array) or \"code\"");
  return r;
}

class GpuExecutor {
 public:
  explicit GpuExecutor(std::string_view config_json) {
    ordered_json config = config_json.empty() ? ordered_json::object() : ordered_json::parse(config_json);
    if (!config.is_object()) throw std::invalid_argument("gpu: config must be a JSON object");
    python_ = resolve(config.value("python", std::string("/usr/bin/python3")));
    bash_ = resolve(config.value("bash", std::string("/bin/bash")));
    if (auto it = config.find("sample_interval_ms"); it != config.end())
      interval_ = std::chrono::milliseconds(
          std::max<uint64_t>(10, sdk::json_count(*it, "gpu: \"sample_interval_ms\"")));

    if (auto it = config.find("inventory"); it != config.end()) {
      load_inventory(*it);
    } else {
      discover(config.value("nvml_library", std::string("libnvidia-ml.so.1")));
    }
    if (auto it = config.find("devices"); it != config.end()) {
      if (!it->is_array()) throw std::invalid_argument("gpu: \"devices\" must be an array of indices");
      std::set<uint64_t> keep;
      for (const auto& v : *it) keep.insert(sdk::json_count(v, "gpu: \"devices\" entries"));
      devices_.erase(std::remove_if(devices_.begin(), devices_.end(),
                                    [&](const Device& d) { return keep.count(d.index) == 0; }),
                     devices_.end());
    }
    std::sort(devices_.begin(), devices_.end(),
              [](const Device& a, const Device& b) { return a.index < b.index; });
  }

  quern_status execute(std::string_view job_json, JobContext& ctx) {
    interrupted_.store(false);
    ordered_json job = ordered_json::parse(job_json);
    Request req;
    try {
      req = parse_request(job);
    } catch (const std::invalid_argument& e) {
      ctx.set_error(std::string("gpu job args: ") + e.what());
      return QUERN_STATUS_FAILURE;
    }
    if (devices_.empty()) {
      ctx.set_error("no GPUs on this worker" + (health_.empty() ? std::string() : " (" + health_ + ")"));
      return QUERN_STATUS_FAILURE;
    }
    // Best fit: the smallest devices that are big enough, lowest index first.
    std::vector<Device> eligible;
    for (const Device& d : devices_)
      if (!req.memory_mb || d.memory_mb >= *req.memory_mb) eligible.push_back(d);
    std::stable_sort(eligible.begin(), eligible.end(),
                     [](const Device& a, const Device& b) { return a.memory_mb < b.memory_mb; });
    if (eligible.size() < req.gpus) {
      std::string msg =
          "gpu request cannot be met on this worker: the job asks for " + plural(req.gpus, "GPU");
      if (req.memory_mb) msg += " with at least " + std::to_string(*req.memory_mb) + " MB each";
      msg += "; this worker has " + plural(devices_.size(), "GPU");
      if (req.memory_mb) msg += ", " + std::to_string(eligible.size()) + " of them that large";
      ctx.set_error(msg);
      return QUERN_STATUS_FAILURE;
    }
    if (req.command.empty() && (req.python ? python_ : bash_).empty()) {
      ctx.set_error(std::string("gpu: no ") + (req.python ? "python interpreter" : "bash") +
                    " on this worker");
      return QUERN_STATUS_FAILURE;
    }

    int32_t stop_reason = QUERN_RUNNING;
    auto stop = [&]() -> int32_t {
      int32_t why = ctx.cancelled();
      return why == QUERN_RUNNING && interrupted_.load() ? QUERN_CANCEL_REQUESTED : why;
    };
    auto on_wait = [&] {
      ctx.log(QUERN_STREAM_SYSTEM,
              "waiting for " + plural(req.gpus, "GPU") + ": held by other jobs on this worker");
    };
    auto taken = DeviceAllocator::process_wide().acquire(eligible, req.gpus, stop, on_wait, &stop_reason);
    if (!taken) return stopped(ctx, stop_reason, " while waiting for GPUs");
    DeviceLease lease(std::move(*taken));
    return run(job, req, lease.devices(), ctx);
  }

  std::string health() { return health_; }
  void interrupt() { interrupted_.store(true); }

  // Total capacity, not what is free: the host keeps jobs this worker can
  // never run queued for another worker (docs/GPU.md).
  std::string resources() {
    ordered_json gpus = ordered_json::array();
    for (const Device& d : devices_)
      gpus.push_back({{"index", d.index}, {"uuid", d.uuid}, {"name", d.name}, {"memory_mb", d.memory_mb}});
    ordered_json out = ordered_json::object();
    out["gpus"] = std::move(gpus);
    return out.dump();
  }

 private:
  void load_inventory(const ordered_json& inventory) {
    if (!inventory.is_array()) throw std::invalid_argument("gpu: \"inventory\" must be an array");
    std::set<std::string> uuids;
    std::set<unsigned> indices;
    for (std::size_t i = 0; i < inventory.size(); ++i) {
      const ordered_json& e = inventory[i];
      const std::string at = "gpu: inventory[" + std::to_string(i) + "]";
      if (!e.is_object()) throw std::invalid_argument(at + " must be an object");
      Device d;
      d.index = static_cast<unsigned>(e.contains("index") ? sdk::json_count(e["index"], at + ".index") : i);
      if (!e.contains("uuid") || !e["uuid"].is_string() || e["uuid"].get<std::string>().empty())
        throw std::invalid_argument(at + " needs a \"uuid\" string");
      d.uuid = e["uuid"].get<std::string>();
      d.name = e.value("name", "GPU " + std::to_string(d.index));
      d.memory_mb = e.contains("memory_mb") ? sdk::json_count(e["memory_mb"], at + ".memory_mb") : 0;
      if (!uuids.insert(d.uuid).second) throw std::invalid_argument(at + ": duplicate uuid " + d.uuid);
      if (!indices.insert(d.index).second) throw std::invalid_argument(at + ": duplicate index");
      devices_.push_back(std::move(d));
    }
  }

  void discover(const std::string& library) {
    std::string why;
    nvml_ = Nvml::open(library, &why);
    if (!nvml_) {
      health_ = "no NVIDIA driver: 0 GPUs (" + why + ")";
      return;
    }
    try {
      for (NvmlDevice& n : nvml_->devices())
        devices_.push_back(Device{n.index, std::move(n.uuid), std::move(n.name), n.memory_mb, n.handle});
    } catch (const std::exception& e) {
      // A driver that half works: load, but run nothing and say why.
      devices_.clear();
      health_ = std::string("NVML error: 0 GPUs (") + e.what() + ")";
      return;
    }
    if (devices_.empty()) health_ = "NVML sees no device: 0 GPUs";
  }

  static quern_status stopped(JobContext& ctx, int32_t why, const std::string& when) {
    return sdk::stop_status(ctx, why, when);
  }

  quern_status run(const ordered_json& job, const Request& req, const std::vector<Device>& devices,
                   JobContext& ctx) {
    const std::string workdir = job.at("workdir").get<std::string>();
    std::string visible, described;
    for (const Device& d : devices) {
      visible += (visible.empty() ? "" : ",") + d.uuid;
      described +=
          (described.empty() ? "" : ", ") + std::to_string(d.index) + " (" + d.uuid + ", " + d.name + ")";
    }
    ctx.log(QUERN_STREAM_SYSTEM, "assigned " + plural(devices.size(), "GPU") + ": " + described);

    quern::sdk::ProcessSpec spec;
    spec.workdir = workdir;
    if (!req.command.empty()) {
      spec.argv = req.command;
    } else {
      const std::string file = req.python ? "main.py" : "main.sh";
      std::ofstream out(workdir + "/" + file, std::ios::binary | std::ios::trunc);
      out << req.code;
      if (!out.flush()) throw std::runtime_error("gpu: cannot write " + workdir + "/" + file);
      spec.argv = {req.python ? python_ : bash_, file};
    }
    ordered_json env = ordered_json::object();
    if (auto it = job.find("env"); it != job.end() && it->is_object()) env = *it;
    // UUIDs, not indices: NVML numbers devices in PCI order, CUDA by default
    // fastest first, so an index could name another device; a UUID cannot.
    env["CUDA_VISIBLE_DEVICES"] = visible;
    env["NVIDIA_VISIBLE_DEVICES"] = visible;
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
    for (const auto& [name, value] : env.items())
      spec.env.push_back(name + "=" + (value.is_string() ? value.get<std::string>() : value.dump()));

    JobProxy proxy(ctx);
    std::unique_ptr<MemorySampler> sampler;
    if (nvml_) sampler = std::make_unique<MemorySampler>(*nvml_, devices, proxy.process_group(), interval_);
    quern::sdk::ProcessOptions options;
    options.interrupted = &interrupted_;
    quern::sdk::ProcessResult r = quern::sdk::run_process(spec, proxy.context(), options);

    ordered_json gpu;
    gpu["devices"] = ordered_json::array();
    for (const Device& d : devices)
      gpu["devices"].push_back({{"index", d.index}, {"uuid", d.uuid}, {"name", d.name}});
    gpu["peak_memory_mb"] = nullptr;
    if (sampler) {
      std::string method;
      if (auto peak = sampler->finish(&method)) {
        gpu["peak_memory_mb"] = *peak;
        gpu["peak_memory_method"] = method;
      }
    }
    ordered_json result;
    result["exit_code"] = r.term_signal != 0 ? ordered_json(nullptr) : ordered_json(r.exit_code);
    std::string_view last = r.last_stdout_line;
    ordered_json output =
        quern_json_too_deep(last.data(), last.size(), QUERN_MAX_JSON_DEPTH)
            ? ordered_json(ordered_json::value_t::discarded)
            : ordered_json::parse(last.begin(), last.end(), nullptr, /*allow_exceptions=*/false);
    result["output"] = output.is_discarded() ? ordered_json(nullptr) : output;
    if (std::string tail = proxy.stdout_tail(); !tail.empty()) result["stdout_tail"] = tail;
    result["gpu"] = gpu;
    ctx.set_result(result.dump());

    if (r.stop_reason != QUERN_RUNNING) return stopped(ctx, r.stop_reason, "");
    if (r.term_signal != 0 || r.exit_code != 0) {
      std::string msg = r.term_signal != 0 ? "killed by signal " + std::to_string(r.term_signal)
                                           : "exit code " + std::to_string(r.exit_code);
      if (!r.stderr_tail.empty()) msg += "\n" + r.stderr_tail;
      ctx.set_error(msg);
      return QUERN_STATUS_FAILURE;
    }
    return QUERN_STATUS_SUCCESS;
  }

  std::unique_ptr<Nvml> nvml_;  // null with an inventory or without a driver
  std::vector<Device> devices_;
  std::string health_;  // "" = healthy
  std::string python_, bash_;
  std::chrono::milliseconds interval_{200};
  std::atomic<bool> interrupted_{false};
};

}  // namespace
}  // namespace quern::gpu

QUERN_EXECUTOR_PLUGIN(quern::gpu::GpuExecutor, "gpu", "1.0.0", "gpu", "gpu", QUERN_CAP_SPAWNS_PROCESSES)
