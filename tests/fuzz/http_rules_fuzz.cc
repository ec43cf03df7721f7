// Fuzz target: HTTP mode's head builders and value templates (http_rules.h). The input's first
// byte picks the mode and the options, the second which of a fixed set of rules apply (the rules
// come from the configuration, whose own target is `config`); the rest is a request head, a
// response head, or a header value template.
//  - request: for a head HTTP mode would forward (kDone, framing accepted, not CONNECT),
//    build_request_head() announces a length it writes into exactly that many bytes and refuses
//    one byte less, writes the same bytes twice, and the result parses again as one request head
//    of that length (unless the added fields pass the parser's own limits): same method and
//    version, an origin-form target (or "*"), no hop-by-hop field, the one Connection line HTTP
//    mode adds, X-Forwarded-For / X-Forwarded-Proto / Via once each when on, and the rules' del
//    and set obeyed.
//  - response: the same for build_response_head() over a final response or a 101: same status
//    and version, no Keep-Alive, Upgrade only in a 101, Connection only as the options say.
//  - template: ValueTemplate::parse() accepts text with no control byte but HT, keeps literal
//    runs whole, and refuses in one line; an accepted template added as a field to a fixed
//    request never splits the head it is written into.
#include <cstring>
#include <string>
#include <vector>

#include "edgeproxy/http_framing.h"
#include "edgeproxy/http_head.h"
#include "edgeproxy/http_rewrite.h"
#include "edgeproxy/http_rules.h"
#include "fuzz_util.h"

namespace {

using namespace edgeproxy;
using namespace edgeproxy::http;

constexpr uint32_t kOut = kMaxHeadBytes + 16384;  // every head and what the rules add

ValueTemplate value(std::string_view text) {
  Result<ValueTemplate> t = ValueTemplate::parse(text);
  FUZZ_CHECK(t.ok());
  return t.value();
}

// The rules a mask bit turns on, in this order.
const std::vector<PathRewrite>& all_rewrites() {
  static const std::vector<PathRewrite> r{{"/api/", "/v2/"}, {"/", "/root/"}};
  return r;
}
const std::vector<HeaderRule>& all_request_rules() {
  static const std::vector<HeaderRule> r{
      {HeaderAction::kAdd, "X-Request-Id", value("$request_id")},
      {HeaderAction::kSet, "User-Agent", value("edge $client_addr:$client_port")},
      {HeaderAction::kDel, "Accept", {}},
      {HeaderAction::kAdd, "X-Forwarded-For", value("10.0.0.1")},
      {HeaderAction::kSet, "Via", value("$listener")},
      {HeaderAction::kAdd, "X-Server", value("$server$$-$listener")},
  };
  return r;
}
const std::vector<HeaderRule>& all_response_rules() {
  static const std::vector<HeaderRule> r{
      {HeaderAction::kAdd, "X-Served-By", value("$server")},
      {HeaderAction::kDel, "Server", {}},
      {HeaderAction::kSet, "Cache-Control", value("no-store")},
      {HeaderAction::kAdd, "Via", value("1.1 cache")},
      {HeaderAction::kSet, "X-Request-Id", value("$request_id")},
      {HeaderAction::kDel, "Set-Cookie", {}},
  };
  return r;
}

RuleVars vars_for(bool v6) {
  RuleVars v;
  v.client_addr = v6 ? "2001:db8::1" : "192.0.2.1";
  v.client_port = "51234";
  v.listener = "web";
  v.server = "app1";
  v.request_id = "0123456789abcdef";
  return v;
}

template <typename Head>
uint32_t count_named(const Head& h, std::string_view name) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < h.header_count; ++i) n += iequals(h.headers[i].name, name) ? 1u : 0u;
  return n;
}

template <typename Head>
std::string_view field(const Head& h, std::string_view name) {
  for (uint32_t i = 0; i < h.header_count; ++i) {
    if (iequals(h.headers[i].name, name)) return h.headers[i].value;
  }
  return {};
}

// Builds with `build` into kOut bytes, then exactly the announced length and one byte less.
template <typename Build>
std::string build_checked(Build build) {
  static std::vector<std::byte> big(kOut), again(kOut);
  const uint32_t length = build(std::span<std::byte>(big.data(), big.size()));
  if (length == 0) return {};
  FUZZ_CHECK(length <= kOut);
  std::vector<std::byte> exact(length);
  FUZZ_CHECK(build(std::span<std::byte>(exact)) == length);
  FUZZ_CHECK(std::memcmp(exact.data(), big.data(), length) == 0);
  FUZZ_CHECK(build(std::span<std::byte>(again.data(), length - 1)) == 0);
  return std::string(reinterpret_cast<const char*>(exact.data()), length);
}

bool parses_back(std::string_view built) {
  return built.size() <= kMaxHeadBytes && fuzz::field_lines(built) <= kMaxHeaders;
}

