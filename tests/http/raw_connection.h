// A raw TCP client for abuse tests: sends exactly the bytes a test wants, as
// slowly or as partially as it wants, and reads with deadlines. Not
// thread-safe; one per test thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quern::testing {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

class RawConnection {
 public:
  explicit RawConnection(uint16_t port);  // connects to 127.0.0.1:port; see is_open()
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool is_open() const { return fd_ >= 0; }
  // Sends all of data within timeout. False if the peer closed/reset or the
  // deadline passed (the socket stays open).
  bool send_all(std::string_view data, std::chrono::milliseconds timeout);
  // Reads what is available within timeout into the buffer. False once the
  // peer closed (EOF or reset) or nothing arrived in time.
  bool read_some(std::chrono::milliseconds timeout);
  // True if bytes are readable (or EOF) right now, without waiting.
  bool readable_now();
  // Reads until one whole response (Content-Length framed) is buffered, then
  // removes it from the buffer. nullopt on timeout or close before that.
  std::optional<RawResponse> read_response(std::chrono::milliseconds timeout);
  // Waits for EOF or reset; true if the peer closed within timeout.
  bool wait_closed(std::chrono::milliseconds timeout);
  bool peer_closed() const { return peer_closed_; }
  std::string& buffer() { return buffer_; }
  void close();

 private:
  // Parses one response from buffer_; nullopt if incomplete.
  std::optional<RawResponse> take_response();

  int fd_ = -1;
  bool peer_closed_ = false;
  std::string buffer_;
};

// The first of conns with bytes (or EOF) to read, waiting up to timeout;
// null if none had any by then.
RawConnection* first_readable(const std::vector<std::unique_ptr<RawConnection>>& conns,
                              std::chrono::milliseconds timeout);

}  // namespace quern::testing
