// A minimal run-time binding of NVML (libnvidia-ml.so.1), loaded with dlopen
// so that the gpu plugin builds without CUDA and loads on machines without
// an NVIDIA driver. Only the handful of functions the plugin needs are
// declared, with NVML's stable C ABI types (nvml.h is not vendored).
//
// Contract: Nvml::open() never throws for a missing library or driver; it
// returns nullptr and says why. A live Nvml holds one nvmlInit reference and
// one dlopen reference, both dropped by its destructor (NVML counts them, so
// several instances in one process are fine). All methods are thread-safe
// (NVML is), and none throws.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace quern::gpu {

struct NvmlDevice {
  unsigned index = 0;
  std::string uuid;  // "GPU-xxxxxxxx-...": what CUDA_VISIBLE_DEVICES accepts
  std::string name;
  uint64_t memory_mb = 0;  // total memory
  void* handle = nullptr;  // nvmlDevice_t, valid while the Nvml lives
};

// One compute process on a device, as NVML reports it.
struct NvmlProcess {
  unsigned pid = 0;
  std::optional<uint64_t> used_bytes;  // nullopt: NVML_VALUE_NOT_AVAILABLE
};

class Nvml {
 public:
  // Loads `library` (default "libnvidia-ml.so.1"), resolves the symbols and
  // calls nvmlInit_v2. nullptr, with *why set, when any of that fails.
  static std::unique_ptr<Nvml> open(const std::string& library, std::string* why);
  ~Nvml();
  Nvml(const Nvml&) = delete;
  Nvml& operator=(const Nvml&) = delete;

  // Every device NVML sees, in NVML index order. Throws std::runtime_error
  // naming the failing call (a driver that half works is worth a clear error).
  std::vector<NvmlDevice> devices() const;
  // Used memory of the device in bytes, nullopt on error.
  std::optional<uint64_t> used_bytes(void* handle) const;
  // Compute processes on the device; nullopt when NVML cannot say (no
  // variant of the call exists or it fails).
  std::optional<std::vector<NvmlProcess>> compute_processes(void* handle) const;

 private:
  Nvml() = default;
  struct Api;
  void* lib_ = nullptr;
  std::unique_ptr<Api> api_;
};

}  // namespace quern::gpu
