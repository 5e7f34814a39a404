// Which peer addresses the http executor may connect to (SSRF protection).
//
// Checked on the actual socket address libcurl is about to connect to (from
// CURLOPT_OPENSOCKETFUNCTION), i.e. after DNS resolution, for the first
// request and for every redirect, so DNS rebinding and redirects to internal
// addresses are covered. A refused address never gets a socket: no packet is
// sent to it.
//
// Refused unless allowed: 0.0.0.0/8, 10/8, 100.64/10 (CGNAT, the shared address space), 127/8,
// 169.254/16 (link-local, with 169.254.169.254 cloud metadata), 172.16/12,
// 192.0.0/24, 192.168/16, 198.18/15 (benchmarking), 224/4 (multicast),
// 240/4 (reserved, broadcast); ::, ::1, fc00::/7 (unique local, with the
// fd00:ec2::254 metadata address), fe80::/10, fec0::/10, ff00::/8, and IPv6
// forms that embed a refused IPv4 address (::ffff:a.b.c.d mapped, ::a.b.c.d
// compatible, 64:ff9b::/96 NAT64, 2002::/16 6to4).
//
// Thread-safety: immutable after construction; const methods from any thread.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace quern::http {

struct Cidr {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};
  int prefix = 0;
};

// "10.0.0.0/8", "127.0.0.1" (= /32), "fd00::/8", "::1". Throws
// std::invalid_argument naming the text when it is not one of those.
Cidr parse_cidr(std::string_view text);

class AddressPolicy {
 public:
  // allow_private: nothing is refused. allowed: exempt addresses / ranges.
  AddressPolicy(bool allow_private, std::vector<Cidr> allowed)
      : allow_private_(allow_private), allowed_(std::move(allowed)) {}

  // Empty when the address may be connected to; otherwise a description
  // such as "127.0.0.1 is a loopback address". Unknown families are refused.
  std::string refusal(const sockaddr* address) const;
  // The same for an address in text form (tests, messages).
  std::string refusal(std::string_view ip_text) const;

 private:
  bool is_allowed(int family, const uint8_t* bytes) const;
  std::string check(int family, const uint8_t* bytes, const std::string& shown) const;

  bool allow_private_;
  std::vector<Cidr> allowed_;
};

}  // namespace quern::http
