// Queue: the connection (open, re-open after loss, prepared statements),
// LISTEN/NOTIFY, and small conversion helpers.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "host/queue/queue.h"
#include "host/queue/queue_internal.h"
#include "host/queue/queue_sql.h"

namespace quern::queue {

std::optional<std::chrono::microseconds> due_announcement(const std::string& payload) {
  if (payload.size() < 2 || payload[0] != '+') return std::nullopt;
  int64_t us = 0;
  const char* end = payload.data() + payload.size();
  if (auto [p, ec] = std::from_chars(payload.data() + 1, end, us); ec != std::errc() || p != end || us < 0)
    return std::nullopt;
  return std::chrono::microseconds(us);
}

void ChannelReceiver::operator()(const std::string& payload, int) {
  if (due_ != nullptr) {
    if (auto delay = due_announcement(payload)) {
      const SteadyTime at = std::chrono::steady_clock::now() + *delay;
      if (!*due_ || at < **due_) {
        *due_ = at;
        *due_moved_ = true;
      }
      return;
    }
  }
  // A collected notification ends waits by being there (Impl::await); it
  // does not say that jobs may be claimable.
  if (payloads_) return payloads_->push_back({channel(), payload});
  *flag_ = true;
}

Queue::Impl::Impl(std::shared_ptr<pg::Session> s, QueueOptions o) : session(std::move(s)), options(o) {
  // Without an eventfd (descriptors exhausted) waits fall back to 100 ms
  // slices, so that a stop is still noticed.
  wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  session->add_statements(sql::kAll);
  hooks_id = session->add_hooks(
      [this](pqxx::connection& c) {
        for (const std::string& ch : channels) add_receiver(c, ch, Kind::tag);
        for (const std::string& ch : payload_channels) add_receiver(c, ch, Kind::payloads);
        if (!wake_channel.empty()) add_receiver(c, wake_channel, Kind::wake);
      },
      [this] { receivers.clear(); });
}

Queue::Impl::~Impl() {
  receivers.clear();  // before the session (maybe shared, maybe ours) can drop the connection
  session->remove_hooks(hooks_id);
  if (wake_fd >= 0) ::close(wake_fd);
}

void Queue::Impl::add_receiver(pqxx::connection& c, const std::string& channel, Kind kind) {
  // The receiver's constructor sends LISTEN with the channel quoted as an identifier.
  receivers.push_back(std::make_unique<ChannelReceiver>(c, channel, &notified,
                                                        kind == Kind::payloads ? &payloads : nullptr,
                                                        kind == Kind::tag ? &next_due : nullptr, &due_moved));
}

void Queue::Impl::await(pqxx::connection& c, std::chrono::milliseconds timeout) {
  using SteadyClock = std::chrono::steady_clock;
  const auto deadline = SteadyClock::now() + timeout;
  c.get_notifs();  // anything already received while running other statements
  while (!notified && !due_moved && payloads.empty()) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) break;
    // The socket wakes us on a NOTIFY, the eventfd on interrupt(): no
    // periodic wake-ups, however long the wait.
    if (c.sock() < 0) throw pqxx::broken_connection("the connection to the database is closed");
    pollfd fds[2] = {{c.sock(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int64_t slice = wake_fd >= 0 ? 3600 * 1000 : 100;
    const int n = ::poll(fds, wake_fd >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(left.count(), slice)));
    if (n < 0 && errno != EINTR) throw std::runtime_error("poll: " + std::string(std::strerror(errno)));
    if (n > 0 && (fds[1].revents & POLLIN) != 0) {
      uint64_t v;
      (void)!::read(wake_fd, &v, sizeof v);
      break;
    }
    c.get_notifs();  // consumes the socket's input; a closed connection throws (session reconnects)
  }
  c.get_notifs();  // drain whatever else is pending
}

void Queue::interrupt() {
  const uint64_t one = 1;
  if (impl_->wake_fd >= 0) (void)!::write(impl_->wake_fd, &one, sizeof one);
}

std::optional<std::chrono::steady_clock::time_point> Queue::next_due() const { return impl_->next_due; }

Status Queue::listen_for_wakeups(const std::string& worker_id) {
  const std::string ch = channel_for_worker(worker_id);
  if (impl_->wake_channel == ch) return Status::ok();
  // Set after the LISTEN: a reconnect within run() must not LISTEN twice.
  impl_->wake_channel.clear();
  auto r = impl_->run("listen_for_wakeups", [&](pqxx::connection& conn) {
    impl_->add_receiver(conn, ch, Impl::Kind::wake);
    return true;
  });
  impl_->wake_channel = ch;  // kept on failure too: the reconnect hook LISTENs on it
  return r.status();
}

Status Queue::listen_channel(const std::string& channel) {
  auto r = impl_->run("listen_channel", [&](pqxx::connection& conn) {
    for (const std::string& c : impl_->payload_channels)
      if (c == channel) return true;
    impl_->add_receiver(conn, channel, Impl::Kind::payloads);
    impl_->payload_channels.push_back(channel);
    return true;
  });
  return r.status();
}

StatusOr<std::vector<Notification>> Queue::wait_for_notifications(std::chrono::milliseconds timeout) {
  return impl_->run("wait_for_notifications", [&](pqxx::connection& c) {
    impl_->await(c, timeout);
    impl_->notified = false;
    impl_->due_moved = false;
    std::vector<Notification> out;
    out.swap(impl_->payloads);
    return out;
  });
}

StatusOr<std::vector<Notification>> Queue::take_notifications() {
  return impl_->run("take_notifications", [&](pqxx::connection& c) {
    c.get_notifs();  // what arrived during other statements; reads without blocking
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
      impl_->add_receiver(conn, ch, Impl::Kind::tag);
      impl_->channels.push_back(ch);
    }
    return true;
  });
  return r.status();
}

void Queue::unlisten_tags() {
  Impl& im = *impl_;
  const auto is_tag = [&im](const std::unique_ptr<ChannelReceiver>& r) {
    return std::find(im.channels.begin(), im.channels.end(), r->channel()) != im.channels.end();
  };
  try {
    std::erase_if(im.receivers, is_tag);  // each receiver UNLISTENs its channel
  } catch (...) {
    im.session->drop();  // a broken connection forgets its LISTENs; the reconnect LISTENs on the rest
  }
  im.channels.clear();
  im.notified = false;
  im.next_due.reset();
}

StatusOr<bool> Queue::wait_for_jobs(std::chrono::milliseconds timeout) {
  return impl_->run("wait_for_jobs", [&](pqxx::connection& c) {
    impl_->await(c, timeout);
    const bool got = impl_->notified;
    impl_->notified = false;
    impl_->due_moved = false;  // the caller reads next_due() now
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

// prefix + name when it fits a channel name (63 bytes), else prefix + "#" +
// the name's FNV-1a hash.
std::string channel_name(const std::string& prefix, const std::string& name) {
  constexpr size_t kMaxChannel = 63;  // NAMEDATALEN - 1
  if (prefix.size() + name.size() <= kMaxChannel) return prefix + name;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", fnv1a32(name));
  return prefix + "#" + hex;
}
}  // namespace

std::string channel_for_tag(const std::string& tag) { return channel_name("quern_jobs:", tag); }

std::string channel_for_worker(const std::string& worker_id) {
  return channel_name("quern_worker:", worker_id);
}

}  // namespace quern::queue
