// The GPU request in a gpu job's args — "gpus" (whole devices, default 1, at
// least 1) and "memory_mb" (each device's total memory, optional, null =
// absent) — parsed once for both sides that need it: the gpu plugin, which
// assigns the devices, and the host, which keeps a job queued until a worker
// with the devices claims it (host/worker/gpu_capacity.h). Header-only, on
// nlohmann/json alone: the host cannot link plugin code.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace quern::gpu {

struct GpuRequestArgs {
  uint64_t gpus = 1;
  std::optional<uint64_t> memory_mb;
};

// An unsigned integer field, or throws naming it.
template <typename Json>
uint64_t as_count(const Json& v, const std::string& what) {
  if (!v.is_number_integer() || v.template get<int64_t>() < 0)
    throw std::invalid_argument(what + " must be a non-negative integer");
  return v.template get<uint64_t>();
}

// Throws std::invalid_argument with the message a bad request fails with.
// Args that are not an object count as {}.
template <typename Json>
GpuRequestArgs parse_gpu_request(const Json& args) {
  GpuRequestArgs r;
  if (!args.is_object()) return r;
  if (auto it = args.find("gpus"); it != args.end()) {
    r.gpus = as_count(*it, "\"gpus\"");
    if (r.gpus == 0) throw std::invalid_argument("\"gpus\" must be at least 1");
  }
  if (auto it = args.find("memory_mb"); it != args.end() && !it->is_null())
    r.memory_mb = as_count(*it, "\"memory_mb\"");
  return r;
}

}  // namespace quern::gpu
