// HTTP Basic authentication for the forward proxy: the user file (Credentials, loaded at start-up
// or reload), the Proxy-Authorization value taken apart (parse_basic), and a per-worker cache of
// verdicts (CredentialCache) so a client repeating its header costs one SHA-256, not a crypt.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/result.h"
#include "edgeproxy/sha256.h"
#include "edgeproxy/sha_crypt.h"

namespace edgeproxy {

// A longer password is refused without hashing: SHA-256-crypt's cost grows with the password's
// length (sha_crypt.h) and the client chooses it.
inline constexpr size_t kMaxPasswordBytes = 256;
// The longest user name a credentials file may hold.
inline constexpr size_t kMaxUserBytes = 256;

// The users allowed through and their SHA-256-crypt hashes. Built once (allocating), then
// immutable: verify() may be called from any number of threads at once.
class Credentials {
 public:
  // No users: verify() refuses everyone.
  Credentials() = default;

  // Reads the file at `path` and parses it as parse() does, naming it `path` in errors; one line
  // "cannot read 'PATH': REASON" when it cannot be read.
  static Result<Credentials> load(const std::string& path);

  // Parses a credentials file's text. `name` prefixes errors, which are one line
  // "NAME:LINE: reason" (or "NAME: no users"). The format:
  // - one `USER:HASH` per line, LF or CRLF line ends; blank lines (spaces and tabs only) and lines
  //   whose first non-blank character is "#" are ignored (so no user name starts with "#");
  // - USER: everything before the first ":", 1 to kMaxUserBytes bytes, no control characters
  //   (RFC 7617 forbids them), no blank at its start or end; each user at most once;
  // - HASH: everything after it, a SHA-256-crypt hash that parse_sha256_crypt() accepts
  //   (e.g. from `openssl passwd -5` or `mkpasswd -m sha-256`); other schemes are refused;
  // - at least one user.
  static Result<Credentials> parse(std::string_view text, const std::string& name);

  // Whether `user` exists and `password` matches its hash. Costs one SHA-256-crypt whatever the
  // outcome: an unknown user is hashed against a dummy with the rounds and salt length most
  // common in the file (what a hash's cost depends on), so for a file whose hashes were made
  // alike, the time taken does not tell which users exist (the user lookup itself is a binary
  // search of nanoseconds against milliseconds of hashing). The digest is compared in constant
  // time. A password longer than kMaxPasswordBytes is refused at once.
  bool verify(std::string_view user, std::string_view password) const noexcept;
  // The same, giving the index of the user (see user()) when true is returned.
  bool verify(std::string_view user, std::string_view password,
              uint32_t& user_index) const noexcept;

  uint32_t size() const noexcept { return static_cast<uint32_t>(entries_.size()); }
  // The name of user `index` (0 <= index < size()); users are sorted by name (bytewise).
  std::string_view user(uint32_t index) const noexcept { return entries_[index].user; }

 private:
  struct Entry {
    std::string user;
    Sha256CryptHash hash;
  };
  std::vector<Entry> entries_;  // sorted by user, no two equal
  Sha256CryptHash dummy_;       // what an unknown user is hashed against
};

// Takes a Proxy-Authorization (or Authorization) value apart: `Basic <base64>`, the scheme in any
// case, one or more spaces (SP only, RFC 9110 section 11.4), then base64 that base64_decode()
// accepts (padding required, nothing after it) and that decodes to `user:password`. The
// decoded text goes to `scratch` (at most scratch_size bytes, base64_decoded_max_size of the
// token is enough); `user` (before the first ":") and `password` (the rest, which may hold ":")
// are views into it. Refused (false, `user` and `password` unchanged): another or empty scheme,
// blanks before the scheme or after the token, no token, bad base64, a token decoding to more
// than scratch_size bytes, no ":", a control character (0x00-0x1F, 0x7F) in the decoded text.
// An empty user or password is accepted here; verify() refuses what is not in the file.
bool parse_basic(std::string_view header_value, char* scratch, size_t scratch_size,
                 std::string_view& user, std::string_view& password) noexcept;

// What CredentialCache knows about one header value.
enum class CacheVerdict : uint8_t {
  kUnknown,  // not cached: verify and insert
  kGood,     // verified: `user_index` is the user's index in the Credentials it was checked against
  kBad,      // refused
};

struct CachedVerdict {
  CacheVerdict verdict = CacheVerdict::kUnknown;
  uint32_t user_index = 0;  // meaningful with kGood
};

// A worker's cache of verdicts on Proxy-Authorization values, so that a client sending the same
// value on every request is hashed with SHA-256-crypt once. Keyed by the SHA-256 of the raw
// header value: no user name or password is stored. All memory is allocated by the constructor;
// lookup, insert and clear neither allocate nor make syscalls. Single-threaded: one per worker.
// The verdicts belong to one Credentials: clear() when the worker moves to another (a reload).
//
// Layout and replacement: capacity / kWays sets of kWays entries (set-associative); a key's set
// comes from its first digest bytes. An insert updates the key's entry if it has one, else takes
// an empty way, else evicts:
// - a kGood verdict evicts a kBad entry if the set has one, else the next kGood in the set's
//   round-robin order;
// - a kBad verdict evicts only a kBad entry (round-robin among them) and is dropped when the set
//   holds only kGood ones, so a flood of wrong passwords cannot push out working clients.
class CredentialCache {
 public:
  static constexpr uint32_t kWays = 4;
  using Key = Sha256Digest;

  // `capacity` entries; a power of two, at least kWays (checked: abort otherwise).
  explicit CredentialCache(uint32_t capacity);

  // The key of a header value: its SHA-256.
  static Key key_of(std::string_view header_value) noexcept { return sha256(header_value); }

  // The verdict cached for the value (kUnknown when none). Keys are compared in constant time.
  CachedVerdict lookup(std::string_view header_value) const noexcept {
    return lookup(key_of(header_value));
  }
  CachedVerdict lookup(const Key& key) const noexcept;

  // Caches a kGood or kBad verdict for the value, replacing any verdict it had; inserting a
  // kUnknown verdict forgets the value.
  void insert(std::string_view header_value, CachedVerdict verdict) noexcept {
    insert(key_of(header_value), verdict);
  }
  void insert(const Key& key, CachedVerdict verdict) noexcept;

  // Forgets every verdict.
  void clear() noexcept;

  uint32_t capacity() const noexcept { return capacity_; }
  uint32_t size() const noexcept { return size_; }  // entries holding a verdict

 private:
  struct Entry {
    Key key{};
    uint32_t user_index = 0;
    CacheVerdict verdict = CacheVerdict::kUnknown;  // kUnknown: the entry is empty
  };

  uint32_t set_index(const Key& key) const noexcept;
  // The first way of set `set` from its round-robin position whose entry satisfies `pick`, the
  // position then moving past it; kWays when none does.
  template <class Pick>
  uint32_t next_way(uint32_t set, Pick pick) noexcept;

  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<uint8_t[]> next_victim_;  // per set: where the round-robin resumes
  uint32_t capacity_;
  uint32_t set_mask_;
  uint32_t size_ = 0;
};

}  // namespace edgeproxy
