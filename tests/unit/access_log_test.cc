// AccessLog, AccessLogFormat and EndReason: the default line, every variable, format refusals,
// a full ring dropping lines whole, and the first terminal cause winning on a connection.
#include "edgeproxy/access_log.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <unistd.h>

#include <cstring>
#include <ctime>
#include <string>

#include "edgeproxy/access_log_format.h"
#include "edgeproxy/end_reason.h"
#include "edgeproxy/relay.h"

namespace edgeproxy {
namespace {

SocketAddress ipv4(const char* ip, uint16_t port) {
  SocketAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  inet_pton(AF_INET, ip, &in->sin_addr);
  a.length = sizeof(sockaddr_in);
  return a;
}

AccessRecord sample(const SocketAddress& client) {
  AccessRecord r;
  r.accepted_wall_ms = 1'700'000'000'123;
  r.client = &client;
  r.listener = "web";
  r.backend = "app";
  r.server = "s1";
  r.connect_ms = 3;
  r.duration_ms = 1500;
  r.bytes_c2u = 120;
  r.bytes_u2c = 4096;
  r.end = EndReason::kServerFin;
  r.worker = 2;
  return r;
}

std::string format(AccessLogFormat& f, const AccessRecord& r) {
  char out[AccessLogFormat::kMaxLineBytes];
  const uint32_t n = f.format(r, out, sizeof out);
  return std::string(out, n);
}

// The local time text localtime_r gives for the sample's second, as the format writes it.
std::string local_time_prefix(int64_t wall_ms) {
  const time_t t = wall_ms / 1000;
  tm local{};
  localtime_r(&t, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &local);
  return text;
}

TEST(AccessLogTest, DefaultLineSaysEverything) {
  auto f = AccessLogFormat::parse(AccessLogFormat::kDefault);
  ASSERT_TRUE(f.ok());
  const SocketAddress client = ipv4("192.0.2.7", 40123);
  const std::string line = format(f.value(), sample(client));
  const std::string time = local_time_prefix(1'700'000'000'123);
  ASSERT_EQ(line.substr(0, time.size() + 4), time + ".123");
  // The offset: +HH:MM or -HH:MM.
  const std::string offset = line.substr(time.size() + 4, 6);
  EXPECT_TRUE(offset[0] == '+' || offset[0] == '-') << line;
  EXPECT_EQ(offset[3], ':') << line;
  EXPECT_EQ(line.substr(time.size() + 10),
            " 192.0.2.7:40123 web app/s1 3 1500 120 4096 server_fin\n");
}

TEST(AccessLogTest, UnknownPartsAreDashes) {
  auto f = AccessLogFormat::parse("%ci:%cp %f %bs %b %s %Tc");
  ASSERT_TRUE(f.ok());
  AccessRecord r;
  r.listener = "web";
  EXPECT_EQ(format(f.value(), r), "-:- web - - - -1\n");
  r.backend = "app";
  EXPECT_EQ(format(f.value(), r), "-:- web app/- app - -1\n");
}

TEST(AccessLogTest, EveryVariableAndLiterals) {
  auto f = AccessLogFormat::parse("[%w] %ci %cp %f %b %s %Tc %Tt %U %B %e 100%%");
  ASSERT_TRUE(f.ok());
  const SocketAddress client = ipv4("10.1.2.3", 5);
  EXPECT_EQ(format(f.value(), sample(client)),
            "[2] 10.1.2.3 5 web app s1 3 1500 120 4096 server_fin 100%\n");
}

TEST(AccessLogTest, Ipv6ClientAndForwardStatus) {
  SocketAddress a;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(443);
  inet_pton(AF_INET6, "2001:db8::1", &in6->sin6_addr);
  a.length = sizeof(sockaddr_in6);
  auto f = AccessLogFormat::parse("%ci %cp %e");
  ASSERT_TRUE(f.ok());
  AccessRecord r = sample(a);
  r.end = EndReason::kForwardError;
  r.end_status = 502;
  EXPECT_EQ(format(f.value(), r), "2001:db8::1 443 forward_502\n");
}

TEST(AccessLogTest, FormatRefusesUnknownVariables) {
  auto bad = AccessLogFormat::parse("%ci %x");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("unknown variable '%x' at character 5"), std::string::npos)
      << bad.error();
  auto trailing = AccessLogFormat::parse("%ci %");
  ASSERT_FALSE(trailing.ok());
  EXPECT_NE(trailing.error().find("'%' at character 5"), std::string::npos) << trailing.error();
  EXPECT_TRUE(AccessLogFormat::parse("").ok());
  EXPECT_TRUE(AccessLogFormat::parse("no variables").ok());
}

// Fuzzing (tests/fuzz/corpus/access_log_format/crash-newline-after-percent): the byte after an
// unknown '%' was quoted raw, so "%\n" split the one-line error and "%\x1b" reached a terminal.
TEST(AccessLogTest, UnknownVariableErrorQuotesControlBytesEscaped) {
  auto newline = AccessLogFormat::parse("%ci %\n");
  ASSERT_FALSE(newline.ok());
  EXPECT_NE(newline.error().find("unknown variable '%\\n' at character 5"), std::string::npos)
      << newline.error();
  EXPECT_EQ(newline.error().find('\n'), std::string::npos);
  auto high = AccessLogFormat::parse(std::string("%\xef\x1b"));
  ASSERT_FALSE(high.ok());
  EXPECT_NE(high.error().find("'%\\xef' at character 1"), std::string::npos) << high.error();
  for (char c : high.error()) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << high.error();
}

TEST(AccessLogTest, LineTooLongForTheBufferIsRefused) {
  auto f = AccessLogFormat::parse("%f %f");
  ASSERT_TRUE(f.ok());
  AccessRecord r;
  r.listener = "a-rather-long-listener-name";
  char out[16];
  EXPECT_EQ(f.value().format(r, out, sizeof out), 0u);
}

TEST(AccessLogTest, EveryEndReasonHasAWord) {
  for (int i = 1; i <= static_cast<int>(EndReason::kInternalError); ++i) {
    const std::string word = to_string(static_cast<EndReason>(i));
    EXPECT_NE(word, "-") << i;
    EXPECT_EQ(word.find(' '), std::string::npos) << word;
  }
}

TEST(AccessLogTest, RingKeepsWholeLinesInOrder) {
  AccessLog ring(-1);
  EXPECT_TRUE(ring.append("one\n", 4));
  EXPECT_TRUE(ring.append("two\n", 4));
  char out[6];
  // Only whole lines leave: "one\n" fits in 6, "two\n" does not fit beside it.
  EXPECT_EQ(ring.take(out, sizeof out), 4u);
  EXPECT_EQ(std::string(out, 4), "one\n");
  EXPECT_EQ(ring.take(out, sizeof out), 4u);
  EXPECT_EQ(std::string(out, 4), "two\n");
  EXPECT_EQ(ring.take(out, sizeof out), 0u);
}

TEST(AccessLogTest, FullRingDropsLinesWholeAndWrapsAround) {
  AccessLog ring(-1);
  std::string line(999, 'x');
  line += '\n';
  const auto n = static_cast<uint32_t>(line.size());
  uint32_t kept = 0;
  while (ring.append(line.data(), n)) ++kept;
  EXPECT_EQ(kept, AccessLog::kRingBytes / n);
  EXPECT_FALSE(ring.append(line.data(), n));  // still full: dropped, not cut
  EXPECT_EQ(ring.used(), uint64_t{kept} * n);
  // Draining half makes room again, and the lines then written wrap around the end intact.
  std::string out(64 * 1024, '\0');
  uint64_t taken = 0;
  while (taken < AccessLog::kRingBytes / 2) taken += ring.take(out.data(), n);
  std::string other(499, 'y');
  other += '\n';
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(ring.append(other.data(), static_cast<uint32_t>(other.size())));
  }
  std::string all;
  for (;;) {
    const uint32_t got = ring.take(out.data(), static_cast<uint32_t>(out.size()));
    if (got == 0) break;
    ASSERT_EQ(out[got - 1], '\n');
    all.append(out.data(), got);
  }
  const uint64_t x_lines = kept - taken / n;
  EXPECT_EQ(all.size(), x_lines * n + 100 * other.size());
  EXPECT_EQ(all.substr(all.size() - other.size()), other);
  EXPECT_EQ(all.substr(0, n), line);
}

