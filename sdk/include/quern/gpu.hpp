// The GPU request of a gpu job, as a public contract: what a job's args say
// about the devices it needs. Two sides read it with this one parser: the
// gpu executor plugin (which assigns the devices) and the host (which keeps
// the job queued until a worker that has them claims it, docs/GPU.md). The
// devices a worker offers travel the other way, in the plugin's
// `resources()` text (quern/executor.h): {"gpus": [{"memory_mb": n, ...}]}.
//
//   "gpus":      whole devices, an integer >= 1 (default 1)
//   "memory_mb": each device's total memory in MB, an integer >= 0, or
//                null / absent for any size
//
// Header-only, C++17, templated on the JSON type (nlohmann::json or
// ordered_json) so that it needs no JSON library of its own.
#ifndef QUERN_GPU_HPP
#define QUERN_GPU_HPP

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace quern::sdk {

struct GpuRequestArgs {
  uint64_t gpus = 1;
  std::optional<uint64_t> memory_mb;
};

// A non-negative integer JSON value, or throws std::invalid_argument naming
// it (`what`).
template <typename Json>
uint64_t json_count(const Json& v, const std::string& what) {
  if (!v.is_number_integer() || v.template get<int64_t>() < 0)
    throw std::invalid_argument(what + " must be a non-negative integer");
  return v.template get<uint64_t>();
}

// The request in a job's args. Throws std::invalid_argument with the
// message a bad request fails with. Args that are not an object count as {}.
template <typename Json>
GpuRequestArgs parse_gpu_request(const Json& args) {
  GpuRequestArgs r;
  if (!args.is_object()) return r;
  if (auto it = args.find("gpus"); it != args.end()) {
    r.gpus = json_count(*it, "\"gpus\"");
    if (r.gpus == 0) throw std::invalid_argument("\"gpus\" must be at least 1");
  }
  if (auto it = args.find("memory_mb"); it != args.end() && !it->is_null())
    r.memory_mb = json_count(*it, "\"memory_mb\"");
  return r;
}

}  // namespace quern::sdk

#endif  // QUERN_GPU_HPP
