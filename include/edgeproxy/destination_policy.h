// DestinationPolicy: where a forward proxy (CONNECT or absolute-URI HTTP) may connect on a
// client's behalf, checked on every resolved address before connect(), so the proxy is never an
// open relay into its own host, its networks or a cloud's metadata service. Built once when the
// configuration is loaded; check() is a pure, allocation-free function of one address.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edgeproxy/net.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

// An IPv4 or IPv6 network: an address and a prefix length, host bits zero.
//
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address a.b.c.d everywhere in this
// file: an AF_INET6 socket connected to it talks IPv4 to a.b.c.d. So "::ffff:10.0.0.0/104"
// parses as 10.0.0.0/8, and contains() sees ::ffff:10.1.2.3 as 10.1.2.3. An IPv6 network never
// contains a mapped address (not even ::/0): write the IPv4 network instead.
class Cidr {
 public:
  // "10.0.0.0/8", "fc00::/7", "0.0.0.0/0"; a bare address is /32 or /128. Addresses are what
  // inet_pton(3) takes (dotted quad, no leading zeros; IPv6 without a zone). Refuses an empty
  // text, a bad address, a prefix that is empty, not decimal or too long for the family, and
  // host bits set ("10.1.0.0/8" is refused, naming 10.0.0.0/8: a typo there would widen or
  // narrow a rule silently). Spaces are refused: the caller trims. Error: one phrase.
  static Result<Cidr> parse(std::string_view text);

  // Both AF_INET and AF_INET6 (see the class comment on mapped addresses).
  int family() const noexcept { return v6_ ? AF_INET6 : AF_INET; }
  uint32_t prefix_bits() const noexcept { return prefix_bits_; }
  // True when `address`'s IP (port ignored) is inside; false for a Unix address.
  bool contains(const SocketAddress& address) const noexcept;
  // Canonical text: "10.0.0.0/8", "fc00::/7".
  std::string to_string() const;
  bool operator==(const Cidr&) const noexcept = default;

 private:
  friend class DestinationPolicy;
  friend Result<std::vector<Cidr>> interface_addresses();
  bool contains(bool v6, const uint8_t* bytes) const noexcept;

  std::array<uint8_t, 16> network_{};  // IPv4: the first 4 bytes
  uint8_t prefix_bits_ = 0;
  bool v6_ = false;
};

// A comma-separated list of networks: "10.0.0.0/8, 192.168.0.0/16". Spaces around items are
// ignored; an empty list or item is refused. Error: the first bad item's phrase.
Result<std::vector<Cidr>> parse_cidr_list(std::string_view text);

// Every IPv4 and IPv6 address configured on this host's interfaces now (getifaddrs(3)), as /32
// and /128 networks, duplicates dropped: for set_local_addresses(). Error: one line.
Result<std::vector<Cidr>> interface_addresses();

// A set of TCP ports: one bit for each of the 65536. Port 0 is never in a parsed set.
class PortSet {
 public:
  // Empty: holds no port.
  PortSet() noexcept = default;
  // "443", "80,443", "1024-65535", "80, 443, 8000-8099": ports 1-65535, ranges inclusive,
  // spaces around items ignored. Refuses an empty list or item, port 0, a port above 65535, a
  // range whose first port is above its last, and anything not decimal. Error: one phrase.
  static Result<PortSet> parse(std::string_view list);

  void add(uint16_t port) noexcept;
  void add_range(uint16_t first, uint16_t last) noexcept;  // no-op when first > last
  bool contains(uint16_t port) const noexcept {
    return ((bits_[size_t{port} >> 6] >> (port & 63u)) & 1u) != 0;
  }
  uint32_t count() const noexcept;
  bool operator==(const PortSet&) const noexcept = default;

 private:
  std::array<uint64_t, 1024> bits_{};
};

enum class Verdict : uint8_t {
  kAllowed,
  kPortDenied,     // the network may be reached, the port may not
  kNetworkDenied,  // an explicit deny entry matched (or the address is not IPv4/IPv6)
  kDefaultDenied,  // a built-in range or a local address matched, and no allow entry
};
// "allowed", "port denied", "network denied", "default denied".
const char* to_string(Verdict verdict) noexcept;

// One entry of the built-in deny list, with what it is for logs and documentation.
struct DefaultDenyRange {
  Cidr network;
  const char* what = "";
};

