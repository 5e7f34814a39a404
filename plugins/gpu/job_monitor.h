// What the gpu plugin watches while a job's process runs:
//  - JobProxy: a callback table that forwards everything to the host's and,
//    on the way, remembers the job's process group (the sampler needs it)
//    and the last stdout lines (the result's stdout_tail);
//  - MemorySampler: a thread that samples GPU memory every interval through
//    NVML and keeps the peak.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "device_allocator.h"
#include "nvml.h"
#include "quern/executor.hpp"

namespace quern::gpu {

class JobProxy {
 public:
  // `inner` must outlive the proxy; the proxy lives for one execute().
  explicit JobProxy(const quern::sdk::JobContext& inner);
  JobProxy(const JobProxy&) = delete;
  JobProxy& operator=(const JobProxy&) = delete;

  // A context to hand to run_process; valid while this proxy lives.
  const quern::sdk::JobContext& context() const { return context_; }
  // The group last reported by run_process (0 = none yet / gone).
  const std::atomic<int64_t>& process_group() const { return pgid_; }
  // The last stdout lines (at most 20 lines and about 4 KB), newline-joined.
  std::string stdout_tail() const;

 private:
  static JobProxy* self(quern_job_ctx* ctx) { return reinterpret_cast<JobProxy*>(ctx); }
  static void log_line(quern_job_ctx* ctx, int32_t stream, quern_str line);
  static void progress(quern_job_ctx* ctx, double fraction);
  static int32_t is_cancelled(quern_job_ctx* ctx);
  static void set_result(quern_job_ctx* ctx, quern_str json);
  static void set_error(quern_job_ctx* ctx, quern_str message);
  static void set_process_group(quern_job_ctx* ctx, int64_t pgid);

  const quern::sdk::JobContext& inner_;
  quern_job_callbacks table_{};
  quern::sdk::JobContext context_;
  std::atomic<int64_t> pgid_{0};
  mutable std::mutex mu_;
  std::deque<std::string> tail_;
  std::size_t tail_bytes_ = 0;
};

// Peak GPU memory of one job on its devices. Per process when NVML reports
// processes of the job's group (the processes' own usage, summed over the
// job's devices); else, e.g. in a container whose pids NVML cannot map, the
// growth of each device's used memory since the job started (the devices
// are exclusive to the job within this worker, so that growth is the job's
// unless something outside Quern uses them).
class MemorySampler {
 public:
  MemorySampler(const Nvml& nvml, const std::vector<Device>& devices, const std::atomic<int64_t>& pgid,
                std::chrono::milliseconds interval);
  ~MemorySampler();
  MemorySampler(const MemorySampler&) = delete;
  MemorySampler& operator=(const MemorySampler&) = delete;

  // Stops sampling; the peak in MB (nullopt: NVML never answered) and how it
  // was measured ("processes" or "device_used_delta").
  std::optional<uint64_t> finish(std::string* method);

 private:
  void run();
  void sample();

  const Nvml& nvml_;
  std::vector<Device> devices_;
  const std::atomic<int64_t>& pgid_;
  std::chrono::milliseconds interval_;
  std::vector<std::optional<uint64_t>> baseline_;
  std::optional<uint64_t> peak_processes_, peak_delta_;  // bytes
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace quern::gpu
