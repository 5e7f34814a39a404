// HttpServer: the acceptor, the io threads and the handler pool; sessions
// (http_session.cpp) do the per-connection work.
//
// Threading: start/stop are serialized by Impl::mu. The acceptor is used only
// on its own strand. Counters are atomics; the session registry is guarded by
// ServerShared::sessions_mu.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include "host/http/http_session.h"
#include "host/log/log.h"

namespace quern::http {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using detail::ServerShared;
using detail::Session;

namespace {
// After stop() closed every session, how long it waits for them to finish
// closing on the io threads before it stops the io_context regardless.
constexpr std::chrono::milliseconds kStopGrace{2000};
// Pause before accepting again when accept fails (e.g. out of descriptors).
constexpr std::chrono::milliseconds kAcceptRetry{50};
}  // namespace

struct HttpServer::Impl {
  Impl(const Router& router, ServerLimits limits, RequestObserver* observer)
      : shared(std::make_shared<ServerShared>(router, limits, observer)) {}

  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);

  std::shared_ptr<ServerShared> shared;
  std::mutex mu;  // serializes start/stop
  bool started = false;
  bool stopped = false;
  std::atomic<uint16_t> port{0};
  // Declared before the objects that use it so that it is destroyed after them.
  std::unique_ptr<net::io_context> ioc;
  std::optional<net::strand<net::io_context::executor_type>> accept_strand;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> retry_timer;
  std::vector<std::thread> io_threads;
};

void HttpServer::Impl::do_accept() {
  // Each connection gets its own strand: its handlers never run concurrently.
  net::any_io_executor session_strand = net::make_strand(*ioc);
  acceptor->async_accept(
      session_strand, [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void HttpServer::Impl::on_accept(beast::error_code ec, tcp::socket socket) {
  if (shared->stopping || !acceptor->is_open()) return;
  if (ec) {
    // Out of descriptors (or a connection reset before accept): keep serving
    // the open connections and try again shortly, without spinning.
    log::warning("http", "accept failed: " + ec.message());
    retry_timer->expires_after(kAcceptRetry);
    retry_timer->async_wait([this](beast::error_code ec) {
      if (!ec && !shared->stopping) do_accept();
    });
    return;
  }
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // SSE events and small responses leave at once
  const auto& limits = shared->limits;
  bool reject = shared->active_connections.load() >= limits.max_connections;
  if (reject && shared->rejecting.load() >= std::max<size_t>(limits.max_connections, 1024)) {
    // A flood: each 503 holds a descriptor for up to a second of lingering;
    // past this many at once, close at accept instead.
    socket.close(ignored);
    return do_accept();
  }
  // Only this strand increments, so the check above and this increment do not race.
  ++(reject ? shared->rejecting : shared->active_connections);
  auto session = std::make_shared<Session>(std::move(socket), shared, reject);
  if (shared->register_session(session)) session->start();
  do_accept();
}

HttpServer::HttpServer(const Router& router, ServerLimits limits, RequestObserver* observer)
    : impl_(std::make_unique<Impl>(router, limits, observer)) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start(const std::string& address, uint16_t port) {
  std::lock_guard lock(impl_->mu);
  if (impl_->started || impl_->stopped) return Status::error("http server: start() called twice");
  beast::error_code ec;
  auto addr = net::ip::make_address(address, ec);
  if (ec) return Status::error("http server: bad listen address '" + address + "': " + ec.message());
  tcp::endpoint endpoint(addr, port);
  std::string where = address + ":" + std::to_string(port);

  Impl& s = *impl_;
  const auto& limits = s.shared->limits;
  s.ioc = std::make_unique<net::io_context>(std::max(1, limits.io_threads));
  s.accept_strand.emplace(net::make_strand(*s.ioc));
  s.acceptor.emplace(*s.accept_strand);
  s.retry_timer.emplace(*s.accept_strand);
  s.acceptor->open(endpoint.protocol(), ec);
  if (!ec) s.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(endpoint, ec);
  if (ec) return Status::error("http server: cannot bind " + where + ": " + ec.message());
  s.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Status::error("http server: cannot listen on " + where + ": " + ec.message());
  s.port = s.acceptor->local_endpoint().port();

  s.shared->pool.start(limits.handler_threads, limits.max_pending_requests);
  s.started = true;
  net::post(*s.accept_strand, [&s] { s.do_accept(); });
  for (int i = 0; i < std::max(1, limits.io_threads); ++i) {
    s.io_threads.emplace_back([&s] {
      // run() returns only when stop() stops the context: the acceptor always has work.
      auto guard = net::make_work_guard(*s.ioc);
      s.ioc->run();
    });
  }
  // debug: the process that runs the server says where it listens, at info.
  log::debug("http", "server listening on " + address + ":" + std::to_string(s.port.load()));
  return Status::ok();
}

uint16_t HttpServer::port() const { return impl_->port.load(); }

size_t HttpServer::active_connections() const { return impl_->shared->active_connections.load(); }

size_t HttpServer::pending_requests() const { return impl_->shared->pool.pending(); }

size_t HttpServer::deferred_requests() const { return impl_->shared->deferred.load(); }

void HttpServer::stop() {
  std::lock_guard lock(impl_->mu);
  Impl& s = *impl_;
  bool was_running = s.started && !s.stopped;
  s.stopped = true;
  if (!was_running) return;
  auto& shared = *s.shared;

  // 1. No new sessions (register_session checks the flag under the same lock).
  std::vector<std::weak_ptr<Session>> sessions;
  {
    std::lock_guard reg(shared.sessions_mu);
    shared.stopping = true;
    for (auto& [ptr, weak] : shared.sessions) sessions.push_back(weak);
  }
  net::post(*s.accept_strand, [&s] {
    beast::error_code ignored;
    s.acceptor->close(ignored);
    s.retry_timer->cancel();
  });
  // 2. Close every connection; streams see send() return false at once, and
  // deferred requests are dropped (their sessions close on the io threads).
  for (auto& weak : sessions) {
    if (auto session = weak.lock()) session->shutdown();
  }
  sessions.clear();
  // 3. Running handlers finish; queued requests are dropped.
  shared.pool.stop();
  // 4. Let the io threads finish the closes, then stop them.
  {
    std::unique_lock reg(shared.sessions_mu);
    shared.sessions_cv.wait_for(reg, kStopGrace, [&] { return shared.sessions.empty(); });
  }
  // Wake-ups of deferred requests that did not close in time post nothing more.
  {
    std::lock_guard gate(shared.io_gate_mu);
    shared.io_open = false;
  }
  s.ioc->stop();
  for (auto& t : s.io_threads) t.join();
  s.io_threads.clear();
  // Destroys sessions whose handlers were still queued, then the context.
  s.retry_timer.reset();
  s.acceptor.reset();
  s.accept_strand.reset();
  s.ioc.reset();
  log::debug("http", "server stopped");
}

}  // namespace quern::http
