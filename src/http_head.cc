// The HTTP/1.x head parser, requests and responses; see http_head.h.
#include "edgeproxy/http_head.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace edgeproxy::http {

namespace {

// Byte classes, one bit each, from one table so that a check is one load.
enum : uint8_t {
  kTchar = 1,       // token character (RFC 9110 section 5.6.2)
  kTargetChar = 2,  // allowed in a request-target: visible ASCII but "#"
  kFieldChar = 4,   // allowed in a field value: visible, obs-text, SP, HT
  kCtl = 8,         // a control character other than HT, CR, LF: refused anywhere in a head
  kHostChar = 16,   // allowed in a reg-name host: letters, digits, "-", ".", "_", "~"
};

constexpr std::array<uint8_t, 256> make_classes() noexcept {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t k = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    const bool visible = c > 0x20 && c < 0x7F;
    const bool tchar_symbol =
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
    if (alpha || digit || tchar_symbol) k |= kTchar;
    if (visible && c != '#') k |= kTargetChar;
    if (visible || c >= 0x80 || c == ' ' || c == '\t') k |= kFieldChar;
    if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7F) k |= kCtl;
    if (alpha || digit || c == '-' || c == '.' || c == '_' || c == '~') k |= kHostChar;
    t[static_cast<size_t>(c)] = k;
  }
  return t;
}

constexpr std::array<uint8_t, 256> kClasses = make_classes();

bool is(char c, uint8_t cls) noexcept {
  return (kClasses[static_cast<unsigned char>(c)] & cls) != 0;
}

bool all_of_class(std::string_view s, uint8_t cls) noexcept {
  for (const char c : s) {
    if (!is(c, cls)) return false;
  }
  return true;
}

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t';
}

char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

bool starts_with_icase(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// How much of the method the check made on every call looks at, so that check costs O(1) per
// call; a longer method is checked in full when its line ends.
constexpr size_t kMethodCheckBytes = 32;

// An authority split into host (brackets removed from an IPv6 literal) and port (empty when
// absent). False when host_without_port() would say "".
bool split_authority(std::string_view authority, std::string_view& host,
                     std::string_view& port) noexcept {
  std::string_view rest;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = authority.substr(1, close - 1);
    rest = authority.substr(close + 1);
    // inet_pton needs a NUL-terminated copy; the longest IPv6 text is 45 bytes.
    char text[46] = {};
    if (host.empty() || host.size() >= sizeof text) return false;
    std::memcpy(text, host.data(), host.size());
    in6_addr address;
    if (inet_pton(AF_INET6, text, &address) != 1) return false;
  } else {
    const size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : authority.substr(colon);
    if (host.empty() || !all_of_class(host, kHostChar)) return false;
  }
  if (rest.empty()) {
    port = {};
    return true;
  }
  if (rest.front() != ':') return false;
  port = rest.substr(1);
  if (port.empty() || port.size() > 5) return false;
  uint32_t value = 0;
  for (const char c : port) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  return value <= 65535;
}

struct RequestLine {
  std::string_view method, target, path;
  uint8_t version_minor = 1;
};

// The target's form against the method, and the path it carries (see RequestHead::path).
bool check_target(RequestLine& line) noexcept {
  std::string_view host, port;
  const std::string_view target = line.target;
  if (line.method == "CONNECT") {
    return split_authority(target, host, port) && !port.empty();
  }
  if (target == "*") return line.method == "OPTIONS";
  if (target.front() == '/') {
    line.path = target;
    return true;
  }
  size_t scheme = 0;
  if (starts_with_icase(target, "http://")) {
    scheme = 7;
  } else if (starts_with_icase(target, "https://")) {
    scheme = 8;
  } else {
    return false;
  }
  const std::string_view rest = target.substr(scheme);
  const size_t end = std::min(rest.find('/'), rest.find('?'));
  if (!split_authority(rest.substr(0, end), host, port)) return false;
  if (end == std::string_view::npos) {
    line.path = "/";
    return true;
  }
  if (rest[end] != '/') return false;
  line.path = rest.substr(end);
  return true;
}

// `method SP target SP HTTP/1.x`, without its CRLF.
bool parse_request_line(std::string_view text, RequestLine& line) noexcept {
  const size_t sp1 = text.find(' ');
  if (sp1 == 0 || sp1 == std::string_view::npos) return false;
  line.method = text.substr(0, sp1);
  const std::string_view rest = text.substr(sp1 + 1);
  const size_t sp2 = rest.find(' ');
  if (sp2 == 0 || sp2 == std::string_view::npos) return false;
  line.target = rest.substr(0, sp2);
  const std::string_view version = rest.substr(sp2 + 1);
  if (version == "HTTP/1.1") {
    line.version_minor = 1;
  } else if (version == "HTTP/1.0") {
    line.version_minor = 0;
  } else {
    return false;
  }
  return all_of_class(line.method, kTchar) && all_of_class(line.target, kTargetChar) &&
         check_target(line);
}

