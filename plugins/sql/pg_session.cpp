#include "pg_session.h"

#include <libpq-fe.h>
#include <poll.h>

#include "quern/executor.h"

namespace quern::sql {
namespace {

using Clock = std::chrono::steady_clock;
// How long one poll step lasts: the latency of noticing a stop request.
constexpr int kPollStepMs = 20;
// After a cancel request, how long the server gets to answer before the
// connection is dropped instead.
constexpr auto kCancelGrace = std::chrono::seconds(5);
constexpr Oid kTextOid = 25;

// Waits until the socket is ready for `events` or kPollStepMs passed.
void wait_socket(int fd, short events) {
  if (fd < 0) return;
  pollfd p{fd, events, 0};
  ::poll(&p, 1, kPollStepMs);
}

std::string trim_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

void ResultDeleter::operator()(pg_result* r) const noexcept { PQclear(r); }

PgSession::PgSession(std::string url, std::string password, std::chrono::milliseconds connect_timeout)
    : url_(std::move(url)), password_(std::move(password)), connect_timeout_(connect_timeout) {}

PgSession::~PgSession() { disconnect(); }

void PgSession::disconnect() {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
}

bool PgSession::idle() const {
  return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

std::string PgSession::mask(std::string text) const {
  if (password_.empty()) return text;
  for (std::size_t pos = text.find(password_); pos != std::string::npos; pos = text.find(password_, pos + 4))
    text.replace(pos, password_.size(), "****");
  return text;
}

Outcome PgSession::fail(std::string message, bool connection_lost) {
  Outcome o;
  o.kind = Outcome::kError;
  o.message = mask(trim_newlines(std::move(message)));
  o.connection_lost = connection_lost;
  if (connection_lost) disconnect();
  return o;
}

Outcome PgSession::connect(const StopCheck& stop) {
  disconnect();
  // expand_dbname = 1: "dbname" may be a full postgresql:// URL; the other
  // parameters then override what it says (it must not hold a password).
  const char* keys[] = {"dbname", "password", "client_encoding", "fallback_application_name", nullptr};
  const char* values[] = {url_.c_str(), password_.empty() ? nullptr : password_.c_str(), "UTF8", "quern-sql",
                          nullptr};
  conn_ = PQconnectStartParams(keys, values, 1);
  if (conn_ == nullptr) return fail("out of memory starting a connection", true);
  if (PQstatus(conn_) == CONNECTION_BAD) return fail(PQerrorMessage(conn_), true);
  const auto deadline = Clock::now() + connect_timeout_;
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (true) {
    if (state == PGRES_POLLING_OK) break;
    if (state == PGRES_POLLING_FAILED) return fail(PQerrorMessage(conn_), true);
    if (int32_t why = stop(); why != QUERN_RUNNING) {
      disconnect();
      return Outcome{Outcome::kStopped, why, {}, {}, false};
    }
    if (Clock::now() > deadline)
      return fail("could not connect within " + std::to_string(connect_timeout_.count() / 1000) + " s", true);
    wait_socket(PQsocket(conn_), state == PGRES_POLLING_READING ? POLLIN : POLLOUT);
    state = PQconnectPoll(conn_);
  }
  PQsetNoticeProcessor(conn_, &PgSession::on_notice, this);
  return {};
}

void PgSession::on_notice(void* self, const char* message) {
  auto* s = static_cast<PgSession*>(self);
  if (s->notice_sink_) s->notice_sink_(s->mask(trim_newlines(message)));
}

void PgSession::send_cancel() {
  if (PGcancel* c = PQgetCancel(conn_)) {
    char err[256];
    PQcancel(c, err, sizeof err);  // best effort: if it fails, the grace period drops the connection
    PQfreeCancel(c);
  }
}

Outcome PgSession::exec(const std::string& sql, const std::vector<std::optional<std::string>>& params,
                        const std::vector<bool>& referenced, const StopCheck& stop, ResultPtr* out) {
  out->reset();
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) return fail("not connected", true);

  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size());
  std::vector<int> formats(params.size(), 0);
  std::vector<Oid> types(params.size(), 0);
  for (std::size_t k = 0; k < params.size(); ++k) {
    values[k] = params[k] ? params[k]->c_str() : nullptr;
    lengths[k] = params[k] ? static_cast<int>(params[k]->size()) : 0;
    if (k >= referenced.size() || !referenced[k]) types[k] = kTextOid;
  }
  if (!PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(params.size()), types.data(), values.data(),
                         lengths.data(), formats.data(), 0))
    return fail(PQerrorMessage(conn_), PQstatus(conn_) != CONNECTION_OK);

