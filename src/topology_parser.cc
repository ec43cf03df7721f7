// The configuration-file parser; see topology_parser.h. Text is lexed (config_lexer.h) into
// directives with optional blocks, then each block is interpreted; every value goes through the
// option table (options.h).
#include "edgeproxy/topology_parser.h"

#include <glob.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "edgeproxy/config_lexer.h"
#include "edgeproxy/http_head.h"
#include "edgeproxy/options.h"
#include "edgeproxy/text_file.h"

namespace edgeproxy {
namespace {

// One line of a file: its words (the first is the directive's name) and, after `{`, its block.
struct Directive {
  std::vector<ConfigToken> words;
  bool has_block = false;
  ConfigToken open;  // the `{`
  std::vector<Directive> block;
};

SourceLocation location(const std::string& file, const ConfigToken& t) {
  return SourceLocation{file, t.line, t.column};
}

Error at(const std::string& file, const ConfigToken& t, const std::string& what) {
  return Error{location(file, t).to_string() + ": " + what};
}

std::string quoted(std::string_view v) {
  return "'" + std::string(v) + "'";
}

// Groups tokens from `i` into directives until the `}` that closes `opener` (or the end of the
// text when `opener` is null).
Result<Ok> group(const std::vector<ConfigToken>& toks, size_t& i, const std::string& file,
                 const ConfigToken* opener, std::vector<Directive>& out) {
  for (;;) {
    const ConfigToken& t = toks[i];
    if (t.kind == ConfigToken::Kind::kEnd) {
      if (i + 1 == toks.size()) {
        if (opener == nullptr) return Ok{};
        return at(file, *opener, "unterminated block (expected '}' before the end of the file)");
      }
      ++i;
      continue;
    }
    if (t.kind == ConfigToken::Kind::kClose) {
      if (opener == nullptr) return at(file, t, "unexpected '}' (no block is open)");
      ++i;
      return Ok{};
    }
    if (t.kind == ConfigToken::Kind::kOpen) {
      return at(file, t, "'{' without a directive (expected NAME ... {)");
    }
    Directive d;
    while (toks[i].kind == ConfigToken::Kind::kWord) d.words.push_back(toks[i++]);
    if (toks[i].kind == ConfigToken::Kind::kOpen) {
      d.has_block = true;
      d.open = toks[i++];
      if (auto r = group(toks, i, file, &d.open, d.block); !r.ok()) return r;
      if (toks[i].kind == ConfigToken::Kind::kWord || toks[i].kind == ConfigToken::Kind::kOpen) {
        return at(file, toks[i], "text after '}' (expected the end of the line)");
      }
    }
    out.push_back(std::move(d));
  }
}

// Names of listeners, backends and servers: 1-64 letters, digits, '-', '_', '.'.
bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// "a, b or c".
std::string one_of(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) s += i + 1 == names.size() ? " or " : ", ";
    s += names[i];
  }
  return s;
}

// The sub-options of `server` and `check`, parsed through the option table's value syntax.
// clang-format off
constexpr OptionSpec kServerKeywords[] = {
    {.name = "weight", .kind = ValueKind::kCount, .min = 1, .max = 256},
    {.name = "max-connections", .kind = ValueKind::kCount, .min = 0, .max = 1'000'000,
     .note = "0 = no limit"},
    {.name = "backup", .kind = ValueKind::kFlag},
    {.name = "proxy-protocol", .kind = ValueKind::kEnum, .choices = "none|v1|v2"},
};
constexpr OptionSpec kCheckKeywords[] = {
    {.name = "interval", .kind = ValueKind::kDuration, .min = 10, .max = 3'600'000, .unit_ms = 1},
    {.name = "timeout", .kind = ValueKind::kDuration, .min = 1, .max = 3'600'000, .unit_ms = 1},
    {.name = "rise", .kind = ValueKind::kCount, .min = 1, .max = 100},
    {.name = "fall", .kind = ValueKind::kCount, .min = 1, .max = 100},
    {.name = "send", .kind = ValueKind::kString},
    {.name = "expect", .kind = ValueKind::kString},
};
// clang-format on

constexpr const char* kLimitActions =
    "backend NAME, server HOST:PORT, map NAME KEY, hash BACKEND KEY, close [TEXT] or reject";
constexpr const char* kRuleActions =
    "backend NAME, server HOST:PORT, map NAME KEY, hash BACKEND KEY, wait, reply TEXT, "
    "close [TEXT] or reject";
constexpr const char* kMatchers =
    "any, prefix TEXT, regex TEXT, sni NAMES, alpn NAME, http-host NAMES, http-path PREFIX, "
    "http-path-exact PATH, http-path-glob PATTERN, http-path-regex REGEX, http-method NAME or "
    "protocol tls|http|ssh|proxy";
// An HTTP listener's rules run per request over its head: what reads raw bytes or a TLS hello,
// and what answers without a server, has nothing to work on there.
constexpr const char* kHttpMatchers =
    "any, http-host NAMES, http-path PREFIX, http-path-exact PATH, http-path-glob PATTERN, "
    "http-path-regex REGEX or http-method NAME";
constexpr const char* kHttpActions = "backend NAME, server HOST:PORT, close [TEXT] or reject";

// The listener directives the parser reads itself (not the option table's) that apply to some
// modes only; the table's say so in OptionSpec::modes.
struct ModalDirective {
  const char* name;
  uint8_t modes;
};
constexpr ModalDirective kModalDirectives[] = {
    {"auth", kModeForward},           {"allow-ports", kModeForward},
    {"allow-networks", kModeForward}, {"deny-networks", kModeForward},
    {"on-timeout", kModeTcp},         {"on-full", kModeTcp},
    {"rewrite", kModeHttp},           {"request-header", kModeHttp},
    {"response-header", kModeHttp},
};

// The modes listener directive `name` applies to (0: every mode).
uint8_t modes_of(std::string_view name) {
  for (const ModalDirective& m : kModalDirectives) {
    if (name == m.name) return m.modes;
  }
  const OptionSpec* o = find_option(name);
  return o != nullptr && o->scope == OptionScope::kListener ? o->modes : 0;
}

