// Compiled routing rules and the pure decision over the first bytes; see route.h.
#include "edgeproxy/route.h"

#include <fnmatch.h>
#include <regex.h>

#include <algorithm>
#include <cstring>

#include "edgeproxy/client_hello.h"
#include "edgeproxy/http_head.h"
#include "edgeproxy/proxy_header.h"

namespace edgeproxy {
namespace {

constexpr uint32_t kMaxName = 255;  // DNS: a name is at most 255 bytes

bool name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// `name` lower-cased into `out` without a trailing dot; empty when it is too long or empty.
std::string_view normalise(std::string_view name, std::span<char, kMaxName + 1> out) noexcept {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > kMaxName) return {};
  for (size_t i = 0; i < name.size(); ++i) out[i] = lower(name[i]);
  return {out.data(), name.size()};
}

std::string_view as_text(std::span<const std::byte> bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

enum class Outcome : uint8_t { kMatch, kMiss, kWait };

// What one parse of the bytes says, shared by every matcher of one decide() call.
struct Facts {
  Facts(std::span<const std::byte> b, bool is_final, route::Scratch& s) noexcept
      : bytes(b), final(is_final), scratch(s) {}
  std::span<const std::byte> bytes;
  bool final = false;
  route::Scratch& scratch;
  bool hello_done = false;
  tls::HelloStatus hello_status = tls::HelloStatus::kNeedMore;
  tls::ClientHello hello;
  bool head_done = false;
  http::HeadStatus head_status = http::HeadStatus::kNeedMore;
  http::RequestHead head;

  tls::HelloStatus client_hello() noexcept {
    if (!hello_done) {
      hello_done = true;
      hello_status = tls::parse_client_hello(bytes, scratch.hello, hello);
    }
    return hello_status;
  }
  http::HeadStatus request_head() noexcept {
    if (!head_done) {
      head_done = true;
      head_status = http::parse_request_head(as_text(bytes), scratch.http_scanned, head);
    }
    return head_status;
  }
  Outcome wait() const noexcept { return final ? Outcome::kMiss : Outcome::kWait; }
};

Outcome sniffed(bool done, bool need_more, const Facts& f) noexcept {
  if (done) return Outcome::kMatch;
  return need_more ? f.wait() : Outcome::kMiss;
}

Outcome protocol(SniffedProtocol p, Facts& f) noexcept {
  switch (p) {
    case SniffedProtocol::kTls: {
      const tls::HelloStatus s = tls::sniff_tls(f.bytes);
      return sniffed(s == tls::HelloStatus::kFound, s == tls::HelloStatus::kNeedMore, f);
    }
    case SniffedProtocol::kHttp: {
      const http::HeadStatus s = http::sniff_http(as_text(f.bytes));
      return sniffed(s == http::HeadStatus::kDone, s == http::HeadStatus::kNeedMore, f);
    }
    case SniffedProtocol::kSsh: {
      constexpr std::string_view kSsh = "SSH-";
      const std::string_view t = as_text(f.bytes);
      const size_t n = std::min(t.size(), kSsh.size());
      if (t.substr(0, n) != kSsh.substr(0, n)) return Outcome::kMiss;
      return sniffed(n == kSsh.size(), true, f);
    }
    case SniffedProtocol::kProxy: {
      const proxy_header::Status s = proxy_header::sniff(f.bytes);
      return sniffed(s == proxy_header::Status::kDone, s == proxy_header::Status::kNeedMore, f);
    }
  }
  return Outcome::kMiss;
}

// The name a kSni or kHttpHost matcher looks up: kMatch with `name` set, or kWait / kMiss.
Outcome name_of(MatchKind kind, Facts& f, std::string_view& name) noexcept {
  if (kind == MatchKind::kSni) {
    const tls::HelloStatus s = f.client_hello();
    if (s == tls::HelloStatus::kNeedMore) return f.wait();
    if (s != tls::HelloStatus::kFound) return Outcome::kMiss;
    name = f.hello.server_name;
    return Outcome::kMatch;
  }
  if (http::sniff_http(as_text(f.bytes)) == http::HeadStatus::kInvalid) return Outcome::kMiss;
  const http::HeadStatus s = f.request_head();
  if (s == http::HeadStatus::kNeedMore) return f.wait();
  if (s != http::HeadStatus::kDone) return Outcome::kMiss;
  // An absolute-form target's authority wins over Host (RFC 9112 section 3.2.2): the server
  // would take it, so routing must too.
  std::string_view authority = f.head.host;
  if (const size_t scheme = f.head.target.find("://");
      !f.head.target.starts_with('/') && scheme != std::string_view::npos) {
    authority = f.head.target.substr(scheme + 3);
    authority = authority.substr(0, authority.find_first_of("/?"));
  }
  if (authority.empty()) return Outcome::kMiss;
  name = http::host_without_port(authority);
  return name.empty() ? Outcome::kMiss : Outcome::kMatch;
}

Outcome matched(bool yes) noexcept {
  return yes ? Outcome::kMatch : Outcome::kMiss;
}

// fnmatch(3) needs a terminated string: the path is copied to the stack (a head's path holds no
// NUL: the parser allows visible ASCII only).
bool glob_matches(const std::string& pattern, std::string_view path) noexcept {
  if (path.size() > kMaxGlobPath) return false;
  char subject[kMaxGlobPath + 1];
  std::memcpy(subject, path.data(), path.size());
  subject[path.size()] = '\0';
  return fnmatch(pattern.c_str(), subject, 0) == 0;
}

// A regex over the path: its captures are moved to offsets into the inspected bytes (what
// KeyTemplate::expand reads), or left unset when the path is not in them (an absolute-form
// target without a path reads as the static "/").
bool path_regex_matches(const Regex& regex, std::string_view path, std::span<const std::byte> bytes,
                        Captures& captures) noexcept {
  Captures local;
  if (!regex.match(std::as_bytes(std::span(path.data(), path.size())), local)) return false;
  const char* base = reinterpret_cast<const char*>(bytes.data());
  const bool inside =
      !bytes.empty() && path.data() >= base && path.data() + path.size() <= base + bytes.size();
  const auto shift = inside ? static_cast<uint32_t>(path.data() - base) : 0;
  for (uint32_t i = 0; i < kMaxCaptures; ++i) {
    const auto [begin, end] = local.at[i];
    captures.at[i] = inside && end > begin
                         ? std::pair<uint32_t, uint32_t>{begin + shift, end + shift}
                         : std::pair<uint32_t, uint32_t>{0, 0};
  }
  return true;
}

Outcome http_field(const Matcher& m, Facts& f, Captures& captures) noexcept {
  if (http::sniff_http(as_text(f.bytes)) == http::HeadStatus::kInvalid) return Outcome::kMiss;
  const http::HeadStatus s = f.request_head();
  if (s == http::HeadStatus::kNeedMore) return f.wait();
  if (s != http::HeadStatus::kDone) return Outcome::kMiss;
  const std::string_view path = f.head.path;
  const std::string_view without_query = path.substr(0, path.find('?'));
  switch (m.kind) {
    case MatchKind::kHttpMethod:
      return matched(f.head.method == m.text);
    case MatchKind::kHttpPathExact:
      return matched(without_query == m.text);
    case MatchKind::kHttpPathGlob:
      return matched(glob_matches(m.text, without_query));
    case MatchKind::kHttpPathRegex:
      return matched(path_regex_matches(m.regex, path, f.bytes, captures));
    case MatchKind::kHttpPath:
      return matched(path.starts_with(m.text));
    default:
      return Outcome::kMiss;
  }
}

Outcome evaluate(const Matcher& m, Facts& f, Captures& captures) noexcept {
  switch (m.kind) {
    case MatchKind::kAny:
      return Outcome::kMatch;
    case MatchKind::kPrefix: {
      const std::string_view t = as_text(f.bytes);
      const size_t n = std::min(t.size(), m.text.size());
      if (t.substr(0, n) != std::string_view(m.text).substr(0, n)) return Outcome::kMiss;
      return n == m.text.size() ? Outcome::kMatch : f.wait();
    }
    case MatchKind::kRegex:
      // A regex cannot tell "not yet" from "never": it waits for more bytes until they are final.
      return m.regex.match(f.bytes, captures) ? Outcome::kMatch : f.wait();
    case MatchKind::kSni:
    case MatchKind::kHttpHost: {
      std::string_view name;
      const Outcome o = name_of(m.kind, f, name);
      if (o != Outcome::kMatch) return o;
      return m.names.lookup(name) != kNoRule ? Outcome::kMatch : Outcome::kMiss;
    }
    case MatchKind::kAlpn: {
      const tls::HelloStatus s = f.client_hello();
      if (s == tls::HelloStatus::kNeedMore) return f.wait();
      if (s != tls::HelloStatus::kFound && s != tls::HelloStatus::kNoName) return Outcome::kMiss;
      for (uint32_t i = 0; i < f.hello.alpn_count; ++i) {
        if (f.hello.alpn[i] == m.text) return Outcome::kMatch;
      }
      return Outcome::kMiss;
    }
    case MatchKind::kHttpPath:
    case MatchKind::kHttpPathExact:
    case MatchKind::kHttpPathGlob:
    case MatchKind::kHttpPathRegex:
    case MatchKind::kHttpMethod:
      return http_field(m, f, captures);
    case MatchKind::kProtocol:
      return protocol(m.protocol, f);
  }
  return Outcome::kMiss;
}

// Every matcher of the rule, in order: a miss ends it, a wait is remembered (a later miss still
// ends it: `protocol tls sni x` never waits on a connection that is not TLS).
Outcome evaluate(const RouteRule& r, Facts& f, Captures& captures) noexcept {
  Outcome result = Outcome::kMatch;
  for (const Matcher& m : r.matchers) {
    const Outcome o = evaluate(m, f, captures);
    if (o == Outcome::kMiss) return Outcome::kMiss;
    if (o == Outcome::kWait) result = Outcome::kWait;
  }
  return result;
}

}  // namespace

const char* to_string(MatchKind k) noexcept {
  switch (k) {
    case MatchKind::kAny:
      return "any";
    case MatchKind::kPrefix:
      return "prefix";
    case MatchKind::kRegex:
      return "regex";
    case MatchKind::kSni:
      return "sni";
    case MatchKind::kAlpn:
      return "alpn";
    case MatchKind::kHttpHost:
      return "http-host";
    case MatchKind::kHttpPath:
      return "http-path";
    case MatchKind::kHttpMethod:
      return "http-method";
    case MatchKind::kProtocol:
      return "protocol";
    case MatchKind::kHttpPathExact:
      return "http-path-exact";
    case MatchKind::kHttpPathGlob:
      return "http-path-glob";
    case MatchKind::kHttpPathRegex:
      return "http-path-regex";
  }
  return "?";
}

const char* to_string(ActionKind k) noexcept {
  switch (k) {
    case ActionKind::kBackend:
      return "backend";
    case ActionKind::kServer:
      return "server";
    case ActionKind::kMap:
      return "map";
    case ActionKind::kHash:
      return "hash";
    case ActionKind::kWait:
      return "wait";
    case ActionKind::kReply:
      return "reply";
    case ActionKind::kClose:
      return "close";
    case ActionKind::kReject:
      return "reject";
  }
  return "?";
}

namespace {

// Whether an ERE's repetitions stay within Regex::kMaxRepetitionProduct and kMaxRepetitionSum
// (route.h). A syntax error is left to regcomp(): this only weighs.
bool repetitions_bounded(std::string_view p) noexcept {
  constexpr uint64_t kCap = Regex::kMaxRepetitionProduct + 1;
  constexpr size_t kMaxDepth = 64;
  uint64_t inner[kMaxDepth + 1] = {1};  // per open group: the heaviest repetition inside
  size_t depth = 0;
  uint64_t last = 0;  // the weight of what a repetition here would repeat (0: nothing)
  uint64_t sum = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    uint64_t weight = 0;
    if (c == '*' || c == '+' || c == '?') {
      weight = 2;
    } else if (c == '{' && i + 1 < p.size() && p[i + 1] >= '0' && p[i + 1] <= '9') {
      uint64_t m = 0, n = 0;
      bool comma = false, bounded = false;
      size_t j = i + 1;
      for (; j < p.size() && p[j] != '}'; ++j) {
        if (p[j] == ',') {
          comma = true;
        } else if (p[j] >= '0' && p[j] <= '9') {
          uint64_t& v = comma ? n : m;
          v = std::min<uint64_t>(v * 10 + static_cast<uint64_t>(p[j] - '0'), kCap);
          bounded = bounded || comma;
        }
      }
      i = j;
      weight = !comma ? m + 1 : bounded ? std::max(m, n) + 1 : m + 2;
    }
    if (weight != 0) {
      if (last == 0) continue;  // nothing to repeat: regcomp's business
      last = std::min(last * weight, kCap);
      if (last > Regex::kMaxRepetitionProduct) return false;
      inner[depth] = std::max(inner[depth], last);
      sum += last;
      if (sum > Regex::kMaxRepetitionSum) return false;
      continue;
    }
    switch (c) {
      case '\\':
        ++i;
        last = 1;
        break;
      case '[': {
        size_t j = i + 1;
        if (j < p.size() && p[j] == '^') ++j;
        if (j < p.size() && p[j] == ']') ++j;
        while (j < p.size() && p[j] != ']') {
          if (p[j] == '[' && j + 1 < p.size() &&
              (p[j + 1] == ':' || p[j + 1] == '.' || p[j + 1] == '=')) {
            const char kind = p[j + 1];
            j += 2;
            while (j + 1 < p.size() && !(p[j] == kind && p[j + 1] == ']')) ++j;
            j += 2;
          } else {
            ++j;
          }
        }
        i = j;
        last = 1;
        break;
      }
      case '(':
        if (depth == kMaxDepth) return false;
        inner[++depth] = 1;
        last = 0;
        break;
      case ')':
        if (depth == 0) {
          last = 1;
          break;
        }
        last = inner[depth--];
        inner[depth] = std::max(inner[depth], last);
        break;
      case '|':
      case '^':
        last = 0;
        break;
      default:
        last = 1;
        break;
    }
  }
  return true;
}

}  // namespace

