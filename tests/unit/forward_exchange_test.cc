// The forward proxy's own answers: well-formed HTTP/1.1 with the right status, a body whose
// length the header states, Connection: close, and the realm for 407.
#include "edgeproxy/forward_exchange.h"

#include <gtest/gtest.h>

#include <string>

#include "edgeproxy/http_head.h"

namespace edgeproxy {
namespace {

std::string Answer(uint16_t status, std::string_view realm = "r") {
  char out[512];
  const uint32_t n = build_forward_answer(status, realm, out, sizeof out);
  return std::string(out, n);
}

TEST(ForwardExchangeTest, EveryAnswerIsCompleteAndCloses) {
  for (const uint16_t status :
       std::initializer_list<uint16_t>{400, 403, 407, 408, 431, 502, 503, 504}) {
    const std::string a = Answer(status);
    EXPECT_TRUE(a.starts_with("HTTP/1.1 " + std::to_string(status) + " ")) << a;
    EXPECT_NE(a.find("\r\nConnection: close\r\n"), std::string::npos) << a;
    const size_t end = a.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos) << a;
    const size_t cl = a.find("Content-Length: ");
    ASSERT_NE(cl, std::string::npos);
    EXPECT_EQ(std::stoul(a.substr(cl + 16)), a.size() - end - 4) << a;
  }
}

TEST(ForwardExchangeTest, ProxyAuthenticateCarriesTheRealm) {
  EXPECT_NE(
      Answer(407, "corp proxy").find("\r\nProxy-Authenticate: Basic realm=\"corp proxy\"\r\n"),
      std::string::npos);
  EXPECT_EQ(Answer(403).find("Proxy-Authenticate"), std::string::npos);
}

TEST(ForwardExchangeTest, AnUnknownStatusIsA400AndASmallBufferIsNotOverrun) {
  EXPECT_TRUE(Answer(599).starts_with("HTTP/1.1 400 "));
  char out[16];
  EXPECT_EQ(build_forward_answer(400, "", out, sizeof out), sizeof out - 1);
}

TEST(ForwardExchangeTest, AreaResetsAnExchangeAndGivesEachSlotItsResponseArea) {
  ForwardArea area(3);
  area.at(1).requests = 7;
  EXPECT_EQ(area.reset(1).requests, 0u);
  EXPECT_EQ(area.response_area(2) - area.response_area(1), kMaxForwardHeadBytes);
}

}  // namespace
}  // namespace edgeproxy
