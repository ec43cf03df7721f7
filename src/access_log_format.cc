// The access-log format string: parsing and formatting; see access_log_format.h.
#include "edgeproxy/access_log_format.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <ctime>

namespace edgeproxy {

// Longer names first: %bs before %b.
const AccessLogFormat::Name AccessLogFormat::kNames[] = {
    {"Tc", Var::kConnectMs}, {"Tt", Var::kDurationMs}, {"bs", Var::kBackendServer},
    {"ci", Var::kClientIp},  {"cp", Var::kClientPort}, {"t", Var::kTime},
    {"f", Var::kListener},   {"b", Var::kBackend},     {"s", Var::kServer},
    {"U", Var::kBytesUp},    {"B", Var::kBytesDown},   {"e", Var::kEnd},
    {"w", Var::kWorker},
};

namespace {

constexpr const char* kExpected = "%t %ci %cp %f %b %s %bs %Tc %Tt %U %B %e %w or %%";

// Appends to out[0, cap), remembering whether anything did not fit.
struct Sink {
  char* p;
  char* end;
  bool full = false;

  void put(std::string_view s) noexcept {
    if (static_cast<size_t>(end - p) < s.size()) {
      full = true;
      return;
    }
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  }
  void put_or_dash(std::string_view s) noexcept { put(s.empty() ? std::string_view("-") : s); }
  void put_u64(uint64_t v) noexcept {
    char digits[20];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    if (end - p < n) {
      full = true;
      return;
    }
    while (n > 0) *p++ = digits[--n];
  }
  void put_i64(int64_t v) noexcept {
    if (v < 0) {
      put("-");
      put_u64(static_cast<uint64_t>(-(v + 1)) + 1);
    } else {
      put_u64(static_cast<uint64_t>(v));
    }
  }
};

void put_client_ip(Sink& out, const SocketAddress* a) noexcept {
  if (a == nullptr || a->length == 0) {
    out.put("-");
    return;
  }
  char text[INET6_ADDRSTRLEN];
  const void* raw = nullptr;
  switch (a->family()) {
    case AF_INET:
      raw = &reinterpret_cast<const sockaddr_in*>(&a->storage)->sin_addr;
      break;
    case AF_INET6:
      raw = &reinterpret_cast<const sockaddr_in6*>(&a->storage)->sin6_addr;
      break;
    default:
      out.put("unix");
      return;
  }
  if (inet_ntop(a->family(), raw, text, sizeof text) == nullptr) {
    out.put("-");
    return;
  }
  out.put(text);
}

}  // namespace

Result<AccessLogFormat> AccessLogFormat::parse(std::string_view text) {
  AccessLogFormat f;
  size_t i = 0;
  auto literal = [&f](std::string_view s) {
    if (s.empty()) return;
    if (!f.items_.empty() && f.items_.back().var == Var::kLiteral) {
      f.items_.back().length += static_cast<uint32_t>(s.size());
    } else {
      f.items_.push_back({Var::kLiteral, static_cast<uint32_t>(f.literals_.size()),
                          static_cast<uint32_t>(s.size())});
    }
    f.literals_.append(s);
  };
  while (i < text.size()) {
    const size_t pct = text.find('%', i);
    if (pct == std::string_view::npos) {
      literal(text.substr(i));
      break;
    }
    literal(text.substr(i, pct - i));
    const std::string_view rest = text.substr(pct + 1);
    if (rest.starts_with('%')) {
      literal("%");
      i = pct + 2;
      continue;
    }
    bool found = false;
    for (const Name& n : kNames) {
      if (!rest.starts_with(n.name)) continue;
      f.items_.push_back({n.var, 0, 0});
      i = pct + 1 + n.name.size();
      found = true;
      break;
    }
    if (!found) {
      // The byte after '%' as written, escaped unless it is printable ASCII (one byte of a
      // UTF-8 sequence would not be a character).
      const std::string shown = "%" + printable(rest.substr(0, 1), /*ascii_only=*/true);
      return Error{"unknown variable '" + shown + "' at character " + std::to_string(pct + 1) +
                   " (expected " + kExpected + ")"};
    }
  }
  return f;
}

uint32_t AccessLogFormat::format(const AccessRecord& r, char* out, uint32_t cap) noexcept {
  Sink s{out, out + cap};
  for (const Item& item : items_) {
    switch (item.var) {
      case Var::kLiteral:
        s.put({literals_.data() + item.offset, item.length});
        break;
      case Var::kTime: {
        const int64_t second = r.accepted_wall_ms / 1000;
        if (second != cached_second_) {
          const auto t = static_cast<time_t>(second);
          tm local{};
          localtime_r(&t, &local);
          std::strftime(cached_date_, sizeof cached_date_, "%Y-%m-%dT%H:%M:%S", &local);
          const long off_min = local.tm_gmtoff / 60;
          const auto abs_min = static_cast<unsigned>((off_min < 0 ? -off_min : off_min) % 6000);
          const unsigned hours = abs_min / 60;
          const unsigned minutes = abs_min % 60;
          const char offset[7] = {off_min < 0 ? '-' : '+',
                                  static_cast<char>('0' + hours / 10 % 10),
                                  static_cast<char>('0' + hours % 10),
                                  ':',
                                  static_cast<char>('0' + minutes / 10),
                                  static_cast<char>('0' + minutes % 10),
                                  0};
          std::memcpy(cached_offset_, offset, sizeof offset);
          cached_second_ = second;
        }
        const auto ms = static_cast<unsigned>(r.accepted_wall_ms % 1000);
        const char frac[5] = {'.', static_cast<char>('0' + ms / 100),
                              static_cast<char>('0' + ms / 10 % 10),
                              static_cast<char>('0' + ms % 10), 0};
        s.put(cached_date_);
        s.put(frac);
        s.put(cached_offset_);
        break;
      }
      case Var::kClientIp:
        put_client_ip(s, r.client);
        break;
      case Var::kClientPort:
        if (r.client == nullptr || r.client->length == 0 ||
            (r.client->family() != AF_INET && r.client->family() != AF_INET6)) {
          s.put("-");
        } else {
          s.put_u64(r.client->port());
        }
        break;
      case Var::kListener:
        s.put_or_dash(r.listener);
        break;
      case Var::kBackend:
        s.put_or_dash(r.backend);
        break;
      case Var::kServer:
        s.put_or_dash(r.server);
        break;
      case Var::kBackendServer:
        if (r.backend.empty()) {
          s.put("-");
        } else {
          s.put(r.backend);
          s.put("/");
          s.put_or_dash(r.server);
        }
        break;
      case Var::kConnectMs:
        s.put_i64(r.connect_ms);
        break;
      case Var::kDurationMs:
        s.put_i64(r.duration_ms);
        break;
      case Var::kBytesUp:
        s.put_u64(r.bytes_c2u);
        break;
      case Var::kBytesDown:
        s.put_u64(r.bytes_u2c);
        break;
      case Var::kEnd:
        s.put(to_string(r.end));
        if (r.end == EndReason::kForwardError) {
          s.put("_");
          s.put_u64(r.end_status);
        }
        break;
      case Var::kWorker:
        s.put_u64(r.worker);
        break;
    }
  }
  s.put("\n");
  if (s.full) return 0;
  return static_cast<uint32_t>(s.p - out);
}

}  // namespace edgeproxy
