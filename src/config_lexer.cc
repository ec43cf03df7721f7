// Configuration-file tokenizer; see config_lexer.h.
#include "edgeproxy/config_lexer.h"

namespace edgeproxy {
namespace {

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r';
}

bool ends_word(char c) noexcept {
  return is_blank(c) || c == '\n' || c == '{' || c == '}' || c == '"' || c == '#';
}

}  // namespace

Result<std::vector<ConfigToken>> lex_config(std::string_view text, const std::string& file_name) {
  std::vector<ConfigToken> out;
  uint32_t line = 1;
  size_t line_start = 0;
  size_t i = 0;
  auto column = [&](size_t at) { return static_cast<uint32_t>(at - line_start + 1); };
  auto fail = [&](size_t at, const std::string& what) {
    return Error{file_name + ":" + std::to_string(line) + ":" + std::to_string(column(at)) + ": " +
                 what};
  };
  while (i < text.size()) {
    const char c = text[i];
    if (is_blank(c)) {
      ++i;
    } else if (c == '\n') {
      out.push_back(ConfigToken{ConfigToken::Kind::kEnd, {}, line, column(i), false});
      ++i;
      ++line;
      line_start = i;
    } else if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (c == '{' || c == '}') {
      out.push_back(ConfigToken{c == '{' ? ConfigToken::Kind::kOpen : ConfigToken::Kind::kClose,
                                std::string(1, c), line, column(i), false});
      ++i;
    } else if (c == '"') {
      ConfigToken t{ConfigToken::Kind::kWord, {}, line, column(i), true};
      const size_t start = i++;
      for (;;) {
        if (i >= text.size() || text[i] == '\n') {
          return fail(start, "unterminated string (expected a closing '\"' on the same line)");
        }
        const char d = text[i];
        if (d == '"') {
          ++i;
          break;
        }
        if (d != '\\') {
          t.text += d;
          ++i;
          continue;
        }
        const char e = i + 1 < text.size() ? text[i + 1] : '\0';
        if (e == '"' || e == '\\') {
          t.text += e;
        } else if (e == 'n') {
          t.text += '\n';
        } else if (e == 'r') {
          t.text += '\r';
        } else if (e == 't') {
          t.text += '\t';
        } else if (e == 'x') {
          const int hi = i + 2 < text.size() ? hex_digit(text[i + 2]) : -1;
          const int lo = i + 3 < text.size() ? hex_digit(text[i + 3]) : -1;
          if (hi < 0 || lo < 0) return fail(i, "bad escape (expected \\x and two hex digits)");
          t.text += static_cast<char>(hi * 16 + lo);
          i += 2;
        } else {
          return fail(i, "unknown escape (expected \\\" \\\\ \\n \\r \\t or \\xHH)");
        }
        i += 2;
      }
      if (i < text.size() && !ends_word(text[i])) {
        return fail(i, "text right after a string (expected a blank)");
      }
      out.push_back(std::move(t));
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return fail(i, "control character (expected text, blanks or a new line)");
    } else {
      ConfigToken t{ConfigToken::Kind::kWord, {}, line, column(i), false};
      while (i < text.size() && !ends_word(text[i])) {
        if (static_cast<unsigned char>(text[i]) < 0x20 || text[i] == 0x7f) {
          return fail(i, "control character (expected text, blanks or a new line)");
        }
        t.text += text[i++];
      }
      out.push_back(std::move(t));
    }
  }
  out.push_back(ConfigToken{ConfigToken::Kind::kEnd, {}, line, column(i), false});
  return out;
}

}  // namespace edgeproxy
