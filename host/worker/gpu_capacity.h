// What a worker's GPUs can hold: the capacity side of "a job whose GPU
// request cannot be met on this worker stays queued for a worker that can"
// (docs/GPU.md, "Requests this worker cannot meet").
//
// The capacity comes from the gpu plugin's `resources` (ABI 1.1), read once
// when the worker starts; the request side is read from the job's args at
// submission (jobs::gpu_request_from_args, by the parser the plugin itself
// uses, quern/gpu.hpp). Whether a request fits a claimer is decided in the
// claim (quern.gpu_fits, host/queue/migrations.cpp).
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "host/common/status.h"

namespace quern::worker {

// The whole devices a worker can assign: one entry per GPU, its total memory
// in MB (0 = unknown). Empty: no GPU.
struct GpuCapacity {
  std::vector<int> memory_mb;
};

// From a plugin's resources object, {"gpus": [{"memory_mb": n, ...}, ...]}.
// A missing "gpus" is no GPU (the plugin offers none); anything malformed (not
// an object, "gpus" not an array, an entry that is not an object or whose
// memory_mb is not a non-negative integer) is an error naming the place.
// Values above INT_MAX are clamped to it.
StatusOr<GpuCapacity> gpu_capacity_from_resources(const nlohmann::json& resources);

}  // namespace quern::worker
