// Implementation of gpu_capacity.h.
#include "host/worker/gpu_capacity.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <optional>
#include <string>

namespace quern::worker {
namespace {

// A non-negative integer JSON value as an int, clamped to INT_MAX; nullopt
// when it is not one (an integer whose int64 value is negative is refused,
// whether nlohmann stored it signed or unsigned).
std::optional<int> non_negative_int(const nlohmann::json& v) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0) return std::nullopt;
  return static_cast<int>(std::min<int64_t>(v.get<int64_t>(), INT_MAX));
}

}  // namespace

StatusOr<GpuCapacity> gpu_capacity_from_resources(const nlohmann::json& resources) {
  const std::string what = "gpu resources: ";
  if (!resources.is_object())
    return Status::error(what + "must be a JSON object, got " + std::string(resources.type_name()));
  GpuCapacity capacity;
  auto gpus = resources.find("gpus");
  if (gpus == resources.end()) return capacity;
  if (!gpus->is_array()) return Status::error(what + "\"gpus\" must be an array");
  for (std::size_t i = 0; i < gpus->size(); ++i) {
    const nlohmann::json& d = (*gpus)[i];
    const std::string at = what + "gpus[" + std::to_string(i) + "]";
    if (!d.is_object()) return Status::error(at + " must be an object");
    auto memory = d.find("memory_mb");
    if (memory == d.end()) return Status::error(at + " has no \"memory_mb\"");
    std::optional<int> mb = non_negative_int(*memory);
    if (!mb) return Status::error(at + ".memory_mb must be a non-negative integer");
    capacity.memory_mb.push_back(*mb);
  }
  return capacity;
}

}  // namespace quern::worker
