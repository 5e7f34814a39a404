// One connection: read a request (with deadlines and limits), hand it to a
// handler thread, write the response, repeat while keep-alive. See
// http_session.h for the threading rules; a deferred response's parking is
// in deferred.cpp.
#include "host/http/http_session.h"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <limits>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "host/common/utf8.h"
#include "host/http/url_codec.h"
#include "host/log/log.h"

namespace quern::http::detail {

namespace http = beast::http;

namespace {

// After an error response or Connection: close, unread client bytes are
// drained for up to this long before the close, so that the close does not
// turn into a TCP reset that destroys the response before the client reads it.
constexpr std::chrono::milliseconds kLingerTimeout{1000};
constexpr size_t kLingerMaxBytes = 16 * 1024 * 1024;

std::string sanitize_header_value(const std::string& v) {
  std::string out = v;
  out.erase(
      std::remove_if(out.begin(), out.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; }),
      out.end());
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Beast 1.74 uses boost::string_view.
std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

bool is_http_parse_error(const beast::error_code& ec) {
  return ec.category() == beast::http::make_error_code(http::error::bad_target).category();
}

}  // namespace

bool ServerShared::register_session(const std::shared_ptr<Session>& s) {
  std::lock_guard lock(sessions_mu);
  if (stopping) return false;
  sessions.emplace(s.get(), s);
  return true;
}

std::string format_sse_event(const std::string& event, const std::string& data) {
  std::string out;
  if (!event.empty()) out += "event: " + sanitize_header_value(event) + "\n";
  // Per the SSE spec a line ends at CRLF, LF or CR: each line of data becomes one data: field.
  size_t start = 0;
  while (true) {
    size_t end = data.find_first_of("\r\n", start);
    out += "data: ";
    out.append(data, start, end == std::string::npos ? std::string::npos : end - start);
    out += "\n";
    if (end == std::string::npos) break;
    start = end + ((data[end] == '\r' && end + 1 < data.size() && data[end + 1] == '\n') ? 2 : 1);
  }
  out += "\n";
  return out;
}

Session::Session(tcp::socket socket, std::shared_ptr<ServerShared> shared, bool reject)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      shared_(std::move(shared)),
      reject_(reject) {
  request_start_ = std::chrono::steady_clock::now();
  beast::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  remote_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
}

Session::~Session() {
  // Destroyed without close() only by the io_context's destructor (stop()
  // gave up waiting): the wake-ups must not find the session anymore.
  if (deferred_) end_deferral();
  unregister();
}

void Session::unregister() {
  if (!registered_) return;
  registered_ = false;
  if (reject_) {
    --shared_->rejecting;
  } else {
    --shared_->active_connections;
  }
  {
    std::lock_guard lock(shared_->sessions_mu);
    shared_->sessions.erase(this);
  }
  shared_->sessions_cv.notify_all();
}

void Session::start() {
  net::post(socket_.get_executor(), [self = shared_from_this()] {
    if (self->closed_) return;
    if (self->shared_->stopping) return self->close();
    if (self->reject_) {
      self->keep_alive_ = false;
      return self->send_error(503, "overloaded", "too many connections; retry later");
    }
    self->wait_for_request();
  });
}

void Session::shutdown() {
  {
    std::lock_guard lock(stream_mu_);
    stream_closed_ = true;
  }
  stream_cv_.notify_all();
  net::post(socket_.get_executor(), [self = shared_from_this()] { self->close(); });
}

// ---- timers -------------------------------------------------------------

void Session::arm_timer(std::chrono::milliseconds d) {
  uint64_t gen = ++timer_gen_;
  timer_.expires_after(d);
  timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
    if (ec || gen != self->timer_gen_ || self->closed_) return;
    self->on_timeout();
  });
}

void Session::disarm_timer() {
  ++timer_gen_;
  timer_.cancel();
}

