// Routes: a listener's ordered rules on the first bytes a client sends, compiled once when the
// configuration is loaded (regexes, name tables, maps), and route::decide(), the pure function
// that runs them over the bytes read so far. The grammar: docs/routing.md.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "edgeproxy/result.h"

struct re_pattern_buffer;  // regex_t, from <regex.h>

namespace edgeproxy {

inline constexpr uint32_t kNoRule = UINT32_MAX;
inline constexpr uint32_t kNoBackendIndex = UINT32_MAX;
inline constexpr uint32_t kMaxRouteText = 4096;  // reply, close and send texts, in bytes
inline constexpr uint32_t kMaxCaptures = 10;     // $0 (the whole match) and $1..$9
// http-path-glob copies the path to the stack for fnmatch(3): a longer path never matches (an
// HTTP listener's whole head fits one 8 KiB block, so only TCP inspection can see one).
inline constexpr uint32_t kMaxGlobPath = 8192;

// Offsets [begin, end) of regex captures into the inspected bytes; begin == end == 0 when unset.
struct Captures {
  std::array<std::pair<uint32_t, uint32_t>, kMaxCaptures> at{};
};

// Heterogeneous lookup (a string_view finds a std::string key without building one).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// A POSIX extended regex compiled once; matches byte strings that may contain NULs (glibc's
// REG_STARTEND bounds the subject by length, not by a terminator).
class Regex {
 public:
  // glibc's regcomp() builds an automaton whose size grows with the product of nested
  // repetitions: "((((a+)+)+)...)+" 21 deep took 6.6 GB and a minute, "a" then 21 '+' 2 GB (a
  // configuration fuzzing finding). Each repetition weighs 2 ('*', '+', '?') or its bound + 1
  // ({m,n}; {m,} as m + 2), a repetition of a group or of a repetition multiplies what it
  // repeats, and the product may not pass this; nor may the sum over the pattern pass
  // kMaxRepetitionSum. "([0-9]{1,3}\.){3}" weighs 16, "(a{1,255}){1,15}" 4096.
  static constexpr uint64_t kMaxRepetitionProduct = 4096;
  static constexpr uint64_t kMaxRepetitionSum = 65536;

  // Refuses what regcomp(3) refuses, a pattern with a NUL byte, and one whose repetitions
  // multiply past kMaxRepetitionProduct (below); error: one phrase.
  static Result<Regex> compile(const std::string& pattern);
  bool match(std::span<const std::byte> bytes, Captures& out) const noexcept;
  uint32_t groups() const noexcept { return groups_; }

 private:
  std::shared_ptr<re_pattern_buffer> re_;
  uint32_t groups_ = 0;
};

// Host names (TLS server names, HTTP hosts) to a value: exact names and `*.suffix` patterns,
// case-insensitive, a trailing dot ignored. A pattern `*.example.com` matches names with at
// least one label before `example.com`, never `example.com` itself nor `badexample.com`. When
// several patterns match, the smallest value wins (values are rule indexes: the first rule).
// lookup() costs one hash per label of the name: O(length), whatever the number of patterns.
class NameTable {
 public:
  // Refuses an empty name, a bare `*`, a wildcard elsewhere than a leading `*.`, and characters
  // other than letters, digits, '-', '_' and '.'. Error: one phrase.
  Result<Ok> add(std::string_view pattern, uint32_t value);
  // The smallest value of the patterns `name` matches, or kNoRule.
  uint32_t lookup(std::string_view name) const noexcept;
  size_t size() const noexcept { return exact_.size() + suffixes_.size(); }
  // Adds every pattern of this table to `out` with `value` (a pattern `out` has keeps its own).
  void merge_into(NameTable& out, uint32_t value) const;

