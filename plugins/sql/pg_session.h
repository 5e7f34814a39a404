// One libpq connection driven asynchronously, so that a running connect or
// statement can be stopped promptly: the calling thread polls the socket in
// short steps, asks `stop` between steps, and on a stop request sends a
// PQcancel from that same thread (no second thread touches the PGconn).
//
// libpq's C API is used directly (libpqxx 6.4 only offers blocking calls and
// a connection string, which would force the password into a conninfo text).
// The password is passed as its own connection parameter; every message this
// class produces has the password masked, in case libpq ever echoes it.
//
// Thread-safety: not thread-safe; one thread uses a session at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace quern::sql {

// QUERN_RUNNING, or why the current operation must stop (QUERN_* reasons).
using StopCheck = std::function<int32_t()>;

struct ResultDeleter {
  void operator()(pg_result* r) const noexcept;
};
using ResultPtr = std::unique_ptr<pg_result, ResultDeleter>;

struct Outcome {
  enum Kind { kOk, kError, kStopped };
  Kind kind = kOk;
  int32_t stop_reason = 0;  // QUERN_* when kStopped
  std::string message;      // when kError: PostgreSQL's or libpq's message, password masked
  std::string sqlstate;     // when the server reported the error
  bool connection_lost = false;
  bool ok() const { return kind == kOk; }
};

class PgSession {
 public:
  PgSession(std::string url, std::string password, std::chrono::milliseconds connect_timeout);
  ~PgSession();
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;

  // True when a connection is open, healthy and outside any transaction.
  bool idle() const;
  // Opens the connection (closing any previous one).
  Outcome connect(const StopCheck& stop);
  void disconnect();

  // Runs one statement (extended protocol: exactly one statement) with text
  // parameters $1..$n (nullopt = SQL NULL). A parameter the statement does
  // not reference (referenced[k] false) is sent typed as text, since the
  // server cannot infer a type for it. On kOk *out holds the result.
  Outcome exec(const std::string& sql, const std::vector<std::optional<std::string>>& params,
               const std::vector<bool>& referenced, const StopCheck& stop, ResultPtr* out);

  // Receives server notices (RAISE NOTICE ...) while exec runs.
  void set_notice_sink(std::function<void(std::string_view)> sink) { notice_sink_ = std::move(sink); }

  // Replaces every occurrence of the password in text.
  std::string mask(std::string text) const;

 private:
  static void on_notice(void* self, const char* message);
  Outcome fail(std::string message, bool connection_lost);
  void send_cancel();

  std::string url_;
  std::string password_;
  std::chrono::milliseconds connect_timeout_;
  pg_conn* conn_ = nullptr;
  std::function<void(std::string_view)> notice_sink_;
};

}  // namespace quern::sql
