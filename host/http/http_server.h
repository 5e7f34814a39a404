// The HTTP layer of `quern server`: an asynchronous Boost.Beast server with
// keep-alive, hard limits, and a small router. Knows nothing about jobs: the
// API (host/server) registers routes on a Router.
//
// Threading: network I/O runs on `io_threads` threads of one io_context.
// Handlers run on a separate pool of `handler_threads` threads and may block
// (database calls). When every handler thread is busy and
// `max_pending_requests` are queued, new requests get 503. A long poll does
// not hold a handler thread while it waits: its handler answers "not yet"
// (Response::defer, a Deferred) and the connection parks on the I/O threads
// until the deferral is woken, its next check is due, or its deadline passes.
// Router is immutable once the server starts; HttpServer methods are
// thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host/common/status.h"

namespace quern::http {

struct Request {
  std::string method;                              // "GET", "POST", ...
  std::string target;                              // raw request target, e.g. "/api/jobs?status=running"
  std::string path;                                // decoded path without the query, e.g. "/api/jobs/42"
  std::map<std::string, std::string> query;        // decoded query parameters (last wins)
  std::map<std::string, std::string> path_params;  // from {name} segments of the route
  std::map<std::string, std::string> headers;      // names lower-cased
  std::string body;
  std::string remote;  // peer "address:port", for the request log

  // Header value by lower-case name, or "".
  const std::string& header(const std::string& lower_name) const;
};

// Server-sent events: a streaming response's body is produced by a function
// that runs on a handler thread and writes events until it returns or the
// client goes away (send() then returns false). send() and keepalive() block
// until the bytes are written to the socket (at most write_timeout); the
// server notices a client leaving even between sends. Use from the stream's
// own thread only.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Sends one event ("event: <name>\ndata: <line>\n..." + blank line). Returns
  // false once the client has disconnected or the server is stopping.
  virtual bool send(const std::string& event, const std::string& data) = 0;
  // A comment line (": ping") to keep proxies from closing the stream.
  virtual bool keepalive() = 0;
};

class Deferred;
namespace detail {
class Session;
struct WakeState;
}  // namespace detail

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the response is an SSE stream (content type text/event-stream);
  // body is ignored. The function runs on the handler thread that ran the
  // handler (it keeps that thread busy while the stream lasts). Wire format:
  // status, Content-Type: text/event-stream, Cache-Control: no-cache,
  // Connection: keep-alive, Transfer-Encoding: chunked (one chunk per event,
  // sent at once), plus `headers`; when the function returns the last chunk
  // is sent and the server closes the connection.
  std::function<void(EventSink&)> stream;
  // When set, the request is not answered yet: the server parks it and
  // answers later with what `defer` says (see Deferred); every other field is
  // ignored. Set at most one of stream and defer.
  std::shared_ptr<Deferred> defer;
};

// A response that is not ready yet: a long poll's wait, without a handler
// thread. A handler that has nothing to answer yet returns
// Response{.defer = d}; the connection then parks on its I/O executor,
// holding no thread (nor, when the handler gave its connection back, a
// database connection) while it waits, and the server calls, each time on a
// handler thread, never two at once:
//  - resume(), as soon as wake() was called since the last resume() began
//    (or since the deferral was made), or when the next check is due
//    (recheck_within(), at most kMaxRecheck after the last resume() ended,
//    so that a lost wake-up costs at most that): it returns the final
//    response, or nullopt to keep waiting;
//  - expire(), instead of resume(), once deadline() has passed: the final
//    response (e.g. an empty result).
// The final response is written like any handler's (it must not defer or
// stream again: that is answered 500); an exception from either is a 500.
// When the client disconnects, or the server stops, while the request is
// parked, the connection is closed and the server drops its reference at
// once (a resume() already running finishes; its answer is discarded). When
// the handler pool is saturated, a due resume() is retried shortly; at the
// deadline the client gets 503.
//
// Wake sources (a NOTIFY listener, another request) must hold the deferral
// only weakly: give them waker(), not the object, so that a request that
// ended frees its state at once. An implementation keeps copies of what it
// needs from the request (the Request object does not outlive the handler).
//
// Thread-safety: wake() and waker()'s function may be called from any
// thread at any time, also before the handler returned the deferral (the
// wake-up is kept) and after the request ended (nothing happens); they are
// cheap and never block on a handler or the network. resume() and expire()
// run on handler threads, one at a time, with happens-before between them.
class Deferred {
 public:
  static constexpr std::chrono::milliseconds kMaxRecheck{1000};

  explicit Deferred(std::chrono::steady_clock::time_point deadline);
  virtual ~Deferred();
  Deferred(const Deferred&) = delete;
  Deferred& operator=(const Deferred&) = delete;

  virtual std::optional<Response> resume() = 0;
  virtual Response expire() = 0;

  // Asks for a resume() soon (posts to the parked connection).
  void wake();
  // A function that calls wake() while this deferral lives, and does nothing
  // afterwards; it holds the deferral's wake-up state weakly, and releasing
  // its last reference costs nothing (any thread may do it). It returns
  // whether the wake-up will be acted on: false once the request has its
  // final answer (or is gone), so that a wake source can pass the wake-up
  // to another waiter.
  std::function<bool()> waker() const;
  std::chrono::steady_clock::time_point deadline() const { return deadline_; }

