// Configuration-file tokens: words (bare or double-quoted), `{`, `}` and ends of line, each with
// its line and column. `#` starts a comment to the end of the line outside a string. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/result.h"

namespace edgeproxy {

struct ConfigToken {
  enum class Kind : uint8_t {
    kWord,   // a bare word or a quoted string (escapes decoded)
    kOpen,   // {
    kClose,  // }
    kEnd,    // end of a line or of the text
  };
  Kind kind = Kind::kWord;
  std::string text;
  uint32_t line = 0;    // 1-based
  uint32_t column = 0;  // 1-based, in bytes
  bool quoted = false;  // written in double quotes: never a brace, never a keyword
};

// Splits `text`. Bare words run to the next blank (space, tab, CR), `{`, `}`, `"`, `#` or end of
// line. Strings take the escapes \" \\ \n \r \t \xHH and may not span lines. Errors, one line
// "file:line:column: what (expected ...)": an unterminated string, an unknown escape, a control
// character. The last token is always kEnd.
Result<std::vector<ConfigToken>> lex_config(std::string_view text, const std::string& file_name);

}  // namespace edgeproxy
