// Fuzz target: the HTTP/1.x request and response head parsers. The input's first byte picks
// request or response, the next ones the split points; the rest is the bytes. Checked: parsing
// the bytes as they grow, piece by piece with `scanned` carried between calls as a connection
// does, gives exactly the one-shot answer on the same bytes (status, length, every view); views
// lie inside the bytes; the head's contract holds (field names are tokens, values are
// field-value bytes without surrounding blanks, status codes 100-599).
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "edgeproxy/http_head.h"
#include "fuzz_util.h"

namespace {

using namespace edgeproxy;
using http::HeadStatus;

bool inside(std::string_view v, std::string_view bytes) {
  return v.empty() ||
         (v.data() >= bytes.data() && v.data() + v.size() <= bytes.data() + bytes.size());
}

void check_fields(std::span<const http::HeaderField> fields, std::string_view bytes) {
  for (const http::HeaderField& f : fields) {
    FUZZ_CHECK(http::is_token(f.name) && inside(f.name, bytes) && inside(f.value, bytes));
    for (char c : f.value) FUZZ_CHECK(http::is_field_value_char(c));
    if (!f.value.empty()) {
      FUZZ_CHECK(f.value.front() != ' ' && f.value.front() != '\t');
      FUZZ_CHECK(f.value.back() != ' ' && f.value.back() != '\t');
    }
  }
}

bool same_fields(std::span<const http::HeaderField> a, std::span<const http::HeaderField> b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name.data() != b[i].name.data() || a[i].name.size() != b[i].name.size() ||
        a[i].value.data() != b[i].value.data() || a[i].value.size() != b[i].value.size()) {
      return false;
    }
  }
  return true;
}

bool same_view(std::string_view a, std::string_view b) {
  return a.data() == b.data() && a.size() == b.size();
}

// Parses `bytes` at once into `once`, and piece by piece (up to each cut, `scanned` carried, as
// a connection reads) into `grown` until an answer other than kNeedMore; both answers must agree
// (the pieces may end early, on a prefix holding the whole head).
template <class Head>
HeadStatus both_ways(HeadStatus (*parse)(std::string_view, uint32_t&, Head&),
                     std::string_view bytes, const std::vector<size_t>& cuts, Head& once,
                     Head& grown) {
  uint32_t scanned = 0;
  const HeadStatus status = parse(bytes, scanned, once);
  HeadStatus last = HeadStatus::kNeedMore;
  scanned = 0;
  for (size_t cut : cuts) {
    last = parse(bytes.substr(0, cut), scanned, grown);
    FUZZ_CHECK(scanned <= cut);
    if (last != HeadStatus::kNeedMore) break;
  }
  FUZZ_CHECK(last == status);
  return status;
}

void request(std::string_view bytes, const std::vector<size_t>& cuts) {
  http::RequestHead once, grown;
  const HeadStatus status = both_ways(&http::parse_request_head, bytes, cuts, once, grown);
  if (status == HeadStatus::kDone) {
    // The piecewise parse may end on a shorter prefix: same head either way.
    FUZZ_CHECK(grown.length == once.length && once.length <= bytes.size());
    FUZZ_CHECK(same_view(grown.method, once.method) && same_view(grown.target, once.target));
    FUZZ_CHECK(grown.version_minor == once.version_minor && same_view(grown.host, once.host));
    FUZZ_CHECK(grown.path == once.path);
    FUZZ_CHECK(same_fields({grown.headers.data(), grown.header_count},
                           {once.headers.data(), once.header_count}));
    FUZZ_CHECK(once.header_count <= http::kMaxHeaders && once.length <= http::kMaxHeadBytes);
    FUZZ_CHECK(http::is_token(once.method) && inside(once.target, bytes));
    FUZZ_CHECK(once.version_minor <= 1);
    check_fields({once.headers.data(), once.header_count}, bytes);
    // sniff_http() knows methods of 1 to 16 letters A-Z (a token may be longer or lower-case).
    const bool sniffable =
        once.method.size() <= 16 && std::all_of(once.method.begin(), once.method.end(),
                                                [](char c) { return c >= 'A' && c <= 'Z'; });
    if (sniffable) FUZZ_CHECK(http::sniff_http(bytes) == HeadStatus::kDone);
  }
}

void response(std::string_view bytes, const std::vector<size_t>& cuts) {
  http::ResponseHead once, grown;
  const HeadStatus status = both_ways(&http::parse_response_head, bytes, cuts, once, grown);
  if (status == HeadStatus::kDone) {
    FUZZ_CHECK(grown.length == once.length && once.length <= bytes.size());
    FUZZ_CHECK(grown.status == once.status && grown.version_minor == once.version_minor);
    FUZZ_CHECK(same_view(grown.reason, once.reason));
    FUZZ_CHECK(same_fields({grown.headers.data(), grown.header_count},
                           {once.headers.data(), once.header_count}));
    FUZZ_CHECK(once.status >= 100 && once.status <= 599 && once.version_minor <= 1);
    check_fields({once.headers.data(), once.header_count}, bytes);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > http::kMaxHeadBytes + 1024) return 0;
  fuzz::Input in(data, size);
  const uint8_t control = in.byte();
  std::vector<size_t> cuts = fuzz::split_points(in, 8);
  const std::string_view text = in.rest();
  // A copy of exactly the bytes' size: ASan sees a read past the end.
  const std::unique_ptr<char[]> copy(new char[text.size() + 1]);
  if (!text.empty()) std::memcpy(copy.get(), text.data(), text.size());
  const std::string_view bytes(copy.get(), text.size());
  if (control & 1) {
    response(bytes, cuts);
  } else {
    request(bytes, cuts);
  }
  // The helpers on arbitrary text.
  const std::string_view host = http::host_without_port(bytes.substr(0, 300));
  FUZZ_CHECK(host.size() <= bytes.size());
  return 0;
}
