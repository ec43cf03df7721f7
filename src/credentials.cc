// Basic authentication: the credentials file, the header parser and the verdict cache; see
// credentials.h.
#include "edgeproxy/credentials.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>
#include <utility>

#include "edgeproxy/base64.h"
#include "edgeproxy/check.h"
#include "edgeproxy/constant_time.h"
#include "edgeproxy/http_head.h"
#include "edgeproxy/text_file.h"

namespace edgeproxy {

namespace {

std::string quoted(std::string_view v) {
  return "'" + std::string(v) + "'";
}

bool is_control(char c) noexcept {
  return static_cast<unsigned char>(c) < 0x20 || c == 0x7F;
}

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t';
}

// The hash an unknown user's password is checked against: its digest is never compared as a
// match (verify() also requires the user to exist), only its salt and rounds matter.
constexpr std::string_view kDummySalt = "edgeproxy-dummy.";

// Hides `value` from the optimiser: a value that another operand already makes irrelevant (the
// password check of a user who was not found) is still computed.
uint32_t opaque(uint32_t value) noexcept {
  __asm__ __volatile__("" : "+r"(value));
  return value;
}

}  // namespace

Result<Credentials> Credentials::load(const std::string& path) {
  auto text = read_text_file(path);
  if (!text.ok()) return Error{text.error()};
  return parse(text.value(), path);
}

Result<Credentials> Credentials::parse(std::string_view text, const std::string& name) {
  Credentials c;
  std::unordered_map<std::string_view, size_t> first_line;  // user -> where it was defined
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    auto fail = [&](const std::string& reason) {
      return Error{name + ":" + std::to_string(line_number) + ": " + reason};
    };

    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("expected USER:HASH");
    const std::string_view user = line.substr(0, colon);
    if (user.empty()) return fail("empty user name");
    if (user.size() > kMaxUserBytes) {
      return fail("user name longer than " + std::to_string(kMaxUserBytes) + " bytes");
    }
    if (std::any_of(user.begin(), user.end(), is_control)) {
      return fail("control character in user name");
    }
    if (is_blank(user.front()) || is_blank(user.back())) {
      return fail("user name " + quoted(user) + " starts or ends with a blank");
    }
    const auto [at, inserted] = first_line.emplace(user, line_number);
    if (!inserted) {
      return fail("user " + quoted(user) + " already defined at line " +
                  std::to_string(at->second));
    }
    Entry e{std::string(user), {}};
    const char* reason = nullptr;
    if (!parse_sha256_crypt(line.substr(colon + 1), e.hash, &reason)) {
      return fail("user " + quoted(user) + ": " + reason);
    }
    c.entries_.push_back(std::move(e));
  }
  if (c.entries_.empty()) return Error{name + ": no users (expected USER:HASH lines)"};

  std::sort(c.entries_.begin(), c.entries_.end(),
            [](const Entry& a, const Entry& b) { return a.user < b.user; });
  // A hash costs what its rounds and its salt's length make it cost (a longer salt can take a
  // round's input over one SHA-256 block), so the dummy takes the most common pair of them, and
  // of equally common ones the costliest.
  std::map<std::pair<uint32_t, uint8_t>, size_t> shapes;
  for (const Entry& e : c.entries_) ++shapes[{e.hash.rounds, e.hash.salt_size}];
  auto shape = shapes.begin();
  for (auto it = shapes.begin(); it != shapes.end(); ++it) {
    if (it->second >= shape->second) shape = it;  // ascending keys: ties go to the later
  }
  c.dummy_.rounds = shape->first.first;
  c.dummy_.rounds_written = true;
  c.dummy_.salt_size = shape->first.second;
  std::memcpy(c.dummy_.salt_bytes.data(), kDummySalt.data(), c.dummy_.salt_size);
  return c;
}

bool Credentials::verify(std::string_view user, std::string_view password) const noexcept {
  uint32_t index = 0;
  return verify(user, password, index);
}

bool Credentials::verify(std::string_view user, std::string_view password,
                         uint32_t& user_index) const noexcept {
  if (password.size() > kMaxPasswordBytes || entries_.empty()) return false;
  const auto it = std::lower_bound(entries_.begin(), entries_.end(), user,
                                   [](const Entry& e, std::string_view u) { return e.user < u; });
  const bool found = it != entries_.end() && it->user == user;
  const Sha256CryptHash& hash = found ? it->hash : dummy_;
  // The hash is computed and compared whether or not the user was found.
  const uint32_t match = opaque(sha256_crypt_verify(password, hash) ? 1 : 0);
  if ((match & opaque(found ? 1 : 0)) == 0) return false;
  user_index = static_cast<uint32_t>(it - entries_.begin());
  return true;
}