// build_request_head() through build_checked(), then parsed again into `re`: false when the
// result passes the parser's limits (the rules added fields), so there is nothing to parse.
bool build_request(const RequestHead& head, const ConnectionTokens& tokens,
                   const RequestRules& rules, const RuleVars& vars, bool upgrade,
                   std::string& built, RequestHead& re) {
  built = build_checked([&](std::span<std::byte> out) {
    return build_request_head(head, tokens, rules, vars, upgrade, out);
  });
  FUZZ_CHECK(!built.empty());
  if (!parses_back(built)) return false;
  uint32_t rescanned = 0;
  FUZZ_CHECK(parse_request_head(built, rescanned, re) == HeadStatus::kDone);
  FUZZ_CHECK(re.length == built.size());
  return true;
}

void check_request(uint8_t control, uint8_t mask, std::string_view bytes) {
  uint32_t scanned = 0;
  RequestHead head;
  if (parse_request_head(bytes, scanned, head) != HeadStatus::kDone) return;
  if (head.method == "CONNECT") return;
  Framing framing;
  if (request_framing(head, framing) != FramingStatus::kOk) return;
  ConnectionTokens tokens;
  FUZZ_CHECK(parse_connection({head.headers.data(), head.header_count}, tokens));

  RequestRules rules;
  rules.forwarded_for = (control & 0x02) != 0;
  rules.forwarded_proto = (control & 0x04) != 0;
  rules.via = (control & 0x08) != 0;
  for (size_t i = 0; i < all_rewrites().size(); ++i) {
    if (mask & (1u << i)) rules.rewrites.push_back(all_rewrites()[i]);
  }
  for (size_t i = 0; i < all_request_rules().size(); ++i) {
    if (mask & (4u << i)) rules.headers.push_back(all_request_rules()[i]);
  }
  bool offers_upgrade = false;
  for (uint32_t i = 0; i < head.header_count; ++i) {
    offers_upgrade = offers_upgrade || iequals(head.headers[i].name, "upgrade");
  }
  const bool upgrade = (control & 0x10) != 0 && offers_upgrade && tokens.upgrade;
  const RuleVars vars = vars_for((control & 0x80) != 0);

  std::string built;
  RequestHead re;
  if (!build_request(head, tokens, rules, vars, upgrade, built, re)) return;
  FUZZ_CHECK(re.method == head.method);
  FUZZ_CHECK(re.version_minor == head.version_minor);
  FUZZ_CHECK(!re.target.empty() && (re.target[0] == '/' || re.target == "*"));
  for (std::string_view hop :
       {"Proxy-Connection", "Proxy-Authorization", "Keep-Alive", "TE", "Trailer"}) {
    FUZZ_CHECK(count_named(re, hop) == 0);
  }
  FUZZ_CHECK(count_named(re, "Upgrade") == (upgrade ? count_named(head, "Upgrade") : 0));
  if (upgrade) {
    FUZZ_CHECK(count_named(re, "Connection") == 1 && field(re, "Connection") == "upgrade");
  } else if (head.version_minor == 0) {
    FUZZ_CHECK(count_named(re, "Connection") == 1 && field(re, "Connection") == "keep-alive");
  } else {
    FUZZ_CHECK(count_named(re, "Connection") == 0);
  }
  if (rules.forwarded_for) {
    FUZZ_CHECK(count_named(re, "X-Forwarded-For") == 1);
    const std::string_view xff = field(re, "X-Forwarded-For");
    FUZZ_CHECK(xff.size() >= vars.client_addr.size() &&
               xff.substr(xff.size() - vars.client_addr.size()) == vars.client_addr);
  }
  if (rules.forwarded_proto) {
    FUZZ_CHECK(count_named(re, "X-Forwarded-Proto") == 1);
    FUZZ_CHECK(field(re, "X-Forwarded-Proto") == "http");
  }
  if (rules.via) {
    FUZZ_CHECK(count_named(re, "Via") == 1);
    const std::string_view via = field(re, "Via");
    FUZZ_CHECK(via.size() >= 9 && via.substr(via.size() - 9) == "edgeproxy");
  }
  if (mask & (4u << 1)) FUZZ_CHECK(count_named(re, "User-Agent") == 1);
  if (mask & (4u << 2)) FUZZ_CHECK(count_named(re, "Accept") == 0);
  // The Host the server sees is the one the proxy routed by (RFC 9112 section 3.2.2).
  const ForwardTarget target = forward_target(head);
  if (!target.authority.empty()) {
    FUZZ_CHECK(count_named(re, "Host") == 1 && iequals(field(re, "Host"), target.authority));
  } else {
    FUZZ_CHECK(count_named(re, "Host") == count_named(head, "Host"));
    FUZZ_CHECK(field(re, "Host") == field(head, "Host"));
  }
}

