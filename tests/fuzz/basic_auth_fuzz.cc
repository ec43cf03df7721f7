// Fuzz target: Basic credentials. The input's first byte picks what it is: a Proxy-Authorization
// value for parse_basic() (into a scratch of a size the next byte picks), or the text of a
// credentials file for Credentials::parse() (no password is ever hashed here).
#include <memory>

#include "edgeproxy/credentials.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeproxy;
  if (size > 16384) return 0;
  fuzz::Input in(data, size);
  const uint8_t control = in.byte();
  if (control & 1) {
    const size_t scratch_size = in.byte();
    const std::string_view value = in.rest();
    std::unique_ptr<char[]> scratch(new char[scratch_size + 1]);
    std::string_view user = "unchanged", password = "unchanged";
    if (!parse_basic(value, scratch.get(), scratch_size, user, password)) {
      FUZZ_CHECK(user == "unchanged" && password == "unchanged");
      return 0;
    }
    // user ":" password, decoded into the scratch, without control characters.
    FUZZ_CHECK(user.data() == scratch.get());
    FUZZ_CHECK(password.data() == user.data() + user.size() + 1);
    FUZZ_CHECK(user.size() + 1 + password.size() <= scratch_size);
    FUZZ_CHECK(user.find(':') == std::string_view::npos && scratch[user.size()] == ':');
    for (char c : std::string_view(scratch.get(), user.size() + 1 + password.size())) {
      FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
    }
    return 0;
  }
  Result<Credentials> c = Credentials::parse(in.rest(), "fuzz-users");
  if (!c.ok()) {
    FUZZ_CHECK(c.error().rfind("fuzz-users", 0) == 0);
    return 0;
  }
  FUZZ_CHECK(c.value().size() > 0);
  for (uint32_t i = 0; i < c.value().size(); ++i) {
    const std::string_view u = c.value().user(i);
    FUZZ_CHECK(!u.empty() && u.size() <= kMaxUserBytes && u[0] != '#');
    if (i > 0) FUZZ_CHECK(c.value().user(i - 1) < u);
  }
  return 0;
}