// Fields that frame a message or belong to one hop: the proxy writes them itself, and a rule
// that changed them could make it and the server disagree on where a message ends.
constexpr const char* kProxyOwnedFields[] = {
    "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "TE", "Trailer"};

bool is_action_word(std::string_view w) {
  for (const char* a : {"backend", "server", "map", "hash", "wait", "reply", "close", "reject"}) {
    if (w == a) return true;
  }
  return false;
}

class Parser {
 public:
  explicit Parser(const IncludeLoader& loader) : loader_(loader) {}

  Result<Topology> run(std::string_view text, const std::string& file_name) {
    topology_.source = file_name;
    stack_.push_back(file_name);
    included_.push_back({file_name, SourceLocation{file_name, 0, 0}});
    if (auto r = parse_file(text, file_name, 0); !r.ok()) return Error{r.error()};
    if (auto r = link(file_name); !r.ok()) return Error{r.error()};
    return std::move(topology_);
  }

 private:
  // A listener's `backend NAME`, resolved to an index once every backend is known.
  struct BackendRef {
    std::string name;
    SourceLocation where;
  };

  // The single-valued directives already written in one block, to refuse a second.
  struct Seen {
    std::vector<std::pair<std::string, SourceLocation>> entries;
    Result<Ok> add(const std::string& file, const ConfigToken& name) {
      for (const auto& [n, where] : entries) {
        if (n == name.text) {
          return at(file, name,
                    "duplicate '" + n + "' (first at " + where.to_string() +
                        "; expected it once in this block)");
        }
      }
      entries.emplace_back(name.text, location(file, name));
      return Ok{};
    }
  };

  Result<Ok> parse_file(std::string_view text, const std::string& file, uint32_t depth) {
    auto toks = lex_config(text, file);
    if (!toks.ok()) return Error{toks.error()};
    std::vector<Directive> top;
    size_t i = 0;
    if (auto r = group(toks.value(), i, file, nullptr, top); !r.ok()) return r;
    for (const Directive& d : top) {
      if (auto r = top_level(d, file, depth); !r.ok()) return r;
    }
    return Ok{};
  }

  Result<Ok> top_level(const Directive& d, const std::string& file, uint32_t depth) {
    const std::string& name = d.words[0].text;
    if (d.words[0].quoted) return unknown(d, file, "include, global, listener, backend or map");
    if (name == "include") return include(d, file, depth);
    if (name == "global") {
      if (auto r = arguments(d, file, 0, "global {"); !r.ok()) return r;
      if (auto r = needs_block(d, file, "global {"); !r.ok()) return r;
      OptionTargets targets{&topology_.global, nullptr, nullptr, nullptr};
      for (const Directive& inner : d.block) {
        const std::string& word = inner.words[0].text;
        if (!inner.words[0].quoted &&
            (word == "admin" || word == "admin-users" || word == "admin-groups")) {
          if (auto r = admin(inner, file); !r.ok()) return r;
          continue;
        }
        if (auto r = option(inner, file, OptionScope::kGlobal, targets, global_seen_); !r.ok()) {
          return r;
        }
      }
      return Ok{};
    }
    if (name == "backend") return backend(d, file);
    if (name == "listener") return listener(d, file);
    if (name == "map") return map(d, file);
    return unknown(d, file, "include, global, listener, backend or map");
  }

  Result<Ok> unknown(const Directive& d, const std::string& file, const std::string& allowed) {
    return at(file, d.words[0],
              "unknown directive " + quoted(d.words[0].text) + " (expected " + allowed + ")");
  }

  // Refuses a directive with other than `count` arguments; `form` shows the expected form.
  Result<Ok> arguments(const Directive& d, const std::string& file, size_t count,
                       const std::string& form) {
    if (d.words.size() - 1 < count) {
      return at(file, d.words[0],
                "missing argument to '" + d.words[0].text + "' (expected " + form + ")");
    }
    if (d.words.size() - 1 > count) {
      return at(file, d.words[count + 1],
                "extra argument " + quoted(d.words[count + 1].text) + " to '" + d.words[0].text +
                    "' (expected " + form + ")");
    }
    return Ok{};
  }

  Result<Ok> needs_block(const Directive& d, const std::string& file, const std::string& form) {
    if (d.has_block) return Ok{};
    const ConfigToken& last = d.words.back();
    return Error{
        SourceLocation{file, last.line, static_cast<uint32_t>(last.column + last.text.size())}
            .to_string() +
        ": missing block after '" + d.words[0].text + "' (expected " + form + " ... })"};
  }

  Result<Ok> no_block(const Directive& d, const std::string& file) {
    if (!d.has_block) return Ok{};
    return at(file, d.open,
              "'" + d.words[0].text + "' takes no block (expected the end of the line)");
  }

  Result<Ok> name_argument(const Directive& d, const std::string& file, const char* what) {
    if (valid_name(d.words[1].text)) return Ok{};
    return at(file, d.words[1],
              std::string("invalid ") + what + " name " + quoted(d.words[1].text) +
                  " (expected 1-64 letters, digits, '-', '_' or '.')");
  }

  // A table option written in a block of `scope`.
  Result<Ok> option(const Directive& d, const std::string& file, OptionScope scope,
                    OptionTargets& targets, Seen& seen) {
    const OptionSpec* o = d.words[0].quoted ? nullptr : find_option(d.words[0].text);
    if (o == nullptr || o->scope != scope || !o->in_file()) {
      return unknown(d, file, one_of(allowed(scope)));
    }
    if (auto r = no_block(d, file); !r.ok()) return r;
    if (o->kind == ValueKind::kSwitch && d.words.size() == 1) {  // a bare switch turns it on
      if (auto r = seen.add(file, d.words[0]); !r.ok()) return r;
      OptionValue on;
      on.number = 1;
      o->apply(targets, on);
      return Ok{};
    }
    const std::string form = d.words[0].text + " " + expected_value(*o);
    if (auto r = arguments(d, file, 1, form); !r.ok()) return r;
    if (auto r = seen.add(file, d.words[0]); !r.ok()) return r;
    auto value = parse_option_value(*o, d.words[1].text);
    if (!value.ok()) return at(file, d.words[1], d.words[0].text + ": " + value.error());
    o->apply(targets, value.value());
    return Ok{};
  }

  // Octal permissions 0000-0777 (`mode` of a unix: bind or of the admin socket).
  Result<uint32_t> octal_mode(const std::string& file, const ConfigToken& word) {
    uint32_t mode = 0;
    const std::string& digits = word.text;
    bool ok = !digits.empty() && digits.size() <= 4;
    for (const char c : digits) {
      ok = ok && c >= '0' && c <= '7';
      mode = mode * 8 + static_cast<uint32_t>(c - '0');
    }
    if (!ok || mode > 0777) {
      return at(file, word,
                "mode: invalid value " + quoted(digits) +
                    " (expected octal permissions 0000-0777, e.g. 0660)");
    }
    return mode;
  }

  // `admin unix:PATH [mode OCTAL] [group NAME]`, `admin tcp HOST:PORT token-file PATH`,
  // `admin-users NAME...` and `admin-groups NAME...` (docs/admin.md).
  Result<Ok> admin(const Directive& d, const std::string& file) {
    if (auto r = no_block(d, file); !r.ok()) return r;
    AdminConfig& a = topology_.global.admin;
    const std::string& name = d.words[0].text;
    if (name != "admin") {
      const std::string form = name + " NAME|ID [NAME|ID ...]";
      if (d.words.size() < 2) {
        return at(file, d.words[0], "missing argument to '" + name + "' (expected " + form + ")");
      }
      if (auto r = global_seen_.add(file, d.words[0]); !r.ok()) return r;
      std::vector<std::string>& list = name == "admin-users" ? a.users : a.groups;
      for (size_t i = 1; i < d.words.size(); ++i) list.push_back(d.words[i].text);
      return Ok{};
    }
    constexpr const char* kUnixForm = "admin unix:PATH [mode 0660] [group NAME]";
    constexpr const char* kTcpForm = "admin tcp HOST:PORT token-file PATH";
    if (d.words.size() < 2) {
      return at(file, d.words[0],
                std::string("missing argument to 'admin' (expected ") + kUnixForm + " or " +
                    kTcpForm + ")");
    }
    const ConfigToken& where = d.words[1];
    if (where.text == "tcp") {
      if (!a.tcp_address.empty()) return at(file, where, "admin tcp is already set");
      if (auto r = arguments(d, file, 4, kTcpForm); !r.ok()) return r;
      auto endpoint = parse_endpoint(d.words[2].text, 1);
      if (!endpoint.ok() || endpoint.value().is_unix()) {
        return at(file, d.words[2],
                  "admin tcp: invalid address " + quoted(d.words[2].text) + " (expected " +
                      kTcpForm + ")");
      }
      if (d.words[3].text != "token-file" || d.words[4].text.empty()) {
        return at(file, d.words[3],
                  "unexpected " + quoted(d.words[3].text) + " (expected " + kTcpForm + ")");
      }
      a.tcp_address = endpoint.value().to_string();
      a.token_file = d.words[4].text;
      return Ok{};
    }
    if (!where.text.starts_with("unix:") || where.text.size() == 5) {
      return at(file, where,
                "admin: unexpected " + quoted(where.text) + " (expected " + kUnixForm + " or " +
                    kTcpForm + ")");
    }
    if (!a.unix_path.empty()) return at(file, where, "admin unix: is already set");
    a.unix_path = where.text.substr(5);
    for (size_t i = 2; i < d.words.size(); i += 2) {
      const ConfigToken& k = d.words[i];
      if (i + 1 == d.words.size()) {
        return at(file, k,
                  "missing value after " + quoted(k.text) + " (expected " + kUnixForm + ")");
      }
      if (k.text == "mode") {
        auto mode = octal_mode(file, d.words[i + 1]);
        if (!mode.ok()) return Error{mode.error()};
        a.unix_mode = mode.value();
      } else if (k.text == "group") {
        a.unix_group = d.words[i + 1].text;
      } else {
        return at(file, k, "unexpected " + quoted(k.text) + " (expected " + kUnixForm + ")");
      }
    }
    return Ok{};
  }

  // The directives a block of `scope` accepts, for "unknown directive" messages.
  static std::vector<std::string> allowed(OptionScope scope) {
    std::vector<std::string> names;
    if (scope == OptionScope::kListener)
      names = {"bind",          "backend", "route",          "on-timeout",
               "on-full",       "auth",    "allow-ports",    "allow-networks",
               "deny-networks", "rewrite", "request-header", "response-header"};
    if (scope == OptionScope::kBackend) names = {"server", "check"};
    if (scope == OptionScope::kGlobal) names = {"admin", "admin-users", "admin-groups"};
    for (const OptionSpec& o : option_table()) {
      if (o.scope == scope && o.in_file()) names.emplace_back(o.name);
    }
    return names;
  }

  // Parses "keyword value ..." from words[first] on; `apply` receives each keyword and value.
  template <class Apply>
  Result<Ok> keywords(const Directive& d, size_t first, const std::string& file,
                      std::span<const OptionSpec> specs, Apply&& apply) {
    std::vector<std::string> names;
    for (const OptionSpec& o : specs) names.emplace_back(o.name);
    Seen seen;
    for (size_t i = first; i < d.words.size(); ++i) {
      const ConfigToken& k = d.words[i];
      const OptionSpec* o = nullptr;
      for (const OptionSpec& s : specs) {
        if (!k.quoted && k.text == s.name) o = &s;
      }
      if (o == nullptr) {
        return at(file, k,
                  "unknown " + d.words[0].text + " option " + quoted(k.text) + " (expected " +
                      one_of(names) + ")");
      }
      if (auto r = seen.add(file, k); !r.ok()) return r;
      OptionValue value;
      if (o->takes_value()) {
        if (i + 1 == d.words.size()) {
          return at(file, k,
                    "missing value after '" + k.text + "' (expected " + expected_value(*o) + ")");
        }
        auto parsed = parse_option_value(*o, d.words[++i].text);
        if (!parsed.ok()) return at(file, d.words[i], k.text + ": " + parsed.error());
        value = std::move(parsed.value());
      }
      apply(*o, value);
    }
    return Ok{};
  }

  Result<Ok> include(const Directive& d, const std::string& file, uint32_t depth) {
    if (auto r = no_block(d, file); !r.ok()) return r;
    if (auto r = arguments(d, file, 1, "include PATTERN"); !r.ok()) return r;
    const ConfigToken& pattern = d.words[1];
    if (depth + 1 > kMaxIncludeDepth) {
      return at(file, pattern,
                "includes nested too deep (expected at most " + std::to_string(kMaxIncludeDepth) +
                    " levels)");
    }
    auto files = loader_(pattern.text, file);
    if (!files.ok()) return at(file, pattern, "include: " + files.error());
    if (files.value().empty()) {
      const bool wildcard = pattern.text.find_first_of("*?[") != std::string::npos;
      const std::string what = "include " + quoted(pattern.text) + " matches no file";
      if (!wildcard) return at(file, pattern, what + " (expected an existing file)");
      topology_.warnings.push_back(location(file, pattern).to_string() + ": " + what);
      return Ok{};
    }
    for (const IncludedFile& f : files.value()) {
      for (const std::string& open : stack_) {
        if (open != f.name) continue;
        std::string chain;
        for (const std::string& s : stack_) chain += s + " -> ";
        return at(file, pattern, "include cycle: " + chain + f.name);
      }
      for (const auto& [name, where] : included_) {
        if (name == f.name) {
          return at(
              file, pattern,
              "file " + quoted(f.name) + " included twice (first at " + where.to_string() + ")");
        }
      }
      included_.push_back({f.name, location(file, pattern)});
      stack_.push_back(f.name);
      if (auto r = parse_file(f.text, f.name, depth + 1); !r.ok()) return r;
      stack_.pop_back();
    }
    return Ok{};
  }

  // The line `KIND NAME {`: one argument, a block, a valid name that `existing` does not have.
  template <class Spec>
  Result<Ok> block_header(const Directive& d, const std::string& file, const char* kind,
                          const std::vector<Spec>& existing) {
    const std::string form = std::string(kind) + " NAME {";
    if (auto r = arguments(d, file, 1, form); !r.ok()) return r;
    if (auto r = needs_block(d, file, form); !r.ok()) return r;
    if (auto r = name_argument(d, file, kind); !r.ok()) return r;
    for (const Spec& e : existing) {
      if (e.name == d.words[1].text) {
        return at(file, d.words[1],
                  std::string("duplicate ") + kind + " " + quoted(e.name) + " (first at " +
                      e.where.to_string() + "; expected a new name)");
      }
    }
    return Ok{};
  }

  Result<Ok> backend(const Directive& d, const std::string& file) {
    if (auto r = block_header(d, file, "backend", topology_.backends); !r.ok()) return r;
    BackendSpec b;
    b.name = d.words[1].text;
    b.where = location(file, d.words[0]);
    OptionTargets targets{&topology_.global, nullptr, &b, nullptr};
    Seen seen;
    for (const Directive& inner : d.block) {
      const std::string& name = inner.words[0].text;
      if (!inner.words[0].quoted && name == "server") {
        if (auto r = server(inner, file, b); !r.ok()) return r;
      } else if (!inner.words[0].quoted && name == "check") {
        if (auto r = no_block(inner, file); !r.ok()) return r;
        if (auto r = seen.add(file, inner.words[0]); !r.ok()) return r;
        b.check.enabled = true;
        HealthCheck& c = b.check;
        auto r = keywords(inner, 1, file, kCheckKeywords,
                          [&c](const OptionSpec& o, const OptionValue& v) {
                            const std::string_view k = o.name;
                            const auto n = static_cast<uint32_t>(v.number);
                            if (k == "interval") c.interval_ms = n;
                            if (k == "timeout") c.timeout_ms = n;
                            if (k == "rise") c.rise = n;
                            if (k == "fall") c.fall = n;
                            if (k == "send") c.send = v.text;
                            if (k == "expect") c.expect = v.text;
                          });
        if (!r.ok()) return r;
      } else if (auto r = option(inner, file, OptionScope::kBackend, targets, seen); !r.ok()) {
        return r;
      }
    }
    if (b.servers.empty()) {
      return at(file, d.words[0],
                "backend " + quoted(b.name) +
                    " has no server (expected at least one 'server NAME "
                    "ADDRESS')");
    }
    topology_.backends.push_back(std::move(b));
    return Ok{};
  }

  Result<Ok> server(const Directive& d, const std::string& file, BackendSpec& b) {
    if (auto r = no_block(d, file); !r.ok()) return r;
    const std::string form =
        "server NAME ADDRESS [weight N] [max-connections N] [backup] [proxy-protocol VERSION]";
    if (d.words.size() < 3) {
      return at(file, d.words[0], "missing argument to 'server' (expected " + form + ")");
    }
    if (auto r = name_argument(d, file, "server"); !r.ok()) return r;
    for (const ServerSpec& s : b.servers) {
      if (s.name == d.words[1].text) {
        return at(file, d.words[1],
                  "duplicate server " + quoted(s.name) + " in backend " + quoted(b.name) +
                      " (first at " + s.where.to_string() + "; expected a new name)");
      }
    }
    ServerSpec s;
    s.name = d.words[1].text;
    s.where = location(file, d.words[0]);
    auto endpoint = parse_endpoint(d.words[2].text, 1);
    if (!endpoint.ok()) return at(file, d.words[2], "server: " + endpoint.error());
    s.endpoint = std::move(endpoint.value());
    auto r = keywords(d, 3, file, kServerKeywords, [&s](const OptionSpec& o, const OptionValue& v) {
      const std::string_view k = o.name;
      if (k == "weight") s.weight = static_cast<uint32_t>(v.number);
      if (k == "max-connections") s.max_connections = static_cast<uint32_t>(v.number);
      if (k == "backup") s.backup = true;
      if (k == "proxy-protocol") s.proxy_protocol = static_cast<uint8_t>(v.number);
    });
    if (!r.ok()) return r;
    b.servers.push_back(std::move(s));
    return Ok{};
  }

  Result<Ok> listener(const Directive& d, const std::string& file) {
    if (auto r = block_header(d, file, "listener", topology_.listeners); !r.ok()) return r;
    ListenerSpec l;
    l.name = d.words[1].text;
    l.where = location(file, d.words[0]);
    BackendRef ref;
    PendingForward forward;
    OptionTargets targets{&topology_.global, &l, nullptr, nullptr};
    Seen seen;
    const Directive* route = nullptr;  // parsed once the mode is known
    for (const Directive& inner : d.block) {
      const std::string& name = inner.words[0].text;
      if (!inner.words[0].quoted && name == "bind") {
        if (auto r = bind(inner, file, l); !r.ok()) return r;
      } else if (!inner.words[0].quoted && name == "backend") {
        if (auto r = no_block(inner, file); !r.ok()) return r;
        if (auto r = arguments(inner, file, 1, "backend NAME"); !r.ok()) return r;
        if (auto r = seen.add(file, inner.words[0]); !r.ok()) return r;
        ref = BackendRef{inner.words[1].text, location(file, inner.words[1])};
      } else if (!inner.words[0].quoted && name == "route") {
        if (auto r = seen.add(file, inner.words[0]); !r.ok()) return r;
        route = &inner;
      } else if (!inner.words[0].quoted && name == "rewrite") {
        if (auto r = rewrite(inner, file, l.http.request); !r.ok()) return r;
      } else if (!inner.words[0].quoted &&
                 (name == "request-header" || name == "response-header")) {
        auto& rules = name == "request-header" ? l.http.request.headers : l.http.response.headers;
        if (auto r = header_rule(inner, file, rules); !r.ok()) return r;
      } else if (!inner.words[0].quoted && (name == "on-timeout" || name == "on-full")) {
        if (auto r = no_block(inner, file); !r.ok()) return r;
        if (auto r = seen.add(file, inner.words[0]); !r.ok()) return r;
        Action& a = name == "on-timeout" ? l.on_timeout : l.on_full;
        if (inner.words.size() < 2) {
          return at(file, inner.words[0],
                    "missing action after '" + name + "' (expected " + kLimitActions + ")");
        }
        if (auto r = action(inner, 1, file, a, false); !r.ok()) return r;
      } else if (!inner.words[0].quoted && (name == "auth" || name == "allow-ports" ||
                                            name == "allow-networks" || name == "deny-networks")) {
        if (auto r = no_block(inner, file); !r.ok()) return r;
        if (auto r = seen.add(file, inner.words[0]); !r.ok()) return r;
        if (auto r = forward_directive(inner, file, forward); !r.ok()) return r;
      } else if (auto r = option(inner, file, OptionScope::kListener, targets, seen); !r.ok()) {
        return r;
      }
    }
    for (const Directive& inner : d.block) {
      const ConfigToken& name = inner.words[0];
      const uint8_t modes = name.quoted ? 0 : modes_of(name.text);
      if (modes == 0 || (modes & mode_bit(l.mode)) != 0) continue;
      return at(file, name,
                quoted(name.text) + " applies to " + mode_names(modes) +
                    " listeners only (expected " + mode_choices(modes, "mode ") + " in listener " +
                    quoted(l.name) + ")");
    }
    if (route != nullptr) {
      if (auto r = route_block(*route, file, l); !r.ok()) return r;
    }
    if (auto r = refuse_tcp_settings(d, file, l); !r.ok()) return r;
    finish_forward(l, forward);
    if (l.binds.empty()) {
      return at(
          file, d.words[0],
          "listener " + quoted(l.name) + " has no bind (expected at least one 'bind ADDRESS')");
    }
    if (ref.name.empty() && l.routes.empty() && l.mode != ListenerMode::kForward) {
      return at(file, d.words[0],
                "listener " + quoted(l.name) +
                    " has no backend (expected 'backend NAME', or a 'route { ... }' block)");
    }
    topology_.listeners.push_back(std::move(l));
    refs_.push_back(std::move(ref));
    return Ok{};
  }

  // A forward listener's multi-word directives, kept until the block ends (finish_forward()).
  struct PendingForward {
    bool ports_given = false;
    PortSet ports;
    std::vector<Cidr> allow, deny;
    bool has_auth = false;
  };

  // `auth basic FILE [realm TEXT]`, `allow-ports LIST`, `allow-networks CIDR...`,
  // `deny-networks CIDR...` (lists may be split over words: "80,443" or "80 443").
  Result<Ok> forward_directive(const Directive& d, const std::string& file,
                               PendingForward& pending) {
    const std::string& name = d.words[0].text;
    if (name == "auth") return auth(d, file, pending);
    if (d.words.size() < 2) {
      return at(file, d.words[0],
                "missing argument to " + quoted(name) + " (expected " + name +
                    (name == "allow-ports" ? " PORTS, e.g. 443 or 80,443,8000-8099)"
                                           : " CIDR..., e.g. 10.0.0.0/8 fd00::/8)"));
    }
    std::string list;
    for (size_t i = 1; i < d.words.size(); ++i) {
      if (i > 1) list += ",";
      list += d.words[i].text;
    }
    if (name == "allow-ports") {
      auto ports = PortSet::parse(list);
      if (!ports.ok()) return at(file, d.words[1], "allow-ports: " + ports.error());
      pending.ports = ports.value();
      pending.ports_given = true;
      return Ok{};
    }
    auto cidrs = parse_cidr_list(list);
    if (!cidrs.ok()) return at(file, d.words[1], name + ": " + cidrs.error());
    (name == "allow-networks" ? pending.allow : pending.deny) = std::move(cidrs.value());
    return Ok{};
  }

  Result<Ok> auth(const Directive& d, const std::string& file, PendingForward& pending) {
    const std::string form = "auth basic FILE [realm \"TEXT\"]";
    if (d.words.size() < 3 || d.words[1].text != "basic") {
      return at(file, d.words.size() < 2 ? d.words[0] : d.words[1],
                "auth: expected " + form + " (the only scheme is basic)");
    }
    if (d.words.size() != 3 && d.words.size() != 5) {
      return at(file, d.words[0], "auth: wrong number of arguments (expected " + form + ")");
    }
    pending.has_auth = true;
    pending_auth_ = {d.words[2].text, "edgeproxy", location(file, d.words[2]), nullptr};
    if (d.words.size() == 5) {
      if (d.words[3].text != "realm") {
        return at(file, d.words[3],
                  "auth: unexpected " + quoted(d.words[3].text) + " (expected " + form + ")");
      }
      const std::string& realm = d.words[4].text;
      for (const char c : realm) {
        if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          return at(file, d.words[4],
                    "auth: the realm may not hold quotes, backslashes or control characters");
        }
      }
      if (realm.empty() || realm.size() > 200) {
        return at(file, d.words[4], "auth: the realm must be 1 to 200 characters");
      }
      pending_auth_.realm = realm;
    }
    const ConfigToken& path = d.words[2];
    auto files = loader_(path.text, file);
    if (!files.ok()) return at(file, path, "auth: " + files.error());
    if (files.value().size() != 1) {
      return at(file, path,
                "auth: " + quoted(path.text) +
                    " names no file (expected a file of "
                    "user:$5$... lines)");
    }
    const IncludedFile& f = files.value().front();
    auto credentials = Credentials::parse(f.text, f.name);
    if (!credentials.ok()) return at(file, path, "auth: " + credentials.error());
    pending_auth_.credentials = std::make_shared<const Credentials>(std::move(credentials.value()));
    pending_auth_.path = f.name;
    return Ok{};
  }

  // Applies what the block said about forwarding (its directives were refused in a listener of
  // another mode already).
  void finish_forward(ListenerSpec& l, const PendingForward& pending) {
    if (l.mode != ListenerMode::kForward) return;
    ForwardSpec& f = l.forward;
    if (pending.has_auth) {
      f.credentials = pending_auth_.credentials;
      f.auth_path = pending_auth_.path;
      f.realm = pending_auth_.realm;
    }
    PortSet connect_ports, http_ports;
    connect_ports.add(443);
    http_ports.add(80);
    http_ports.add(443);
    if (pending.ports_given) connect_ports = http_ports = pending.ports;
    for (DestinationPolicy* p : {&f.connect_policy, &f.http_policy}) {
      for (const Cidr& c : pending.allow) p->allow(c);
      for (const Cidr& c : pending.deny) p->deny(c);
    }
    f.connect_policy.set_ports(connect_ports);
    f.http_policy.set_ports(http_ports);
  }

  // Forward and http listeners read HTTP themselves and answer per request: no PROXY header
  // first (and a forward listener no route block either), no acceleration.
  Result<Ok> refuse_tcp_settings(const Directive& d, const std::string& file,
                                 const ListenerSpec& l) {
    if (l.mode == ListenerMode::kTcp) return Ok{};
    const bool forward = l.mode == ListenerMode::kForward;
    const std::string listener =
        "listener " + quoted(l.name) + (forward ? ": a forward" : ": an http") + " listener ";
    if (forward ? l.inspects() : l.accept_proxy) {
      return at(file, d.words[0],
                listener + (forward ? "reads HTTP itself (expected no 'route' block and no "
                                      "'accept-proxy')"
                                    : "reads each request head itself (expected no "
                                      "'accept-proxy', or 'mode tcp')"));
    }
    if (l.accelerate_bytes != 0) {
      return at(file, d.words[0],
                listener + "does not accelerate (expected no 'accelerate', or 'mode tcp')");
    }
    return Ok{};
  }

  // `rewrite PREFIX NEW-PREFIX`, in file order.
  Result<Ok> rewrite(const Directive& d, const std::string& file, http::RequestRules& rules) {
    if (auto r = no_block(d, file); !r.ok()) return r;
    if (auto r = arguments(d, file, 2, "rewrite PREFIX NEW-PREFIX"); !r.ok()) return r;
    for (size_t i = 1; i <= 2; ++i) {
      if (!d.words[i].text.starts_with('/')) {
        return at(file, d.words[i],
                  "rewrite: " + quoted(d.words[i].text) +
                      " is not a path (expected rewrite PREFIX NEW-PREFIX, both starting with "
                      "'/')");
      }
    }
    rules.rewrites.push_back({d.words[1].text, d.words[2].text});
    return Ok{};
  }

  // `request-header|response-header add|set|del NAME [VALUE]`, in file order.
  Result<Ok> header_rule(const Directive& d, const std::string& file,
                         std::vector<http::HeaderRule>& rules) {
    if (auto r = no_block(d, file); !r.ok()) return r;
    const std::string& directive = d.words[0].text;
    const std::string form = directive + " add|set|del NAME [VALUE]";
    if (d.words.size() < 3) {
      return at(file, d.words[0],
                "missing argument to " + quoted(directive) + " (expected " + form + ")");
    }
    static constexpr std::pair<const char*, http::HeaderAction> kActions[] = {
        {"add", http::HeaderAction::kAdd},
        {"set", http::HeaderAction::kSet},
        {"del", http::HeaderAction::kDel}};
    http::HeaderRule rule;
    bool found = false;
    for (const auto& [word, action] : kActions) {
      if (!d.words[1].quoted && d.words[1].text == word) {
        rule.action = action;
        found = true;
      }
    }
    if (!found) {
      return at(file, d.words[1],
                directive + ": unknown action " + quoted(d.words[1].text) +
                    " (expected add, set or del)");
    }
    const ConfigToken& name = d.words[2];
    if (!http::is_token(name.text)) {
      return at(file, name,
                directive + ": invalid field name " + quoted(name.text) +
                    " (expected a token: letters, digits and !#$%&'*+-.^_`|~)");
    }
    for (const char* owned : kProxyOwnedFields) {
      if (http::iequals(name.text, owned)) {
        return at(file, name,
                  directive + ": " + quoted(name.text) +
                      " is written by the proxy (it frames the message or belongs to one hop; "
                      "expected another field)");
      }
    }
    rule.name = name.text;
    const bool del = rule.action == http::HeaderAction::kDel;
    if (del && d.words.size() > 3) {
      return at(file, d.words[3],
                directive + " del takes no value (expected " + directive + " del NAME)");
    }
    if (!del) {
      const std::string with_value = directive + " " + d.words[1].text + " NAME VALUE";
      if (d.words.size() == 3) {
        return at(file, name,
                  "missing value after " + quoted(name.text) + " (expected " + with_value + ")");
      }
      if (d.words.size() > 4) {
        return at(file, d.words[4],
                  "extra argument " + quoted(d.words[4].text) + " to " + quoted(directive) +
                      " (expected " + with_value + "; quote a value with blanks)");
      }
      auto value = http::ValueTemplate::parse(d.words[3].text);
      if (!value.ok()) return at(file, d.words[3], directive + ": " + value.error());
      rule.value = std::move(value.value());
    }
    rules.push_back(std::move(rule));
    return Ok{};
  }

  Result<Ok> bind(const Directive& d, const std::string& file, ListenerSpec& l) {
    if (auto r = no_block(d, file); !r.ok()) return r;
    const std::string form = "bind ADDRESS [mode OCTAL]";
    if (d.words.size() < 2) {
      return at(file, d.words[0], "missing argument to 'bind' (expected " + form + ")");
    }
    auto endpoint = parse_endpoint(d.words[1].text, 0);
    if (!endpoint.ok()) return at(file, d.words[1], "bind: " + endpoint.error());
    const std::string text = endpoint.value().to_string();
    for (const auto& [written, where] : binds_) {
      if (written == text) {
        return at(file, d.words[1],
                  "bind " + text + " is already bound at " + where.to_string() +
                      " (expected each address once)");
      }
    }
    if (d.words.size() > 2) {
      if (d.words[2].text != "mode") {
        return at(file, d.words[2],
                  "unexpected " + quoted(d.words[2].text) + " (expected " + form + ")");
      }
      if (d.words.size() == 3) {
        return at(file, d.words[2], "missing value after 'mode' (expected " + form + ")");
      }
      if (d.words.size() > 4) {
        return at(
            file, d.words[4],
            "extra argument " + quoted(d.words[4].text) + " to 'bind' (expected " + form + ")");
      }
      if (!endpoint.value().is_unix()) {
        return at(file, d.words[2], "mode applies to unix: binds only (expected " + form + ")");
      }
      auto parsed_mode = octal_mode(file, d.words[3]);
      if (!parsed_mode.ok()) return Error{parsed_mode.error()};
      const uint32_t mode = parsed_mode.value();
      if (l.unix_mode != 0 && l.unix_mode != mode) {
        return at(file, d.words[3],
                  "mode: the listener's unix binds already have mode " +
                      std::to_string(l.unix_mode) + " (expected one mode per listener)");
      }
      l.unix_mode = mode;
    }
    binds_.emplace_back(text, location(file, d.words[1]));
    l.binds.push_back(std::move(endpoint.value()));
    return Ok{};
  }

  // `route {` and its rules, one per line: MATCHER [MATCHER ...] ACTION. In an HTTP listener
  // (l.mode already known) the rules run per request: matchers and actions that need raw bytes
  // or answer without a server are refused.
  Result<Ok> route_block(const Directive& d, const std::string& file, ListenerSpec& l) {
    const bool http = l.mode == ListenerMode::kHttp;
    if (auto r = arguments(d, file, 0, "route {"); !r.ok()) return r;
    if (auto r = needs_block(d, file, "route {"); !r.ok()) return r;
    for (const Directive& inner : d.block) {
      if (auto r = no_block(inner, file); !r.ok()) return r;
      RouteRule rule;
      rule.line = inner.words[0].line;
      for (const ConfigToken& w : inner.words) {
        rule.written += (rule.written.empty() ? "" : " ") + (w.quoted ? quoted(w.text) : w.text);
      }
      size_t i = 0;
      size_t regex = SIZE_MAX;  // the rule's last regex matcher (an index: the vector grows)
      while (i < inner.words.size() && !(is_action_word(inner.words[i].text) &&
                                         !inner.words[i].quoted && !rule.matchers.empty())) {
        Matcher m;
        if (auto r = matcher(inner, i, file, m, http); !r.ok()) return r;
        rule.matchers.push_back(std::move(m));
        const MatchKind kind = rule.matchers.back().kind;
        if (kind == MatchKind::kRegex || kind == MatchKind::kHttpPathRegex) {
          regex = rule.matchers.size() - 1;
        }
      }
      if (i == inner.words.size()) {
        const ConfigToken& last = inner.words.back();
        return at(file, last,
                  "missing action after " + quoted(last.text) + " (expected " +
                      (http ? kHttpActions : kRuleActions) + ")");
      }
      if (http) {
        if (auto r = http_action(inner, i, file); !r.ok()) return r;
      }
      if (auto r = action(inner, i, file, rule.action, true); !r.ok()) return r;
      const uint8_t wanted = rule.action.key.highest_capture();
      const uint32_t groups = regex != SIZE_MAX ? rule.matchers[regex].regex.groups() : 0;
      if (wanted > groups) {
        return at(file, inner.words[0],
                  "the key uses $" + std::to_string(wanted) + " but the rule's regex has " +
                      std::to_string(groups) + " group(s) (expected a regex with that many)");
      }
      l.routes.rules.push_back(std::move(rule));
    }
    if (l.routes.rules.empty()) {
      return at(file, d.words[0], "empty route block (expected at least one rule)");
    }
    return Ok{};
  }

  // Refuses, in an HTTP listener, the action at words[i] that needs the connection's first
  // bytes or answers without a server, and a `send` after any action.
  Result<Ok> http_action(const Directive& d, size_t i, const std::string& file) {
    const ConfigToken& k = d.words[i];
    if (!k.quoted &&
        (k.text == "map" || k.text == "hash" || k.text == "wait" || k.text == "reply")) {
      return at(file, k,
                "action " + quoted(k.text) +
                    " does not apply to an http listener (its rules run per request; expected " +
                    kHttpActions + ")");
    }
    for (size_t n = i + 1; n < d.words.size(); ++n) {
      if (!d.words[n].quoted && d.words[n].text == "send") {
        return at(file, d.words[n],
                  "'send' does not apply to an http listener (the request itself is sent; "
                  "expected " +
                      std::string(kHttpActions) + ")");
      }
    }
    return Ok{};
  }

  // One matcher from words[i] on; advances i past it. `http`: an HTTP listener's rule.
  Result<Ok> matcher(const Directive& d, size_t& i, const std::string& file, Matcher& m,
                     bool http) {
    const char* expected = http ? kHttpMatchers : kMatchers;
    const ConfigToken& k = d.words[i++];
    if (k.quoted)
      return at(file, k, "unexpected " + quoted(k.text) + " (expected " + expected + ")");
    static constexpr std::pair<const char*, MatchKind> kKinds[] = {
        {"any", MatchKind::kAny},
        {"prefix", MatchKind::kPrefix},
        {"regex", MatchKind::kRegex},
        {"sni", MatchKind::kSni},
        {"alpn", MatchKind::kAlpn},
        {"http-host", MatchKind::kHttpHost},
        {"http-path", MatchKind::kHttpPath},
        {"http-path-exact", MatchKind::kHttpPathExact},
        {"http-path-glob", MatchKind::kHttpPathGlob},
        {"http-path-regex", MatchKind::kHttpPathRegex},
        {"http-method", MatchKind::kHttpMethod},
        {"protocol", MatchKind::kProtocol}};
    bool found = false;
    for (const auto& [word, kind] : kKinds) {
      if (k.text == word) {
        m.kind = kind;
        found = true;
      }
    }
    if (!found) {
      return at(file, k, "unknown matcher " + quoted(k.text) + " (expected " + expected + ")");
    }
    const bool raw = m.kind == MatchKind::kPrefix || m.kind == MatchKind::kRegex ||
                     m.kind == MatchKind::kSni || m.kind == MatchKind::kAlpn ||
                     m.kind == MatchKind::kProtocol;
    if (http && raw) {
      return at(file, k,
                "matcher " + quoted(k.text) +
                    " does not apply to an http listener (its rules run per request over the "
                    "request head; expected " +
                    kHttpMatchers + ")");
    }
    if (m.kind == MatchKind::kAny) return Ok{};
    if (i == d.words.size()) {
      return at(file, k, "missing value after '" + k.text + "' (expected " + expected + ")");
    }
    const ConfigToken& v = d.words[i++];
    auto bad = [&](const std::string& what) { return at(file, v, k.text + ": " + what); };
    switch (m.kind) {
      case MatchKind::kPrefix:
      case MatchKind::kHttpPath:
        if (v.text.empty()) return bad("empty value (expected at least one byte)");
        m.text = v.text;
        return Ok{};
      case MatchKind::kHttpMethod:
      case MatchKind::kAlpn:
        if (v.text.empty() || v.text.size() > 255) return bad("expected 1-255 bytes");
        m.text = v.text;
        return Ok{};
      case MatchKind::kHttpPathExact:
        if (!v.text.starts_with('/') || v.text.find('?') != std::string::npos) {
          return bad("invalid path " + quoted(v.text) +
                     " (expected a path starting with '/', without a query)");
        }
        m.text = v.text;
        return Ok{};
      case MatchKind::kHttpPathGlob:
        if (v.text.empty() || v.text.size() > kMaxGlobPath) {
          return bad("expected a pattern of 1-" + std::to_string(kMaxGlobPath) + " bytes");
        }
        m.text = v.text;
        return Ok{};
      case MatchKind::kRegex:
      case MatchKind::kHttpPathRegex: {
        auto re = Regex::compile(v.text);
        if (!re.ok()) return bad(re.error());
        m.regex = std::move(re.value());
        return Ok{};
      }
      case MatchKind::kSni:
      case MatchKind::kHttpHost: {
        std::string_view rest = v.text;
        for (;;) {
          const size_t comma = rest.find(',');
          if (auto r = m.names.add(rest.substr(0, comma), 0); !r.ok()) return bad(r.error());
          if (comma == std::string_view::npos) break;
          rest.remove_prefix(comma + 1);
        }
        return Ok{};
      }
      case MatchKind::kProtocol: {
        static constexpr std::pair<const char*, SniffedProtocol> kProtocols[] = {
            {"tls", SniffedProtocol::kTls},
            {"http", SniffedProtocol::kHttp},
            {"ssh", SniffedProtocol::kSsh},
            {"proxy", SniffedProtocol::kProxy}};
        for (const auto& [word, p] : kProtocols) {
          if (v.text == word) {
            m.protocol = p;
            return Ok{};
          }
        }
        return bad("unknown protocol " + quoted(v.text) + " (expected tls, http, ssh or proxy)");
      }
      case MatchKind::kAny:
        break;
    }
    return Ok{};
  }

  // The action from words[i] to the end of the line. `in_rule`: wait and reply are allowed
  // (on-timeout and on-full must end the inspection).
  Result<Ok> action(const Directive& d, size_t i, const std::string& file, Action& a,
                    bool in_rule) {
    const char* expected = in_rule ? kRuleActions : kLimitActions;
    const ConfigToken& k = d.words[i];
    static constexpr std::pair<const char*, ActionKind> kKinds[] = {
        {"backend", ActionKind::kBackend}, {"server", ActionKind::kServer},
        {"map", ActionKind::kMap},         {"hash", ActionKind::kHash},
        {"wait", ActionKind::kWait},       {"reply", ActionKind::kReply},
        {"close", ActionKind::kClose},     {"reject", ActionKind::kReject}};
    bool found = false;
    for (const auto& [word, kind] : kKinds) {
      if (!k.quoted && k.text == word) {
        a.kind = kind;
        found = true;
      }
    }
    if (!found || (!in_rule && (a.kind == ActionKind::kWait || a.kind == ActionKind::kReply))) {
      return at(file, k, "unknown action " + quoted(k.text) + " (expected " + expected + ")");
    }
    const std::string form = std::string("expected ") + expected;
    size_t n = i + 1;
    auto need = [&](const char* what) -> Result<Ok> {
      if (n < d.words.size()) return Ok{};
      return at(
          file, d.words[n - 1],
          std::string("missing ") + what + " after '" + d.words[n - 1].text + "' (" + form + ")");
    };
    auto text = [&](std::string& out) -> Result<Ok> {
      if (d.words[n].text.size() > kMaxRouteText) {
        return at(file, d.words[n],
                  "text of " + std::to_string(d.words[n].text.size()) +
                      " bytes (expected at most " + std::to_string(kMaxRouteText) + ")");
      }
      out = d.words[n++].text;
      return Ok{};
    };
    switch (a.kind) {
      case ActionKind::kBackend:
      case ActionKind::kServer:
      case ActionKind::kMap:
      case ActionKind::kHash: {
        if (auto r = need(a.kind == ActionKind::kServer ? "HOST:PORT" : "a name"); !r.ok())
          return r;
        a.target = d.words[n].text;
        a.where = location(file, d.words[n]).to_string();
        if (a.kind == ActionKind::kServer) {
          if (auto e = parse_endpoint(a.target, 1); !e.ok()) {
            return at(file, d.words[n], "server: " + e.error());
          }
        }
        ++n;
        if (a.kind == ActionKind::kMap || a.kind == ActionKind::kHash) {
          if (auto r = need("KEY"); !r.ok()) return r;
          auto key = KeyTemplate::parse(d.words[n].text);
          if (!key.ok()) return at(file, d.words[n], key.error());
          a.key = std::move(key.value());
          ++n;
        }
        if (n < d.words.size() && !d.words[n].quoted && d.words[n].text == "send") {
          ++n;
          if (auto r = need("TEXT"); !r.ok()) return r;
          if (auto r = text(a.send); !r.ok()) return r;
          a.has_send = true;
        }
        break;
      }
      case ActionKind::kReply:
        if (auto r = need("TEXT"); !r.ok()) return r;
        if (auto r = text(a.text); !r.ok()) return r;
        if (a.text.empty()) return at(file, d.words[n - 1], "reply: empty text (expected bytes)");
        break;
      case ActionKind::kClose:
        if (n < d.words.size()) {
          if (auto r = text(a.text); !r.ok()) return r;
        }
        break;
      case ActionKind::kWait:
      case ActionKind::kReject:
        break;
    }
    if (n < d.words.size()) {
      return at(file, d.words[n],
                "extra argument " + quoted(d.words[n].text) + " after the action (" + form + ")");
    }
    return Ok{};
  }

  // `map NAME FILE`: the file is read now (at every load and reload), its values resolved in
  // link(): `KEY VALUE` per line, VALUE a backend name or HOST:PORT, `default VALUE`, # comments.
  Result<Ok> map(const Directive& d, const std::string& file) {
    if (auto r = no_block(d, file); !r.ok()) return r;
    if (auto r = arguments(d, file, 2, "map NAME FILE"); !r.ok()) return r;
    if (auto r = name_argument(d, file, "map"); !r.ok()) return r;
    for (const MapSpec& m : topology_.maps) {
      if (m.name == d.words[1].text) {
        return at(file, d.words[1], "duplicate map " + quoted(m.name) + " (expected a new name)");
      }
    }
    const ConfigToken& path = d.words[2];
    if (path.text.find_first_of("*?[") != std::string::npos) {
      return at(file, path, "map: a file name, not a pattern (expected one file)");
    }
    auto files = loader_(path.text, file);
    if (!files.ok()) return at(file, path, "map: " + files.error());
    if (files.value().size() != 1) {
      return at(file, path, "map: " + quoted(path.text) + " names no file (expected a map file)");
    }
    const IncludedFile& f = files.value().front();
    MapSpec m;
    m.name = d.words[1].text;
    m.path = f.name;
    PendingMap pending;
    uint32_t line = 0;
    std::string_view rest = f.text;
    while (!rest.empty()) {
      const size_t end = rest.find('\n');
      std::string_view text = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
      ++line;
      if (const size_t hash = text.find('#'); hash != std::string_view::npos) {
        text = text.substr(0, hash);
      }
      std::vector<std::string_view> words;
      for (size_t p = 0; p < text.size();) {
        while (p < text.size() && (text[p] == ' ' || text[p] == '\t' || text[p] == '\r')) ++p;
        const size_t q = text.find_first_of(" \t\r", p);
        if (p < text.size()) words.push_back(text.substr(p, q - p));
        p = q == std::string_view::npos ? text.size() : q;
      }
      if (words.empty()) continue;
      const std::string where = f.name + ":" + std::to_string(line);
      if (words.size() != 2) {
        return Error{where + ":1: map line with " + std::to_string(words.size()) +
                     " words (expected KEY VALUE, VALUE a backend name or HOST:PORT)"};
      }
      if (auto [it, added] = pending.first_at.emplace(std::string(words[0]), where); !added) {
        return Error{where + ":1: duplicate key " + quoted(it->first) + " (first at " + it->second +
                     "; expected each key once)"};
      }
      pending.entries.push_back({std::string(words[0]), std::string(words[1]), where});
    }
    m.line = d.words[0].line;
    topology_.maps.push_back(std::move(m));
    pending_maps_.push_back(std::move(pending));
    return Ok{};
  }

  // A backend name, or HOST:PORT (a hidden backend of one server, shared by every rule and map
  // value that names the same address). Error: one phrase.
  Result<uint32_t> target_backend(const std::string& target, bool allow_address) {
    for (size_t b = 0; b < topology_.backends.size(); ++b) {
      if (!topology_.backends[b].hidden && topology_.backends[b].name == target) {
        return static_cast<uint32_t>(b);
      }
    }
    if (!allow_address || target.find(':') == std::string::npos) {
      std::vector<std::string> names;
      for (const BackendSpec& b : topology_.backends) {
        if (!b.hidden) names.push_back(b.name);
      }
      return Error{"backend " + quoted(target) + " is not defined (expected " +
                   (names.empty() ? std::string("a 'backend NAME { ... }' block") : one_of(names)) +
                   (allow_address ? ", or HOST:PORT)" : ")")};
    }
    auto e = parse_endpoint(target, 1);
    if (!e.ok()) return Error{e.error()};
    const std::string name = "server:" + e.value().to_string();
    for (size_t b = 0; b < topology_.backends.size(); ++b) {
      if (topology_.backends[b].name == name) return static_cast<uint32_t>(b);
    }
    BackendSpec b;
    b.name = name;
    b.hidden = true;
    ServerSpec s;
    s.name = e.value().to_string();
    s.endpoint = std::move(e.value());
    b.servers.push_back(std::move(s));
    topology_.backends.push_back(std::move(b));
    return static_cast<uint32_t>(topology_.backends.size() - 1);
  }

  Result<Ok> link_action(Action& a) {
    switch (a.kind) {
      case ActionKind::kBackend:
      case ActionKind::kServer:
      case ActionKind::kHash: {
        auto b = target_backend(a.target, a.kind == ActionKind::kServer);
        if (!b.ok()) return Error{a.where + ": " + b.error()};
        a.backend = b.value();
        if (a.kind == ActionKind::kHash) topology_.backends[a.backend].hashed = true;
        return Ok{};
      }
      case ActionKind::kMap:
        for (size_t m = 0; m < topology_.maps.size(); ++m) {
          if (topology_.maps[m].name == a.target) {
            a.map = static_cast<uint32_t>(m);
            return Ok{};
          }
        }
        return Error{a.where + ": map " + quoted(a.target) +
                     " is not defined (expected a 'map NAME FILE' line)"};
      default:
        return Ok{};
    }
  }

  // After every file: listeners to backend indexes, unused backends, at least one listener.
  Result<Ok> link(const std::string& file_name) {
    if (topology_.listeners.empty()) {
      return Error{file_name +
                   ":1:1: no listener (expected at least one 'listener NAME { ... }' block)"};
    }
    // Maps and rules first: they may add hidden backends of one server each.
    for (size_t m = 0; m < topology_.maps.size(); ++m) {
      MapSpec& map = topology_.maps[m];
      for (const auto& [key, value, where] : pending_maps_[m].entries) {
        auto b = target_backend(value, true);
        if (!b.ok()) return Error{where + ":1: " + b.error()};
        if (key == "default") {
          map.fallback = b.value();
        } else {
          map.entries.emplace(key, b.value());
        }
      }
    }
    for (ListenerSpec& l : topology_.listeners) {
      for (RouteRule& rule : l.routes.rules) {
        if (auto r = link_action(rule.action); !r.ok()) return r;
      }
      if (auto r = link_action(l.on_timeout); !r.ok()) return r;
      if (auto r = link_action(l.on_full); !r.ok()) return r;
      l.routes.compile();
    }
    std::vector<bool> used(topology_.backends.size(), false);
    for (ListenerSpec& l : topology_.listeners) {
      for (const RouteRule& rule : l.routes.rules) {
        if (rule.action.backend != kNoBackendIndex) used[rule.action.backend] = true;
        if (rule.action.kind == ActionKind::kMap) {
          const MapSpec& map = topology_.maps[rule.action.map];
          for (const auto& [key, b] : map.entries) used[b] = true;
          if (map.fallback != kNoBackendIndex) used[map.fallback] = true;
        }
      }
      for (const Action* a : {&l.on_timeout, &l.on_full}) {
        if (a->backend != kNoBackendIndex) used[a->backend] = true;
      }
    }
    for (size_t i = 0; i < topology_.listeners.size(); ++i) {
      const BackendRef& ref = refs_[i];
      if (ref.name.empty()) {
        topology_.listeners[i].backend = kNoBackendIndex;
        continue;
      }
      bool found = false;
      for (size_t b = 0; b < topology_.backends.size() && !found; ++b) {
        if (topology_.backends[b].name != ref.name || topology_.backends[b].hidden) continue;
        topology_.listeners[i].backend = static_cast<uint32_t>(b);
        used[b] = true;
        found = true;
      }
      if (!found) {
        std::vector<std::string> names;
        for (const BackendSpec& b : topology_.backends) {
          if (!b.hidden) names.push_back(b.name);
        }
        return Error{
            ref.where.to_string() + ": listener " + quoted(topology_.listeners[i].name) +
            " names backend " + quoted(ref.name) + ", which is not defined (expected " +
            (names.empty() ? std::string("a 'backend NAME { ... }' block") : one_of(names)) + ")"};
      }
    }
    if (auto r = per_request_backends(); !r.ok()) return r;
    for (size_t b = 0; b < used.size(); ++b) {
      if (used[b]) continue;
      topology_.warnings.push_back(topology_.backends[b].where.to_string() + ": backend " +
                                   quoted(topology_.backends[b].name) +
                                   " is not used by any listener");
    }
    return Ok{};
  }

  // Marks the backends HTTP listeners use (BackendSpec::pooled). `balance rtt` and `most-idle`
  // weigh what only an HTTP listener's pools know, per request: a tcp or forward listener (its
  // backend, its rules, its maps) may not use such a backend.
  Result<Ok> per_request_backends() {
    for (const ListenerSpec& l : topology_.listeners) {
      if (l.mode != ListenerMode::kHttp) continue;
      if (l.backend != kNoBackendIndex) topology_.backends[l.backend].pooled = true;
      for (const RouteRule& rule : l.routes.rules) {
        if (rule.action.backend != kNoBackendIndex) {
          topology_.backends[rule.action.backend].pooled = true;
        }
      }
    }
    for (size_t i = 0; i < topology_.listeners.size(); ++i) {
      const ListenerSpec& l = topology_.listeners[i];
      if (l.mode == ListenerMode::kHttp) continue;
      auto check = [&](uint32_t b, const std::string& where) -> Result<Ok> {
        if (b == kNoBackendIndex) return Ok{};
        const BackendSpec& backend = topology_.backends[b];
        if (backend.balance != Balance::kRtt && backend.balance != Balance::kMostIdle) {
          return Ok{};
        }
        return Error{where + ": listener " + quoted(l.name) + " (mode " + to_string(l.mode) +
                     ") uses backend " + quoted(backend.name) + ", whose 'balance " +
                     to_string(backend.balance) +
                     "' balances HTTP requests (expected 'mode http', or another balance in "
                     "backend " +
                     quoted(backend.name) + ")"};
      };
      if (auto r = check(l.backend, refs_[i].where.to_string()); !r.ok()) return r;
      for (const RouteRule& rule : l.routes.rules) {
        const Action& a = rule.action;
        if (auto r = check(a.backend, a.where); !r.ok()) return r;
        if (a.kind != ActionKind::kMap) continue;
        const MapSpec& map = topology_.maps[a.map];
        if (auto r = check(map.fallback, a.where); !r.ok()) return r;
        for (const auto& [key, b] : map.entries) {
          if (auto r = check(b, a.where); !r.ok()) return r;
        }
      }
      for (const Action* a : {&l.on_timeout, &l.on_full}) {
        if (auto r = check(a->backend, a->where); !r.ok()) return r;
      }
    }
    return Ok{};
  }

  const IncludeLoader& loader_;
  Topology topology_;
  // The `auth` directive of the listener being parsed.
  struct PendingAuth {
    std::string path;
    std::string realm;
    SourceLocation where;
    std::shared_ptr<const Credentials> credentials;
  } pending_auth_;
  std::vector<BackendRef> refs_;  // parallel to topology_.listeners
  // A map file's lines until link() resolves their values, parallel to topology_.maps.
  struct PendingMap {
    struct Entry {
      std::string key, value, where;
    };
    std::vector<Entry> entries;
    std::unordered_map<std::string, std::string> first_at;  // key: where it was written
  };
  std::vector<PendingMap> pending_maps_;
  Seen global_seen_;                                              // across every `global` block
  std::vector<std::pair<std::string, SourceLocation>> binds_;     // as written, every listener
  std::vector<std::string> stack_;                                // files being parsed
  std::vector<std::pair<std::string, SourceLocation>> included_;  // every file, where included
};

}  // namespace

