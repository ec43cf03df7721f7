// Test helpers: parse_command_line() on {"edgeproxy", args...}, with and without success.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "edgeproxy/command_line.h"

namespace edgeproxy::command_line_args {

inline Result<CommandLine> Parse(std::initializer_list<const char*> args) {
  std::vector<const char*> argv{"edgeproxy"};
  argv.insert(argv.end(), args.begin(), args.end());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

// Parses and requires success.
inline CommandLine Ok(std::initializer_list<const char*> args) {
  Result<CommandLine> r = Parse(args);
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? r.value() : CommandLine{};
}

// Parses and requires failure; returns the message.
inline std::string Err(std::initializer_list<const char*> args) {
  Result<CommandLine> r = Parse(args);
  EXPECT_FALSE(r.ok());
  return r.ok() ? std::string() : r.error();
}

}  // namespace edgeproxy::command_line_args