void Session::on_timeout() {
  if (phase_ == Phase::Deferred) return on_deferred_due();
  if (phase_ == Phase::Reading) {
    // Some bytes of a request arrived but not the whole request: cancel the
    // read; its handler answers 408.
    timed_out_ = true;
    beast::error_code ec;
    socket_.cancel(ec);
    return;
  }
  // Idle keep-alive, a client that does not read, or the end of lingering.
  close();
}

// ---- reading ------------------------------------------------------------

void Session::wait_for_request() {
  phase_ = Phase::Idle;
  if (shared_->stopping) return close();
  if (buffer_.size() > 0) return begin_read();  // a pipelined request is already here
  // Until the first byte, the connection is idle (idle_timeout, silent close);
  // from the first byte on, the whole request must arrive within read_timeout.
  arm_timer(shared_->limits.idle_timeout);
  await_first_byte();
}

void Session::await_first_byte() {
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
    if (self->phase_ != Phase::Idle) return;
    if (ec) return self->close();
    switch (self->probe_readable()) {
      case Readable::Nothing:
        return self->await_first_byte();  // a stale event: the idle deadline stays
      case Readable::Closed:
        return self->close();
      case Readable::Bytes:
        return self->begin_read();
    }
  });
}

Session::Readable Session::probe_readable() {
  char byte;
  const ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return Readable::Bytes;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return Readable::Nothing;
  return Readable::Closed;  // EOF, a reset, or another error
}

