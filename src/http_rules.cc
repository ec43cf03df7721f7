// HTTP mode's heads, see http_rules.h. Each builder first decides the fate of every field (sent,
// the Host line, added by a rule) in a fixed array on the stack, then writes the head in one
// pass through a bounded writer: no allocation, no byte past the caller's span.
#include "edgeproxy/http_rules.h"

#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "edgeproxy/http_rewrite.h"

namespace edgeproxy::http {

namespace {

using Var = ValueTemplate::Var;

constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kColon = ": ";
constexpr std::string_view kForwardedForName = "X-Forwarded-For";
constexpr std::string_view kForwardedProtoName = "X-Forwarded-Proto";
constexpr std::string_view kViaName = "Via";

struct VarName {
  std::string_view name;  // after the '$'
  Var var;
};
constexpr VarName kVarNames[] = {
    {"client_addr", Var::kClientAddr}, {"client_port", Var::kClientPort},
    {"listener", Var::kListener},      {"server", Var::kServer},
    {"request_id", Var::kRequestId},
};
constexpr std::string_view kExpectedVars =
    "(expected $client_addr, $client_port, $listener, $server, $request_id or $$)";

std::string_view var_value(Var var, const RuleVars& vars) noexcept {
  switch (var) {
    case Var::kClientAddr:
      return vars.client_addr;
    case Var::kClientPort:
      return vars.client_port;
    case Var::kListener:
      return vars.listener;
    case Var::kServer:
      return vars.server;
    case Var::kRequestId:
      return vars.request_id;
    case Var::kLiteral:
      break;
  }
  return {};
}

bool is_name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Copies into `out` until a write would pass its end; from then on it writes nothing and the
// head is refused, so a caller checks once, at the end.
class Writer {
 public:
  explicit Writer(std::span<std::byte> out) noexcept : out_(out) {}

  void put(std::string_view bytes) noexcept {
    if (!ok_ || bytes.size() > out_.size() - at_) {
      ok_ = false;
      return;
    }
    if (bytes.empty()) return;  // an empty view's data() may be null, which memcpy may not take
    std::memcpy(out_.data() + at_, bytes.data(), bytes.size());
    at_ += bytes.size();
  }
  size_t at() const noexcept { return at_; }
  uint32_t length() const noexcept { return ok_ ? static_cast<uint32_t>(at_) : 0; }

 private:
  std::span<std::byte> out_;
  size_t at_ = 0;
  bool ok_ = true;
};

void expand(const ValueTemplate& value, const RuleVars& vars, Writer& w) noexcept {
  for (const ValueTemplate::Part& part : value.parts) {
    w.put(part.var == Var::kLiteral ? std::string_view(part.literal) : var_value(part.var, vars));
  }
}

enum class Source : uint8_t {
  kSent,  // head.headers[index]
  kHost,  // "Host: <the absolute-form target's authority>"
  kRule,  // rules[index]'s name and expanded value
};
enum class Fate : uint8_t {
  kWritten,       // a line of its own, where it stands
  kRemoved,       // hop-by-hop, or removed by a rule or by X-Forwarded-Proto
  kForwardedFor,  // its value goes into the one X-Forwarded-For line
  kVia,           // its value goes into the one Via line
};
struct Field {
  Source source = Source::kSent;
  Fate fate = Fate::kWritten;
  uint8_t index = 0;
};

static_assert(kMaxHeaders <= 256 && kMaxHeaderRules <= 256, "Field::index is one byte");

// Every field a head may carry once the rules applied: the ones sent, a Host line, one per rule.
class Fields {
 public:
  Fields(std::span<const HeaderField> sent, std::string_view authority,
         std::span<const HeaderRule> rules, const RuleVars& vars) noexcept
      : sent_(sent), authority_(authority), rules_(rules), vars_(vars) {}

  void append(Source source, Fate fate, size_t index) noexcept {
    list_[count_++] = Field{source, fate, static_cast<uint8_t>(index)};
  }

  std::string_view name(const Field& f) const noexcept {
    switch (f.source) {
      case Source::kSent:
        return sent_[f.index].name;
      case Source::kHost:
        return "Host";
      case Source::kRule:
        break;
    }
    return rules_[f.index].name;
  }