Result<Regex> Regex::compile(const std::string& pattern) {
  if (pattern.find('\0') != std::string::npos) {
    return Error{"a regex cannot contain a NUL byte (expected [^...] classes or '.' instead)"};
  }
  if (!repetitions_bounded(pattern)) {
    return Error{"regex too complex: its nested or repeated repetitions multiply past " +
                 std::to_string(kMaxRepetitionProduct) + " (regcomp's memory grows with them)"};
  }
  auto re = std::shared_ptr<regex_t>(new regex_t, [](regex_t* r) {
    regfree(r);
    delete r;
  });
  const int rc = regcomp(re.get(), pattern.c_str(), REG_EXTENDED);
  if (rc != 0) {
    char message[256];
    regerror(rc, re.get(), message, sizeof message);
    // regcomp failed: nothing to free, and the deleter must not regfree it.
    re = std::shared_ptr<regex_t>(new regex_t, [](regex_t* r) { delete r; });
    return Error{std::string("invalid regex: ") + message};
  }
  Regex r;
  r.groups_ = static_cast<uint32_t>(re->re_nsub);
  r.re_ = std::move(re);
  return r;
}

bool Regex::match(std::span<const std::byte> bytes, Captures& out) const noexcept {
  if (re_ == nullptr) return false;
  regmatch_t m[kMaxCaptures];
  m[0].rm_so = 0;
  m[0].rm_eo = static_cast<regoff_t>(bytes.size());
  // REG_STARTEND: the subject is [rm_so, rm_eo), NULs included; `^` still anchors at its start.
  const char* subject = bytes.empty() ? "" : reinterpret_cast<const char*>(bytes.data());
  if (regexec(re_.get(), subject, kMaxCaptures, m, REG_STARTEND) != 0) return false;
  for (uint32_t i = 0; i < kMaxCaptures; ++i) {
    out.at[i] = m[i].rm_so < 0 ? std::pair<uint32_t, uint32_t>{0, 0}
                               : std::pair<uint32_t, uint32_t>{static_cast<uint32_t>(m[i].rm_so),
                                                               static_cast<uint32_t>(m[i].rm_eo)};
  }
  return true;
}

