#include "host/auth/token_cache.h"

#include "host/common/crypto.h"

namespace quern::auth {

TokenCache::Ticket TokenCache::ticket(std::optional<uint64_t> epoch) const {
  std::lock_guard lock(mu_);
  return Ticket{epoch, forgets_};
}

std::optional<Principal> TokenCache::find(std::string_view token, std::optional<uint64_t> epoch,
                                          Clock::time_point now) const {
  std::string id;
  if (!epoch || !parse_token(token, &id)) return std::nullopt;
  const std::string presented = crypto::sha256_hex(token);
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  const Entry& e = it->second;
  if (e.epoch != *epoch || now - e.confirmed_at >= options_.max_age || now < e.confirmed_at)
    return std::nullopt;
  if (e.principal.expires_at && *e.principal.expires_at <= now) return std::nullopt;
  if (!crypto::equal_constant_time(presented, e.hash)) return std::nullopt;
  return e.principal;
}

void TokenCache::remember(std::string_view token, const Principal& principal, const Ticket& ticket,
                          std::optional<uint64_t> epoch_now, Clock::time_point now) {
  std::string id;
  if (!ticket.epoch || epoch_now != ticket.epoch || !parse_token(token, &id) || id != principal.token_id)
    return;
  Entry e{crypto::sha256_hex(token), principal, *ticket.epoch, now};
  std::lock_guard lock(mu_);
  if (forgets_ != ticket.forgets) return;
  if (entries_.size() >= options_.max_entries && !entries_.count(id)) entries_.clear();
  entries_.insert_or_assign(std::move(id), std::move(e));
}

void TokenCache::forget(std::string_view token_id) {
  std::lock_guard lock(mu_);
  ++forgets_;
  if (token_id.empty()) {
    entries_.clear();
  } else if (auto it = entries_.find(token_id); it != entries_.end()) {
    entries_.erase(it);
  }
}

size_t TokenCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace quern::auth