bool parse_basic(std::string_view header_value, char* scratch, size_t scratch_size,
                 std::string_view& user, std::string_view& password) noexcept {
  constexpr std::string_view kScheme = "Basic";
  if (header_value.size() <= kScheme.size() ||
      !http::iequals(header_value.substr(0, kScheme.size()), kScheme) ||
      header_value[kScheme.size()] != ' ') {
    return false;
  }
  const size_t token_start = header_value.find_first_not_of(' ', kScheme.size());
  if (token_start == std::string_view::npos) return false;
  const size_t n = base64_decode(header_value.substr(token_start), scratch, scratch_size);
  if (n == kBase64Invalid) return false;
  const std::string_view decoded(scratch, n);
  if (std::any_of(decoded.begin(), decoded.end(), is_control)) return false;
  const size_t colon = decoded.find(':');
  if (colon == std::string_view::npos) return false;
  user = decoded.substr(0, colon);
  password = decoded.substr(colon + 1);
  return true;
}

CredentialCache::CredentialCache(uint32_t capacity)
    : capacity_(capacity), set_mask_(capacity / kWays - 1) {
  EDGEPROXY_CHECK(capacity >= kWays && (capacity & (capacity - 1)) == 0);
  entries_ = std::make_unique<Entry[]>(capacity);
  next_victim_ = std::make_unique<uint8_t[]>(capacity / kWays);
}

uint32_t CredentialCache::set_index(const Key& key) const noexcept {
  // The key is a SHA-256 digest, so its bytes are already uniform.
  const uint32_t bits = static_cast<uint32_t>(key[0]) | (static_cast<uint32_t>(key[1]) << 8) |
                        (static_cast<uint32_t>(key[2]) << 16) |
                        (static_cast<uint32_t>(key[3]) << 24);
  return bits & set_mask_;
}

template <class Pick>
uint32_t CredentialCache::next_way(uint32_t set, Pick pick) noexcept {
  const Entry* ways = &entries_[set * kWays];
  for (uint32_t i = 0; i < kWays; ++i) {
    const uint32_t way = (next_victim_[set] + i) % kWays;
    if (pick(ways[way])) {
      next_victim_[set] = static_cast<uint8_t>((way + 1) % kWays);
      return way;
    }
  }
  return kWays;
}

CachedVerdict CredentialCache::lookup(const Key& key) const noexcept {
  const Entry* ways = &entries_[set_index(key) * kWays];
  CachedVerdict found;
  for (uint32_t way = 0; way < kWays; ++way) {
    const bool equal = constant_time_equal(ways[way].key.data(), key.data(), key.size());
    if (equal && ways[way].verdict != CacheVerdict::kUnknown) {
      found = CachedVerdict{ways[way].verdict, ways[way].user_index};
    }
  }
  return found;
}

void CredentialCache::insert(const Key& key, CachedVerdict verdict) noexcept {
  const uint32_t set = set_index(key);
  Entry* ways = &entries_[set * kWays];
  for (uint32_t way = 0; way < kWays; ++way) {
    Entry& e = ways[way];
    if (e.verdict == CacheVerdict::kUnknown ||
        !constant_time_equal(e.key.data(), key.data(), key.size())) {
      continue;
    }
    if (verdict.verdict == CacheVerdict::kUnknown) {
      e = Entry{};
      --size_;
    } else {
      e.verdict = verdict.verdict;
      e.user_index = verdict.user_index;
    }
    return;
  }
  if (verdict.verdict == CacheVerdict::kUnknown) return;

  auto is = [](CacheVerdict v) { return [v](const Entry& e) { return e.verdict == v; }; };
  uint32_t way = next_way(set, is(CacheVerdict::kUnknown));
  if (way != kWays) {
    ++size_;
  } else {
    way = next_way(set, is(CacheVerdict::kBad));
    if (way == kWays && verdict.verdict == CacheVerdict::kGood) {
      way = next_way(set, is(CacheVerdict::kGood));
    }
    if (way == kWays) return;  // a kBad verdict in a set of kGood ones
  }
  ways[way] = Entry{key, verdict.user_index, verdict.verdict};
}

void CredentialCache::clear() noexcept {
  std::fill(entries_.get(), entries_.get() + capacity_, Entry{});
  std::fill(next_victim_.get(), next_victim_.get() + capacity_ / kWays, uint8_t{0});
  size_ = 0;
}

}  // namespace edgeproxy