Result<Ok> NameTable::add(std::string_view pattern, uint32_t value) {
  std::string_view name = pattern;
  bool wildcard = false;
  if (name.starts_with("*.")) {
    wildcard = true;
    name.remove_prefix(2);
  }
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > kMaxName) {
    return Error{"invalid name '" + std::string(pattern) +
                 "' (expected NAME or *.SUFFIX, 1-255 bytes)"};
  }
  for (const char c : name) {
    if (!name_char(c)) {
      return Error{"invalid name '" + std::string(pattern) +
                   "' (expected letters, digits, '-', '_' and '.', and '*.' only in front)"};
    }
  }
  if (name.front() == '.' || name.find("..") != std::string_view::npos) {
    return Error{"invalid name '" + std::string(pattern) + "' (expected no empty label)"};
  }
  std::string key(name);
  for (char& c : key) c = lower(c);
  Map& m = wildcard ? suffixes_ : exact_;
  m.emplace(std::move(key), value);  // the first rule to name it keeps it
  return Ok{};
}

uint32_t NameTable::lookup(std::string_view name) const noexcept {
  char buffer[kMaxName + 1];
  const std::string_view n = normalise(name, buffer);
  if (n.empty()) return kNoRule;
  uint32_t best = kNoRule;
  if (!exact_.empty()) {
    if (auto it = exact_.find(n); it != exact_.end()) best = it->second;
  }
  if (!suffixes_.empty()) {
    // Each proper suffix that starts after a dot: "a.b.c" tries "b.c", then "c".
    for (size_t dot = n.find('.'); dot != std::string_view::npos; dot = n.find('.', dot + 1)) {
      if (auto it = suffixes_.find(n.substr(dot + 1)); it != suffixes_.end()) {
        best = std::min(best, it->second);
      }
    }
  }
  return best;
}

