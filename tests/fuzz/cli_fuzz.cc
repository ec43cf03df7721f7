// Fuzz target: the command line. The input split on NUL bytes is argv[1..] (argv[0] is
// "edgeproxy"); parse_command_line() must return a value or one error line, and an accepted
// command line must turn into a topology or an error without crashing.
#include <string>
#include <vector>

#include "edgeproxy/command_line.h"
#include "edgeproxy/config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeproxy;
  if (size > 4096) return 0;
  std::vector<std::string> args;
  std::string current;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(std::move(current));
      current.clear();
    } else {
      current.push_back(static_cast<char>(data[i]));
    }
  }
  if (size > 0) args.push_back(std::move(current));
  std::vector<const char*> argv{"edgeproxy"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  Result<CommandLine> cl = parse_command_line(static_cast<int>(argv.size()), argv.data());
  if (!cl.ok()) {
    FUZZ_CHECK(!cl.error().empty());
    return 0;
  }
  // Every option recorded as given was found in the table.
  for (const GivenOption& g : cl.value().given) FUZZ_CHECK(g.option != nullptr);
  if (cl.value().config_file.empty()) {
    Result<Topology> t = topology_from_command_line(cl.value());
    if (!t.ok()) FUZZ_CHECK(!t.error().empty());
  }
  Config global;
  Result<Ok> applied = apply_global_overrides(global, cl.value());
  if (!applied.ok()) FUZZ_CHECK(!applied.error().empty());
  return 0;
}