  void write_value(const Field& f, Writer& w) const noexcept {
    switch (f.source) {
      case Source::kSent:
        w.put(sent_[f.index].value);
        return;
      case Source::kHost:
        w.put(authority_);
        return;
      case Source::kRule:
        expand(rules_[f.index].value, vars_, w);
        return;
    }
  }

  // Every field still to be written and named `name` (without case) gets `fate`.
  void mark(std::string_view field_name, Fate fate) noexcept {
    for (uint32_t i = 0; i < count_; ++i) {
      if (list_[i].fate == Fate::kWritten && iequals(name(list_[i]), field_name)) {
        list_[i].fate = fate;
      }
    }
  }

  // The rules in order, each seeing the fields the ones before it left and added.
  void apply_rules() noexcept {
    for (size_t r = 0; r < rules_.size(); ++r) {
      const HeaderRule& rule = rules_[r];
      if (rule.action != HeaderAction::kAdd) mark(rule.name, Fate::kRemoved);
      if (rule.action != HeaderAction::kDel) append(Source::kRule, Fate::kWritten, r);
    }
  }

  void write_lines(Writer& w) const noexcept {
    for (uint32_t i = 0; i < count_; ++i) {
      if (list_[i].fate != Fate::kWritten) continue;
      w.put(name(list_[i]));
      w.put(kColon);
      write_value(list_[i], w);
      w.put(kCrlf);
    }
  }

  // One line: `name`, the non-empty values of the fields marked `fate` in order, then `last`,
  // joined by ", " (RFC 9110 section 5.3: a list field's lines combine into one that way).
  void write_joined(Writer& w, std::string_view line_name, Fate fate,
                    std::string_view last) const noexcept {
    w.put(line_name);
    w.put(kColon);
    for (uint32_t i = 0; i < count_; ++i) {
      if (list_[i].fate != fate) continue;
      const size_t before = w.at();
      write_value(list_[i], w);
      if (w.at() != before) w.put(", ");
    }
    w.put(last);
    w.put(kCrlf);
  }

 private:
  std::array<Field, kMaxHeaders + 1 + kMaxHeaderRules> list_;
  uint32_t count_ = 0;
  std::span<const HeaderField> sent_;
  std::string_view authority_;
  std::span<const HeaderRule> rules_;
  const RuleVars& vars_;
};

// The origin-form target with the first matching rewrite applied to its path.
void write_target(std::string_view target, std::span<const PathRewrite> rewrites,
                  Writer& w) noexcept {
  const size_t query = target.find('?');
  const std::string_view path = target.substr(0, query);
  if (!path.empty() && path.front() == '/') {
    for (const PathRewrite& rewrite : rewrites) {
      if (!path.starts_with(rewrite.prefix)) continue;
      w.put(rewrite.replacement);
      w.put(target.substr(rewrite.prefix.size()));
      return;
    }
  }
  w.put(target);
}

std::string_view version(uint8_t minor) noexcept {
  return minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
}

std::string_view via_value(uint8_t minor) noexcept {
  return minor == 0 ? "1.0 edgeproxy" : "1.1 edgeproxy";
}

}  // namespace

Result<ValueTemplate> ValueTemplate::parse(std::string_view text) {
  ValueTemplate t;
  std::string literal;
  const auto flush = [&t, &literal] {
    if (literal.empty()) return;
    t.parts.push_back(Part{Var::kLiteral, std::move(literal)});
    literal.clear();
  };
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c != '$') {
      if (!is_field_value_char(c)) {
        char hex[5];
        std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(static_cast<uint8_t>(c)));
        return Error{std::string("control character ") + hex +
                     " in a header value (only HT, SP and visible bytes may appear)"};
      }
      literal += c;
      ++i;
      continue;
    }
    const std::string_view rest = text.substr(i + 1);
    if (rest.starts_with('$')) {
      literal += '$';
      i += 2;
      continue;
    }
    const VarName* found = nullptr;
    for (const VarName& v : kVarNames) {
      if (rest.starts_with(v.name) && (found == nullptr || v.name.size() > found->name.size())) {
        found = &v;
      }
    }
    if (found == nullptr) {
      size_t n = 0;
      while (n < rest.size() && is_name_char(rest[n])) ++n;
      if (n == 0) {
        return Error{std::string("'$' without a variable name ") + std::string(kExpectedVars)};
      }
      return Error{"unknown variable '$" + std::string(rest.substr(0, n)) + "' " +
                   std::string(kExpectedVars)};
    }
    flush();
    t.parts.push_back(Part{found->var, {}});
    i += 1 + found->name.size();
  }
  flush();
  return t;
}

