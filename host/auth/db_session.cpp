#include "host/auth/db_session.h"

#include <chrono>

namespace quern::auth {

void DbSession::ensure_connected() {
  if (conn_ && conn_->is_open()) return;
  conn_.reset();
  auto c = std::make_unique<pqxx::connection>(url_);
  c->set_client_encoding("UTF8");
  for (const PreparedStatement& s : statements_) c->prepare(s.name, s.sql);
  conn_ = std::move(c);
}

Status DbSession::open(const char* what) {
  return run(what, [](pqxx::connection&) { return true; }).status();
}

int64_t DbSession::to_epoch_us(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point DbSession::from_epoch_us(int64_t us) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::microseconds(us)));
}

}  // namespace quern::auth