void Session::begin_read() {
  phase_ = Phase::Reading;
  timed_out_ = false;
  request_start_ = std::chrono::steady_clock::now();
  bytes_sent_ = 0;
  head_only_ = false;
  log_method_ = log_path_ = "-";
  route_ = nullptr;
  arm_timer(shared_->limits.read_timeout);
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(
      std::min<size_t>(shared_->limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser_->body_limit(shared_->limits.max_body_bytes);
  http::async_read_header(socket_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
}

void Session::on_header(beast::error_code ec) {
  if (closed_) return;
  if (ec) return on_read_error(ec);
  const auto& req = parser_->get();
  request_active_ = true;
  log_method_ = std::string(req.method_string());
  std::string_view target = sv(req.target());
  log_path_ = std::string(target.substr(0, std::min<size_t>(target.find('?'), 200)));
  // A client that waits for "100 Continue" before sending its body (curl does
  // for large bodies) gets it only once the header passed the limits checks:
  // a too-large Content-Length was already refused by the parser (413).
  if (!parser_->is_done() && iequals(sv(req[http::field::expect]), "100-continue")) {
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(socket_, net::buffer(kContinue),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (self->closed_) return;
                       if (ec) return self->on_read_error(ec);
                       self->read_body();
                     });
    return;
  }
  read_body();
}

void Session::read_body() {
  // The deadline may have passed between two reads, when there was nothing to cancel.
  if (timed_out_) return on_read_error(net::error::operation_aborted);
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
}

void Session::on_read_error(beast::error_code ec) {
  if (closed_) return;
  keep_alive_ = false;
  if (timed_out_) {
    return send_error(
        408, "request_timeout",
        "the request did not arrive within " + std::to_string(shared_->limits.read_timeout.count()) + " ms");
  }
  if (ec == http::error::header_limit) {
    return send_error(
        431, "request_header_too_large",
        "request headers exceed " + std::to_string(shared_->limits.max_header_bytes) + " bytes");
  }
  if (ec == http::error::body_limit) {
    return send_error(413, "payload_too_large",
                      "request body exceeds " + std::to_string(shared_->limits.max_body_bytes) + " bytes");
  }
  if (ec == http::error::end_of_stream || ec == http::error::partial_message || !is_http_parse_error(ec)) {
    // The client went away (or the server is closing): nobody to answer.
    return close();
  }
  send_error(400, "bad_request", "malformed HTTP request: " + ec.message());
}

void Session::on_body(beast::error_code ec) {
  if (closed_) return;
  if (ec) return on_read_error(ec);
  disarm_timer();
  phase_ = Phase::Handling;
  dispatch(parser_->release());
  parser_.reset();
}

// ---- handling -----------------------------------------------------------

void Session::dispatch(http::request<http::string_body> msg) {
  keep_alive_ = msg.keep_alive();
  auto req = std::make_shared<Request>();
  req->method = std::string(msg.method_string());
  req->target = std::string(msg.target());
  req->remote = remote_;
  size_t q = req->target.find('?');
  std::string raw_path = req->target.substr(0, q);
  auto path = percent_decode(raw_path, false);
  auto query =
      parse_query(q == std::string::npos ? std::string_view() : std::string_view(req->target).substr(q + 1));
  if (raw_path.empty() || raw_path[0] != '/' || !path || !query) {
    keep_alive_ = false;
    return send_error(400, "bad_request", "malformed request target");
  }
  // Paths and query values become names, filters and SQL parameters: they
  // must be text (valid UTF-8, no NUL) before any handler sees them.
  if (!text::is_storable(*path))
    return write_response(
        json_error(400, "bad_request", "the request path is not valid UTF-8 text (or holds %00)"), false);
  for (const auto& [name, value] : *query) {
    if (!text::is_storable(name) || !text::is_storable(value))
      return write_response(json_error(400, "bad_request",
                                       "query parameter '" + text::to_storable(name.substr(0, 100)) +
                                           "' is not valid UTF-8 text (or holds %00)"),
                            false);
  }
  req->path = std::move(*path);
  req->query = std::move(*query);
  for (const auto& field : msg) {
    std::string name = lower(sv(field.name_string()));
    auto [it, inserted] = req->headers.emplace(name, std::string(field.value()));
    if (!inserted) it->second += ", " + std::string(field.value());  // RFC 9110 5.3
  }
  req->body = std::move(msg.body());

  bool known = false;
  const Route* route = shared_->router.match(req->method, raw_path, req->path_params, &known);
  head_only_ = req->method == "HEAD";  // a HEAD response never has a body
  if (route == nullptr && head_only_)
    route = shared_->router.match("GET", raw_path, req->path_params, &known);
  if (route == nullptr) {
    if (!known) return write_response(json_error(404, "not_found", "no route for " + req->path), false);
    std::string allow;
    for (const auto& m : shared_->router.allowed_methods(raw_path)) allow += (allow.empty() ? "" : ", ") + m;
    Response r =
        json_error(405, "method_not_allowed", req->method + " is not allowed here; allowed: " + allow);
    r.headers.emplace_back("Allow", allow);
    return write_response(std::move(r), false);
  }
  route_ = route;
  auto self = shared_from_this();
  if (!shared_->pool.try_submit([self, route, req] { self->run_handler(route, req); })) {
    write_response(json_error(503, "overloaded", "the server is busy; retry later"), false);
  }
}

void Session::run_handler(const Route* route, const std::shared_ptr<Request>& req) {
  Response resp;
  try {
    std::optional<Response> early;
    if (shared_->router.before) early = shared_->router.before(*route, *req);
    resp = early ? std::move(*early) : route->handler(*req);
  } catch (const std::exception& e) {
    log::error("http", "handler for " + route->method + " " + route->pattern + " threw: " + e.what());
    resp = json_error(500, "internal", "internal server error");
  } catch (...) {
    log::error("http", "handler for " + route->method + " " + route->pattern + " threw");
    resp = json_error(500, "internal", "internal server error");
  }
  if (resp.defer && resp.stream) {
    log::error("http", "handler for " + route->method + " " + route->pattern + " both deferred and streamed");
    resp = json_error(500, "internal", "internal server error");
  }
  if (resp.defer) {
    return net::post(
        socket_.get_executor(),
        [self = shared_from_this(), d = std::move(resp.defer)]() mutable { self->park(std::move(d)); });
  }
  if (resp.stream) return run_stream(resp);
  net::post(socket_.get_executor(), [self = shared_from_this(), resp = std::move(resp)]() mutable {
    self->write_response(std::move(resp), false);
  });
}

// ---- writing ------------------------------------------------------------

void Session::send_error(int status, const std::string& code, const std::string& message) {
  write_response(json_error(status, code, message), true);
}

void Session::write_response(Response resp, bool close_after) {
  if (closed_) return;
  phase_ = Phase::Writing;
  request_active_ = true;
  if (resp.status < 100 || resp.status > 599) {
    log::error("http", "handler for " + log_path_ + " returned status " + std::to_string(resp.status));
    resp = json_error(500, "internal", "internal server error");
  }
  // Every 503 is temporary (overload, the database away): say when to come
  // back (RFC 9110 §10.2.3), whoever produced it.
  if (resp.status == 503 && std::none_of(resp.headers.begin(), resp.headers.end(),
                                         [](const auto& h) { return lower(h.first) == "retry-after"; }))
    resp.headers.emplace_back("Retry-After", "1");
  auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(resp.status), 11);
  if (!resp.content_type.empty())
    res->set(http::field::content_type, sanitize_header_value(resp.content_type));
  for (const auto& [name, value] : resp.headers) {
    if (iequals(name, "content-type")) {
      res->set(http::field::content_type, sanitize_header_value(value));
    } else {
      res->insert(sanitize_header_value(name), sanitize_header_value(value));
    }
  }
  bool keep = keep_alive_ && !close_after && !shared_->stopping;
  res->keep_alive(keep);
  res->body() = std::move(resp.body);
  res->prepare_payload();
  if (head_only_) res->body().clear();  // Content-Length stays that of the GET
  bytes_sent_ = res->body().size();
  arm_timer(shared_->limits.write_timeout);
  int status = resp.status;
  http::async_write(socket_, *res,
                    [self = shared_from_this(), res, keep, status](beast::error_code ec, size_t n) {
                      self->log_request(status);
                      self->on_written(ec, n, keep);
                    });
}

void Session::on_written(beast::error_code ec, size_t, bool keep_alive) {
  if (closed_) return;
  disarm_timer();
  if (ec) return close();
  if (keep_alive) return wait_for_request();
  linger_close();
}

void Session::log_request(int status) {
  if (!request_active_) return;
  request_active_ = false;
  auto ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - request_start_).count();
  // The access line is debug: the default output stays quiet under load.
  // Never the query string (it may hold secrets) nor any header.
  if (log::enabled(log::Severity::debug)) {
    char took[32];
    std::snprintf(took, sizeof took, " %.1fms", ms);
    log::debug("http", remote_ + " " + log_method_ + " " + log_path_ + " " + std::to_string(status) + " " +
                           std::to_string(bytes_sent_) + "B" + took);
  }
  if (shared_->observer) {
    static const std::string kNone;
    shared_->observer->request_done(route_ ? route_->method : kNone, route_ ? route_->pattern : kNone, status,
                                    std::chrono::duration<double>(ms / 1000));
  }
}

