// A worker's jobs directory, held for the worker's life.
//
// Each job runs in <jobs dir>/<id>-<attempt>. Job ids are unique only within
// one database, so the directory is named after the worker id; two running
// workers with the same id on one machine would remove each other's job
// directories. JobsDir makes that a start-up error instead: it takes an
// exclusive lock on <jobs dir>/.lock (released by the kernel when the process
// dies, so a crashed worker never blocks its successor), and clears the job
// directories a crashed predecessor left behind.
//
// Thread-safety: acquire() and release() from one thread (the worker's start
// and wait); the object holds no other state.
#pragma once

#include <filesystem>
#include <string>
#include "host/common/status.h"

namespace quern::worker {

class JobsDir {
 public:
  JobsDir() = default;
  ~JobsDir() { release(); }
  JobsDir(const JobsDir&) = delete;
  JobsDir& operator=(const JobsDir&) = delete;

  // Creates `dir` if needed, locks it for `worker_id`, and removes the
  // <id>-<attempt> entries left there (nothing else). Fails, naming the
  // directory, when another live process holds the lock.
  Status acquire(const std::filesystem::path& dir, const std::string& worker_id);

  // Unlocks; with remove, deletes the directory first. Idempotent.
  void release(bool remove = false);

 private:
  std::filesystem::path dir_;
  int fd_ = -1;
};

}  // namespace quern::worker
