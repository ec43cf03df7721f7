// The configuration-file parser: text to Topology, pure (files come through an IncludeLoader),
// and load_topology(), which reads the files and applies the command line's process-wide
// overrides. The grammar and every directive: docs/configuration.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/command_line.h"
#include "edgeproxy/result.h"
#include "edgeproxy/topology.h"

namespace edgeproxy {

struct IncludedFile {
  std::string name;  // as messages name it, and the identity include cycles are found by
  std::string text;
};

// Returns the files an `include PATTERN` written in `including_file` names: glob(3) matches of
// PATTERN relative to that file's directory, sorted; empty when nothing matches. Error: one line.
using IncludeLoader = std::function<Result<std::vector<IncludedFile>>(
    const std::string& pattern, const std::string& including_file)>;

// How deep includes may nest (the main file is depth 0).
inline constexpr uint32_t kMaxIncludeDepth = 8;

// Parses a whole configuration: `text` is the file `file_name`. Refuses, in one line
// "file:line:column: what (expected ...)", every syntax, value, name and reference error and
// include cycles, files included twice and nesting deeper than kMaxIncludeDepth. An include
// whose pattern has a wildcard and matches nothing, and a backend no listener uses, are
// warnings in Topology::warnings. Addresses are not resolved (resolve_topology()).
Result<Topology> parse_topology(std::string_view text, const std::string& file_name,
                                const IncludeLoader& loader);

// An address as a bind or server writes it: HOST:PORT, [IPv6]:PORT or unix:/PATH. Ports below
// `min_port` (0 for binds: any free port; 1 for servers) are refused. Error: one phrase.
Result<Endpoint> parse_endpoint(std::string_view text, uint16_t min_port);

// The IncludeLoader of load_topology(): glob(3) on the filesystem.
Result<std::vector<IncludedFile>> glob_included_files(const std::string& pattern,
                                                      const std::string& including_file);

// Reads and parses the file at `path` (includes through glob_included_files()), then applies
// the process-wide options `overrides` gave (apply_global_overrides()). Unresolved.
Result<Topology> load_topology(const std::string& path, const CommandLine& overrides);

}  // namespace edgeproxy