// ---- SSE ----------------------------------------------------------------
// The stream is a chunked response (one chunk per event, TCP_NODELAY, so each
// event leaves at once). While it runs, the socket is read to notice the
// client leaving. The connection is closed after the last chunk.

void Session::run_stream(Response& resp) {
  std::string head = "HTTP/1.1 " + std::to_string(resp.status) + " " +
                     std::string(http::obsolete_reason(static_cast<http::status>(resp.status))) +
                     "\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nX-Accel-Buffering: no\r\n";
  for (const auto& [name, value] : resp.headers) {
    head += sanitize_header_value(name) + ": " + sanitize_header_value(value) + "\r\n";
  }
  head += "\r\n";
  net::post(socket_.get_executor(), [self = shared_from_this(), head = std::move(head)]() mutable {
    self->begin_stream(std::move(head));
  });
  class Sink : public EventSink {
   public:
    explicit Sink(Session& s) : s_(s) {}
    bool send(const std::string& event, const std::string& data) override {
      return s_.stream_write(format_sse_event(event, data));
    }
    bool keepalive() override { return s_.stream_write(": ping\n\n"); }

   private:
    Session& s_;
  } sink(*this);
  if (shared_->observer) shared_->observer->streams_changed(+1);
  try {
    resp.stream(sink);
  } catch (const std::exception& e) {
    log::error("http", "stream for " + log_path_ + " threw: " + e.what());
  } catch (...) {
    log::error("http", "stream for " + log_path_ + " threw");
  }
  if (shared_->observer) shared_->observer->streams_changed(-1);
  net::post(socket_.get_executor(), [self = shared_from_this()] { self->end_stream(); });
}