// `name ":" OWS value OWS`, without its CRLF. A blank first (obs-fold) or before the colon is
// not a token character, so both are refused here.
bool parse_header_line(std::string_view text, HeaderField& field) noexcept {
  const size_t colon = text.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  field.name = text.substr(0, colon);
  std::string_view value = text.substr(colon + 1);
  while (!value.empty() && is_blank(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_blank(value.back())) value.remove_suffix(1);
  field.value = value;
  return all_of_class(field.name, kTchar) && all_of_class(value, kFieldChar);
}

// Whether the method so far can start a request line: token characters up to the first SP,
// looking at no more than kMethodCheckBytes.
bool method_prefix_ok(std::string_view bytes) noexcept {
  const size_t n = std::min(bytes.size(), kMethodCheckBytes);
  for (size_t i = 0; i < n; ++i) {
    if (bytes[i] == ' ') return i > 0;
    if (!is(bytes[i], kTchar)) return false;
  }
  return true;
}

constexpr std::string_view kVersionPrefix = "HTTP/1.";

// Whether the bytes so far can start a status line: a prefix of "HTTP/1." or longer.
bool status_prefix_ok(std::string_view bytes) noexcept {
  const size_t n = std::min(bytes.size(), kVersionPrefix.size());
  return bytes.substr(0, n) == kVersionPrefix.substr(0, n);
}

struct StatusLine {
  uint8_t version_minor = 1;
  uint16_t status = 0;
  std::string_view reason;
};

// `HTTP/1.x SP 3DIGIT SP reason`, without its CRLF.
bool parse_status_line(std::string_view text, StatusLine& line) noexcept {
  constexpr size_t kReasonAt = 13;  // "HTTP/1.1 200 "
  if (text.size() < kReasonAt || text.substr(0, kVersionPrefix.size()) != kVersionPrefix) {
    return false;
  }
  const char minor = text[7];
  if ((minor != '0' && minor != '1') || text[8] != ' ' || text[12] != ' ') return false;
  line.version_minor = static_cast<uint8_t>(minor - '0');
  uint16_t status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    status = static_cast<uint16_t>(status * 10 + (text[i] - '0'));
  }
  if (status < 100 || status > 599) return false;
  line.status = status;
  line.reason = text.substr(kReasonAt);
  return all_of_class(line.reason, kFieldChar);
}

enum class Kind : uint8_t { kRequest, kResponse };

// Whether the first line, as far as it arrived, can be one of `kind`: checked on every call, in
// O(1), so that bytes of another protocol are refused on their first byte.
bool first_bytes_ok(Kind kind, std::string_view bytes) noexcept {
  return kind == Kind::kRequest ? method_prefix_ok(bytes) : status_prefix_ok(bytes);
}

bool first_line_ok(Kind kind, std::string_view text) noexcept {
  if (kind == Kind::kRequest) {
    RequestLine line;
    return parse_request_line(text, line);
  }
  StatusLine line;
  return parse_status_line(text, line);
}

// Checks the bytes of a head of `kind` after `scanned` (the parse_request_head contract). kDone
// sets `length` to the bytes through the blank line; the head's lines were each checked once.
HeadStatus scan(Kind kind, std::string_view bytes, uint32_t& scanned, size_t& length) noexcept {
  const size_t limit = std::min<size_t>(bytes.size(), kMaxHeadBytes);
  if (scanned > limit) scanned = 0;
  if (!first_bytes_ok(kind, bytes)) return HeadStatus::kInvalid;
  for (size_t i = scanned; i < limit; ++i) {
    // `scanned` stays on the byte being judged, so a repeated call judges it again.
    scanned = static_cast<uint32_t>(i);
    const char c = bytes[i];
    if (i > 0 && bytes[i - 1] == '\r' && c != '\n') return HeadStatus::kInvalid;  // bare CR
    if (is(c, kCtl)) return HeadStatus::kInvalid;
    if (c != '\n') continue;
    if (i == 0 || bytes[i - 1] != '\r') return HeadStatus::kInvalid;  // bare LF
    // A line ended: check it now, once. Finding its start costs its length.
    const size_t cr = i - 1;
    const size_t previous_lf = cr == 0 ? std::string_view::npos : bytes.rfind('\n', cr - 1);
    const size_t start = previous_lf == std::string_view::npos ? 0 : previous_lf + 1;
    const std::string_view text = bytes.substr(start, cr - start);
    if (start == 0) {
      if (!first_line_ok(kind, text)) return HeadStatus::kInvalid;
    } else if (text.empty()) {
      length = i + 1;
      return HeadStatus::kDone;
    } else {
      HeaderField field;
      if (!parse_header_line(text, field)) return HeadStatus::kInvalid;
    }
  }
  scanned = static_cast<uint32_t>(limit);
  return limit == kMaxHeadBytes ? HeadStatus::kInvalid : HeadStatus::kNeedMore;
}

