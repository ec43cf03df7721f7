// Error values for the core: syscall outcomes carry errno by value; start-up steps return a
// value or a one-line message for main to print. Nothing here throws.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace edgeproxy {

// The outcome of one syscall: `value` when err == 0, otherwise the errno captured at once.
struct SysResult {
  long value = 0;
  int err = 0;

  bool ok() const noexcept { return err == 0; }
  bool would_block() const noexcept { return err == EAGAIN || err == EWOULDBLOCK; }
  static SysResult from(long rc) noexcept {
    return rc < 0 ? SysResult{rc, errno} : SysResult{rc, 0};
  }
};

// A start-up/config error: one human-readable line, without the program-name prefix.
struct Error {
  std::string message;
};

// `text` as an error may quote it: a control byte or DEL becomes \n, \r, \t or \xHH, so that
// input echoed in a message (a configuration token, a format, an admin command) neither splits
// the one line nor reaches a terminal as an escape sequence. Other bytes (UTF-8 included) are
// kept, unless `ascii_only`: then bytes from 0x80 are \xHH too (a quote that may cut a UTF-8
// sequence, or a protocol that promises ASCII).
inline std::string printable(std::string_view text, bool ascii_only = false) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7f && (!ascii_only || c < 0x80)) {
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

// A value or an Error. Used off the hot path only (start-up, configuration).
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const noexcept { return v_.index() == 0; }
  T& value() noexcept { return *std::get_if<0>(&v_); }
  const T& value() const noexcept { return *std::get_if<0>(&v_); }
  const std::string& error() const noexcept { return std::get_if<1>(&v_)->message; }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};

}  // namespace edgeproxy
