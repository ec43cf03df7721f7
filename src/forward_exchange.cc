// Forward exchanges by slot; see forward_exchange.h.
#include "edgeproxy/forward_exchange.h"

#include <algorithm>
#include <cstdio>

namespace edgeproxy {

ForwardArea::ForwardArea(uint32_t slots)
    : exchanges_(slots), responses_(size_t{slots} * kMaxForwardHeadBytes) {}

ForwardExchange& ForwardArea::reset(uint32_t index) noexcept {
  return exchanges_.reset(index);
}

uint32_t build_forward_answer(uint16_t status, std::string_view realm, char* out,
                              uint32_t size) noexcept {
  const char* reason = "Bad Request";
  const char* body = "The request could not be parsed.";
  switch (status) {
    case 403:
      reason = "Forbidden";
      body = "The destination is not allowed by this proxy.";
      break;
    case 407:
      reason = "Proxy Authentication Required";
      body = "This proxy needs Basic credentials.";
      break;
    case 408:
      reason = "Request Timeout";
      body = "The request head did not arrive in time.";
      break;
    case 413:
      reason = "Content Too Large";
      body = "The request body is larger than this proxy accepts.";
      break;
    case 431:
      reason = "Request Header Fields Too Large";
      body = "The request head is larger than 8 KiB.";
      break;
    case 502:
      reason = "Bad Gateway";
      body = "The destination could not be resolved or reached.";
      break;
    case 503:
      reason = "Service Unavailable";
      body = "No server could take the request.";
      break;
    case 504:
      reason = "Gateway Timeout";
      body = "The destination did not answer in time.";
      break;
    default:
      status = 400;
      break;
  }
  const size_t body_length = std::char_traits<char>::length(body) + 1;  // with its newline
  int n = 0;
  if (status == 407) {
    n = std::snprintf(out, size,
                      "HTTP/1.1 407 %s\r\nProxy-Authenticate: Basic realm=\"%.*s\"\r\n"
                      "Content-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n"
                      "\r\n%s\n",
                      reason, static_cast<int>(std::min<size_t>(realm.size(), 200)), realm.data(),
                      body_length, body);
  } else {
    n = std::snprintf(out, size,
                      "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n%s\n",
                      static_cast<unsigned>(status), reason, body_length, body);
  }
  if (n < 0) return 0;
  return std::min(static_cast<uint32_t>(n), size - 1);
}

}  // namespace edgeproxy
