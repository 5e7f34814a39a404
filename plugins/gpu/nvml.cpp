// NVML through dlopen; see nvml.h. The declarations below copy NVML's public
// C ABI (types and signatures of nvml.h), which NVIDIA keeps stable: new
// behaviour gets new versioned symbols (_v2, _v3), old ones stay.
#include "nvml.h"

#include <dlfcn.h>

#include <stdexcept>

namespace quern::gpu {

namespace {

using nvmlReturn_t = int;  // an enum in nvml.h; int-sized on every ABI we target
using nvmlDevice_t = struct nvmlDevice_st*;

constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr nvmlReturn_t NVML_ERROR_INSUFFICIENT_SIZE = 7;
constexpr unsigned NVML_DEVICE_UUID_V2_BUFFER_SIZE = 96;
constexpr unsigned NVML_DEVICE_NAME_V2_BUFFER_SIZE = 96;
constexpr unsigned long long NVML_VALUE_NOT_AVAILABLE = ~0ULL;

struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

// nvmlDeviceGetComputeRunningProcesses (unversioned) fills this layout.
struct nvmlProcessInfo_v1_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
};
// ..._v2 and ..._v3 fill this one (nvmlProcessInfo_v2_t / nvmlProcessInfo_t):
// same leading fields, larger stride. Using the wrong stride would misread
// every entry after the first, hence one struct per symbol.
struct nvmlProcessInfo_v2_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};

}  // namespace

struct Nvml::Api {
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;  // optional
  nvmlReturn_t (*count)(unsigned*) = nullptr;
  nvmlReturn_t (*handle_by_index)(unsigned, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  // Newest first; any may be missing (older drivers).
  nvmlReturn_t (*procs_v3)(nvmlDevice_t, unsigned*, nvmlProcessInfo_v2_t*) = nullptr;
  nvmlReturn_t (*procs_v2)(nvmlDevice_t, unsigned*, nvmlProcessInfo_v2_t*) = nullptr;
  nvmlReturn_t (*procs_v1)(nvmlDevice_t, unsigned*, nvmlProcessInfo_v1_t*) = nullptr;

  std::string why(nvmlReturn_t r) const {
    const char* text = error_string != nullptr ? error_string(r) : nullptr;
    return text != nullptr ? std::string(text) + " (" + std::to_string(r) + ")"
                           : "error " + std::to_string(r);
  }
};

namespace {

template <typename Fn>
void bind(void* lib, const char* symbol, Fn& out) {
  out = reinterpret_cast<Fn>(::dlsym(lib, symbol));
}

// Fills `infos` through `call`, growing the buffer while NVML says it is too
// small (processes may start between the calls).
template <typename Info, typename Call>
std::optional<std::vector<NvmlProcess>> list_processes(Call call, nvmlDevice_t device) {
  std::vector<Info> infos(16);
  for (int attempt = 0; attempt < 4; ++attempt) {
    unsigned n = static_cast<unsigned>(infos.size());
    nvmlReturn_t r = call(device, &n, infos.data());
    if (r == NVML_ERROR_INSUFFICIENT_SIZE) {
      infos.resize(static_cast<std::size_t>(n) + 16);
      continue;
    }
    if (r != NVML_SUCCESS) return std::nullopt;
    std::vector<NvmlProcess> out;
    for (unsigned i = 0; i < n && i < infos.size(); ++i) {
      NvmlProcess p;
      p.pid = infos[i].pid;
      if (infos[i].usedGpuMemory != NVML_VALUE_NOT_AVAILABLE) p.used_bytes = infos[i].usedGpuMemory;
      out.push_back(p);
    }
    return out;
  }
  return std::nullopt;
}

}  // namespace

std::unique_ptr<Nvml> Nvml::open(const std::string& library, std::string* why) {
  // RTLD_LOCAL: NVML's symbols must not leak into the host's namespace.
  void* lib = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = ::dlerror();
    *why = "cannot load " + library + ": " + (err != nullptr ? err : "unknown error");
    return nullptr;
  }
  auto api = std::make_unique<Api>();
  bind(lib, "nvmlInit_v2", api->init);
  bind(lib, "nvmlShutdown", api->shutdown);
  bind(lib, "nvmlErrorString", api->error_string);
  bind(lib, "nvmlDeviceGetCount_v2", api->count);
  bind(lib, "nvmlDeviceGetHandleByIndex_v2", api->handle_by_index);
  bind(lib, "nvmlDeviceGetUUID", api->uuid);
  bind(lib, "nvmlDeviceGetName", api->name);
  bind(lib, "nvmlDeviceGetMemoryInfo", api->memory);
  bind(lib, "nvmlDeviceGetComputeRunningProcesses_v3", api->procs_v3);
  bind(lib, "nvmlDeviceGetComputeRunningProcesses_v2", api->procs_v2);
  bind(lib, "nvmlDeviceGetComputeRunningProcesses", api->procs_v1);
  const char* missing = api->init == nullptr              ? "nvmlInit_v2"
                        : api->shutdown == nullptr        ? "nvmlShutdown"
                        : api->count == nullptr           ? "nvmlDeviceGetCount_v2"
                        : api->handle_by_index == nullptr ? "nvmlDeviceGetHandleByIndex_v2"
                        : api->uuid == nullptr            ? "nvmlDeviceGetUUID"
                        : api->name == nullptr            ? "nvmlDeviceGetName"
                        : api->memory == nullptr          ? "nvmlDeviceGetMemoryInfo"
                                                          : nullptr;
  if (missing != nullptr) {
    *why = library + " has no " + missing + " (driver too old?)";
    ::dlclose(lib);
    return nullptr;
  }
  // Typically NVML_ERROR_DRIVER_NOT_LOADED: the library is installed but no
  // kernel driver runs (a container without the GPU passed in, say).
  if (nvmlReturn_t r = api->init(); r != NVML_SUCCESS) {
    *why = "nvmlInit_v2 failed: " + api->why(r);
    ::dlclose(lib);
    return nullptr;
  }
  std::unique_ptr<Nvml> nvml(new Nvml());
  nvml->lib_ = lib;
  nvml->api_ = std::move(api);
  return nvml;
}