Result<Endpoint> parse_endpoint(std::string_view text, uint16_t min_port) {
  const std::string expected = " (expected HOST:PORT, [IPv6]:PORT or unix:/PATH, port " +
                               std::to_string(min_port) + "-65535)";
  Endpoint e;
  if (text.substr(0, 5) == "unix:") {
    const std::string_view path = text.substr(5);
    if (path.empty()) return Error{"empty Unix socket path (expected unix:/PATH)"};
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return Error{"Unix socket path " + quoted(path) + " is too long (expected at most " +
                   std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes)"};
    }
    e.unix_path = std::string(path);
    return e;
  }
  std::string_view port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close == 1 || text.substr(close + 1, 1) != ":") {
      return Error{"invalid address " + quoted(text) + expected};
    }
    e.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Error{"invalid address " + quoted(text) + expected};
    }
    if (text.substr(0, colon).find(':') != std::string_view::npos) {
      return Error{"invalid address " + quoted(text) +
                   " (expected an IPv6 address in brackets: [::1]:8080)"};
    }
    e.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  uint64_t n = 0;
  if (!parse_decimal(port, min_port, 65535, n)) {
    return Error{"invalid port " + quoted(port) + " in " + quoted(text) + " (expected " +
                 std::to_string(min_port) + "-65535)"};
  }
  e.port = static_cast<uint16_t>(n);
  return e;
}