TEST(AccessLogTest, HalfFullWakesTheWriterOnce) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  AccessLog ring(fds[1]);
  std::string line(1023, 'z');
  line += '\n';
  for (uint32_t i = 0; i < AccessLog::kRingBytes / 1024 - 1; ++i) {
    ASSERT_TRUE(ring.append(line.data(), 1024));
  }
  char buf[64];
  const ssize_t got = read(fds[0], buf, sizeof buf);
  EXPECT_EQ(got, 8);  // one eventfd-sized wake, at the half-way crossing only
  close(fds[0]);
  close(fds[1]);
}

TEST(AccessLogTest, FirstTerminalCauseWins) {
  Stats stats;
  Connection c;
  c.state = State::kRelaying;
  relay::fail(c, c.upstream, stats);
  EXPECT_EQ(c.end, EndReason::kServerReset);
  relay::abort(c, EndReason::kIdleTimeout);
  EXPECT_EQ(c.end, EndReason::kServerReset);

  Connection refused;
  refused.state = State::kInspecting;
  relay::on_refused(refused, true, EndReason::kRouteReject);
  EXPECT_EQ(refused.end, EndReason::kRouteReject);

  Connection timed_out;
  timed_out.state = State::kRelaying;
  relay::abort(timed_out, EndReason::kUploadLimit);
  relay::fail(timed_out, timed_out.client, stats);
  EXPECT_EQ(timed_out.end, EndReason::kUploadLimit);

  Connection ended;
  ended.state = State::kRelaying;
  auto pool = BufferPool::create(4);
  ASSERT_TRUE(pool.ok());
  relay::on_read(ended, Dir::kU2C, SysResult{0, 0}, kBufferBytes, pool.value(), stats, LoopTime{});
  EXPECT_EQ(ended.end, EndReason::kServerFin);
  relay::on_read(ended, Dir::kC2U, SysResult{0, 0}, kBufferBytes, pool.value(), stats, LoopTime{});
  EXPECT_EQ(ended.end, EndReason::kServerFin);

  Connection forward;
  relay::set_end(forward, EndReason::kForwardError, 403);
  relay::set_end(forward, EndReason::kClientFin);
  EXPECT_EQ(forward.end, EndReason::kForwardError);
  EXPECT_EQ(forward.end_status, 403);
}

}  // namespace
}  // namespace edgeproxy
