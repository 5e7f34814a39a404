// Queue::Impl: the connection, its prepared statements and LISTENs, and the
// error boundary shared by every Queue method. Private to host/queue.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "host/queue/queue.h"

namespace quern::queue {

// Marks the queue notified when a NOTIFY arrives on its channel. libpqxx
// calls it from get_notifs()/await_notification() on the owning thread. Its
// constructor sends LISTEN with the channel quoted as an identifier.
class ChannelReceiver final : public pqxx::notification_receiver {
 public:
  // payloads: where to append each notification's payload, or null.
  ChannelReceiver(pqxx::connection& c, const std::string& channel, bool* flag,
                  std::vector<std::string>* payloads = nullptr)
      : pqxx::notification_receiver(c, channel), flag_(flag), payloads_(payloads) {}
  void operator()(const std::string& payload, int) override {
    *flag_ = true;
    if (payloads_) payloads_->push_back(payload);
  }

 private:
  bool* flag_;
  std::vector<std::string>* payloads_;
};

struct Queue::Impl {
  Impl(std::string url_, QueueOptions options_) : url(std::move(url_)), options(options_) {}
  ~Impl() { drop_connection(); }

  std::string url;
  QueueOptions options;
  std::unique_ptr<pqxx::connection> conn;
  // Declared after conn: receivers unregister from the connection when destroyed.
  std::vector<std::unique_ptr<ChannelReceiver>> receivers;
  std::vector<std::string> channels;          // LISTENed; re-LISTENed after a reconnect
  bool notified = false;                      // set by receivers, cleared by wait_for_jobs
  std::vector<std::string> payloads;          // of listen_channel() channels, taken by wait_for_notifications
  std::vector<std::string> payload_channels;  // re-LISTENed after a reconnect, with payloads

  // Opens the connection if there is none: registers the prepared statements
  // (prepared lazily by libpqxx on first use) and LISTENs on `channels`.
  void ensure_connected();
  // Forgets the connection (and its LISTENs); the next call reconnects.
  void drop_connection() noexcept;
  // LISTENs on one more channel (connection must be open).
  void add_receiver(const std::string& channel, bool keep_payloads = false);
  // Waits until a receiver fired or the deadline (draining what is pending).
  void await(pqxx::connection& c, std::chrono::milliseconds timeout);

  // The error boundary: runs body(conn) and turns every exception into a
  // Status prefixed with `what`. A connection-level failure drops the
  // connection so that the next call reconnects.
  template <typename F>
  auto run(const char* what, F&& body) -> StatusOr<std::invoke_result_t<F, pqxx::connection&>> {
    try {
      ensure_connected();
      return std::forward<F>(body)(*conn);
    } catch (const pqxx::broken_connection& e) {
      drop_connection();
      return Status::error(std::string(what) + ": connection lost: " + trim(e.what()));
    } catch (const pqxx::in_doubt_error& e) {
      drop_connection();
      return Status::error(std::string(what) + ": connection lost, outcome unknown: " + trim(e.what()));
    } catch (const pqxx::sql_error& e) {
      if (is_connection_sqlstate(e.sqlstate()) || !conn || !conn->is_open()) drop_connection();
      return Status::error(std::string(what) + ": " + trim(e.what()) +
                           (e.sqlstate().empty() ? "" : " [SQLSTATE " + e.sqlstate() + "]"));
    } catch (const std::exception& e) {
      if (conn && !conn->is_open()) drop_connection();
      return Status::error(std::string(what) + ": " + trim(e.what()));
    }
  }

  static bool is_connection_sqlstate(const std::string& state) {
    // 08: connection exception; 57P: operator intervention (terminated, shutdown).
    return state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0;
  }
  static std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }
};

// A row of kGetJob's shape (also used by list_jobs) as a JobRecord.
JobRecord job_record_from_row(const pqxx::row& row);

// A PostgreSQL array literal of text values: {"a","b\"c"}.
std::string to_text_array(const std::vector<std::string>& values);

// Microseconds since the Unix epoch <-> Clock::time_point.
int64_t to_epoch_us(Clock::time_point t);
Clock::time_point from_epoch_us(int64_t us);

}  // namespace quern::queue