uint32_t build_request_head(const RequestHead& head, const ConnectionTokens& tokens,
                            const RequestRules& rules, const RuleVars& vars, bool upgrade,
                            std::span<std::byte> out) noexcept {
  if (rules.headers.size() > kMaxHeaderRules) return 0;
  const ForwardTarget forward = forward_target(head);
  const std::span<const HeaderField> sent(head.headers.data(), head.header_count);
  Fields fields(sent, forward.authority, rules.headers, vars);
  bool host_seen = false;
  for (size_t i = 0; i < sent.size(); ++i) {
    if (!forward.authority.empty() && iequals(sent[i].name, "host")) {
      host_seen = true;
      const bool same = iequals(sent[i].value, forward.authority);  // as rewrite_request_head()
      fields.append(same ? Source::kSent : Source::kHost, Fate::kWritten, i);
    } else {
      const bool hop = request_hop_by_hop(sent[i].name, tokens, upgrade);
      fields.append(Source::kSent, hop ? Fate::kRemoved : Fate::kWritten, i);
    }
  }
  if (!forward.authority.empty() && !host_seen) fields.append(Source::kHost, Fate::kWritten, 0);
  fields.apply_rules();
  if (rules.forwarded_for) fields.mark(kForwardedForName, Fate::kForwardedFor);
  if (rules.forwarded_proto) fields.mark(kForwardedProtoName, Fate::kRemoved);
  if (rules.via) fields.mark(kViaName, Fate::kVia);

  Writer w(out);
  w.put(head.method);
  w.put(" ");
  write_target(forward.target, rules.rewrites, w);
  w.put(" ");
  w.put(version(head.version_minor));
  w.put(kCrlf);
  fields.write_lines(w);
  if (rules.forwarded_for)
    fields.write_joined(w, kForwardedForName, Fate::kForwardedFor, vars.client_addr);
  if (rules.forwarded_proto) w.put("X-Forwarded-Proto: http\r\n");
  if (rules.via) fields.write_joined(w, kViaName, Fate::kVia, via_value(head.version_minor));
  if (upgrade) {
    w.put("Connection: upgrade\r\n");
  } else if (head.version_minor == 0) {
    w.put("Connection: keep-alive\r\n");
  }
  w.put(kCrlf);
  return w.length();
}

uint32_t build_response_head(const ResponseHead& head, const ResponseRules& rules,
                             const RuleVars& vars, ClientConnection client,
                             std::span<std::byte> out) noexcept {
  if (rules.headers.size() > kMaxHeaderRules) return 0;
  const std::span<const HeaderField> sent(head.headers.data(), head.header_count);
  ConnectionTokens tokens;
  if (!parse_connection(sent, tokens)) return 0;
  const bool switching = head.status == 101;
  Fields fields(sent, {}, rules.headers, vars);
  for (size_t i = 0; i < sent.size(); ++i) {
    const std::string_view name = sent[i].name;
    // A 101's own "Connection: upgrade" names Upgrade, which the client must still see.
    const bool hop = iequals(name, "upgrade")
                         ? !switching
                         : iequals(name, "connection") || iequals(name, "keep-alive") ||
                               named_by_connection(name, tokens);
    fields.append(Source::kSent, hop ? Fate::kRemoved : Fate::kWritten, i);
  }
  fields.apply_rules();
  if (rules.via) fields.mark(kViaName, Fate::kVia);

  const char status[] = {static_cast<char>('0' + head.status / 100),
                         static_cast<char>('0' + head.status / 10 % 10),
                         static_cast<char>('0' + head.status % 10), ' '};
  Writer w(out);
  w.put(version(head.version_minor));
  w.put(" ");
  w.put(std::string_view(status, sizeof status));
  w.put(head.reason);
  w.put(kCrlf);
  fields.write_lines(w);
  if (rules.via) fields.write_joined(w, kViaName, Fate::kVia, via_value(head.version_minor));
  if (switching) {
    w.put("Connection: upgrade\r\n");
  } else if (client == ClientConnection::kClose) {
    w.put("Connection: close\r\n");
  } else if (client == ClientConnection::kKeepAlive) {
    w.put("Connection: keep-alive\r\n");
  }
  w.put(kCrlf);
  return w.length();
}

}  // namespace edgeproxy::http