void NameTable::merge_into(NameTable& out, uint32_t value) const {
  for (const auto& [name, unused] : exact_) out.exact_.emplace(name, value);
  for (const auto& [name, unused] : suffixes_) out.suffixes_.emplace(name, value);
}

Result<KeyTemplate> KeyTemplate::parse(std::string_view text) {
  KeyTemplate t;
  std::string literal;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$') {
      literal += text[i];
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '$') {
      literal += '$';
      ++i;
      continue;
    }
    if (i + 1 == text.size() || text[i + 1] < '1' || text[i + 1] > '9') {
      return Error{"invalid key '" + std::string(text) +
                   "' (expected text with captures $1-$9, and $$ for a '$')"};
    }
    if (!literal.empty()) t.parts.push_back({std::exchange(literal, {}), 0});
    t.parts.push_back({{}, static_cast<uint8_t>(text[++i] - '0')});
  }
  if (!literal.empty()) t.parts.push_back({std::move(literal), 0});
  return t;
}

uint8_t KeyTemplate::highest_capture() const noexcept {
  uint8_t h = 0;
  for (const Part& p : parts) h = std::max(h, p.capture);
  return h;
}

uint32_t KeyTemplate::expand(std::span<const std::byte> bytes, const Captures& captures,
                             std::span<char> out) const noexcept {
  size_t n = 0;
  auto put = [&](std::string_view s) {
    const size_t k = std::min(s.size(), out.size() - n);
    std::memcpy(out.data() + n, s.data(), k);
    n += k;
  };
  for (const Part& p : parts) {
    if (p.capture == 0) {
      put(p.literal);
      continue;
    }
    const auto [begin, end] = captures.at[p.capture];
    if (end > begin && end <= bytes.size()) put(as_text(bytes.subspan(begin, end - begin)));
  }
  return static_cast<uint32_t>(n);
}

