// Cidr, PortSet and DestinationPolicy: parsing and refusals, the first and last address of every
// built-in range and their neighbours, mapped and embedded IPv4 addresses, and the precedence of
// explicit deny, explicit allow, default deny and the port set.
#include "edgeproxy/destination_policy.h"
#include "edgeproxy/resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

namespace edgeproxy {
namespace {

// An IPv4 or IPv6 literal and a port, built without the resolver.
SocketAddress Ip(const char* text, uint16_t port = 443) {
  SocketAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    a.length = sizeof(sockaddr_in);
  } else {
    a.storage = {};
    EXPECT_EQ(inet_pton(AF_INET6, text, &in6->sin6_addr), 1) << text;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    a.length = sizeof(sockaddr_in6);
  }
  return a;
}

Cidr Net(const char* text) {
  Result<Cidr> c = Cidr::parse(text);
  EXPECT_TRUE(c.ok()) << text << ": " << c.error();
  return c.ok() ? c.value() : Cidr{};
}

// Every port allowed, default deny on: what the network rules alone say.
DestinationPolicy AnyPort() {
  DestinationPolicy p;
  p.set_ports(PortSet::parse("1-65535").value());
  return p;
}

std::string ParseError(const char* text) {
  Result<Cidr> c = Cidr::parse(text);
  return c.ok() ? "parsed as " + c.value().to_string() : c.error();
}

TEST(DestinationPolicyTest, CidrParsesBothFamiliesAndBareAddresses) {
  struct Case {
    const char* text;
    int family;
    uint32_t bits;
    const char* canonical;
  };
  const Case cases[] = {
      {"10.0.0.0/8", AF_INET, 8, "10.0.0.0/8"},
      {"100.64.0.0/10", AF_INET, 10, "100.64.0.0/10"},
      {"0.0.0.0/0", AF_INET, 0, "0.0.0.0/0"},
      {"1.2.3.4", AF_INET, 32, "1.2.3.4/32"},
      {"1.2.3.4/32", AF_INET, 32, "1.2.3.4/32"},
      {"fc00::/7", AF_INET6, 7, "fc00::/7"},
      {"FE80::/10", AF_INET6, 10, "fe80::/10"},
      {"::/0", AF_INET6, 0, "::/0"},
      {"::1", AF_INET6, 128, "::1/128"},
      {"2001:db8:0:0::/64", AF_INET6, 64, "2001:db8::/64"},
      // Mapped networks are the IPv4 networks they map.
      {"::ffff:10.0.0.0/104", AF_INET, 8, "10.0.0.0/8"},
      {"::ffff:1.2.3.4", AF_INET, 32, "1.2.3.4/32"},
      {"::ffff:0:0/96", AF_INET, 0, "0.0.0.0/0"},
  };
  for (const Case& c : cases) {
    Result<Cidr> r = Cidr::parse(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.error();
    EXPECT_EQ(r.value().family(), c.family) << c.text;
    EXPECT_EQ(r.value().prefix_bits(), c.bits) << c.text;
    EXPECT_EQ(r.value().to_string(), c.canonical) << c.text;
  }
}

TEST(DestinationPolicyTest, CidrRefusesBadText) {
  const char* bad[] = {"",
                       "/8",
                       "10.0.0.0/",
                       "10.0.0.0/33",
                       "::/129",
                       "10.0.0.0/-1",
                       "10.0.0.0/+8",
                       "10.0.0.0/ 8",
                       " 10.0.0.0/8",
                       "10.0.0.0/8 ",
                       "10.0.0.0/8/8",
                       "10.0.0.0/0x8",
                       "10.0.0",
                       "010.0.0.1",
                       "256.0.0.0",
                       "fe80::1%eth0",
                       "host.example",
                       "10.0.0.0/1000",
                       "1.2.3.4.5",
                       "::ffff:10.0.0.0/200"};
  for (const char* text : bad) {
    EXPECT_FALSE(Cidr::parse(text).ok()) << "'" << text << "' " << ParseError(text);
  }
  EXPECT_FALSE(Cidr::parse(std::string_view("1.2.3.4\0/8", 10)).ok()) << "a NUL ends nothing";
  EXPECT_EQ(ParseError("10.0.0.0/33"), "'10.0.0.0/33': bad prefix length (0-32)");
  EXPECT_EQ(ParseError("::/129"), "'::/129': bad prefix length (0-128)");
  EXPECT_EQ(ParseError("10.0.0"), "'10.0.0': bad address");
  EXPECT_EQ(ParseError(""), "empty network");
}

TEST(DestinationPolicyTest, CidrRefusesHostBitsAndNamesTheNetwork) {
  EXPECT_EQ(ParseError("10.1.0.0/8"), "'10.1.0.0/8': host bits set (the network is 10.0.0.0/8)");
  EXPECT_EQ(ParseError("100.65.0.0/10"),
            "'100.65.0.0/10': host bits set (the network is 100.64.0.0/10)");
  EXPECT_EQ(ParseError("fe80::1/10"), "'fe80::1/10': host bits set (the network is fe80::/10)");
  EXPECT_EQ(ParseError("fc00::/5"), "'fc00::/5': host bits set (the network is f800::/5)");
  EXPECT_EQ(ParseError("0.0.0.1/0"), "'0.0.0.1/0': host bits set (the network is 0.0.0.0/0)");
  EXPECT_TRUE(Cidr::parse("10.0.0.1/32").ok());
  EXPECT_TRUE(Cidr::parse("fc00::/6").ok());
}

TEST(DestinationPolicyTest, CidrContainsFirstAndLastButNotNeighbours) {
  const Cidr cgnat = Net("100.64.0.0/10");
  EXPECT_FALSE(cgnat.contains(Ip("100.63.255.255")));
  EXPECT_TRUE(cgnat.contains(Ip("100.64.0.0")));
  EXPECT_TRUE(cgnat.contains(Ip("100.127.255.255")));
  EXPECT_FALSE(cgnat.contains(Ip("100.128.0.0")));
  const Cidr ula = Net("fc00::/7");
  EXPECT_FALSE(ula.contains(Ip("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_TRUE(ula.contains(Ip("fc00::")));
  EXPECT_TRUE(ula.contains(Ip("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(ula.contains(Ip("fe00::")));
  const Cidr host = Net("192.0.2.7");
  EXPECT_TRUE(host.contains(Ip("192.0.2.7", 1)));
  EXPECT_FALSE(host.contains(Ip("192.0.2.6")));
  EXPECT_FALSE(host.contains(Ip("192.0.2.8")));
}

TEST(DestinationPolicyTest, CidrSeesMappedAddressesAsIpv4) {
  EXPECT_TRUE(Net("10.0.0.0/8").contains(Ip("::ffff:10.1.2.3")));
  EXPECT_FALSE(Net("10.0.0.0/8").contains(Ip("::ffff:11.1.2.3")));
  EXPECT_TRUE(Net("0.0.0.0/0").contains(Ip("::ffff:8.8.8.8")));
  EXPECT_FALSE(Net("::/0").contains(Ip("::ffff:8.8.8.8"))) << "a mapped address is IPv4";
  EXPECT_TRUE(Net("::/0").contains(Ip("::1")));
  EXPECT_FALSE(Net("0.0.0.0/0").contains(Ip("::1")));
  EXPECT_FALSE(Net("::/0").contains(Ip("1.2.3.4")));
  EXPECT_TRUE(Net("::ffff:10.0.0.0/104").contains(Ip("10.9.9.9")));
  SocketAddress unix_socket = unix_address("/run/x.sock").value();
  EXPECT_FALSE(Net("0.0.0.0/0").contains(unix_socket));
  EXPECT_FALSE(Net("::/0").contains(unix_socket));
}

TEST(DestinationPolicyTest, CidrListSplitsAtCommas) {
  auto list = parse_cidr_list("10.0.0.0/8, 192.168.0.0/16 ,fc00::/7");
  ASSERT_TRUE(list.ok()) << list.error();
  ASSERT_EQ(list.value().size(), 3u);
  EXPECT_EQ(list.value()[1].to_string(), "192.168.0.0/16");
  EXPECT_EQ(list.value()[2].to_string(), "fc00::/7");
  EXPECT_EQ(parse_cidr_list("").error(), "empty network");
  EXPECT_EQ(parse_cidr_list("10.0.0.0/8,").error(), "empty network");
  EXPECT_EQ(parse_cidr_list("10.0.0.0/8, x").error(), "'x': bad address");
}

TEST(DestinationPolicyTest, PortSetParsesSinglesListsAndRanges) {
  EXPECT_EQ(PortSet().count(), 0u);
  PortSet one = PortSet::parse("443").value();
  EXPECT_EQ(one.count(), 1u);
  EXPECT_TRUE(one.contains(443));
  EXPECT_FALSE(one.contains(442));
  EXPECT_FALSE(one.contains(444));
  PortSet two = PortSet::parse("80,443").value();
  EXPECT_EQ(two.count(), 2u);
  EXPECT_TRUE(two.contains(80) && two.contains(443));
  PortSet high = PortSet::parse("1024-65535").value();
  EXPECT_EQ(high.count(), 64512u);
  EXPECT_FALSE(high.contains(1023));
  EXPECT_TRUE(high.contains(1024));
  EXPECT_TRUE(high.contains(65535));
  EXPECT_FALSE(high.contains(0));
  PortSet all = PortSet::parse("1-65535").value();
  EXPECT_EQ(all.count(), 65535u);
  EXPECT_FALSE(all.contains(0));
  PortSet spaced = PortSet::parse(" 80 , 8000 - 8002,443,443 ").value();
  EXPECT_EQ(spaced.count(), 5u);
  EXPECT_TRUE(spaced.contains(8000) && spaced.contains(8002) && !spaced.contains(8003));
  PortSet edges = PortSet::parse("1,63,64,65535").value();
  EXPECT_EQ(edges.count(), 4u);
  EXPECT_TRUE(edges.contains(63) && edges.contains(64) && !edges.contains(62));
  EXPECT_TRUE(PortSet::parse("5-5").value() == PortSet::parse("5").value());
}

TEST(DestinationPolicyTest, PortSetRefusesBadLists) {
  const char* bad[] = {"",      " ",    "0",   "65536",  "80,",  ",80",    "80,,443",
                       "90-80", "abc",  "-80", "80-",    "+80",  "1-2-3",  "123456",
                       "0-80",  "80-0", "8 0", "80;443", "0x50", "443/tcp"};
  for (const char* text : bad) EXPECT_FALSE(PortSet::parse(text).ok()) << "'" << text << "'";
  EXPECT_EQ(PortSet::parse("0").error(), "'0' is not a port (1-65535)");
  EXPECT_EQ(PortSet::parse("65536").error(), "'65536' is not a port (1-65535)");
  EXPECT_EQ(PortSet::parse("90-80").error(), "port range '90-80' runs backwards");
  EXPECT_EQ(PortSet::parse("80,,443").error(), "empty item in port list '80,,443'");
}

TEST(DestinationPolicyTest, PortSetAddAndRange) {
  PortSet s;
  s.add(0);
  s.add(65535);
  s.add_range(100, 102);
  s.add_range(10, 9);  // backwards: nothing
  EXPECT_EQ(s.count(), 5u);
  EXPECT_TRUE(s.contains(0) && s.contains(65535) && s.contains(101));
  PortSet full;
  full.add_range(0, 65535);
  EXPECT_EQ(full.count(), 65536u);
}

TEST(DestinationPolicyTest, VerdictNames) {
  EXPECT_STREQ(to_string(Verdict::kAllowed), "allowed");
  EXPECT_STREQ(to_string(Verdict::kPortDenied), "port denied");
  EXPECT_STREQ(to_string(Verdict::kNetworkDenied), "network denied");
  EXPECT_STREQ(to_string(Verdict::kDefaultDenied), "default denied");
}

TEST(DestinationPolicyTest, DefaultConstructedRefusesEverything) {
  DestinationPolicy p;
  EXPECT_TRUE(p.default_deny());
  EXPECT_EQ(p.ports().count(), 0u);
  EXPECT_EQ(p.check(Ip("8.8.8.8", 443)), Verdict::kPortDenied);
  EXPECT_EQ(p.check(Ip("127.0.0.1", 443)), Verdict::kDefaultDenied);
}

// Each built-in range: the address before it, its first and last address, the address after.
// "" where the neighbour is itself in another range (checked by that range's row).
struct Range {
  const char* before;
  const char* first;
  const char* last;
  const char* after;
};

const Range kIpv4Ranges[] = {
    {"", "0.0.0.0", "0.255.255.255", "1.0.0.0"},
    {"9.255.255.255", "10.0.0.0", "10.255.255.255", "11.0.0.0"},
    {"100.63.255.255", "100.64.0.0", "100.127.255.255", "100.128.0.0"},
    {"126.255.255.255", "127.0.0.0", "127.255.255.255", "128.0.0.0"},
    {"169.253.255.255", "169.254.0.0", "169.254.255.255", "169.255.0.0"},
    {"172.15.255.255", "172.16.0.0", "172.31.255.255", "172.32.0.0"},
    {"191.255.255.255", "192.0.0.0", "192.0.0.255", "192.0.1.0"},
    {"192.0.1.255", "192.0.2.0", "192.0.2.255", "192.0.3.0"},
    {"192.88.98.255", "192.88.99.0", "192.88.99.255", "192.88.100.0"},
    {"192.167.255.255", "192.168.0.0", "192.168.255.255", "192.169.0.0"},
    {"198.17.255.255", "198.18.0.0", "198.19.255.255", "198.20.0.0"},
    {"198.51.99.255", "198.51.100.0", "198.51.100.255", "198.51.101.0"},
    {"203.0.112.255", "203.0.113.0", "203.0.113.255", "203.0.114.0"},
    {"223.255.255.255", "224.0.0.0", "239.255.255.255", ""},
    {"", "240.0.0.0", "255.255.255.255", ""},
};

const Range kIpv6Ranges[] = {
    {"", "::", "::", ""},
    {"", "::1", "::1", ""},
    {"", "::2", "::ffff", ""},
    {"", "::1:0:0", "::fffe:ffff:ffff", ""},  // the rest of ::/8 around the mapped range
    {"", "64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", ""},
    {"", "100::", "100::ffff:ffff:ffff:ffff", ""},
    {"", "1000::", "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2000::"},  // not 2000::/3
    {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001::", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
     "2001:200::"},
    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
     "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::"},
    {"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2002::", "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     "2003::"},
    {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
     "3fff:1000::"},
    {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "4000::", "5f00::", ""},  // not 2000::/3
    {"", "fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
    {"", "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
    {"", "fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
    {"", "ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
};

void CheckRanges(const DestinationPolicy& p, const Range* ranges, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const Range& r = ranges[i];
    EXPECT_EQ(p.check(Ip(r.first)), Verdict::kDefaultDenied) << r.first;
    EXPECT_EQ(p.check(Ip(r.last)), Verdict::kDefaultDenied) << r.last;
    if (*r.before != '\0') {
      EXPECT_EQ(p.check(Ip(r.before)), Verdict::kAllowed) << r.before;
    }
    if (*r.after != '\0') {
      EXPECT_EQ(p.check(Ip(r.after)), Verdict::kAllowed) << r.after;
    }
  }
}

TEST(DestinationPolicyTest, EveryIpv4RangeEdgeToEdge) {
  CheckRanges(AnyPort(), kIpv4Ranges, std::size(kIpv4Ranges));
}

TEST(DestinationPolicyTest, EveryIpv6RangeEdgeToEdge) {
  CheckRanges(AnyPort(), kIpv6Ranges, std::size(kIpv6Ranges));
}

TEST(DestinationPolicyTest, NamedAddressesOfTheIssue) {
  const DestinationPolicy p = AnyPort();
  for (const char* a :
       {"127.0.0.1", "0.0.0.0", "10.1.2.3", "172.20.0.1", "192.168.1.1", "100.100.100.200",
        "169.254.169.254", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "::1",
        "::", "fe80::1", "fd00::2", "fc00::1", "ff02::1", "ff05::1:3", "fd00:ec2::254"}) {
    EXPECT_EQ(p.check(Ip(a)), Verdict::kDefaultDenied) << a;
  }
  for (const char* a : {"8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111",
                        "2a00:1450:4001:82b::200e", "2000::1", "3ffe::1"}) {
    EXPECT_EQ(p.check(Ip(a)), Verdict::kAllowed) << a;
  }
}

TEST(DestinationPolicyTest, BuiltInListParsesAndIsWhatTheHeaderSays) {
  const auto ranges = DestinationPolicy::default_deny_ranges();
  ASSERT_FALSE(ranges.empty());
  std::vector<std::string> texts;
  for (const DefaultDenyRange& r : ranges) {
    texts.push_back(r.network.to_string());
    EXPECT_STRNE(r.what, "") << texts.back();
  }
  for (const char* must :
       {"127.0.0.0/8", "0.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
        "100.64.0.0/10", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4", "::1/128", "::/128",
        "fe80::/10", "fc00::/7", "ff00::/8"}) {
    EXPECT_NE(std::find(texts.begin(), texts.end(), must), texts.end()) << must;
  }
  // The table is built once and shared by every policy.
  EXPECT_EQ(DestinationPolicy::default_deny_ranges().data(), ranges.data());
}

TEST(DestinationPolicyTest, MappedAddressesAreJudgedAsTheirIpv4) {
  const DestinationPolicy p = AnyPort();
  EXPECT_EQ(p.check(Ip("::ffff:127.0.0.1")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("::ffff:10.0.0.1")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("::ffff:169.254.169.254")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("::ffff:0.0.0.0")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("::ffff:255.255.255.255")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("::ffff:8.8.8.8")), Verdict::kAllowed);
  // Explicit entries see them as IPv4 too.
  DestinationPolicy q = AnyPort();
  q.deny(Net("8.8.8.0/24"));
  q.allow(Net("10.1.0.0/16"));
  EXPECT_EQ(q.check(Ip("::ffff:8.8.8.8")), Verdict::kNetworkDenied);
  EXPECT_EQ(q.check(Ip("::ffff:10.1.2.3")), Verdict::kAllowed);
  EXPECT_EQ(q.check(Ip("::ffff:10.2.0.1")), Verdict::kDefaultDenied);
}

TEST(DestinationPolicyTest, Nat64IsJudgedByTheIpv4ItCarries) {
  const DestinationPolicy p = AnyPort();
  EXPECT_EQ(p.check(Ip("64:ff9b::8.8.8.8")), Verdict::kAllowed);
  EXPECT_EQ(p.check(Ip("64:ff9b::127.0.0.1")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("64:ff9b::10.0.0.1")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("64:ff9b::169.254.169.254")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("64:ff9b::0.0.0.0")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("64:ff9b::1:0:0")), Verdict::kDefaultDenied) << "outside the /96";
  // Explicitly allowing the prefix does not open what it carries; allowing the IPv4 does.
  DestinationPolicy q = AnyPort();
  q.allow(Net("64:ff9b::/96"));
  EXPECT_EQ(q.check(Ip("64:ff9b::10.0.0.1")), Verdict::kDefaultDenied);
  q.allow(Net("10.0.0.0/8"));
  EXPECT_EQ(q.check(Ip("64:ff9b::10.0.0.1")), Verdict::kAllowed);
  DestinationPolicy r = AnyPort();
  r.deny(Net("8.8.8.8"));
  EXPECT_EQ(r.check(Ip("64:ff9b::8.8.8.8")), Verdict::kNetworkDenied);
  EXPECT_EQ(r.check(Ip("64:ff9b::8.8.4.4")), Verdict::kAllowed);
}

TEST(DestinationPolicyTest, TunnelFormsCarryTheirIpv4ToExplicitDeny) {
  DestinationPolicy p = AnyPort();
  p.set_default_deny(false);
  p.deny(Net("203.0.113.7"));
  // 6to4: bits 16-47.
  EXPECT_EQ(p.check(Ip("2002:cb00:7107::1")), Verdict::kNetworkDenied);
  EXPECT_EQ(p.check(Ip("2002:cb00:7108::1")), Verdict::kAllowed);
  // Teredo: the server in bits 32-63, the client inverted in the last 32 bits.
  EXPECT_EQ(p.check(Ip("2001:0:cb00:7107::1")), Verdict::kNetworkDenied);
  EXPECT_EQ(p.check(Ip("2001:0:0102:0304::34ff:8ef8")), Verdict::kNetworkDenied)
      << "client ~cb00:7107 = 34ff:8ef8";
  EXPECT_EQ(p.check(Ip("2001:0:0102:0304::34ff:8ef9")), Verdict::kAllowed);
  // IPv4-compatible: the last 32 bits.
  EXPECT_EQ(p.check(Ip("::203.0.113.7")), Verdict::kNetworkDenied);
  EXPECT_EQ(p.check(Ip("::203.0.113.8")), Verdict::kAllowed);
  // With default deny on, the tunnel prefixes are refused whole.
  EXPECT_EQ(AnyPort().check(Ip("2002:808:808::1")), Verdict::kDefaultDenied);
  EXPECT_EQ(AnyPort().check(Ip("2001:0:808:808::1")), Verdict::kDefaultDenied);
  EXPECT_EQ(AnyPort().check(Ip("::8.8.8.8")), Verdict::kDefaultDenied);
}

TEST(DestinationPolicyTest, AllowingATunnelPrefixStillChecksWhatItCarries) {
  DestinationPolicy p = AnyPort();
  p.allow(Net("2002::/16"));
  EXPECT_EQ(p.check(Ip("2002:808:808::1")), Verdict::kAllowed);
  EXPECT_EQ(p.check(Ip("2002:7f00:1::1")), Verdict::kDefaultDenied) << "6to4 to 127.0.0.1";
  EXPECT_EQ(p.check(Ip("2002:a9fe:a9fe::1")), Verdict::kDefaultDenied) << "to 169.254.169.254";
}

TEST(DestinationPolicyTest, PrecedenceDenyOverAllowOverDefault) {
  DestinationPolicy p = AnyPort();
  p.allow(Net("10.0.0.0/8"));
  p.deny(Net("10.9.0.0/16"));
  p.allow(Net("10.9.9.0/24"));  // inside the deny: deny still wins
  EXPECT_EQ(p.check(Ip("10.1.2.3")), Verdict::kAllowed) << "allow over default deny";
  EXPECT_EQ(p.check(Ip("10.9.1.1")), Verdict::kNetworkDenied) << "deny over allow";
  EXPECT_EQ(p.check(Ip("10.9.9.9")), Verdict::kNetworkDenied) << "deny over a narrower allow";
  EXPECT_EQ(p.check(Ip("192.168.1.1")), Verdict::kDefaultDenied);
  // Deny over a globally routable address.
  p.deny(Net("8.8.8.0/24"));
  EXPECT_EQ(p.check(Ip("8.8.8.8")), Verdict::kNetworkDenied);
  EXPECT_EQ(p.check(Ip("8.8.4.4")), Verdict::kAllowed);
  // Allow entries are exceptions, not a whitelist.
  EXPECT_EQ(p.check(Ip("1.1.1.1")), Verdict::kAllowed);
  // IPv6 likewise.
  p.allow(Net("fd00::/8"));
  p.deny(Net("fd00:bad::/32"));
  EXPECT_EQ(p.check(Ip("fd00::1")), Verdict::kAllowed);
  EXPECT_EQ(p.check(Ip("fd00:bad::1")), Verdict::kNetworkDenied);
  EXPECT_EQ(p.check(Ip("fc00::1")), Verdict::kDefaultDenied);
}

TEST(DestinationPolicyTest, DefaultDenyCanBeDisabled) {
  DestinationPolicy p = AnyPort();
  p.set_default_deny(false);
  EXPECT_FALSE(p.default_deny());
  for (const char* a : {"127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "fe80::1", "1000::1",
                        "::ffff:127.0.0.1", "64:ff9b::127.0.0.1"}) {
    EXPECT_EQ(p.check(Ip(a)), Verdict::kAllowed) << a;
  }
  p.deny(Net("127.0.0.0/8"));
  EXPECT_EQ(p.check(Ip("127.0.0.1")), Verdict::kNetworkDenied);
  EXPECT_EQ(p.check(Ip("::ffff:127.0.0.1")), Verdict::kNetworkDenied);
  EXPECT_EQ(p.check(Ip("64:ff9b::127.0.0.1")), Verdict::kNetworkDenied);
}

TEST(DestinationPolicyTest, PortIsCheckedForEveryAllowedNetwork) {
  DestinationPolicy p;
  p.set_ports(PortSet::parse("443,8443").value());
  p.allow(Net("10.0.0.0/8"));
  EXPECT_EQ(p.check(Ip("8.8.8.8", 443)), Verdict::kAllowed);
  EXPECT_EQ(p.check(Ip("8.8.8.8", 8443)), Verdict::kAllowed);
  EXPECT_EQ(p.check(Ip("8.8.8.8", 80)), Verdict::kPortDenied);
  EXPECT_EQ(p.check(Ip("8.8.8.8", 0)), Verdict::kPortDenied);
  EXPECT_EQ(p.check(Ip("10.0.0.1", 22)), Verdict::kPortDenied) << "allow names networks only";
  EXPECT_EQ(p.check(Ip("10.0.0.1", 443)), Verdict::kAllowed);
  // A refused network reports the network, whatever the port.
  EXPECT_EQ(p.check(Ip("127.0.0.1", 22)), Verdict::kDefaultDenied);
  p.deny(Net("8.8.4.0/24"));
  EXPECT_EQ(p.check(Ip("8.8.4.4", 22)), Verdict::kNetworkDenied);
  EXPECT_EQ(p.check(Ip("2606:4700::1", 443)), Verdict::kAllowed);
  EXPECT_EQ(p.check(Ip("2606:4700::1", 444)), Verdict::kPortDenied);
}

TEST(DestinationPolicyTest, NonIpAddressesAreRefused) {
  DestinationPolicy p = AnyPort();
  p.set_default_deny(false);
  EXPECT_EQ(p.check(unix_address("/run/x.sock").value()), Verdict::kNetworkDenied);
  EXPECT_EQ(p.check(SocketAddress{}), Verdict::kNetworkDenied);
}

TEST(DestinationPolicyTest, AccessorsReturnWhatWasSet) {
  DestinationPolicy p;
  p.allow(Net("10.0.0.0/8"));
  p.deny(Net("10.1.0.0/16"));
  p.deny(Net("fc00::/7"));
  ASSERT_EQ(p.allowed().size(), 1u);
  ASSERT_EQ(p.denied().size(), 2u);
  EXPECT_TRUE(p.allowed()[0] == Net("10.0.0.0/8"));
  EXPECT_EQ(p.denied()[1].to_string(), "fc00::/7");
}

TEST(DestinationPolicyTest, InterfaceAddressesIncludeLoopback) {
  auto local = interface_addresses();
  ASSERT_TRUE(local.ok()) << local.error();
  std::vector<std::string> texts;
  for (const Cidr& c : local.value()) {
    texts.push_back(c.to_string());
    EXPECT_EQ(c.prefix_bits(), c.family() == AF_INET ? 32u : 128u) << texts.back();
  }
  EXPECT_NE(std::find(texts.begin(), texts.end(), "127.0.0.1/32"), texts.end());
  std::sort(texts.begin(), texts.end());
  EXPECT_EQ(std::adjacent_find(texts.begin(), texts.end()), texts.end()) << "no duplicates";
}

TEST(DestinationPolicyTest, TheHostsOwnAddressesAreDefaultDenied) {
  DestinationPolicy p = AnyPort();
  p.set_local_addresses({Net("8.8.8.8"), Net("2606:4700::1")});
  ASSERT_EQ(p.local_addresses().size(), 2u);
  EXPECT_EQ(p.check(Ip("8.8.8.8")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("::ffff:8.8.8.8")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("64:ff9b::8.8.8.8")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("8.8.8.9")), Verdict::kAllowed);
  EXPECT_EQ(p.check(Ip("2606:4700::1")), Verdict::kDefaultDenied);
  EXPECT_EQ(p.check(Ip("2606:4700::2")), Verdict::kAllowed);
  p.allow(Net("8.8.8.8"));
  EXPECT_EQ(p.check(Ip("8.8.8.8")), Verdict::kAllowed) << "an allow entry overrides";
  p.set_default_deny(false);
  EXPECT_EQ(p.check(Ip("2606:4700::1")), Verdict::kAllowed) << "off with the built-in list";
  p.set_default_deny(true);
  p.set_local_addresses({});
  EXPECT_EQ(p.check(Ip("2606:4700::1")), Verdict::kAllowed) << "replaced";
}

}  // namespace
}  // namespace edgeproxy

namespace edgeproxy {
namespace {

// Regression (issue 12's integration tests): `allow-networks ::1/128` must let ::1 through; its
// IPv4-compatible reading "0.0.0.1" (in 0.0.0.0/8) is not a view of the loopback address.
TEST(DestinationPolicyTest, AllowingLoopbackSixIsNotUndoneByAnIpv4View) {
  DestinationPolicy p;
  PortSet ports;
  ports.add(443);
  p.set_ports(ports);
  SocketAddress a;
  ASSERT_TRUE(numeric_address("::1", 443, a));
  EXPECT_EQ(p.check(a), Verdict::kDefaultDenied);
  p.allow(Cidr::parse("::1/128").value());
  EXPECT_EQ(p.check(a), Verdict::kAllowed);
  ASSERT_TRUE(numeric_address("::", 443, a));
  EXPECT_EQ(p.check(a), Verdict::kDefaultDenied);
  ASSERT_TRUE(numeric_address("::10.0.0.1", 443, a));
  EXPECT_EQ(p.check(a), Verdict::kDefaultDenied) << "a real IPv4-compatible address keeps its view";
}

}  // namespace
}  // namespace edgeproxy
