// Whole GPUs held exclusively by jobs, shared by every plugin instance in the
// worker process.
//
// The worker runs several slots, each with its own instance of the plugin, so
// "which device is free" cannot live in an instance: it lives in one
// process-wide object (a static in this library, guarded by a mutex). Devices
// are keyed by UUID, so instances that discovered the same device (or were
// given the same inventory) agree on it whatever their index numbering.
//
// Not coordinated across processes: two worker processes on one machine
// must be given disjoint devices (docs/GPU.md).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace quern::gpu {

struct Device {
  unsigned index = 0;
  std::string uuid;
  std::string name;
  uint64_t memory_mb = 0;
  void* nvml_handle = nullptr;  // nullptr when the device came from a configured inventory
};

class DeviceAllocator {
 public:
  // The one allocator of this process.
  static DeviceAllocator& process_wide();

  // Takes k devices of `candidates` (in the caller's order of preference)
  // that no other job holds. While fewer than k are free it waits, calling
  // on_wait() once and stop() about every 100 ms (never under the lock);
  // when stop() returns non-zero it gives up: nullopt, *stop_reason set.
  // Precondition: candidates.size() >= k, else it would wait forever.
  std::optional<std::vector<Device>> acquire(const std::vector<Device>& candidates, std::size_t k,
                                             const std::function<int32_t()>& stop,
                                             const std::function<void()>& on_wait, int32_t* stop_reason);
  // Frees devices taken by acquire and wakes the waiters.
  void release(const std::vector<Device>& devices);
  // How many devices are held right now (for tests and diagnostics).
  std::size_t held() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable freed_;
  std::set<std::string> busy_;  // UUIDs
};

// Devices held for one job; released when it goes out of scope, however the
// job ends (success, failure, timeout, cancel, exception).
class DeviceLease {
 public:
  explicit DeviceLease(std::vector<Device> devices) : devices_(std::move(devices)) {}
  ~DeviceLease() { DeviceAllocator::process_wide().release(devices_); }
  DeviceLease(const DeviceLease&) = delete;
  DeviceLease& operator=(const DeviceLease&) = delete;
  const std::vector<Device>& devices() const { return devices_; }

 private:
  std::vector<Device> devices_;
};

}  // namespace quern::gpu
