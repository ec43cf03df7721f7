// Networks, port sets and the destination check; see destination_policy.h.
#include "edgeproxy/destination_policy.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "edgeproxy/check.h"

namespace edgeproxy {

namespace {

constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// One way of looking at a destination: an IPv4 address (first 4 bytes) or an IPv6 address.
struct View {
  bool v6 = false;
  uint8_t bytes[16] = {};
};

// The address itself, a mapped address as its IPv4 address; false for a non-IP family.
bool primary_view(const SocketAddress& a, View& out) noexcept {
  if (a.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
    std::memcpy(out.bytes, &in->sin_addr, 4);
    out.v6 = false;
    return true;
  }
  if (a.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    const uint8_t* b = in6->sin6_addr.s6_addr;
    if (std::memcmp(b, kMapped, sizeof kMapped) == 0) {
      std::memcpy(out.bytes, b + 12, 4);
      out.v6 = false;
    } else {
      std::memcpy(out.bytes, b, 16);
      out.v6 = true;
    }
    return true;
  }
  return false;
}

View v4_view(const uint8_t* four, uint8_t flip) noexcept {
  View v;
  for (int i = 0; i < 4; ++i) v.bytes[i] = static_cast<uint8_t>(four[i] ^ flip);
  return v;
}

constexpr uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

bool is_nat64(const View& v) noexcept {
  return v.v6 && std::memcmp(v.bytes, kNat64, sizeof kNat64) == 0;
}

// The IPv4 addresses an IPv6 address carries to a translator or tunnel (see the header); the
// number written to `out` (at most 2).
int embedded_views(const View& p, View out[2]) noexcept {
  if (!p.v6) return 0;
  const uint8_t* b = p.bytes;
  static constexpr uint8_t kZero[12] = {};
  if (is_nat64(p)) {
    out[0] = v4_view(b + 12, 0);
    return 1;
  }
  if (std::memcmp(b, kZero, sizeof kZero) == 0) {
    // :: and ::1 are the unspecified and loopback addresses (both denied by name), not IPv4-
    // compatible ones: an allow entry for ::1 must not be undone by a view of "0.0.0.1".
    if (b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1) return 0;
    out[0] = v4_view(b + 12, 0);
    return 1;
  }
  if (b[0] == 0x20 && b[1] == 0x02) {
    out[0] = v4_view(b + 2, 0);
    return 1;
  }
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) {
    out[0] = v4_view(b + 4, 0);
    out[1] = v4_view(b + 12, 0xff);
    return 2;
  }
  return 0;
}

bool is_digits(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// A decimal number of at most `max_digits` digits; false when not one.
bool parse_decimal(std::string_view s, size_t max_digits, uint32_t& out) noexcept {
  if (!is_digits(s) || s.size() > max_digits) return false;
  uint32_t v = 0;
  for (const char c : s) v = v * 10 + static_cast<uint32_t>(c - '0');
  out = v;
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits `text` at commas into trimmed items; calls f(item) until it returns false.
template <class F>
bool for_each_item(std::string_view text, F f) {
  for (;;) {
    const size_t comma = text.find(',');
    if (!f(trim(text.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    text.remove_prefix(comma + 1);
  }
}

struct DefaultText {
  const char* cidr;
  const char* what;
};

// IANA IPv4 and IPv6 Special-Purpose Address Registries: every entry not globally reachable,
// plus multicast and the reserved 240/4. Overlaps (::/128 and ::1/128 inside ::/96; the IPv6
// ranges outside 2000::/3, which check() refuses anyway) keep the names for documentation.
constexpr DefaultText kDefaultTexts[] = {
    {"0.0.0.0/8", "this network (0.0.0.0 reaches the local host)"},
    {"10.0.0.0/8", "private (RFC 1918)"},
    {"100.64.0.0/10", "shared address space, CGNAT (RFC 6598)"},
    {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local, cloud metadata 169.254.169.254"},
    {"172.16.0.0/12", "private (RFC 1918)"},
    {"192.0.0.0/24", "IETF protocol assignments (RFC 6890)"},
    {"192.0.2.0/24", "documentation TEST-NET-1"},
    {"192.88.99.0/24", "6to4 relay anycast (deprecated, RFC 7526)"},
    {"192.168.0.0/16", "private (RFC 1918)"},
    {"198.18.0.0/15", "benchmarking (RFC 2544)"},
    {"198.51.100.0/24", "documentation TEST-NET-2"},
    {"203.0.113.0/24", "documentation TEST-NET-3"},
    {"224.0.0.0/4", "multicast"},
    {"240.0.0.0/4", "reserved, and the broadcast address 255.255.255.255"},
    {"::/128", "unspecified (reaches the local host)"},
    {"::1/128", "loopback"},
    {"::/96", "IPv4-compatible (deprecated, RFC 4291)"},
    {"64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"},
    {"100::/64", "discard-only (RFC 6666)"},
    {"2001::/23", "IETF protocol assignments, Teredo 2001::/32 (RFC 2928, 4380)"},
    {"2001:db8::/32", "documentation"},
    {"2002::/16", "6to4 (RFC 3056)"},
    {"3fff::/20", "documentation (RFC 9637)"},
    {"5f00::/16", "segment routing SIDs (RFC 9602)"},
    {"fc00::/7", "unique-local"},
    {"fe80::/10", "link-local"},
    {"fec0::/10", "site-local (deprecated, RFC 3879)"},
    {"ff00::/8", "multicast"},
};
constexpr size_t kDefaultCount = sizeof kDefaultTexts / sizeof kDefaultTexts[0];

struct DefaultTable {
  std::array<DefaultDenyRange, kDefaultCount> ranges;
  DefaultTable() noexcept {
    for (size_t i = 0; i < kDefaultCount; ++i) {
      const Result<Cidr> c = Cidr::parse(kDefaultTexts[i].cidr);
      EDGEPROXY_CHECK(c.ok());
      ranges[i] = DefaultDenyRange{c.value(), kDefaultTexts[i].what};
    }
  }
};

}  // namespace

Result<Cidr> Cidr::parse(std::string_view text) {
  if (text.empty()) return Error{"empty network"};
  const size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  Cidr c;
  char buffer[INET6_ADDRSTRLEN + 1] = {};
  if (address.size() >= sizeof buffer || address.find('\0') != std::string_view::npos) {
    return Error{"'" + std::string(text) + "': bad address"};
  }
  std::memcpy(buffer, address.data(), address.size());
  uint8_t bytes[16] = {};
  if (inet_pton(AF_INET, buffer, bytes) == 1) {
    c.v6_ = false;
  } else if (inet_pton(AF_INET6, buffer, bytes) == 1) {
    c.v6_ = true;
  } else {
    return Error{"'" + std::string(text) + "': bad address"};
  }
  const uint32_t max_bits = c.v6_ ? 128 : 32;
  uint32_t bits = max_bits;
  if (slash != std::string_view::npos) {
    const std::string_view prefix = text.substr(slash + 1);
    if (!parse_decimal(prefix, 3, bits) || bits > max_bits) {
      return Error{"'" + std::string(text) + "': bad prefix length (0-" + std::to_string(max_bits) +
                   ")"};
    }
  }
  if (c.v6_ && bits >= 96 && std::memcmp(bytes, kMapped, sizeof kMapped) == 0) {
    // A mapped network is the IPv4 network it maps (see the header).
    std::memmove(bytes, bytes + 12, 4);
    std::memset(bytes + 4, 0, 12);
    c.v6_ = false;
    bits -= 96;
  }
  std::memcpy(c.network_.data(), bytes, 16);
  c.prefix_bits_ = static_cast<uint8_t>(bits);
  Cidr masked = c;
  for (uint32_t i = 0; i < 16; ++i) {
    const uint32_t first = i * 8;
    if (first >= bits) {
      masked.network_[i] = 0;
    } else if (bits - first < 8) {
      masked.network_[i] &= static_cast<uint8_t>(0xffu << (8 - (bits - first)));
    }
  }
  if (masked.network_ != c.network_) {
    return Error{"'" + std::string(text) + "': host bits set (the network is " +
                 masked.to_string() + ")"};
  }
  return c;
}

bool Cidr::contains(bool v6, const uint8_t* bytes) const noexcept {
  if (v6 != v6_) return false;
  const uint32_t whole = prefix_bits_ / 8u;
  const uint32_t rest = prefix_bits_ % 8u;
  if (std::memcmp(bytes, network_.data(), whole) != 0) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xffu << (8 - rest));
  return (bytes[whole] & mask) == network_[whole];
}

bool Cidr::contains(const SocketAddress& address) const noexcept {
  View v;
  return primary_view(address, v) && contains(v.v6, v.bytes);
}

std::string Cidr::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(family(), network_.data(), text, sizeof text);
  return std::string(text) + "/" + std::to_string(prefix_bits_);
}

Result<std::vector<Cidr>> parse_cidr_list(std::string_view text) {
  std::vector<Cidr> out;
  std::string error;
  for_each_item(text, [&](std::string_view item) {
    Result<Cidr> c = Cidr::parse(item);
    if (!c.ok()) {
      error = c.error();
      return false;
    }
    out.push_back(c.value());
    return true;
  });
  if (!error.empty()) return Error{error};
  return out;
}

Result<std::vector<Cidr>> interface_addresses() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    return Error{std::string("getifaddrs: ") + std::strerror(errno)};
  }
  std::vector<Cidr> out;
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    const int family = i->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    SocketAddress a;
    const size_t length = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    std::memcpy(&a.storage, i->ifa_addr, length);
    a.length = static_cast<socklen_t>(length);
    View v;
    primary_view(a, v);
    Cidr c;
    c.v6_ = v.v6;
    c.prefix_bits_ = v.v6 ? 128 : 32;
    std::memcpy(c.network_.data(), v.bytes, sizeof v.bytes);
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  freeifaddrs(list);
  return out;
}

Result<PortSet> PortSet::parse(std::string_view list) {
  PortSet set;
  std::string error;
  const auto port = [&](std::string_view s, uint16_t& out) {
    uint32_t v = 0;
    if (!parse_decimal(s, 5, v) || v == 0 || v > 65535) {
      error = "'" + std::string(s) + "' is not a port (1-65535)";
      return false;
    }
    out = static_cast<uint16_t>(v);
    return true;
  };
  for_each_item(list, [&](std::string_view item) {
    if (item.empty()) {
      error = "empty item in port list '" + std::string(list) + "'";
      return false;
    }
    const size_t dash = item.find('-');
    uint16_t first = 0;
    uint16_t last = 0;
    if (!port(trim(item.substr(0, dash)), first)) return false;
    last = first;
    if (dash != std::string_view::npos) {
      if (!port(trim(item.substr(dash + 1)), last)) return false;
      if (first > last) {
        error = "port range '" + std::string(item) + "' runs backwards";
        return false;
      }
    }
    set.add_range(first, last);
    return true;
  });
  if (!error.empty()) return Error{error};
  return set;
}

void PortSet::add(uint16_t port) noexcept {
  bits_[size_t{port} >> 6] |= uint64_t{1} << (port & 63u);
}

void PortSet::add_range(uint16_t first, uint16_t last) noexcept {
  for (uint32_t p = first; p <= last; ++p) add(static_cast<uint16_t>(p));
}

uint32_t PortSet::count() const noexcept {
  uint32_t n = 0;
  for (const uint64_t word : bits_) n += static_cast<uint32_t>(__builtin_popcountll(word));
  return n;
}

const char* to_string(Verdict verdict) noexcept {
  switch (verdict) {
    case Verdict::kAllowed:
      return "allowed";
    case Verdict::kPortDenied:
      return "port denied";
    case Verdict::kNetworkDenied:
      return "network denied";
    case Verdict::kDefaultDenied:
      return "default denied";
  }
  return "?";
}

std::span<const DefaultDenyRange> DestinationPolicy::default_deny_ranges() noexcept {
  static const DefaultTable table;
  return table.ranges;
}

DestinationPolicy::DestinationPolicy() : defaults_(default_deny_ranges()) {}

Verdict DestinationPolicy::check(const SocketAddress& address) const noexcept {
  View views[3];
  if (!primary_view(address, views[0])) return Verdict::kNetworkDenied;
  const int count = 1 + embedded_views(views[0], views + 1);
  const auto listed = [](const std::vector<Cidr>& networks, const View& v) {
    for (const Cidr& n : networks) {
      if (n.contains(v.v6, v.bytes)) return true;
    }
    return false;
  };
  const auto built_in = [this, &listed](const View& v) {
    if (v.v6 && (v.bytes[0] & 0xe0) != 0x20 && !is_nat64(v)) return true;  // not 2000::/3
    for (const DefaultDenyRange& r : defaults_) {
      if (r.network.contains(v.v6, v.bytes)) return true;
    }
    return listed(local_, v);
  };
  for (int i = 0; i < count; ++i) {
    if (listed(deny_, views[i])) return Verdict::kNetworkDenied;
  }
  if (default_deny_) {
    for (int i = 0; i < count; ++i) {
      if (built_in(views[i]) && !listed(allow_, views[i])) return Verdict::kDefaultDenied;
    }
  }
  if (!ports_.contains(address.port())) return Verdict::kPortDenied;
  return Verdict::kAllowed;
}

}  // namespace edgeproxy
