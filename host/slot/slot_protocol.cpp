#include "host/slot/slot_protocol.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

namespace quern::slot {
namespace {

bool read_all(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

StatusOr<Frame> read_frame(int fd) {
  char header[5];
  if (!read_all(fd, header, sizeof header)) return Status::unavailable("closed");
  uint32_t length = 0;
  std::memcpy(&length, header, 4);
  if (length < 1 || length > kMaxFrameBytes)
    return Status::error("bad frame length " + std::to_string(length));
  Frame f;
  f.type = header[4];
  f.payload.resize(length - 1);
  if (!read_all(fd, f.payload.data(), f.payload.size())) return Status::unavailable("closed");
  return f;
}

bool FrameWriter::write(char type, std::string_view payload) { return write(type, payload, {}); }

bool FrameWriter::write(char type, std::string_view a, std::string_view b) {
  const uint64_t total = 1 + a.size() + b.size();
  if (total > kMaxFrameBytes) return false;
  const auto length = static_cast<uint32_t>(total);
  char header[5];
  std::memcpy(header, &length, 4);
  header[4] = type;
  iovec iov[3] = {{header, sizeof header},
                  {const_cast<char*>(a.data()), a.size()},
                  {const_cast<char*>(b.data()), b.size()}};
  std::lock_guard lock(mu_);
  int first = 0;
  while (first < 3) {
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = static_cast<size_t>(3 - first);
    // MSG_NOSIGNAL: a peer that died must not raise SIGPIPE here.
    ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    auto done = static_cast<size_t>(w);
    while (first < 3 && done >= iov[first].iov_len) {
      done -= iov[first].iov_len;
      ++first;
    }
    if (first < 3) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + done;
      iov[first].iov_len -= done;
    }
  }
  return true;
}

}  // namespace quern::slot
