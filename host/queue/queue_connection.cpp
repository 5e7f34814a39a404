// Queue: the connection (open, re-open after loss, prepared statements),
// LISTEN/NOTIFY, and small conversion helpers.
#include <chrono>
#include <cstdio>
#include <string>

#include "host/queue/queue.h"
#include "host/queue/queue_internal.h"
#include "host/queue/queue_sql.h"

namespace quern::queue {

Queue::Impl::Impl(std::shared_ptr<pg::Session> s, QueueOptions o) : session(std::move(s)), options(o) {
  session->add_statements(sql::kAll);
  hooks_id = session->add_hooks(
      [this](pqxx::connection& c) {
        for (const std::string& ch : channels) add_receiver(c, ch);
        for (const std::string& ch : payload_channels) add_receiver(c, ch, true);
      },
      [this] { receivers.clear(); });
}

Queue::Impl::~Impl() {
  receivers.clear();  // before the session (maybe shared, maybe ours) can drop the connection
  session->remove_hooks(hooks_id);
}

void Queue::Impl::add_receiver(pqxx::connection& c, const std::string& channel, bool keep_payloads) {
  // The receiver's constructor sends LISTEN with the channel quoted as an identifier.
  receivers.push_back(
      std::make_unique<ChannelReceiver>(c, channel, &notified, keep_payloads ? &payloads : nullptr));
}

void Queue::Impl::await(pqxx::connection& c, std::chrono::milliseconds timeout) {
  using SteadyClock = std::chrono::steady_clock;
  const auto deadline = SteadyClock::now() + timeout;
  c.get_notifs();  // anything already received while running other statements
  while (!notified) {
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) break;
    // Waits on the connection's socket (select), so a NOTIFY wakes us at once.
    c.await_notification(static_cast<long>(left.count() / 1000000),
                         static_cast<long>(left.count() % 1000000));
  }
  c.get_notifs();  // drain whatever else is pending
}

Status Queue::listen_channel(const std::string& channel) {
  auto r = impl_->run("listen_channel", [&](pqxx::connection& conn) {
    for (const std::string& c : impl_->payload_channels)
      if (c == channel) return true;
    impl_->add_receiver(conn, channel, true);
    impl_->payload_channels.push_back(channel);
    return true;
  });
  return r.status();
}

StatusOr<std::vector<Notification>> Queue::wait_for_notifications(std::chrono::milliseconds timeout) {
  return impl_->run("wait_for_notifications", [&](pqxx::connection& c) {
    impl_->await(c, timeout);
    impl_->notified = false;
    std::vector<Notification> out;
    out.swap(impl_->payloads);
    return out;
  });
}

Status Queue::listen(const std::vector<std::string>& tags) {
  auto r = impl_->run("listen", [&](pqxx::connection& conn) {
    for (const std::string& tag : tags) {
      const std::string ch = channel_for_tag(tag);
      bool known = false;
      for (const std::string& c : impl_->channels) known = known || c == ch;
      if (known) continue;
      impl_->add_receiver(conn, ch);
      impl_->channels.push_back(ch);
    }
    return true;
  });
  return r.status();
}

void Queue::unlisten_all() {
  try {
    impl_->receivers.clear();  // each receiver UNLISTENs its channel
  } catch (...) {
    impl_->session->drop();  // a broken connection forgets its LISTENs anyway
  }
  impl_->channels.clear();
  impl_->payload_channels.clear();
  impl_->payloads.clear();
  impl_->notified = false;
}

StatusOr<bool> Queue::wait_for_jobs(std::chrono::milliseconds timeout) {
  return impl_->run("wait_for_jobs", [&](pqxx::connection& c) {
    impl_->await(c, timeout);
    const bool got = impl_->notified;
    impl_->notified = false;
    return got;
  });
}

namespace {
// 32-bit FNV-1a; quern.channel_for_tag() in migrations.cpp computes the same.
uint32_t fnv1a32(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char b : s) {
    h ^= b;
    h *= 16777619u;
  }
  return h;
}
}  // namespace

std::string channel_for_tag(const std::string& tag) {
  static const std::string kPrefix = "quern_jobs:";
  constexpr size_t kMaxChannel = 63;  // NAMEDATALEN - 1
  if (kPrefix.size() + tag.size() <= kMaxChannel) return kPrefix + tag;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", fnv1a32(tag));
  return kPrefix + "#" + hex;
}

}  // namespace quern::queue
