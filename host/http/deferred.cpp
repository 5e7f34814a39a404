// Deferred responses: the Deferred base class and the session's half —
// parking a request on its strand with a timer, resuming it on a handler
// thread when woken or due, answering at the deadline, and noticing a client
// that leaves meanwhile. See Deferred (http_server.h) for the contract and
// deferred.h for the shared state.
//
// While parked (Phase::Deferred) the session holds: the Deferred, the timer
// (armed for the next check or the deadline, whichever comes first, and
// disarmed while a resume runs), and a wait for readability on the socket
// (bytes of a pipelined request are kept; EOF or an error closes). The
// pending Asio operations own the session, as in every other phase.
#include "host/http/deferred.h"

#include <algorithm>

#include <boost/asio/post.hpp>

#include "host/http/http_session.h"
#include "host/log/log.h"

namespace quern::http {

namespace {
// A due resume() that the saturated handler pool refused is tried again after this.
constexpr std::chrono::milliseconds kPoolRetry{50};
// Bytes of a pipelined request buffered while parked; beyond, the socket is
// no longer read (nor watched for a disconnect) until the answer is written.
constexpr size_t kParkedBufferMax = 64 * 1024;
}  // namespace

Deferred::Deferred(std::chrono::steady_clock::time_point deadline)
    : deadline_(deadline), state_(std::make_shared<detail::WakeState>()) {}

Deferred::~Deferred() = default;

void Deferred::wake() { state_->wake(); }

std::function<bool()> Deferred::waker() const {
  return [weak = std::weak_ptr<detail::WakeState>(state_)] {
    auto state = weak.lock();
    return state && state->wake();
  };
}

void Deferred::recheck_within(std::chrono::milliseconds d) {
  recheck_ms_ = std::clamp<int64_t>(d.count(), 1, kMaxRecheck.count());
}

namespace detail {

bool WakeState::wake() {
  std::lock_guard lock(mu);
  woken = true;
  if (notify && !posted) {
    posted = true;
    notify();
  }
  return !ended;
}

void Session::park(std::shared_ptr<Deferred> d) {
  if (closed_) return;  // the client left while the handler ran: d goes with this frame
  if (shared_->stopping) return close();
  phase_ = Phase::Deferred;
  deferred_ = std::move(d);
  ++shared_->deferred;
  bool woken;
  {
    WakeState& st = *deferred_->state_;
    std::lock_guard lock(st.mu);
    st.posted = false;
    st.notify = [weak = weak_from_this(), ex = socket_.get_executor(), shared = shared_.get()] {
      // Under the WakeState's lock, which end_deferral() takes before the
      // session (and so `shared`) can go.
      std::lock_guard gate(shared->io_gate_mu);
      if (!shared->io_open) return;
      net::post(ex, [weak] {
        if (auto self = weak.lock()) self->on_deferred_wake();
      });
    };
    woken = st.woken;
  }
  watch_deferred_disconnect();
  resume_or_wait(woken);
}

void Session::resume_or_wait(bool woken) {
  if (woken || std::chrono::steady_clock::now() >= deferred_->deadline()) return start_resume();
  schedule_check();
}

void Session::on_deferred_wake() {
  if (phase_ != Phase::Deferred || !deferred_) return;
  bool woken;
  {
    WakeState& st = *deferred_->state_;
    std::lock_guard lock(st.mu);
    st.posted = false;
    woken = st.woken;
  }
  // While a resume runs, the flag stays set: on_resumed() starts the next.
  if (woken && !resuming_) start_resume();
}

void Session::on_deferred_due() {
  if (phase_ != Phase::Deferred || !deferred_ || resuming_) return;
  start_resume();
}

void Session::schedule_check() {
  const auto now = std::chrono::steady_clock::now();
  const auto next =
      std::min(deferred_->deadline(), now + std::chrono::milliseconds(deferred_->recheck_ms_.load()));
  // Rounded up: a timer that fires a hair before the deadline would resume() once more for nothing.
  arm_timer(std::max(std::chrono::ceil<std::chrono::milliseconds>(next - now), std::chrono::milliseconds(0)));
}

void Session::start_resume() {
  const bool last = std::chrono::steady_clock::now() >= deferred_->deadline();
  disarm_timer();
  {
    WakeState& st = *deferred_->state_;
    std::lock_guard lock(st.mu);
    st.woken = false;  // a wake-up from now on asks for another resume
  }
  deferred_->recheck_ms_ = Deferred::kMaxRecheck.count();
  resuming_ = true;
  auto self = shared_from_this();
  const Route* route = route_;
  if (shared_->pool.try_submit([self, d = deferred_, last, route] { self->run_resume(d, last, route); }))
    return;
  resuming_ = false;
  if (shared_->stopping) return close();
  if (last) return answer_deferred(json_error(503, "overloaded", "the server is busy; retry later"));
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deferred_->deadline() - std::chrono::steady_clock::now());
  arm_timer(std::clamp(left, std::chrono::milliseconds(0), kPoolRetry));
}

void Session::run_resume(const std::shared_ptr<Deferred>& d, bool last, const Route* route) {
  std::optional<Response> r;
  auto what = [route] { return route ? route->method + " " + route->pattern : std::string("?"); };
  try {
    if (last) {
      r = d->expire();
    } else {
      r = d->resume();
    }
  } catch (const std::exception& e) {
    log::error("http", "deferred response of " + what() + " threw: " + e.what());
    r = json_error(500, "internal", "internal server error");
  } catch (...) {
    log::error("http", "deferred response of " + what() + " threw");
    r = json_error(500, "internal", "internal server error");
  }
  if (r && (r->defer || r->stream)) {
    log::error("http", "deferred response of " + what() + " deferred or streamed again");
    r = json_error(500, "internal", "internal server error");
  }
  net::post(socket_.get_executor(),
            [self = shared_from_this(), r = std::move(r)]() mutable { self->on_resumed(std::move(r)); });
}

void Session::on_resumed(std::optional<Response> r) {
  resuming_ = false;
  if (closed_ || phase_ != Phase::Deferred || !deferred_) return;  // the client left meanwhile
  if (r) return answer_deferred(std::move(*r));
  bool woken;
  {
    WakeState& st = *deferred_->state_;
    std::lock_guard lock(st.mu);
    woken = st.woken;
  }
  resume_or_wait(woken);
}

void Session::watch_deferred_disconnect() {
  if (buffer_.size() >= kParkedBufferMax) return;
  const uint64_t gen = ++defer_watch_gen_;
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this(), gen](beast::error_code ec) {
    if (self->closed_ || self->phase_ != Phase::Deferred || gen != self->defer_watch_gen_) return;
    if (ec) return self->close();
    // A pipelined request's bytes (kept for after the answer), EOF or a reset
    // (the client left), or nothing: a stale event, under load not rare.
    switch (self->probe_readable()) {
      case Readable::Nothing:
        return self->watch_deferred_disconnect();
      case Readable::Closed:
        return self->close();
      case Readable::Bytes:
        break;
    }
    size_t n = self->socket_.available(ec);
    if (ec) return self->close();
    n = std::min(n, kParkedBufferMax - self->buffer_.size());
    n = self->socket_.read_some(self->buffer_.prepare(n), ec);
    if (ec) return self->close();
    self->buffer_.commit(n);
    self->watch_deferred_disconnect();
  });
}

void Session::answer_deferred(Response r) {
  end_deferral();
  // The disconnect watch is the only operation pending: end it before writing.
  beast::error_code ec;
  socket_.cancel(ec);
  write_response(std::move(r), false);
}

void Session::end_deferral() {
  std::function<void()> notify;  // destroyed outside the lock (it holds an executor)
  {
    WakeState& st = *deferred_->state_;
    std::lock_guard lock(st.mu);
    notify = std::move(st.notify);
    st.notify = nullptr;
    st.posted = false;
    st.ended = true;
  }
  ++defer_watch_gen_;
  disarm_timer();
  deferred_.reset();  // a resume() still running keeps its own reference
  --shared_->deferred;
}

}  // namespace detail
}  // namespace quern::http
