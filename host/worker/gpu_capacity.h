// What a worker's GPUs can hold, and what a gpu job asks for: the pure logic
// behind "a job whose GPU request cannot be met on this worker stays queued
// for a worker that can" (docs/GPU.md, "Requests this worker cannot meet").
//
// The capacity comes from the gpu plugin's `resources` (ABI 1.1), read once
// when the worker starts; the request from the job's args, by the parser the
// plugin itself uses (plugins/gpu/gpu_request.h), so the messages are the
// same. Whether a request fits a claimer is decided in the claim
// (quern.gpu_fits, host/queue/migrations.cpp).
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

// A gpu job's request: `gpus` whole devices, each with at least `memory_mb`
// MB of total memory (0 = any size).
struct GpuRequest {
  int gpus = 1;
  int memory_mb = 0;
};

// From a plugin's resources object, {"gpus": [{"memory_mb": n, ...}, ...]}.
// A missing "gpus" is no GPU (the plugin offers none); anything malformed (not
// an object, "gpus" not an array, an entry that is not an object or whose
// memory_mb is not a non-negative integer) is an error naming the place.
// Values above INT_MAX are clamped to it.
StatusOr<GpuCapacity> gpu_capacity_from_resources(const nlohmann::json& resources);

// From a gpu job's args: "gpus" (default 1, at least 1), "memory_mb"
// (optional, null = absent). Non-object args count as {} (as in the plugin).
// Errors read "gpu job args: ...", the plugin's failure text for the same
// args. Values above INT_MAX are clamped to it (the queue then refuses a
// request over 1024 GPUs at submission).
StatusOr<GpuRequest> gpu_request_from_args(const nlohmann::json& args);

}  // namespace quern::worker