 private:
  using Map = std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>>;
  Map exact_;
  Map suffixes_;  // "*.example.com" stored as "example.com"
};

enum class MatchKind : uint8_t {
  kAny,
  kPrefix,         // raw bytes
  kRegex,          // POSIX extended over the bytes; a miss waits for more (HAProxy's "may change")
  kSni,            // TLS ClientHello server_name: names in `names`
  kAlpn,           // one of the ClientHello's ALPN protocols equals `text`
  kHttpHost,       // Host header of an HTTP/1.x request head, without its port: names in `names`
  kHttpPath,       // the request path starts with `text`
  kHttpMethod,     // the request method equals `text`
  kProtocol,       // what the first bytes look like: `protocol`
  kHttpPathExact,  // the request path without its query equals `text`
  kHttpPathGlob,   // fnmatch(3), flags 0, of `text` over the path without its query
  kHttpPathRegex,  // `regex` (POSIX extended) over the path with its query, captures included
};
const char* to_string(MatchKind k) noexcept;

enum class SniffedProtocol : uint8_t { kTls, kHttp, kSsh, kProxy };

struct Matcher {
  MatchKind kind = MatchKind::kAny;
  std::string text;  // prefix bytes, path prefix, exact path, glob, method, ALPN name
  Regex regex;       // kRegex, kHttpPathRegex
  NameTable names;   // kSni, kHttpHost: every name written, each with value 0
  SniffedProtocol protocol = SniffedProtocol::kTls;
};

// What a decided rule does (ProxyMachine's answers, and what they lacked).
enum class ActionKind : uint8_t {
  kBackend,  // through the backend's balancing and health checks
  kServer,   // one address (a hidden backend of one server, named "server:HOST:PORT")
  kMap,      // the backend a map file gives KEY
  kHash,     // a consistent hash of KEY over the backend's usable servers
  kWait,     // not yet: wait for more bytes
  kReply,    // send `text` to the client, forget the bytes so far, keep inspecting
  kClose,    // send `text` (may be empty), then close with a FIN
  kReject,   // close with a reset
};
const char* to_string(ActionKind k) noexcept;

// A key for map and hash: literal text and captures $1..$9, expanded per connection.
struct KeyTemplate {
  struct Part {
    std::string literal;
    uint8_t capture = 0;  // 1-9, or 0 for a literal
  };
  std::vector<Part> parts;
  // Refuses `$` not followed by a digit 1-9 (`$$` is a literal `$`). Error: one phrase.
  static Result<KeyTemplate> parse(std::string_view text);
  uint8_t highest_capture() const noexcept;
  // Writes the key into `out` (truncated at its size) and returns its length.
  uint32_t expand(std::span<const std::byte> bytes, const Captures& captures,
                  std::span<char> out) const noexcept;
};

struct Action {
  ActionKind kind = ActionKind::kClose;
  std::string target;                  // as written: the backend, map or HOST:PORT it names
  std::string where;                   // "file:line:column" of the target, for messages
  uint32_t backend = kNoBackendIndex;  // kBackend, kServer, kHash: into Topology::backends
  uint32_t map = 0;                    // kMap: into Topology::maps
  KeyTemplate key;                     // kMap, kHash
  std::string text;                    // kReply, kClose
  bool has_send = false;               // kBackend, kServer, kMap, kHash: replay `send` instead
  std::string send;
};

// Counters of one rule, shared by every worker, kept across a reload while the listener keeps
// the same rule at the same place.
struct RuleRuntime {
  std::atomic<uint64_t> matches{0};
};

struct RouteRule {
  std::vector<Matcher> matchers;  // all must match (evaluated in order, a miss ends it)
  Action action;
  std::string written;  // the rule as written, for messages and statistics
  uint32_t line = 0;
  std::shared_ptr<RuleRuntime> runtime;
};

// A map file: `KEY VALUE` lines, VALUE a backend name or HOST:PORT, and `default VALUE`.
struct MapSpec {
  std::string name;
  std::string path;
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> entries;
  uint32_t fallback = kNoBackendIndex;  // `default`, or none
  uint32_t line = 0;                    // where the `map` directive was written
};

// A listener's rules, compiled. Consecutive rules whose one matcher is `sni` (or `http-host`)
// share one NameTable mapping each name to its rule: a thousand names cost one lookup.
struct RouteSet {
  std::vector<RouteRule> rules;
  struct Run {
    uint32_t first = 0;  // rules [first, last)
    uint32_t last = 0;
    MatchKind kind = MatchKind::kAny;  // kSni or kHttpHost for a table; kAny: evaluate one by one
    NameTable table;
  };
  std::vector<Run> runs;
  bool empty() const noexcept { return rules.empty(); }
  // Builds `runs` from `rules`; refuses nothing but a name a table refuses (already checked).
  void compile();
};

namespace route {

enum class Verdict : uint8_t {
  kNeedMore,  // a rule cannot tell yet, and no rule before it decided
  kNoMatch,   // no rule decided and none can (the listener's default backend, or close)
  kDecided,   // `rule` decided (its action may be kWait)
};

struct Decision {
  Verdict verdict = Verdict::kNeedMore;
  uint32_t rule = kNoRule;
};

// Work space decide() needs for a ClientHello (at least as large as the bytes); per worker.
struct Scratch {
  std::span<std::byte> hello;
  uint32_t http_scanned = 0;  // carried per connection between calls on its growing bytes
};

// Runs `routes` over `bytes` (everything inspected so far; a PROXY header already removed).
// `final`: no more bytes will come (the client ended its side), so a matcher that would wait
// counts as a miss. (Bytes that fill inspect-bytes are not final: the caller applies on-full.)
// Fills `captures` from the deciding rule's regex. Pure: same bytes, same answer.
Decision decide(const RouteSet& routes, std::span<const std::byte> bytes, bool final,
                Scratch& scratch, Captures& captures) noexcept;

}  // namespace route
}  // namespace edgeproxy
