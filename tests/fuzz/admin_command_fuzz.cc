// Fuzz target: the admin socket's command parser. The input is one line. Checked: an error is
// one short phrase without control bytes (it is echoed to the admin client), and a parsed
// command's numbers are within the ranges docs/admin.md gives.
#include "edgeproxy/admin_command.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeproxy;
  if (size > 4 * kAdminMaxLine) return 0;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  Result<AdminCommand> r = parse_admin_command(line);
  if (!r.ok()) {
    const std::string& e = r.error();
    FUZZ_CHECK(!e.empty() && e.size() <= 400);
    for (char c : e) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
    return 0;
  }
  FUZZ_CHECK(size <= kAdminMaxLine + 1);
  const AdminCommand& c = r.value();
  if (c.kind == AdminCommand::Kind::kShowConns) {
    FUZZ_CHECK(c.count >= 1 && c.count <= kAdminMaxConns);
  }
  if (c.kind == AdminCommand::Kind::kSetWeight) FUZZ_CHECK(c.count >= 1 && c.count <= 256);
  if (c.kind == AdminCommand::Kind::kDisableServer || c.kind == AdminCommand::Kind::kEnableServer ||
      c.kind == AdminCommand::Kind::kSetWeight) {
    FUZZ_CHECK(!c.backend.empty() && !c.server.empty());
  }
  return 0;
}
