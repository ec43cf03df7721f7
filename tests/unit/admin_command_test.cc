// AdminCommand: every command and its arguments, and refusals of malformed, malicious and
// overlong lines with one phrase that never echoes control bytes or more than a few bytes.
#include "edgeproxy/admin_command.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace edgeproxy {
namespace {

using K = AdminCommand::Kind;

AdminCommand ok(const std::string& line) {
  auto r = parse_admin_command(line);
  EXPECT_TRUE(r.ok()) << line << ": " << (r.ok() ? "" : r.error());
  return r.ok() ? r.value() : AdminCommand{};
}

std::string error_of(const std::string& line) {
  auto r = parse_admin_command(line);
  EXPECT_FALSE(r.ok()) << line;
  return r.ok() ? "" : r.error();
}

TEST(AdminCommandTest, EveryCommand) {
  EXPECT_EQ(ok("help").kind, K::kHelp);
  EXPECT_EQ(ok("show info").kind, K::kShowInfo);
  EXPECT_EQ(ok("show stats").kind, K::kShowStats);
  EXPECT_FALSE(ok("show stats").json);
  EXPECT_TRUE(ok("show stats json").json);
  EXPECT_EQ(ok("show listeners").kind, K::kShowListeners);
  EXPECT_EQ(ok("show backends").kind, K::kShowBackends);
  EXPECT_EQ(ok("show servers").backend, "");
  EXPECT_EQ(ok("show servers app").backend, "app");
  EXPECT_EQ(ok("show conns").count, kAdminDefaultConns);
  EXPECT_EQ(ok("show conns 7").count, 7u);
  const AdminCommand d = ok("disable server app/web-1");
  EXPECT_EQ(d.kind, K::kDisableServer);
  EXPECT_EQ(d.backend, "app");
  EXPECT_EQ(d.server, "web-1");
  EXPECT_EQ(ok("enable server app/web-1").kind, K::kEnableServer);
  const AdminCommand w = ok("set weight app/a 256");
  EXPECT_EQ(w.kind, K::kSetWeight);
  EXPECT_EQ(w.count, 256u);
  const AdminCommand k = ok("kill conn 1.42.7");
  EXPECT_EQ(k.kind, K::kKillConn);
  EXPECT_EQ(k.worker, 1u);
  EXPECT_EQ(k.slot, 42u);
  EXPECT_EQ(k.generation, 7u);
  EXPECT_EQ(ok("reload").kind, K::kReload);
  EXPECT_FALSE(ok("shutdown graceful").fast);
  EXPECT_TRUE(ok("shutdown fast").fast);
}

TEST(AdminCommandTest, BlanksAndACarriageReturnAreIgnored) {
  EXPECT_EQ(ok("  show\tconns   3 \r").count, 3u);
  EXPECT_EQ(ok("help\r").kind, K::kHelp);
}

TEST(AdminCommandTest, MalformedCommandsAreRefusedWithOnePhrase) {
  EXPECT_EQ(error_of(""), "empty command (see help)");
  EXPECT_EQ(error_of("   "), "empty command (see help)");
  EXPECT_EQ(error_of("bogus"), "unknown command 'bogus' (see help)");
  EXPECT_EQ(error_of("help me"), "usage: help");
  EXPECT_NE(error_of("show").find("usage: show"), std::string::npos);
  EXPECT_NE(error_of("show everything").find("unknown 'show' object"), std::string::npos);
  EXPECT_EQ(error_of("show stats xml"), "usage: show stats [json]");
  EXPECT_NE(error_of("show conns 0").find("invalid count"), std::string::npos);
  EXPECT_NE(error_of("show conns -1").find("invalid count"), std::string::npos);
  EXPECT_NE(error_of("show conns 99999999999999999999").find("invalid count"), std::string::npos);
  EXPECT_EQ(error_of("disable server app"), "usage: disable server BACKEND/SERVER");
  EXPECT_EQ(error_of("disable server /a"), "usage: disable server BACKEND/SERVER");
  EXPECT_EQ(error_of("disable server a/"), "usage: disable server BACKEND/SERVER");
  EXPECT_EQ(error_of("enable server a/b/c"), "usage: enable server BACKEND/SERVER");
  EXPECT_NE(error_of("set weight app/a 0").find("expected 1-256"), std::string::npos);
  EXPECT_NE(error_of("set weight app/a 257").find("expected 1-256"), std::string::npos);
  EXPECT_EQ(error_of("set weight app/a"), "usage: set weight BACKEND/SERVER N");
  EXPECT_NE(error_of("kill conn 1.2").find("invalid id"), std::string::npos);
  EXPECT_NE(error_of("kill conn 1.2.x").find("invalid id"), std::string::npos);
  EXPECT_NE(error_of("kill conn 1.2.3.4").find("invalid id"), std::string::npos);
  EXPECT_EQ(error_of("shutdown"), "usage: shutdown graceful|fast");
  EXPECT_EQ(error_of("reload now"), "usage: reload");
  EXPECT_EQ(error_of("a b c d e f g h i"), "too many words (see help)");
}

TEST(AdminCommandTest, MaliciousLinesNeverEchoControlBytesOrMuch) {
  EXPECT_EQ(error_of(std::string("show\0info", 9)), "control byte in the command");
  EXPECT_EQ(error_of("show \x1b[2Jinfo"), "control byte in the command");
  EXPECT_EQ(error_of("help\x7f"), "control byte in the command");
  const std::string overlong(kAdminMaxLine + 1, 'a');
  EXPECT_EQ(error_of(overlong), "line too long");
  EXPECT_TRUE(parse_admin_command(std::string(kAdminMaxLine, ' ')).ok() == false);
  const std::string word(500, 'x');
  const std::string e = error_of(word);
  EXPECT_LT(e.size(), 80u) << e;
  const std::string high = error_of("\xff\xfe\xfd");
  for (const char c : high) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << high;
  EXPECT_EQ(high, "unknown command '\\xff\\xfe\\xfd' (see help)") << "each byte shown as \\xHH";
}

// Random bytes (a small fuzz run): every line parses or gives a printable phrase, never crashes.
TEST(AdminCommandTest, RandomLinesEitherParseOrGiveAPrintablePhrase) {
  std::mt19937 rng(14);
  const std::string alphabet = "show stats json conns kill conn 1.2.3 set weight a/b \t\r\x01\xff";
  for (int i = 0; i < 20000; ++i) {
    std::string line;
    const size_t n = rng() % 64;
    for (size_t k = 0; k < n; ++k) line += alphabet[rng() % alphabet.size()];
    auto r = parse_admin_command(line);
    if (r.ok()) continue;
    ASSERT_FALSE(r.error().empty());
    for (const char c : r.error()) ASSERT_TRUE(c >= 0x20 && c < 0x7f) << r.error();
  }
}

TEST(AdminCommandTest, HelpNamesEveryCommand) {
  const std::string help = admin_help();
  for (const char* c : {"help", "show info", "show stats", "show listeners", "show backends",
                        "show servers", "show conns", "disable server", "enable server",
                        "set weight", "kill conn", "reload", "shutdown"}) {
    EXPECT_NE(help.find(c), std::string::npos) << c;
  }
  EXPECT_EQ(help.find("\n\n"), std::string::npos);  // no empty line: it would end the answer
}

}  // namespace
}  // namespace edgeproxy
