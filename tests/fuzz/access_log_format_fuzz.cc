// Fuzz target: the access-log format parser. The input's first byte sizes the output buffer; the
// rest is an `access-log-format` string. Checked: an error names the problem in one line; a
// compiled format writes a fixed record's line within the buffer (ASan: a buffer of exactly that
// size), ending in a newline, or returns 0 when it does not fit; writing it again (the cached
// local time) gives the same line, and a buffer of kMaxLineBytes fits what a smaller one did.
#include <netinet/in.h>

#include <cstring>
#include <memory>

#include "edgeproxy/access_log_format.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeproxy;
  if (size > 8192) return 0;
  fuzz::Input in(data, size);
  const uint32_t cap = 1u + in.u16() % AccessLogFormat::kMaxLineBytes;
  Result<AccessLogFormat> f = AccessLogFormat::parse(in.rest());
  if (!f.ok()) {
    FUZZ_CHECK(!f.error().empty() && f.error().find('\n') == std::string::npos);
    return 0;
  }
  SocketAddress client;
  auto* sin = reinterpret_cast<sockaddr_in*>(&client.storage);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(40000);
  sin->sin_addr.s_addr = htonl(0x7f000001);
  client.length = sizeof(sockaddr_in);
  AccessRecord r;
  r.accepted_wall_ms = 1767225600123;
  r.client = &client;
  r.listener = "main";
  r.backend = "app";
  r.server = "s1";
  r.connect_ms = 3;
  r.duration_ms = 1234;
  r.bytes_c2u = 100;
  r.bytes_u2c = 1 << 20;
  r.end = EndReason::kServerFin;
  r.worker = 1;
  std::unique_ptr<char[]> out(new char[cap]);
  const uint32_t n = f.value().format(r, out.get(), cap);
  FUZZ_CHECK(n <= cap);
  if (n > 0) FUZZ_CHECK(out[n - 1] == '\n');
  std::unique_ptr<char[]> again(new char[AccessLogFormat::kMaxLineBytes]);
  const uint32_t m = f.value().format(r, again.get(), AccessLogFormat::kMaxLineBytes);
  if (n > 0) FUZZ_CHECK(m == n && std::memcmp(out.get(), again.get(), n) == 0);
  // A record with nothing known ("-" fields) formats too.
  AccessRecord empty;
  f.value().format(empty, again.get(), AccessLogFormat::kMaxLineBytes);
  return 0;
}