Result<Topology> parse_topology(std::string_view text, const std::string& file_name,
                                const IncludeLoader& loader) {
  Parser parser(loader);
  Result<Topology> t = parser.run(text, file_name);
  // Tokens are quoted in messages as written, and a quoted string may hold any byte ("\n").
  if (!t.ok()) return Error{printable(t.error())};
  return t;
}

Result<std::vector<IncludedFile>> glob_included_files(const std::string& pattern,
                                                      const std::string& including_file) {
  std::string full = pattern;
  if (pattern.empty() || pattern[0] != '/') {
    const size_t slash = including_file.rfind('/');
    if (slash != std::string::npos) full = including_file.substr(0, slash + 1) + pattern;
  }
  glob_t g{};
  const int rc = ::glob(full.c_str(), 0, nullptr, &g);
  std::vector<IncludedFile> files;
  if (rc == GLOB_NOMATCH) return files;
  if (rc != 0) {
    globfree(&g);
    return Error{"cannot expand " + quoted(full)};
  }
  for (size_t i = 0; i < g.gl_pathc; ++i) {
    auto text = read_text_file(g.gl_pathv[i]);
    if (!text.ok()) {
      globfree(&g);
      return Error{text.error()};
    }
    files.push_back(IncludedFile{g.gl_pathv[i], std::move(text.value())});
  }
  globfree(&g);
  return files;
}

Result<Topology> load_topology(const std::string& path, const CommandLine& overrides) {
  auto text = read_text_file(path);
  if (!text.ok()) return Error{text.error()};
  auto t = parse_topology(text.value(), path, glob_included_files);
  if (!t.ok()) return t;
  if (auto r = apply_global_overrides(t.value().global, overrides); !r.ok())
    return Error{r.error()};
  return t;
}

}  // namespace edgeproxy
