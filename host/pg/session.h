// pg::Session: one PostgreSQL connection, the prepared statements of every
// store that uses it, and the error boundary all of them go through. The
// queue, the token, script and schedule stores and the scheduler each run
// over a Session; the server's pool hands one Session (with all its stores)
// to a request, so a request never holds two connections.
//
// Contract of run(): opens the connection if there is none (preparing every
// registered statement lazily, on first use), runs the body, and turns every
// exception into a Status prefixed with the operation's name, with a code:
//   unavailable       connection lost or refused, server shutting down,
//                     too many connections, serialization failure, lock or
//                     statement timeout: the same call may succeed later;
//   invalid_argument  the database refused the data (SQLSTATE classes 22
//                     data exception, 23 integrity, 54 program limit such as
//                     "stack depth limit exceeded"), or it could not be
//                     encoded (invalid UTF-8 in JSON): sending it again fails
//                     again;
//   internal          anything else.
// A lost connection is dropped, so the *next* call reconnects; the failing
// call itself is not retried (it may have been applied).
//
// Thread-safety: none. A Session and the stores over it are used by one
// thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "host/common/status.h"

namespace quern::pg {

struct Statement {
  const char* name;
  const char* text;
};

struct SessionOptions {
  // Session synchronous_commit=off: only for connections whose writes may
  // be lost in a database crash without harm (a worker's claims).
  bool relaxed_commit = false;
  // Shown in pg_stat_activity (which part of Quern holds a connection).
  std::string application_name = "quern";
};

class Session {
 public:
  explicit Session(std::string url, SessionOptions options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Registers statements (by name; a name registered twice keeps the first)
  // on this connection and every later one. Statements are prepared on the
  // server at first use.
  void add_statements(const Statement* first, size_t count);
  template <size_t N>
  void add_statements(const Statement (&list)[N]) {
    add_statements(list, N);
  }

  // Called after each (re)connect, and just before the connection is
  // dropped (for objects tied to the connection, such as LISTEN receivers,
  // which must go first). Returns an id for remove_hooks().
  using ConnectHook = std::function<void(pqxx::connection&)>;
  using DropHook = std::function<void()>;
  int add_hooks(ConnectHook on_connect, DropHook before_drop);
  void remove_hooks(int id);

  // Connects now, so that a store's connect() reports an unreachable
  // database at once.
  Status open(const char* what);

  template <typename F>
  auto run(const char* what, F&& body) -> StatusOr<std::invoke_result_t<F, pqxx::connection&>> {
    try {
      ensure_connected();
      last_used_ = std::chrono::steady_clock::now();
      return std::forward<F>(body)(*conn_);
    } catch (...) {
      return failure(what);
    }
  }

  // Whether the connection is open and the server has not closed it while
  // it sat idle (a restart, an idle timeout): a non-blocking look at its
  // socket. A dead connection is dropped (the next run() reconnects).
  // Consumes pending notifications (a pooled session has no listeners).
  bool check_alive() noexcept;
  bool is_open() const noexcept { return conn_ && conn_->is_open(); }
  void drop() noexcept;
  std::chrono::steady_clock::time_point last_used() const { return last_used_; }

 private:
  void ensure_connected();
  // Classifies the exception being handled (see the contract above).
  Status failure(const char* what) noexcept;

  struct Hooks {
    int id;
    ConnectHook on_connect;
    DropHook before_drop;
  };

  const std::string url_;
  const SessionOptions options_;
  std::vector<Statement> statements_;
  std::vector<Hooks> hooks_;
  int next_hook_id_ = 1;
  std::unique_ptr<pqxx::connection> conn_;
  std::chrono::steady_clock::time_point last_used_{};
};

// The code for a SQLSTATE (see the contract above); "" is internal.
StatusCode code_for_sqlstate(const std::string& sqlstate);

// A PostgreSQL array literal of text values, {"a","b\"c"}: the form a
// text[] parameter takes.
std::string to_text_array(const std::vector<std::string>& values);

// Epoch microseconds <-> time points: the form timestamps cross the
// connection in (exact, no time-zone parsing). In SQL: QUERN_PG_US(col) reads
// a column as epoch microseconds, QUERN_PG_TS(param) a parameter back.
int64_t to_epoch_us(std::chrono::system_clock::time_point t);
std::chrono::system_clock::time_point from_epoch_us(int64_t us);
#define QUERN_PG_US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"
#define QUERN_PG_TS(param) "('epoch'::timestamptz + " param "::bigint * interval '1 microsecond')"

}  // namespace quern::pg
