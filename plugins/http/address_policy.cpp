#include "address_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>

namespace quern::http {
namespace {

struct Range {
  const char* cidr;
  const char* what;
};

// Order matters: the first match names the reason (metadata before link-local).
constexpr Range kRefusedV4[] = {
    {"0.0.0.0/8", "a 'this network' address"},
    {"10.0.0.0/8", "a private address"},
    {"100.64.0.0/10", "a shared (CGNAT) address"},
    {"127.0.0.0/8", "a loopback address"},
    {"169.254.169.254/32", "a cloud metadata address"},
    {"169.254.0.0/16", "a link-local address"},
    {"172.16.0.0/12", "a private address"},
    {"192.0.0.0/24", "an IETF protocol address"},
    {"192.168.0.0/16", "a private address"},
    {"198.18.0.0/15", "a benchmarking address"},
    {"224.0.0.0/4", "a multicast address"},
    {"240.0.0.0/4", "a reserved or broadcast address"},
};
constexpr Range kRefusedV6[] = {
    {"::/128", "the unspecified address"},
    {"::1/128", "a loopback address"},
    {"fd00:ec2::254/128", "a cloud metadata address"},
    {"fc00::/7", "a private (unique local) address"},
    {"fe80::/10", "a link-local address"},
    {"fec0::/10", "a site-local address"},
    {"ff00::/8", "a multicast address"},
};

bool matches(const Cidr& c, int family, const uint8_t* bytes) {
  if (c.family != family) return false;
  const int full = c.prefix / 8, rest = c.prefix % 8;
  if (std::memcmp(c.bytes.data(), bytes, static_cast<std::size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (c.bytes[static_cast<std::size_t>(full)] & mask) == (bytes[full] & mask);
}

template <std::size_t N>
std::vector<std::pair<Cidr, const char*>> parse_ranges(const Range (&ranges)[N]) {
  std::vector<std::pair<Cidr, const char*>> out;
  for (const auto& r : ranges) out.emplace_back(parse_cidr(r.cidr), r.what);
  return out;
}

const std::vector<std::pair<Cidr, const char*>>& refused_ranges() {
  static const auto all = [] {
    auto v4 = parse_ranges(kRefusedV4);
    auto v6 = parse_ranges(kRefusedV6);
    v4.insert(v4.end(), v6.begin(), v6.end());
    return v4;
  }();
  return all;
}

std::string to_text(int family, const uint8_t* bytes) {
  char buf[INET6_ADDRSTRLEN] = "?";
  ::inet_ntop(family, bytes, buf, sizeof buf);
  return buf;
}

// The IPv4 address an IPv6 address embeds (mapped, compatible, NAT64,
// 6to4), if any: such addresses reach the IPv4 host.
bool embedded_v4(const uint8_t* b, uint8_t* v4) {
  static const uint8_t zeros[12] = {};
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(b, mapped, 12) == 0 || std::memcmp(b, nat64, 12) == 0) {
    std::memcpy(v4, b + 12, 4);
    return true;
  }
  if (std::memcmp(b, zeros, 12) == 0) {  // ::a.b.c.d (but :: and ::1 are IPv6's own)
    if (b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1) return false;
    std::memcpy(v4, b + 12, 4);
    return true;
  }
  if (b[0] == 0x20 && b[1] == 0x02) {  // 2002:AABB:CCDD::/48 → A.B.C.D
    std::memcpy(v4, b + 2, 4);
    return true;
  }
  return false;
}

}  // namespace

Cidr parse_cidr(std::string_view text) {
  Cidr c;
  std::string addr(text);
  int prefix = -1;
  if (auto slash = addr.find('/'); slash != std::string::npos) {
    const std::string p = addr.substr(slash + 1);
    addr.resize(slash);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument("not an address or CIDR range: '" + std::string(text) + "'");
    prefix = std::stoi(p);
  }
  if (::inet_pton(AF_INET, addr.c_str(), c.bytes.data()) == 1) {
    c.family = AF_INET;
    c.prefix = prefix < 0 ? 32 : prefix;
    if (c.prefix > 32) throw std::invalid_argument("prefix too long in '" + std::string(text) + "'");
  } else if (::inet_pton(AF_INET6, addr.c_str(), c.bytes.data()) == 1) {
    c.family = AF_INET6;
    c.prefix = prefix < 0 ? 128 : prefix;
    if (c.prefix > 128) throw std::invalid_argument("prefix too long in '" + std::string(text) + "'");
  } else {
    throw std::invalid_argument("not an address or CIDR range: '" + std::string(text) + "'");
  }
  return c;
}

bool AddressPolicy::is_allowed(int family, const uint8_t* bytes) const {
  for (const auto& c : allowed_)
    if (matches(c, family, bytes)) return true;
  return false;
}

std::string AddressPolicy::check(int family, const uint8_t* bytes, const std::string& shown) const {
  if (is_allowed(family, bytes)) return {};
  if (family == AF_INET6) {
    uint8_t v4[4];
    if (embedded_v4(bytes, v4)) {
      if (is_allowed(AF_INET, v4)) return {};
      std::string why = check(AF_INET, v4, to_text(AF_INET, v4));
      if (!why.empty()) return shown + " embeds " + why;
    }
  }
  for (const auto& [cidr, what] : refused_ranges())
    if (matches(cidr, family, bytes)) return shown + " is " + what;
  return {};
}

std::string AddressPolicy::refusal(const sockaddr* address) const {
  if (allow_private_) return {};
  if (address == nullptr) return "no address";
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    const auto* b = reinterpret_cast<const uint8_t*>(&in->sin_addr);
    return check(AF_INET, b, to_text(AF_INET, b));
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    const auto* b = reinterpret_cast<const uint8_t*>(&in6->sin6_addr);
    return check(AF_INET6, b, to_text(AF_INET6, b));
  }
  return "address family " + std::to_string(address->sa_family) + " is not allowed";
}

std::string AddressPolicy::refusal(std::string_view ip_text) const {
  if (allow_private_) return {};
  const Cidr c = parse_cidr(ip_text);
  return check(c.family, c.bytes.data(), std::string(ip_text));
}

}  // namespace quern::http