void RouteSet::compile() {
  runs.clear();
  auto table_kind = [](const RouteRule& r) {
    if (r.matchers.size() != 1) return MatchKind::kAny;
    const MatchKind k = r.matchers[0].kind;
    return k == MatchKind::kSni || k == MatchKind::kHttpHost ? k : MatchKind::kAny;
  };
  for (uint32_t i = 0; i < rules.size();) {
    const MatchKind kind = table_kind(rules[i]);
    uint32_t j = i + 1;
    if (kind != MatchKind::kAny) {
      while (j < rules.size() && table_kind(rules[j]) == kind) ++j;
    }
    Run run;
    run.first = i;
    run.last = j;
    run.kind = j - i > 1 ? kind : MatchKind::kAny;
    if (run.kind != MatchKind::kAny) {
      // The names were checked when each rule was parsed, so add() cannot fail here; a name
      // that two rules write keeps the first rule.
      for (uint32_t r = i; r < j; ++r) rules[r].matchers[0].names.merge_into(run.table, r);
    }
    runs.push_back(std::move(run));
    i = j;
  }
}

namespace route {

Decision decide(const RouteSet& routes, std::span<const std::byte> bytes, bool final,
                Scratch& scratch, Captures& captures) noexcept {
  Facts f(bytes, final, scratch);
  for (const RouteSet::Run& run : routes.runs) {
    if (run.kind == MatchKind::kAny) {
      for (uint32_t r = run.first; r < run.last; ++r) {
        switch (evaluate(routes.rules[r], f, captures)) {
          case Outcome::kMatch:
            return {Verdict::kDecided, r};
          case Outcome::kWait:
            return {Verdict::kNeedMore, kNoRule};
          case Outcome::kMiss:
            break;
        }
      }
      continue;
    }
    std::string_view name;
    const Outcome o = name_of(run.kind, f, name);
    if (o == Outcome::kWait) return {Verdict::kNeedMore, kNoRule};
    if (o == Outcome::kMiss) continue;
    if (const uint32_t r = run.table.lookup(name); r != kNoRule) return {Verdict::kDecided, r};
  }
  return {Verdict::kNoMatch, kNoRule};
}

}  // namespace route
}  // namespace edgeproxy