void check_response(uint8_t control, uint8_t mask, std::string_view bytes) {
  uint32_t scanned = 0;
  ResponseHead head;
  if (parse_response_head(bytes, scanned, head) != HeadStatus::kDone) return;
  if (head.status < 200 && head.status != 101) return;
  ResponseRules rules;
  rules.via = (control & 0x08) != 0;
  for (size_t i = 0; i < all_response_rules().size(); ++i) {
    if (mask & (1u << i)) rules.headers.push_back(all_response_rules()[i]);
  }
  const ClientConnection client = (control & 0x10) != 0   ? ClientConnection::kClose
                                  : (control & 0x20) != 0 ? ClientConnection::kKeepAlive
                                                          : ClientConnection::kPersist;
  const RuleVars vars = vars_for((control & 0x80) != 0);
  ConnectionTokens tokens;
  const bool connection_ok = parse_connection({head.headers.data(), head.header_count}, tokens);

  const std::string built = build_checked([&](std::span<std::byte> out) {
    return build_response_head(head, rules, vars, client, out);
  });
  FUZZ_CHECK(built.empty() == !connection_ok);
  if (built.empty() || !parses_back(built)) return;
  uint32_t rescanned = 0;
  ResponseHead re;
  FUZZ_CHECK(parse_response_head(built, rescanned, re) == HeadStatus::kDone);
  FUZZ_CHECK(re.length == built.size());
  FUZZ_CHECK(re.status == head.status && re.version_minor == head.version_minor);
  FUZZ_CHECK(count_named(re, "Keep-Alive") == 0);
  if (head.status == 101) {
    FUZZ_CHECK(count_named(re, "Connection") == 1 && field(re, "Connection") == "upgrade");
  } else {
    FUZZ_CHECK(count_named(re, "Upgrade") == 0);
    FUZZ_CHECK(count_named(re, "Connection") == (client == ClientConnection::kPersist ? 0 : 1));
    if (client == ClientConnection::kClose) FUZZ_CHECK(field(re, "Connection") == "close");
    if (client == ClientConnection::kKeepAlive) {
      FUZZ_CHECK(field(re, "Connection") == "keep-alive");
    }
  }
  if (rules.via) FUZZ_CHECK(count_named(re, "Via") == 1);
  if (mask & 0x02) FUZZ_CHECK(count_named(re, "Server") == 0);
  if (mask & 0x04) FUZZ_CHECK(count_named(re, "Cache-Control") == 1);
  if (mask & 0x20) FUZZ_CHECK(count_named(re, "Set-Cookie") == 0);
}

void check_template(uint8_t control, std::string_view text) {
  Result<ValueTemplate> parsed = ValueTemplate::parse(text);
  bool clean = true;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    clean = clean && (u >= 0x20 || u == '\t') && u != 0x7f;
  }
  if (!parsed.ok()) {
    FUZZ_CHECK(!parsed.error().empty());
    FUZZ_CHECK(parsed.error().find('\n') == std::string::npos);
    if (clean) FUZZ_CHECK(text.find('$') != std::string_view::npos);
    return;
  }
  FUZZ_CHECK(clean);
  const ValueTemplate& t = parsed.value();
  for (size_t i = 0; i < t.parts.size(); ++i) {
    if (t.parts[i].var != ValueTemplate::Var::kLiteral) continue;
    FUZZ_CHECK(!t.parts[i].literal.empty());
    FUZZ_CHECK(i == 0 || t.parts[i - 1].var != ValueTemplate::Var::kLiteral);
  }
  if (text.find('$') == std::string_view::npos) {
    FUZZ_CHECK(text.empty() ? t.parts.empty() : t.parts.size() == 1 && t.parts[0].literal == text);
  }
  // Whatever the template holds, the field it adds stays one field of one head.
  static const std::string kRequest = "GET /a HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
  uint32_t scanned = 0;
  RequestHead head;
  FUZZ_CHECK(parse_request_head(kRequest, scanned, head) == HeadStatus::kDone);
  ConnectionTokens tokens;
  FUZZ_CHECK(parse_connection({head.headers.data(), head.header_count}, tokens));
  RequestRules rules;
  rules.headers.push_back({(control & 0x10) ? HeaderAction::kSet : HeaderAction::kAdd, "X-T", t});
  const RuleVars vars = vars_for((control & 0x80) != 0);
  std::string built;
  RequestHead re;
  if (!build_request(head, tokens, rules, vars, false, built, re)) return;
  FUZZ_CHECK(count_named(re, "X-T") == 1);
  FUZZ_CHECK(re.header_count == head.header_count + 1 + 3);  // X-T, XFF, proto, Via
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxHeadBytes + 1024) return 0;
  fuzz::Input in(data, size);
  const uint8_t control = in.byte();
  const uint8_t mask = in.byte();
  const std::string bytes(in.rest());
  switch ((control & 0x01) | ((control >> 5) & 0x02)) {
    case 0:
    case 2:
      check_request(control, mask, bytes);
      break;
    case 1:
      check_response(control, mask, bytes);
      break;
    default:
      check_template(control, bytes);
      break;
  }
  return 0;
}
