// See device_allocator.h.
#include "device_allocator.h"

#include <chrono>

namespace quern::gpu {

DeviceAllocator& DeviceAllocator::process_wide() {
  // A function-local static: constructed on first use, thread-safe, one per
  // loaded copy of this library (the loader opens a file once per process).
  static DeviceAllocator allocator;
  return allocator;
}

std::optional<std::vector<Device>> DeviceAllocator::acquire(const std::vector<Device>& candidates,
                                                            std::size_t k,
                                                            const std::function<int32_t()>& stop,
                                                            const std::function<void()>& on_wait,
                                                            int32_t* stop_reason) {
  bool waited = false;
  while (true) {
    {
      std::unique_lock lock(mu_);
      std::vector<Device> picked;
      for (const Device& d : candidates) {
        if (picked.size() == k) break;
        if (busy_.count(d.uuid) == 0) picked.push_back(d);
      }
      if (picked.size() == k) {
        for (const Device& d : picked) busy_.insert(d.uuid);
        return picked;
      }
      // Sleep until a release or 100 ms, whichever first, then poll stop()
      // below: a cancel must not wait for another job to finish.
      if (waited) freed_.wait_for(lock, std::chrono::milliseconds(100));
    }
    if (!waited) {
      waited = true;
      if (on_wait) on_wait();
    }
    if (int32_t why = stop ? stop() : 0; why != 0) {
      *stop_reason = why;
      return std::nullopt;
    }
  }
}

void DeviceAllocator::release(const std::vector<Device>& devices) {
  {
    std::lock_guard lock(mu_);
    for (const Device& d : devices) busy_.erase(d.uuid);
  }
  freed_.notify_all();
}

std::size_t DeviceAllocator::held() const {
  std::lock_guard lock(mu_);
  return busy_.size();
}

}  // namespace quern::gpu