 protected:
  // The next resume() without a wake-up comes at most `d` after the current
  // one (or, called from the handler, after the request parks); clamped to
  // [1 ms, kMaxRecheck]. Each resume() starts over from kMaxRecheck. Call
  // from the handler or from resume() only.
  void recheck_within(std::chrono::milliseconds d);

 private:
  friend class detail::Session;
  const std::chrono::steady_clock::time_point deadline_;
  std::atomic<int64_t> recheck_ms_{kMaxRecheck.count()};
  const std::shared_ptr<detail::WakeState> state_;
};

// {"error": {"code": code, "message": message}} with that HTTP status. The one
// shape of every error the API returns.
Response json_error(int status, const std::string& code, const std::string& message);
Response json_response(int status, const std::string& json_text);

using Handler = std::function<Response(const Request&)>;

struct Route {
  std::string method;
  std::string pattern;     // "/api/jobs/{id}/logs": literal segments and {name} segments
  std::string permission;  // e.g. "jobs.read"; "" = anonymous (only /healthz, /readyz)
  std::string summary;     // one line, for docs and the OpenAPI check
  Handler handler;
};

class Router {
 public:
  // Throws std::invalid_argument for a malformed pattern (not starting with
  // '/', an empty {} name, {name+} not last): routes are set up at startup.
  void add(Route route);
  const std::vector<Route>& routes() const { return routes_; }
  // The route for method+path; fills path_params. Sets *path_known when some
  // route has this path with another method (→ 405 instead of 404).
  // `path` is the raw, still percent-encoded path of the target (no query);
  // each segment is decoded before comparison or capture. When several
  // routes match, the most specific wins (literal > {name} > {name+},
  // compared segment by segment). A final "{name+}" segment captures the
  // rest of the path, slashes included (at least one character).
  const Route* match(const std::string& method, const std::string& path,
                     std::map<std::string, std::string>& path_params, bool* path_known) const;
  // Methods of the routes matching `path` (raw, as for match), sorted; HEAD
  // is included when GET is (the server answers HEAD with a GET route). For
  // the Allow header of a 405.
  std::vector<std::string> allowed_methods(const std::string& path) const;
  // Called before every routed handler (authentication, permission check);
  // returning a Response short-circuits the handler.
  std::function<std::optional<Response>(const Route&, const Request&)> before;

 private:
  struct PatternSegment {
    enum class Kind { Literal, Param, Rest } kind = Kind::Literal;
    std::string text;  // the literal, or the parameter's name
  };
  bool matches(size_t index, const std::string& path, std::map<std::string, std::string>& params) const;
  bool more_specific(size_t a, size_t b) const;

  std::vector<Route> routes_;
  std::vector<std::vector<PatternSegment>> compiled_;  // parallel to routes_
};

struct ServerLimits {
  size_t max_header_bytes = 16 * 1024;            // → 431
  size_t max_body_bytes = 8 * 1024 * 1024;        // → 413
  std::chrono::milliseconds read_timeout{10000};  // a request must arrive whole within this → 408
  std::chrono::milliseconds idle_timeout{60000};  // keep-alive connection with no request → closed
  size_t max_connections = 2048;                  // beyond: accepted and answered 503, closed
  size_t max_pending_requests = 1024;             // queued for handler threads beyond: 503
  int io_threads = 2;
  int handler_threads = 16;
  // A response, or one SSE event, must be written within this; else the
  // client is not reading and the connection is closed (send() → false).
  std::chrono::milliseconds write_timeout{30000};
};

// Told of every answered request, for metrics. Called on the server's I/O
// and handler threads, concurrently: implementations are thread-safe and
// quick, and never throw.
class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  // Once per response written (a stream: once it ended). `route` is the
  // matched route's pattern, "" when none matched (404, 405) or the request
  // was refused before routing (400, 408, 413, 431, overload 503); `method`
  // is the route's method, "" with no route.
  virtual void request_done(const std::string& method, const std::string& route, int status,
                            std::chrono::duration<double> elapsed) = 0;
  // An SSE stream's function starts (+1) or returns (-1).
  virtual void streams_changed(int delta) = 0;
};

class HttpServer {
 public:
  // observer: may be null; must outlive the server.
  HttpServer(const Router& router, ServerLimits limits, RequestObserver* observer = nullptr);
  ~HttpServer();  // stop()
  // Binds and starts serving. port 0 = any free port (see port()).
  Status start(const std::string& address, uint16_t port);
  uint16_t port() const;
  // Stops accepting, closes connections, ends streams (EventSink::send
  // returns false) and deferred requests (closed unanswered; the server
  // releases each Deferred), drops queued requests, joins threads. Waits for
  // running handlers (and resume() calls) to return, so a stream function
  // must check send()'s result.
  // Safe to call twice; must not be called from a handler.
  void stop();
  // Open connections counted against max_connections (for /metrics, tests).
  size_t active_connections() const;
  // Requests queued for a handler thread and not yet started.
  size_t pending_requests() const;
  // Requests parked as deferred (Response::defer), holding no handler thread.
  size_t deferred_requests() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quern::http