Nvml::~Nvml() {
  if (api_) api_->shutdown();
  if (lib_ != nullptr) ::dlclose(lib_);
}

std::vector<NvmlDevice> Nvml::devices() const {
  unsigned count = 0;
  if (nvmlReturn_t r = api_->count(&count); r != NVML_SUCCESS)
    throw std::runtime_error("nvmlDeviceGetCount_v2 failed: " + api_->why(r));
  std::vector<NvmlDevice> out;
  for (unsigned i = 0; i < count; ++i) {
    nvmlDevice_t handle = nullptr;
    const std::string at = " (device " + std::to_string(i) + ") failed: ";
    if (nvmlReturn_t r = api_->handle_by_index(i, &handle); r != NVML_SUCCESS)
      throw std::runtime_error("nvmlDeviceGetHandleByIndex_v2" + at + api_->why(r));
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = {};
    if (nvmlReturn_t r = api_->uuid(handle, uuid, sizeof uuid); r != NVML_SUCCESS)
      throw std::runtime_error("nvmlDeviceGetUUID" + at + api_->why(r));
    char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = {};
    if (nvmlReturn_t r = api_->name(handle, name, sizeof name); r != NVML_SUCCESS)
      throw std::runtime_error("nvmlDeviceGetName" + at + api_->why(r));
    nvmlMemory_t mem{};
    if (nvmlReturn_t r = api_->memory(handle, &mem); r != NVML_SUCCESS)
      throw std::runtime_error("nvmlDeviceGetMemoryInfo" + at + api_->why(r));
    NvmlDevice d;
    d.index = i;
    d.uuid = uuid;
    d.name = name;
    d.memory_mb = mem.total / (1024 * 1024);
    d.handle = handle;
    out.push_back(std::move(d));
  }
  return out;
}

std::optional<uint64_t> Nvml::used_bytes(void* handle) const {
  nvmlMemory_t mem{};
  if (api_->memory(static_cast<nvmlDevice_t>(handle), &mem) != NVML_SUCCESS) return std::nullopt;
  return mem.used;
}

std::optional<std::vector<NvmlProcess>> Nvml::compute_processes(void* handle) const {
  auto device = static_cast<nvmlDevice_t>(handle);
  // The newest variant first: older ones can fail on newer drivers (and the
  // other way round), so a failure falls through to the next one.
  if (api_->procs_v3 != nullptr)
    if (auto p = list_processes<nvmlProcessInfo_v2_t>(api_->procs_v3, device)) return p;
  if (api_->procs_v2 != nullptr)
    if (auto p = list_processes<nvmlProcessInfo_v2_t>(api_->procs_v2, device)) return p;
  if (api_->procs_v1 != nullptr)
    if (auto p = list_processes<nvmlProcessInfo_v1_t>(api_->procs_v1, device)) return p;
  return std::nullopt;
}

}  // namespace quern::gpu
