// Queue::Impl: the session it runs over, its LISTENs, and the error boundary
// shared by every Queue method. Private to host/queue.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "host/pg/session.h"
#include "host/queue/queue.h"

namespace quern::queue {

using SteadyTime = std::chrono::steady_clock::time_point;

// Marks the queue notified when a NOTIFY arrives on its channel. libpqxx
// calls it from get_notifs() on the owning thread. Its constructor sends
// LISTEN with the channel quoted as an identifier.
class ChannelReceiver final : public pqxx::notification_receiver {
 public:
  // payloads: where to append each notification, or null. due: for a tag
  // channel, where a due-time announcement ("+<delay us>", migration 11)
  // lowers the next due time instead of marking the queue notified.
  ChannelReceiver(pqxx::connection& c, const std::string& channel, bool* flag,
                  std::vector<Notification>* payloads = nullptr, std::optional<SteadyTime>* due = nullptr,
                  bool* due_moved = nullptr)
      : pqxx::notification_receiver(c, channel),
        flag_(flag),
        payloads_(payloads),
        due_(due),
        due_moved_(due_moved) {}
  void operator()(const std::string& payload, int) override;

 private:
  bool* flag_;
  std::vector<Notification>* payloads_;
  std::optional<SteadyTime>* due_;
  bool* due_moved_;  // set when *due_ moved earlier: a waiting claimer recomputes its deadline
};

struct Queue::Impl {
  // Registers the queue's statements on the session, and hooks that drop the
  // receivers before the connection goes and re-LISTEN after a reconnect.
  Impl(std::shared_ptr<pg::Session> session, QueueOptions options);
  ~Impl();

  std::shared_ptr<pg::Session> session;
  QueueOptions options;
  int hooks_id = 0;
  std::vector<std::unique_ptr<ChannelReceiver>> receivers;  // on the session's current connection
  std::vector<std::string> channels;                        // LISTENed; re-LISTENed after a reconnect
  bool notified = false;                                    // set by receivers, cleared by wait_for_jobs
  std::vector<Notification> payloads;         // of listen_channel() channels, taken by wait_for_notifications
                                              // or take_notifications; while any, await() returns at once
  std::vector<std::string> payload_channels;  // re-LISTENed after a reconnect, with payloads
  std::string wake_channel;                   // listen_for_wakeups(); re-LISTENed after a reconnect
  std::optional<SteadyTime> next_due;         // Queue::next_due()
  bool due_moved = false;                     // an announcement moved next_due earlier; ends a wait
  // eventfd that interrupt() makes readable; await() polls it with the
  // connection's socket (-1: none could be made; waits are sliced). The
  // only member any thread touches.
  int wake_fd = -1;

  // LISTENs on one more channel (connection must be open).
  enum class Kind { tag, payloads, wake };
  void add_receiver(pqxx::connection& c, const std::string& channel, Kind kind);
  // Waits until a receiver fired, interrupt() or the deadline (draining
  // what is pending).
  void await(pqxx::connection& c, std::chrono::milliseconds timeout);

  // The error boundary (pg::Session::run).
  template <typename F>
  auto run(const char* what, F&& body) {
    return session->run(what, std::forward<F>(body));
  }

  // Runs a prepared statement whose one parameter is a worker id.
  Status exec_for_worker(const char* what, const pg::Statement& st, const std::string& worker_id) {
    return run(what,
               [&](pqxx::connection& c) {
                 pqxx::nontransaction tx(c);
                 tx.exec_prepared(st.name, worker_id);
                 return true;
               })
        .status();
  }
};

// A row of kGetJob's shape (also used by list_jobs) as a JobRecord.
JobRecord job_record_from_row(const pqxx::row& row);

using pg::to_text_array;

// [{job_id, attempt, chunk}] of the non-empty chunks: the logs parameter of
// kAppendLogs and kComplete.
nlohmann::json log_chunks_json(const std::vector<LogChunk>& chunks);

// Runs `body` (a statement that appends logs) through session.run, again
// when it lost a race with another appender of the same job for a start
// offset (a unique violation: a stale worker and the new one), up to 5 times.
Status with_log_race_retries(pg::Session& session, const char* what,
                             const std::function<void(pqxx::connection&)>& body);

// Microseconds since the Unix epoch <-> Clock::time_point.
using pg::from_epoch_us;
using pg::to_epoch_us;

}  // namespace quern::queue
