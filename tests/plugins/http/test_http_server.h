// A small HTTP/1.1 server for the http executor's tests (Boost.Beast, sync),
// on 127.0.0.1 with an ephemeral port. One thread accepts; each connection
// gets its own thread, serves one request and closes (no keep-alive, so no
// idle connection outlives a test).
//
// Routes:
//   /echo                 200 JSON {"method","target","path","query","headers","body"}
//   /json                 200 application/json {"hello":"world","n":[1,2,3]}
//   /text                 200 text/plain UTF-8 text
//   /binary               200 application/octet-stream, bytes that are not UTF-8
//   /status/NNN           status NNN, JSON {"status": NNN}
//   /redirect/N           302 to /redirect/N-1; /redirect/0 answers 200 "done"
//   /redirect-to?location=URL   302 to URL (percent-decoded)
//   /big?bytes=N[&chunked=1]    N bytes of 'x' (chunked: no Content-Length)
//   /hang                 answers only when the server stops
//
// Thread-safety: all public methods may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace quern::testing {

class TestHttpServer {
 public:
  TestHttpServer();
  ~TestHttpServer();  // releases /hang requests, closes connections, joins threads
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  uint16_t port() const { return port_; }
  // http://127.0.0.1:<port><path>
  std::string url(std::string_view path) const;
  // Connections accepted so far.
  int connections() const { return connections_.load(); }
  // /hang requests currently waiting.
  int hanging() const { return hanging_.load(); }

 private:
  struct State;
  struct Connection;
  void accept_loop();
  void serve(Connection& connection);

  std::unique_ptr<State> state_;
  uint16_t port_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<int> hanging_{0};
  std::thread acceptor_thread_;
};

}  // namespace quern::testing
