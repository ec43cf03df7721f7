// MetricsServer: the request judgement (pure), then the thread over real loopback sockets with a
// fixed body: 200 with its headers, HEAD, 404/405/400, a head too large, the session limit.
#include "edgeproxy/metrics_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "edgeproxy/net.h"

namespace edgeproxy {
namespace {

TEST(MetricsServerTest, GetMetricsIsOk) {
  EXPECT_EQ(parse_metrics_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);
  EXPECT_EQ(parse_metrics_request("GET /metrics HTTP/1.0\r\n\r\n").status, 200);
  EXPECT_EQ(parse_metrics_request("GET /metrics?x=1 HTTP/1.1\r\n\r\n").status, 200);
  const MetricsRequest head = parse_metrics_request("HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.head_only);
}

TEST(MetricsServerTest, OtherPathsAndMethodsAreRefused) {
  EXPECT_EQ(parse_metrics_request("GET / HTTP/1.1\r\n\r\n").status, 404);
  EXPECT_EQ(parse_metrics_request("GET /metricsx HTTP/1.1\r\n\r\n").status, 404);
  EXPECT_EQ(parse_metrics_request("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").status,
            405);
  EXPECT_EQ(parse_metrics_request("DELETE /x HTTP/1.1\r\n\r\n").status, 405);
}

TEST(MetricsServerTest, MalformedHeadsAreBadRequests) {
  for (const char* head :
       {"\r\n\r\n", "GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET /metrics HTTP/2.0\r\n\r\n",
        "GET metrics HTTP/1.1\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n",
        "G(T /metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
        "GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n", "GET /met\x01rics HTTP/1.1\r\n\r\n"}) {
    EXPECT_EQ(parse_metrics_request(head).status, 400) << head;
  }
}

class MetricsServerTestServed : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = resolve("127.0.0.1", 0, "test");
    ASSERT_TRUE(a.ok());
    auto s = MetricsServer::start(a.value(), [] { return std::string("edgeproxy_up 1\n"); });
    ASSERT_TRUE(s.ok()) << s.error();
    server_ = std::move(s.value());
  }

  int Connect() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(::connect(fd, server_->address().get(), server_->address().length), 0);
    return fd;
  }
  // Sends `request` and reads to EOF.
  std::string Exchange(const std::string& request) {
    const int fd = Connect();
    EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    std::string out = ReadAll(fd);
    ::close(fd);
    return out;
  }
  static std::string ReadAll(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  std::unique_ptr<MetricsServer> server_;
};

TEST_F(MetricsServerTestServed, AnswersTheBodyWithItsTypeAndLengthThenCloses) {
  const std::string r = Exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_NE(r.find("\r\nContent-Type: text/plain; version=0.0.4\r\n"), std::string::npos);
  const size_t body = r.find("\r\n\r\n") + 4;
  const std::string length = "\r\nContent-Length: " + std::to_string(r.size() - body) + "\r\n";
  EXPECT_NE(r.find(length), std::string::npos) << r;
  EXPECT_EQ(r.substr(body, 15), "edgeproxy_up 1\n");
  EXPECT_NE(r.find("edgeproxy_metrics_scrapes_total 1\n"), std::string::npos);
}

TEST_F(MetricsServerTestServed, HeadHasNoBody) {
  const std::string r = Exchange("HEAD /metrics HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\n")) << r;
}

TEST_F(MetricsServerTestServed, RefusalsAreHttpAnswers) {
  EXPECT_TRUE(Exchange("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  const std::string r405 = Exchange("PUT /metrics HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(r405.starts_with("HTTP/1.1 405 ")) << r405;
  EXPECT_NE(r405.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_TRUE(Exchange("GET /metrics HTTP/9\r\n\r\n").starts_with("HTTP/1.1 400 "));
  // Counted, and the server still answers.
  const std::string r = Exchange("GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_NE(r.find("edgeproxy_metrics_errors_total 3\n"), std::string::npos) << r;
}

TEST_F(MetricsServerTestServed, AHeadTooLargeIsClosedWithoutAnAnswer) {
  const std::string big =
      "GET /metrics HTTP/1.1\r\nX: " + std::string(MetricsServer::kMaxHeadBytes, 'a');
  const int fd = Connect();
  ::send(fd, big.data(), big.size(), MSG_NOSIGNAL);
  EXPECT_EQ(ReadAll(fd), "");
  ::close(fd);
}

TEST_F(MetricsServerTestServed, SessionsBeyondTheLimitAreRefusedAndCounted) {
  std::vector<int> held;
  for (uint32_t i = 0; i < MetricsServer::kMaxSessions; ++i) held.push_back(Connect());
  // Each held session is accepted before the next connect is answered: one exchange through
  // them is not needed, the refused ones are told at once.
  for (int i = 0; i < 3; ++i) {
    const int fd = Connect();
    EXPECT_TRUE(ReadAll(fd).starts_with("HTTP/1.1 503 ")) << i;
    ::close(fd);
  }
  for (const int fd : held) ::close(fd);
  // The held sessions end at EOF; a scrape gets a session again (retried while they close).
  std::string r;
  for (int attempt = 0; attempt < 100 && !r.starts_with("HTTP/1.1 200"); ++attempt) {
    r = Exchange("GET /metrics HTTP/1.1\r\n\r\n");
    if (!r.starts_with("HTTP/1.1 200")) usleep(20'000);
  }
  EXPECT_NE(r.find("edgeproxy_metrics_refused_total "), std::string::npos) << r;
  EXPECT_EQ(r.find("edgeproxy_metrics_refused_total 0\n"), std::string::npos) << r;
}

}  // namespace
}  // namespace edgeproxy
