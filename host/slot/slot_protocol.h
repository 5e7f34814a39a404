// The frames a worker and its slot process exchange over a stream socket
// (slot_process.h, slot_main.cpp). A frame is a 4-byte length (of type and
// payload, host byte order: both ends are the same binary's build), a type
// byte, and the payload. One request at a time; the slot process answers
// each with frames ending in a terminal one.
//
//   worker → slot                      slot → worker
//   'C' {"plugin": file, "config": c}  'c' "" (ready) or an error message
//   'E' job JSON                       'L' stream (4 bytes) + line   (any number, while it runs)
//                                      'G' process group (8 bytes)   (any number)
//                                      'D' status (4) + result length (4) + result + error
//   'P' script JSON                    'p' "" (prepared) or an error message
//   'H' ""                             'h' "" (healthy) or why not
//
// On a second socket, the worker sends 'I' (call the plugin's interrupt())
// and nothing comes back. The stop reason the plugin's is_cancelled()
// answers is an int32 in a shared memory page the worker writes.
//
// Thread-safety: a FrameWriter may be used from several threads (it locks);
// read_frame from one thread per socket.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "host/common/status.h"

namespace quern::slot {

// Frames larger than this are a protocol error (a job document is at most
// the API's 8 MiB body; a result at most 4 MiB).
inline constexpr uint32_t kMaxFrameBytes = 64u << 20;

struct Frame {
  char type = 0;
  std::string payload;
};

// Reads one whole frame (blocking, retrying on EINTR). Errors: end of stream
// ("closed", code unavailable) or a bad length (internal).
StatusOr<Frame> read_frame(int fd);

class FrameWriter {
 public:
  explicit FrameWriter(int fd) : fd_(fd) {}
  // Writes one frame whole; false when the peer is gone.
  bool write(char type, std::string_view payload);
  bool write(char type, std::string_view a, std::string_view b);  // payload a + b, one frame

 private:
  int fd_;
  std::mutex mu_;
};

}  // namespace quern::slot
