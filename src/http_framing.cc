// HTTP/1.x message framing and Connection options; see http_framing.h.
#include "edgeproxy/http_framing.h"

#include <algorithm>
#include <limits>

#include "edgeproxy/check.h"

namespace edgeproxy::http {

namespace {

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

// Calls `element(text)` for each comma-separated element of `value`, blanks around it removed
// (so an empty element is ""); stops and returns false when `element` does.
template <typename Element>
bool for_each_element(std::string_view value, Element&& element) noexcept {
  for (;;) {
    const size_t comma = value.find(',');
    if (!element(trim(value.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    value.remove_prefix(comma + 1);
  }
}

// 1 or more digits, at most kMaxContentLength.
bool parse_content_length(std::string_view value, uint64_t& length) noexcept {
  if (value.empty()) return false;
  uint64_t n = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return false;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (n > (kMaxContentLength - digit) / 10) return false;
    n = n * 10 + digit;
  }
  length = n;
  return true;
}

// What the framing fields of a head say, before any judgement of the message kind.
struct Fields {
  const HeaderField* content_length = nullptr;
  uint32_t content_length_count = 0;
  uint32_t transfer_encoding_count = 0;
  const HeaderField* transfer_encoding = nullptr;  // the first
};

Fields find_fields(std::span<const HeaderField> headers) noexcept {
  Fields f;
  for (const HeaderField& field : headers) {
    if (iequals(field.name, "content-length")) {
      if (f.content_length_count++ == 0) f.content_length = &field;
    } else if (iequals(field.name, "transfer-encoding")) {
      if (f.transfer_encoding_count++ == 0) f.transfer_encoding = &field;
    }
  }
  return f;
}

// The checks request_framing() and response_framing() share, in the documented order;
// `length` gets the Content-Length (0 when absent).
FramingStatus check_common(const Fields& f, bool repeated_te_allowed, uint8_t version_minor,
                           uint64_t& length) noexcept {
  length = 0;
  if (f.content_length_count > 1 || (f.content_length != nullptr &&
                                     f.content_length->value.find(',') != std::string_view::npos)) {
    return FramingStatus::kRepeatedContentLength;
  }
  if (f.transfer_encoding_count > 1 && !repeated_te_allowed) {
    return FramingStatus::kRepeatedTransferEncoding;
  }
  if (f.content_length_count > 0 && f.transfer_encoding_count > 0) {
    return FramingStatus::kContentLengthAndTransferEncoding;
  }
  if (f.transfer_encoding_count > 0 && version_minor == 0) {
    return FramingStatus::kTransferEncodingInHttp10;
  }
  if (f.content_length != nullptr && !parse_content_length(f.content_length->value, length)) {
    return FramingStatus::kBadContentLength;
  }
  return FramingStatus::kOk;
}

// A response's Transfer-Encoding, all fields together: a list of tokens in which "chunked", if
// present, is once and last. `chunked` says whether it is.
bool check_response_codings(std::span<const HeaderField> headers, bool& chunked) noexcept {
  chunked = false;
  bool ok = true;
  for (const HeaderField& field : headers) {
    if (!iequals(field.name, "transfer-encoding")) continue;
    ok = for_each_element(field.value, [&](std::string_view coding) noexcept {
      if (chunked || !is_token(coding)) return false;  // anything after chunked, or not a token
      chunked = iequals(coding, "chunked");
      return true;
    });
    if (!ok) return false;
  }
  return true;
}

bool connection_close(const ConnectionTokens& tokens, uint8_t version_minor) noexcept {
  return tokens.close || (version_minor == 0 && !tokens.keep_alive);
}

}  // namespace

const char* to_string(FramingStatus status) noexcept {
  switch (status) {
    case FramingStatus::kOk:
      return "Ok";
    case FramingStatus::kContentLengthAndTransferEncoding:
      return "ContentLengthAndTransferEncoding";
    case FramingStatus::kRepeatedContentLength:
      return "RepeatedContentLength";
    case FramingStatus::kBadContentLength:
      return "BadContentLength";
    case FramingStatus::kRepeatedTransferEncoding:
      return "RepeatedTransferEncoding";
    case FramingStatus::kBadTransferEncoding:
      return "BadTransferEncoding";
    case FramingStatus::kTransferEncodingInHttp10:
      return "TransferEncodingInHttp10";
    case FramingStatus::kBodyOnConnect:
      return "BodyOnConnect";
    case FramingStatus::kBadConnection:
      return "BadConnection";
  }
  return "?";
}

bool ConnectionTokens::names(std::string_view field_name) const noexcept {
  for (uint32_t i = 0; i < count; ++i) {
    if (iequals(options[i], field_name)) return true;
  }
  return false;
}

bool parse_connection(std::span<const HeaderField> headers, ConnectionTokens& out) noexcept {
  out = ConnectionTokens();
  for (const HeaderField& field : headers) {
    if (!iequals(field.name, "connection")) continue;
    const bool ok = for_each_element(field.value, [&out](std::string_view option) noexcept {
      if (option.empty()) return true;
      if (!is_token(option)) return false;
      if (out.names(option)) return true;  // a repeat: kept once
      if (out.count == kMaxConnectionOptions) return false;
      out.options[out.count++] = option;
      out.close = out.close || iequals(option, "close");
      out.keep_alive = out.keep_alive || iequals(option, "keep-alive");
      out.upgrade = out.upgrade || iequals(option, "upgrade");
      return true;
    });
    if (!ok) return false;
  }
  return true;
}

FramingStatus request_framing(const RequestHead& head, Framing& out) noexcept {
  const std::span<const HeaderField> headers(head.headers.data(), head.header_count);
  const Fields f = find_fields(headers);
  uint64_t length = 0;
  const FramingStatus common = check_common(f, false, head.version_minor, length);
  if (common != FramingStatus::kOk) return common;
  if (f.transfer_encoding != nullptr && !iequals(f.transfer_encoding->value, "chunked")) {
    return FramingStatus::kBadTransferEncoding;
  }
  ConnectionTokens tokens;
  if (!parse_connection(headers, tokens)) return FramingStatus::kBadConnection;
  const bool connect = head.method == "CONNECT";
  if (connect && (f.transfer_encoding != nullptr || length > 0)) {
    return FramingStatus::kBodyOnConnect;
  }
  out = Framing();
  out.close = connection_close(tokens, head.version_minor);
  if (connect) {
    out.kind = BodyKind::kTunnel;
    out.close = true;
  } else if (f.transfer_encoding != nullptr) {
    out.kind = BodyKind::kChunked;
  } else if (length > 0) {
    out.kind = BodyKind::kLength;
    out.length = length;
  }
  return FramingStatus::kOk;
}

FramingStatus response_framing(const ResponseHead& head, std::string_view request_method,
                               Framing& out) noexcept {
  const std::span<const HeaderField> headers(head.headers.data(), head.header_count);
  const Fields f = find_fields(headers);
  uint64_t length = 0;
  const FramingStatus common = check_common(f, true, head.version_minor, length);
  if (common != FramingStatus::kOk) return common;
  bool chunked = false;
  if (!check_response_codings(headers, chunked)) return FramingStatus::kBadTransferEncoding;
  ConnectionTokens tokens;
  if (!parse_connection(headers, tokens)) return FramingStatus::kBadConnection;

  out = Framing();
  out.close = connection_close(tokens, head.version_minor);
  const uint16_t status = head.status;
  if (status == 101 || (status / 100 == 2 && request_method == "CONNECT")) {
    out.kind = BodyKind::kTunnel;
    out.close = true;
  } else if (status / 100 == 1) {
    // An interim head says nothing about the connection: the final head does.
    out.interim = true;
    out.close = false;
  } else if (request_method == "HEAD" || status == 204 || status == 304) {
    out.kind = BodyKind::kNone;
  } else if (f.transfer_encoding != nullptr) {
    out.kind = chunked ? BodyKind::kChunked : BodyKind::kUntilClose;
  } else if (f.content_length != nullptr) {
    out.kind = length > 0 ? BodyKind::kLength : BodyKind::kNone;
    out.length = length;
  } else {
    out.kind = BodyKind::kUntilClose;
  }
  if (out.kind == BodyKind::kUntilClose) out.close = true;
  return FramingStatus::kOk;
}

void BodyFramer::reset(const Framing& framing) noexcept {
  kind_ = framing.kind;
  left_ = framing.kind == BodyKind::kLength ? framing.length : 0;
  chunked_.reset();
}

BodyProgress BodyFramer::consume(std::span<const std::byte> bytes) noexcept {
  EDGEPROXY_CHECK(bytes.size() <= std::numeric_limits<uint32_t>::max());
  const auto n = static_cast<uint32_t>(bytes.size());
  switch (kind_) {
    case BodyKind::kNone:
      return {0, BodyStatus::kDone};
    case BodyKind::kLength: {
      if (left_ == 0) return {0, BodyStatus::kDone};
      const auto used = static_cast<uint32_t>(std::min<uint64_t>(left_, n));
      left_ -= used;
      return {used, left_ == 0 ? BodyStatus::kDone : BodyStatus::kMore};
    }
    case BodyKind::kChunked:
      return chunked_.consume(bytes);
    case BodyKind::kUntilClose:
    case BodyKind::kTunnel:
      return {n, BodyStatus::kMore};
  }
  return {0, BodyStatus::kInvalid};
}

uint64_t BodyFramer::remaining() const noexcept {
  if (kind_ == BodyKind::kLength) return left_;
  if (kind_ == BodyKind::kChunked) return chunked_.remaining_data();
  return 0;
}

bool BodyFramer::skip(uint64_t n) noexcept {
  EDGEPROXY_CHECK(n <= remaining());
  if (kind_ == BodyKind::kChunked) {
    chunked_.skip_data(n);
    return false;
  }
  left_ -= n;
  return n > 0 && left_ == 0;
}

}  // namespace edgeproxy::http
