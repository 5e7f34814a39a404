// One HTTP connection of HttpServer (internal to host/http).
//
// A session's network state (socket, timer, buffers, phase) is touched only
// on its strand (the socket's executor). Handler threads reach it through
// net::post, SSE writers through the stream state below, which is guarded by
// stream_mu_, and the wake sources of a deferred response through its
// WakeState (deferred.h), which posts to the strand.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "host/http/handler_pool.h"
#include "host/http/http_server.h"

namespace quern::http::detail {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

class Session;

// What the server and its sessions share. Owned jointly (shared_ptr), so a
// session destroyed late (by the io_context's destructor) finds it alive.
struct ServerShared {
  ServerShared(const Router& r, ServerLimits l, RequestObserver* o) : router(r), limits(l), observer(o) {}
  const Router& router;  // immutable while serving
  const ServerLimits limits;
  RequestObserver* const observer;  // may be null
  HandlerPool pool;
  std::atomic<bool> stopping{false};
  std::atomic<size_t> active_connections{0};  // sessions counted against max_connections
  std::atomic<size_t> rejecting{0};           // sessions answering 503 "too many connections"
  std::atomic<size_t> deferred{0};            // sessions parked with a deferred response

  // Wake-ups of deferred responses post to sessions' strands from other
  // threads; stop() closes this gate before it stops the io_context, so that
  // none posts to a context being torn down.
  std::mutex io_gate_mu;
  bool io_open = true;  // guarded by io_gate_mu

  // Live sessions, for stop(). stopping is set under sessions_mu so that no
  // session registers after stop() took its snapshot.
  std::mutex sessions_mu;
  std::condition_variable sessions_cv;  // notified when a session unregisters
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;

  // Registers s unless the server is stopping (then returns false).
  bool register_session(const std::shared_ptr<Session>& s);
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  // reject: the connection is over max_connections; it is answered 503 and closed.
  Session(tcp::socket socket, std::shared_ptr<ServerShared> shared, bool reject);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();
  // Any thread: ends a stream at once (send() returns false) and closes the
  // connection on the strand.
  void shutdown();

  // Stream API for the handler thread that runs Response::stream.
  bool stream_write(std::string payload);  // blocks until written; false once closed

 private:
  enum class Phase { Idle, Reading, Handling, Deferred, Writing, Streaming, Lingering, Closed };

  void wait_for_request();
  void await_first_byte();  // Idle: the next byte (or EOF) begins a read
  void begin_read();
  // What the socket holds right now, asked without blocking. A wait for
  // readability is only a hint: epoll is edge-triggered, so a wait may
  // complete on a stale event for bytes an earlier read already took.
  enum class Readable { Bytes, Nothing, Closed };
  Readable probe_readable();
  void on_header(beast::error_code ec);
  void read_body();
  void on_body(beast::error_code ec);
  void on_read_error(beast::error_code ec);
  void dispatch(beast::http::request<beast::http::string_body> req);
  void run_handler(const Route* route, const std::shared_ptr<Request>& req);  // handler thread
  void write_response(Response resp, bool close_after);
  void on_written(beast::error_code ec, size_t bytes, bool keep_alive);
  void send_error(int status, const std::string& code, const std::string& message);

  void run_stream(Response& resp);  // handler thread
  void begin_stream(std::string head);
  void watch_disconnect();
  void enqueue_write(std::string data, bool counted);
  void write_next();
  void end_stream();

  // Deferred responses (deferred.cpp).
  void park(std::shared_ptr<Deferred> d);
  void on_deferred_wake();
  void on_deferred_due();
  void start_resume();
  void run_resume(const std::shared_ptr<Deferred>& d, bool last, const Route* route);  // handler thread
  void on_resumed(std::optional<Response> r);
  void answer_deferred(Response r);
  void schedule_check();
  void resume_or_wait(bool woken);  // a resume now (woken, or at the deadline), else the next check
  void watch_deferred_disconnect();
  void end_deferral();  // leaves the deferred state: detaches the wake-ups, drops the Deferred

  void linger_close();
  void drain();
  void close();
  void unregister();

  void arm_timer(std::chrono::milliseconds d);
  void disarm_timer();
  void on_timeout();
  void log_request(int status);

  tcp::socket socket_;
  net::steady_timer timer_;
  std::shared_ptr<ServerShared> shared_;
  const bool reject_;
  std::string remote_;

  // Strand-only state.
  Phase phase_ = Phase::Idle;
  bool closed_ = false;
  bool registered_ = true;  // until unregister()
  uint64_t timer_gen_ = 0;
  bool timed_out_ = false;
  bool keep_alive_ = false;
  bool head_only_ = false;
  beast::flat_buffer buffer_;
  std::optional<beast::http::request_parser<beast::http::string_body>> parser_;
  std::vector<char> drain_buf_;
  size_t drained_ = 0;
  // Request log of the request in progress.
  bool request_active_ = false;
  std::string log_method_ = "-", log_path_ = "-";
  const Route* route_ = nullptr;  // the request's route once matched (for the observer)
  std::chrono::steady_clock::time_point request_start_;
  size_t bytes_sent_ = 0;
  // SSE writes, in order; `counted` entries are events a writer waits for.
  struct PendingWrite {
    std::string data;
    bool counted;
  };
  std::deque<PendingWrite> writes_;
  bool writing_ = false;
  bool stream_ending_ = false;
  // A parked deferred response (Phase::Deferred).
  std::shared_ptr<Deferred> deferred_;
  bool resuming_ = false;         // its resume() or expire() runs on a handler thread
  uint64_t defer_watch_gen_ = 0;  // tells a stale disconnect watch from the current one

  // Shared with the stream's handler thread; guarded by stream_mu_.
  std::mutex stream_mu_;
  std::condition_variable stream_cv_;
  bool stream_closed_ = false;
  uint64_t stream_enqueued_ = 0;
  uint64_t stream_written_ = 0;
};

// SSE wire format of one event (without the chunk framing).
std::string format_sse_event(const std::string& event, const std::string& data);

}  // namespace quern::http::detail
