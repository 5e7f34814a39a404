#include "host/pg/session.h"

#include <poll.h>

#include <algorithm>

#include <nlohmann/json.hpp>

namespace quern::pg {
namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool is_connection_sqlstate(const std::string& state) {
  // 08: connection exception; 57P: operator intervention (terminated, shutdown).
  return state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0;
}

}  // namespace

StatusCode code_for_sqlstate(const std::string& state) {
  if (state.size() != 5) return StatusCode::internal;
  const std::string cls = state.substr(0, 2);
  if (cls == "08" || cls == "53" || cls == "40" || state.rfind("57P", 0) == 0 || state == "57014" ||
      state == "55P03" || state == "55006")
    return StatusCode::unavailable;
  if (cls == "22" || cls == "23" || cls == "54") return StatusCode::invalid_argument;
  return StatusCode::internal;
}

Session::Session(std::string url, SessionOptions options) : url_(std::move(url)), options_(options) {}

Session::~Session() { drop(); }

void Session::add_statements(const Statement* first, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    const Statement& s = first[i];
    const bool known = std::any_of(statements_.begin(), statements_.end(),
                                   [&](const Statement& k) { return std::string_view(k.name) == s.name; });
    if (known) continue;
    statements_.push_back(s);
    if (conn_) conn_->prepare(s.name, s.text);  // lazy: sent at first use
  }
}

int Session::add_hooks(ConnectHook on_connect, DropHook before_drop) {
  const int id = next_hook_id_++;
  hooks_.push_back({id, std::move(on_connect), std::move(before_drop)});
  return id;
}

void Session::remove_hooks(int id) {
  hooks_.erase(std::remove_if(hooks_.begin(), hooks_.end(), [&](const Hooks& h) { return h.id == id; }),
               hooks_.end());
}

void Session::ensure_connected() {
  if (conn_ && conn_->is_open()) return;
  drop();
  auto c = std::make_unique<pqxx::connection>(url_);
  c->set_client_encoding("UTF8");  // byte offsets of logs are UTF-8 offsets
  if (options_.relaxed_commit) c->set_variable("synchronous_commit", "off");
  if (!options_.application_name.empty())
    c->set_variable("application_name", c->quote(options_.application_name));
  for (const Statement& s : statements_) c->prepare(s.name, s.text);
  conn_ = std::move(c);
  try {
    for (Hooks& h : hooks_)
      if (h.on_connect) h.on_connect(*conn_);
  } catch (...) {
    drop();
    throw;
  }
}

void Session::drop() noexcept {
  for (Hooks& h : hooks_) {
    if (!h.before_drop) continue;
    try {
      h.before_drop();
    } catch (...) {  // a hook on a broken connection: nothing to clean up there
    }
  }
  conn_.reset();
}

Status Session::open(const char* what) {
  return run(what, [](pqxx::connection&) { return true; }).status();
}

bool Session::check_alive() noexcept {
  if (!conn_ || !conn_->is_open()) {
    drop();
    return false;
  }
  // With no query in flight, anything readable is a notification or the
  // server's goodbye: a FATAL message ("terminating connection due to
  // administrator command"), then end of file. A closed peer shows as a
  // hang-up; otherwise let libpq read what came, and look again, since
  // reading the message does not yet tell libpq the socket is closed.
  for (int round = 0; round < 4; ++round) {
    pollfd p{conn_->sock(), POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) == 0) return true;
    if (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)) {
      drop();
      return false;
    }
    try {
      conn_->get_notifs();
    } catch (...) {
      drop();
      return false;
    }
    if (!conn_->is_open()) {
      drop();
      return false;
    }
  }
  return true;
}

Status Session::failure(const char* what) noexcept {
  const std::string prefix = std::string(what) + ": ";
  try {
    throw;
  } catch (const pqxx::broken_connection& e) {
    drop();
    return Status::unavailable(prefix + "connection lost: " + trim(e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    drop();
    return Status::unavailable(prefix + "connection lost, outcome unknown: " + trim(e.what()));
  } catch (const pqxx::sql_error& e) {
    // A statement cut off by the server going away may carry no SQLSTATE
    // (libpq saw only the closed socket): a closed connection makes it an
    // outage whatever the error says, never an internal error.
    const bool lost = is_connection_sqlstate(e.sqlstate()) || !conn_ || !conn_->is_open();
    if (lost) drop();
    return Status::with_code(
        lost ? StatusCode::unavailable : code_for_sqlstate(e.sqlstate()),
        prefix + trim(e.what()) + (e.sqlstate().empty() ? "" : " [SQLSTATE " + e.sqlstate() + "]"));
  } catch (const nlohmann::json::type_error& e) {
    // Encoding a value failed (e.g. type_error.316, invalid UTF-8 in a string).
    return Status::invalid(prefix + e.what());
  } catch (const std::exception& e) {
    if (conn_ && !conn_->is_open()) {
      drop();
      return Status::unavailable(prefix + "connection lost: " + trim(e.what()));
    }
    return Status::error(prefix + trim(e.what()));
  } catch (...) {
    if (conn_ && !conn_->is_open()) {
      drop();
      return Status::unavailable(prefix + "connection lost: unknown error");
    }
    return Status::error(prefix + "unknown error");
  }
}

std::string to_text_array(const std::vector<std::string>& values) {
  std::string s = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) s += ',';
    s += '"';
    for (char ch : values[i]) {
      if (ch == '"' || ch == '\\') s += '\\';
      s += ch;
    }
    s += '"';
  }
  return s + "}";
}

int64_t to_epoch_us(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_epoch_us(int64_t us) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::microseconds(us)));
}

}  // namespace quern::pg
