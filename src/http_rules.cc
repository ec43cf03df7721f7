// TEMP: a stand-in for ValueTemplate::parse until src/http_rules.cc lands on main (drop this
// commit then). Only what the configuration parser needs to link and its tests to run.
#include "edgeproxy/http_rules.h"

#include <utility>

namespace edgeproxy::http {

Result<ValueTemplate> ValueTemplate::parse(std::string_view text) {
  static constexpr std::pair<std::string_view, ValueTemplate::Var> kVars[] = {
      {"client_addr", Var::kClientAddr},
      {"client_port", Var::kClientPort},
      {"listener", Var::kListener},
      {"server", Var::kServer},
      {"request_id", Var::kRequestId}};
  ValueTemplate t;
  std::string literal;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
      return Error{"a control character in the value (expected visible characters, SP or HT)"};
    }
    if (c != '$') {
      literal += c;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '$') {
      literal += '$';
      ++i;
      continue;
    }
    size_t end = i + 1;
    while (end < text.size() && ((text[end] >= 'a' && text[end] <= 'z') || text[end] == '_')) {
      ++end;
    }
    const std::string_view name = text.substr(i + 1, end - i - 1);
    bool found = false;
    for (const auto& [word, var] : kVars) {
      if (word != name) continue;
      if (!literal.empty()) t.parts.push_back({Var::kLiteral, std::exchange(literal, {})});
      t.parts.push_back({var, {}});
      found = true;
    }
    if (!found) {
      return Error{"unknown variable '$" + std::string(name) +
                   "' (expected $client_addr, $client_port, $listener, $server, $request_id or "
                   "$$)"};
    }
    i = end - 1;
  }
  if (!literal.empty()) t.parts.push_back({Var::kLiteral, std::move(literal)});
  return t;
}

}  // namespace edgeproxy::http