  ResultPtr result;
  ResultPtr error;
  int32_t stop_reason = QUERN_RUNNING;
  Clock::time_point give_up{};
  while (true) {
    if (!PQconsumeInput(conn_)) return fail(PQerrorMessage(conn_), true);
    bool done = false;
    while (!PQisBusy(conn_)) {
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr) {
        done = true;
        break;
      }
      ResultPtr owned(r);
      switch (PQresultStatus(r)) {
        case PGRES_COPY_IN:
          PQputCopyEnd(conn_, "COPY FROM STDIN is not supported by the sql executor");
          break;
        case PGRES_COPY_OUT: {
          char* buf = nullptr;
          while (PQgetCopyData(conn_, &buf, 0) > 0) PQfreemem(buf);  // discard: no stdout here
          if (!error) error.reset(PQmakeEmptyPGresult(conn_, PGRES_FATAL_ERROR));
          break;
        }
        case PGRES_BAD_RESPONSE:
        case PGRES_NONFATAL_ERROR:
        case PGRES_FATAL_ERROR:
          if (!error) error = std::move(owned);
          break;
        default:
          result = std::move(owned);
      }
    }
    if (done) break;
    if (stop_reason == QUERN_RUNNING) {
      stop_reason = stop();
      if (stop_reason != QUERN_RUNNING) {
        send_cancel();
        give_up = Clock::now() + kCancelGrace;
      }
    } else if (Clock::now() > give_up) {
      disconnect();
      return Outcome{Outcome::kStopped, stop_reason, {}, {}, true};
    }
    wait_socket(PQsocket(conn_), POLLIN);
  }

  if (stop_reason != QUERN_RUNNING) return Outcome{Outcome::kStopped, stop_reason, {}, {}, false};
  if (error) {
    Outcome o;
    o.kind = Outcome::kError;
    const char* state = PQresultErrorField(error.get(), PG_DIAG_SQLSTATE);
    const char* primary = PQresultErrorField(error.get(), PG_DIAG_MESSAGE_PRIMARY);
    const char* detail = PQresultErrorField(error.get(), PG_DIAG_MESSAGE_DETAIL);
    const char* hint = PQresultErrorField(error.get(), PG_DIAG_MESSAGE_HINT);
    std::string msg;
    if (primary != nullptr) {
      msg = primary;
      if (state != nullptr) msg += std::string(" (SQLSTATE ") + state + ")";
      if (detail != nullptr) msg += std::string("\nDETAIL: ") + detail;
      if (hint != nullptr) msg += std::string("\nHINT: ") + hint;
    } else if (PQresultStatus(error.get()) == PGRES_FATAL_ERROR &&
               PQresultErrorMessage(error.get())[0] == '\0') {
      msg = "COPY TO STDOUT is not supported by the sql executor";
    } else {
      msg = PQresultErrorMessage(error.get());
    }
    o.message = mask(trim_newlines(msg));
    if (state != nullptr) o.sqlstate = state;
    o.connection_lost = PQstatus(conn_) != CONNECTION_OK;
    if (o.connection_lost) disconnect();
    return o;
  }
  if (!result) return fail("no result from the server", PQstatus(conn_) != CONNECTION_OK);
  *out = std::move(result);
  return {};
}

}  // namespace quern::sql