// Which destinations are allowed. An address is looked at as its views: the address itself
// (a mapped address being its IPv4 address), plus the IPv4 addresses that these IPv6 forms
// carry to a translator or tunnel, which may deliver there:
//   NAT64 well-known prefix 64:ff9b::/96 (RFC 6052): the last 32 bits;
//   IPv4-compatible ::/96 (deprecated; Linux's sit0 tunnels to it): the last 32 bits;
//   6to4 2002::/16 (RFC 3056): bits 16-47, the relay's IPv4 address;
//   Teredo 2001::/32 (RFC 4380): the server (bits 32-63) and the client (last 32 bits, inverted).
// The local-use NAT64 prefix 64:ff9b:1::/48 is denied whole instead (its embedding depends on
// the site's prefix length).
//
// Precedence, highest first; a destination must also have an allowed port:
//   1. explicit deny: any view inside a deny entry           -> kNetworkDenied
//   2. explicit allow: a view inside an allow entry passes rule 3
//   3. default deny (on unless disabled): any view inside a built-in range (see
//      default_deny_ranges()) or equal to one of the host's own addresses (see
//      set_local_addresses()) that no allow entry covers      -> kDefaultDenied
//   4. otherwise the network is allowed; then the port: not in the set -> kPortDenied
// So allow entries are exceptions to the built-in list, never a whitelist: with no entries at
// all, every globally routable address is allowed (on an allowed port). Every view must pass:
// allowing 64:ff9b::/96 does not open 64:ff9b::10.0.0.1 unless 10.0.0.0/8 is allowed too.
//
// check() judges addresses, never names: the worker calls it on every address it is about to
// connect() to, cache hits and numeric hosts included. So DNS rebinding, and the numeric forms
// getaddrinfo accepts ("2130706433", "127.1", "0x7f.1"), reach nothing a literal would not.
//
// The default-constructed policy allows no port, so it refuses everything until ports are set.
// Built on one thread (the configuration's); once shared, only the const members are called.
class DestinationPolicy {
 public:
  // No port, no explicit entries, default deny on.
  DestinationPolicy();

  void set_ports(const PortSet& ports) noexcept { ports_ = ports; }
  void allow(const Cidr& network) { allow_.push_back(network); }
  void deny(const Cidr& network) { deny_.push_back(network); }
  void set_default_deny(bool on) noexcept { default_deny_ = on; }
  // The host's own addresses (interface_addresses()), refused like the built-in ranges: a
  // public address of the proxy's host reaches its own services, and its own listeners would
  // make a loop. Replaces the previous set; the caller refreshes it (at a reload) when
  // interfaces change.
  void set_local_addresses(std::vector<Cidr> addresses) { local_ = std::move(addresses); }

  const PortSet& ports() const noexcept { return ports_; }
  const std::vector<Cidr>& allowed() const noexcept { return allow_; }
  const std::vector<Cidr>& denied() const noexcept { return deny_; }
  bool default_deny() const noexcept { return default_deny_; }
  const std::vector<Cidr>& local_addresses() const noexcept { return local_; }

  // The verdict for connecting to `address` (IP and port). Any thread: check() only reads.
  Verdict check(const SocketAddress& address) const noexcept;

  // The built-in ranges, in address order per family: every range of the IANA special-purpose
  // registries that is not globally reachable (RFC 6890 and its updates), plus multicast and
  // 240.0.0.0/4 (which holds the broadcast address 255.255.255.255). A range that holds a few
  // global addresses (192.0.0.0/24, 2001::/23) is denied whole: allow the addresses you need.
  // Besides these, default deny refuses every IPv6 address outside global unicast 2000::/3
  // (the only IPv6 space IANA allocates for it, so an address elsewhere is unallocated or one
  // of the listed special ranges), except the NAT64 prefix 64:ff9b::/96, judged by the IPv4
  // address it carries.
  static std::span<const DefaultDenyRange> default_deny_ranges() noexcept;

 private:
  PortSet ports_;
  std::vector<Cidr> allow_;
  std::vector<Cidr> deny_;
  std::vector<Cidr> local_;
  std::span<const DefaultDenyRange> defaults_;
  bool default_deny_ = true;
};

}  // namespace edgeproxy