bool Session::stream_write(std::string payload) {
  char size[32];
  snprintf(size, sizeof size, "%zx\r\n", payload.size());
  std::string chunk = size + payload + "\r\n";
  uint64_t seq;
  {
    std::lock_guard lock(stream_mu_);
    if (stream_closed_ || shared_->stopping) return false;
    seq = ++stream_enqueued_;
  }
  net::post(socket_.get_executor(), [self = shared_from_this(), chunk = std::move(chunk)]() mutable {
    self->enqueue_write(std::move(chunk), true);
  });
  std::unique_lock lock(stream_mu_);
  stream_cv_.wait(lock, [&] { return stream_closed_ || stream_written_ >= seq; });
  return stream_written_ >= seq;
}

void Session::begin_stream(std::string head) {
  if (closed_) return;
  phase_ = Phase::Streaming;
  enqueue_write(std::move(head), false);
  watch_disconnect();
}

void Session::watch_disconnect() {
  // Bytes the client sends during a stream are kept (bounded), not parsed.
  if (buffer_.size() > 64 * 1024) return;
  socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
    if (self->closed_ || self->phase_ != Phase::Streaming) return;
    if (ec) return self->close();  // the client went away
    self->buffer_.commit(n);
    self->watch_disconnect();
  });
}

void Session::enqueue_write(std::string data, bool counted) {
  if (closed_) return;
  writes_.push_back({std::move(data), counted});
  if (!writing_) write_next();
}

void Session::write_next() {
  writing_ = true;
  arm_timer(shared_->limits.write_timeout);
  net::async_write(socket_, net::buffer(writes_.front().data),
                   [self = shared_from_this()](beast::error_code ec, size_t n) {
                     if (self->closed_) return;
                     self->disarm_timer();
                     if (ec) return self->close();
                     self->bytes_sent_ += n;
                     bool counted = self->writes_.front().counted;
                     self->writes_.pop_front();
                     if (counted) {
                       std::lock_guard lock(self->stream_mu_);
                       ++self->stream_written_;
                     }
                     if (counted) self->stream_cv_.notify_all();
                     if (!self->writes_.empty()) return self->write_next();
                     self->writing_ = false;
                     if (self->stream_ending_) {
                       self->log_request(200);
                       self->close();
                     }
                   });
}

void Session::end_stream() {
  if (closed_) return;
  stream_ending_ = true;
  enqueue_write("0\r\n\r\n", false);
}

// ---- closing ------------------------------------------------------------

void Session::linger_close() {
  if (closed_) return;
  phase_ = Phase::Lingering;
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return close();
  drain_buf_.resize(16 * 1024);
  drained_ = 0;
  arm_timer(std::min(kLingerTimeout, shared_->limits.read_timeout));
  drain();
}

void Session::drain() {
  socket_.async_read_some(net::buffer(drain_buf_),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (self->closed_) return;
                            self->drained_ += n;
                            if (ec || self->drained_ > kLingerMaxBytes) return self->close();
                            self->drain();
                          });
}

void Session::close() {
  if (closed_) return;
  if (phase_ == Phase::Streaming) log_request(200);  // the client left mid-stream
  closed_ = true;
  phase_ = Phase::Closed;
  if (deferred_) end_deferral();  // the client left, or the server stops, while it waited
  disarm_timer();
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  {
    std::lock_guard lock(stream_mu_);
    stream_closed_ = true;
  }
  stream_cv_.notify_all();
  writes_.clear();
  unregister();
}

}  // namespace quern::http::detail
