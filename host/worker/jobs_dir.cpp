#include "host/worker/jobs_dir.h"
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

namespace quern::worker {
namespace {

// "<digits>-<digits>": the name Worker gives a job's working directory.
bool is_job_dir_name(const std::string& name) {
  size_t dash = name.find('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (i != dash && (name[i] < '0' || name[i] > '9')) return false;
  return true;
}

}  // namespace

Status JobsDir::acquire(const std::filesystem::path& dir, const std::string& worker_id) {
  release();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::error("cannot create the jobs directory " + dir.string() + ": " + ec.message());
  // Jobs that run as another user (sandbox.h's job user) pass through it to
  // their own directories; none may list it.
  std::filesystem::permissions(dir,
                               std::filesystem::perms::owner_all | std::filesystem::perms::group_exec |
                                   std::filesystem::perms::others_exec,
                               ec);
  std::filesystem::path lock = dir / ".lock";
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::error("cannot open " + lock.string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK)
      return Status::conflict("worker id '" + worker_id +
                              "' is in use by another running worker on this machine (it holds " +
                              lock.string() + "); give each worker its own --worker-id");
    return Status::error("cannot lock " + lock.string() + ": " + std::strerror(err));
  }
  fd_ = fd;
  dir_ = dir;
  // Whatever a crashed predecessor left: no live process owns these now.
  std::vector<std::filesystem::path> stale;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    if (is_job_dir_name(it->path().filename().string())) stale.push_back(it->path());
  for (const auto& p : stale) std::filesystem::remove_all(p, ec);
  return Status::ok();
}

void JobsDir::release(bool remove) {
  if (fd_ < 0) return;
  if (remove) {
    // Removed before unlocking: a successor that starts meanwhile is told the
    // id is in use rather than sharing a directory that is being deleted.
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ::close(fd_);
  fd_ = -1;
  dir_.clear();
}

}  // namespace quern::worker
