// ConfigLexer: words, braces, ends of line, comments, strings and their escapes, positions, and
// the refusals with their exact file:line:column.
#include "edgeproxy/config_lexer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace edgeproxy {
namespace {

using Kind = ConfigToken::Kind;

std::vector<ConfigToken> Lex(std::string_view text) {
  auto r = lex_config(text, "f.conf");
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? r.value() : std::vector<ConfigToken>{};
}

std::string Err(std::string_view text) {
  auto r = lex_config(text, "f.conf");
  EXPECT_FALSE(r.ok());
  return r.ok() ? std::string() : r.error();
}

// "word@line:col" for each token, "{", "}" and "$" (end of line) likewise.
std::string Show(const std::vector<ConfigToken>& toks) {
  std::string s;
  for (const ConfigToken& t : toks) {
    if (!s.empty()) s += ' ';
    s += t.kind == Kind::kEnd ? std::string("$") : t.text;
    s += "@" + std::to_string(t.line) + ":" + std::to_string(t.column);
  }
  return s;
}

TEST(ConfigLexerTest, WordsBracesAndLines) {
  EXPECT_EQ(Show(Lex("backend app {\n  server a 10.0.0.1:80\n}\n")),
            "backend@1:1 app@1:9 {@1:13 $@1:14 server@2:3 a@2:10 10.0.0.1:80@2:12 $@2:23 }@3:1 "
            "$@3:2 $@4:1");
  EXPECT_EQ(Show(Lex("a{b}c")), "a@1:1 {@1:2 b@1:3 }@1:4 c@1:5 $@1:6") << "braces split words";
  EXPECT_EQ(Show(Lex("")), "$@1:1") << "the last token is always an end";
  EXPECT_EQ(Show(Lex("\tx\r\n")), "x@1:2 $@1:4 $@2:1") << "tabs and CR are blanks";
  EXPECT_EQ(Show(Lex("bind [::1]:80 unix:/a.sock")),
            "bind@1:1 [::1]:80@1:6 unix:/a.sock@1:15 $@1:27");
}

TEST(ConfigLexerTest, CommentsRunToTheEndOfTheLine) {
  EXPECT_EQ(Show(Lex("# all\nworkers 2 # two { \"\n")), "$@1:6 workers@2:1 2@2:9 $@2:20 $@3:1");
  EXPECT_EQ(Show(Lex("a#b")), "a@1:1 $@1:4");
  EXPECT_EQ(Show(Lex("\"#not\" x")), "#not@1:1 x@1:8 $@1:9");
}

TEST(ConfigLexerTest, StringsDecodeEscapes) {
  const auto toks = Lex(R"(send "PING\r\n" "a\"b\\c\td" "\x41\x7e\x00" "" "{")");
  ASSERT_EQ(toks.size(), 7u);
  EXPECT_EQ(toks[1].text, "PING\r\n");
  EXPECT_TRUE(toks[1].quoted);
  EXPECT_FALSE(toks[0].quoted);
  EXPECT_EQ(toks[2].text, "a\"b\\c\td");
  EXPECT_EQ(toks[3].text, std::string("A~\0", 3));
  EXPECT_EQ(toks[4].text, "");
  EXPECT_EQ(toks[4].kind, Kind::kWord);
  EXPECT_EQ(toks[5].kind, Kind::kWord) << "a quoted brace is a word";
  EXPECT_EQ(toks[5].text, "{");
}

TEST(ConfigLexerTest, UnterminatedString) {
  EXPECT_EQ(Err("a\n  send \"PING\n"),
            "f.conf:2:8: unterminated string (expected a closing '\"' on the same line)");
  EXPECT_EQ(Err("x \"abc"),
            "f.conf:1:3: unterminated string (expected a closing '\"' on the same line)");
  EXPECT_EQ(Err("x \"abc\\\""),
            "f.conf:1:3: unterminated string (expected a closing '\"' on the same line)");
}

TEST(ConfigLexerTest, BadEscapes) {
  EXPECT_EQ(Err("x \"a\\qb\""),
            "f.conf:1:5: unknown escape (expected \\\" \\\\ \\n \\r \\t or \\xHH)");
  EXPECT_EQ(Err("x \"\\x4\""), "f.conf:1:4: bad escape (expected \\x and two hex digits)");
  EXPECT_EQ(Err("x \"\\xg0\""), "f.conf:1:4: bad escape (expected \\x and two hex digits)");
}

TEST(ConfigLexerTest, TextGluedToAStringIsRefused) {
  EXPECT_EQ(Err("x \"a\"b"), "f.conf:1:6: text right after a string (expected a blank)");
  EXPECT_EQ(Show(Lex("x \"a\"{")), "x@1:1 a@1:3 {@1:6 $@1:7");
}

TEST(ConfigLexerTest, ControlCharactersAreRefused) {
  EXPECT_EQ(Err("ab\x01"), "f.conf:1:3: control character (expected text, blanks or a new line)");
  EXPECT_EQ(Err("\x7f"), "f.conf:1:1: control character (expected text, blanks or a new line)");
}

}  // namespace
}  // namespace edgeproxy