// The field lines of a complete head, from `start` (after the first line's CRLF) through the
// blank line, into `headers`; checks each line again (the same function as scan()).
bool fill_fields(std::string_view head, size_t start, std::array<HeaderField, kMaxHeaders>& headers,
                 uint32_t& count) noexcept {
  count = 0;
  for (;;) {
    const size_t end = head.find("\r\n", start);
    if (end == std::string_view::npos) return false;  // not a whole head
    const std::string_view text = head.substr(start, end - start);
    if (text.empty()) return true;
    if (count == kMaxHeaders) return false;
    if (!parse_header_line(text, headers[count++])) return false;
    start = end + 2;
  }
}

// Fills `out` from a complete head whose every line was already checked once; checks again
// (the same functions) and adds the checks that need the whole head.
HeadStatus fill(std::string_view head, RequestHead& out) noexcept {
  out.header_count = 0;
  out.host = {};
  out.length = static_cast<uint32_t>(head.size());
  const size_t end = head.find("\r\n");
  RequestLine line;
  if (end == std::string_view::npos || !parse_request_line(head.substr(0, end), line)) {
    return HeadStatus::kInvalid;
  }
  out.method = line.method;
  out.target = line.target;
  out.path = line.path;
  out.version_minor = line.version_minor;
  if (!fill_fields(head, end + 2, out.headers, out.header_count)) return HeadStatus::kInvalid;
  bool host_seen = false;
  for (uint32_t i = 0; i < out.header_count; ++i) {
    const HeaderField& field = out.headers[i];
    if (!iequals(field.name, "host")) continue;
    if (host_seen) return HeadStatus::kInvalid;
    host_seen = true;
    out.host = field.value;
  }
  if (!out.host.empty() && host_without_port(out.host).empty()) return HeadStatus::kInvalid;
  if (out.version_minor == 1 && !host_seen) return HeadStatus::kInvalid;
  return HeadStatus::kDone;
}

HeadStatus fill(std::string_view head, ResponseHead& out) noexcept {
  out.header_count = 0;
  out.length = static_cast<uint32_t>(head.size());
  const size_t end = head.find("\r\n");
  StatusLine line;
  if (end == std::string_view::npos || !parse_status_line(head.substr(0, end), line)) {
    return HeadStatus::kInvalid;
  }
  out.version_minor = line.version_minor;
  out.status = line.status;
  out.reason = line.reason;
  if (!fill_fields(head, end + 2, out.headers, out.header_count)) return HeadStatus::kInvalid;
  return HeadStatus::kDone;
}

}  // namespace

HeadStatus parse_request_head(std::string_view bytes, uint32_t& scanned,
                              RequestHead& out) noexcept {
  size_t length = 0;
  const HeadStatus status = scan(Kind::kRequest, bytes, scanned, length);
  return status == HeadStatus::kDone ? fill(bytes.substr(0, length), out) : status;
}

HeadStatus parse_response_head(std::string_view bytes, uint32_t& scanned,
                               ResponseHead& out) noexcept {
  size_t length = 0;
  const HeadStatus status = scan(Kind::kResponse, bytes, scanned, length);
  return status == HeadStatus::kDone ? fill(bytes.substr(0, length), out) : status;
}

std::string_view host_without_port(std::string_view authority) noexcept {
  std::string_view host, port;
  return split_authority(authority, host, port) ? host : std::string_view();
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool is_token_char(char c) noexcept {
  return is(c, kTchar);
}

bool is_token(std::string_view s) noexcept {
  return !s.empty() && all_of_class(s, kTchar);
}

bool is_field_value_char(char c) noexcept {
  return is(c, kFieldChar);
}

HeadStatus sniff_http(std::string_view bytes) noexcept {
  constexpr size_t kMaxMethod = 16;
  const size_t n = std::min(bytes.size(), kMaxMethod + 1);
  for (size_t i = 0; i < n; ++i) {
    const char c = bytes[i];
    if (c == ' ') return i > 0 ? HeadStatus::kDone : HeadStatus::kInvalid;
    if (c < 'A' || c > 'Z' || i == kMaxMethod) return HeadStatus::kInvalid;
  }
  return HeadStatus::kNeedMore;
}

}  // namespace edgeproxy::http
