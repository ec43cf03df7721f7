// Fuzz target: the configuration file. The input is the text of the main file; parse_topology()
// must return a topology or one error line "file:line:column: ...". Parse only: nothing is
// resolved or bound. Includes, maps and auth files never touch the filesystem: the loader below
// serves a few fixed in-memory files by name (one including itself, for the cycle check) and
// says "no such file" for any other name.
#include <string>
#include <vector>

#include "edgeproxy/topology_parser.h"
#include "fuzz_util.h"

namespace {

using edgeproxy::IncludedFile;
using edgeproxy::Result;

Result<std::vector<IncludedFile>> load(const std::string& pattern, const std::string&) {
  std::vector<IncludedFile> files;
  if (pattern == "inc.conf" || pattern == "*.conf") {
    files.push_back({"inc.conf", "backend inc {\n  server s 127.0.0.1:9000\n}\n"});
  }
  if (pattern == "self.conf" || pattern == "*.conf") {
    files.push_back({"self.conf", "include self.conf\n"});
  }
  if (pattern == "users.map") {
    files.push_back(
        {"users.map", "# a map\nmojombo  shards\ndefunkt  10.0.1.3:9418\ndefault  app\n"});
  }
  if (pattern == "proxy-users") {
    files.push_back(
        {"proxy-users", "alice:$5$c2FsdHNhbHQ$0WSGWiYngl8b4wxKSCHzpBBe6bBcguOL6uMSABHOP80\n"});
  }
  if (pattern == "missing") return edgeproxy::Error{"cannot read 'missing': No such file"};
  return files;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<edgeproxy::Topology> t = edgeproxy::parse_topology(text, "fuzz.conf", load);
  if (!t.ok()) {
    // One line, naming where.
    FUZZ_CHECK(!t.error().empty());
    FUZZ_CHECK(t.error().find('\n') == std::string::npos);
    return 0;
  }
  // Every listener's routes compile into runs covering the rules in order.
  for (const auto& l : t.value().listeners) {
    uint32_t next = 0;
    for (const auto& run : l.routes.runs) {
      FUZZ_CHECK(run.first == next && run.last > run.first);
      next = run.last;
    }
    FUZZ_CHECK(next == l.routes.rules.size());
  }
  return 0;
}
