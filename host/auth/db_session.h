// DbSession: one PostgreSQL connection with its prepared statements and the
// error boundary every public store method goes through (TokenStore,
// ScriptStore). Internal to host/auth and host/scripts; the public headers of
// those stores do not include libpqxx.
//
// Contract: run() opens the connection if there is none (registering the
// prepared statements), runs the body, and turns every exception into a
// Status prefixed with the operation's name. A lost connection (broken
// socket, SQLSTATE 08xxx / 57Pxx) is dropped, so the *next* call reconnects;
// the failing call itself is not retried (it may have been applied).
//
// Thread-safety: none. A DbSession (and the store that owns it) is used by
// one thread at a time; the server borrows stores from a pool.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "host/common/status.h"

namespace quern::auth {

struct PreparedStatement {
  const char* name;
  const char* sql;
};

class DbSession {
 public:
  DbSession(std::string url, std::vector<PreparedStatement> statements)
      : url_(std::move(url)), statements_(std::move(statements)) {}

  // Connects now (so that connect() of a store reports an unreachable
  // database at once).
  Status open(const char* what);

  template <typename F>
  auto run(const char* what, F&& body) -> StatusOr<std::invoke_result_t<F, pqxx::connection&>> {
    try {
      ensure_connected();
      return std::forward<F>(body)(*conn_);
    } catch (const pqxx::broken_connection& e) {
      conn_.reset();
      return Status::error(std::string(what) + ": connection lost: " + trim(e.what()));
    } catch (const pqxx::in_doubt_error& e) {
      conn_.reset();
      return Status::error(std::string(what) + ": connection lost, outcome unknown: " + trim(e.what()));
    } catch (const pqxx::sql_error& e) {
      if (is_connection_sqlstate(e.sqlstate()) || !conn_ || !conn_->is_open()) conn_.reset();
      return Status::error(std::string(what) + ": " + trim(e.what()) +
                           (e.sqlstate().empty() ? "" : " [SQLSTATE " + e.sqlstate() + "]"));
    } catch (const std::exception& e) {
      if (conn_ && !conn_->is_open()) conn_.reset();
      return Status::error(std::string(what) + ": " + trim(e.what()));
    }
  }

  // Epoch microseconds <-> time points, the form timestamps cross the
  // connection in (exact, no time-zone parsing).
  static int64_t to_epoch_us(std::chrono::system_clock::time_point t);
  static std::chrono::system_clock::time_point from_epoch_us(int64_t us);

 private:
  void ensure_connected();
  static bool is_connection_sqlstate(const std::string& state) {
    return state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0;
  }
  static std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  std::string url_;
  std::vector<PreparedStatement> statements_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace quern::auth
