// Options: the one table of settings. Each entry names the directive (== the long flag), its
// short flag, scope, value kind and range, default and help line; the command-line parser, the
// file parser and --help all read it, so an option is spelled in exactly one place.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/config.h"
#include "edgeproxy/result.h"
#include "edgeproxy/topology.h"

namespace edgeproxy {

struct CommandLine;  // command_line.h

// What an option configures.
enum class OptionScope : uint8_t {
  kGlobal,       // process-wide (Config): a file's `global { }` block
  kListener,     // one listener: `listener NAME { }`; on the command line, the one listener
  kBackend,      // one backend: `backend NAME { }`; on the command line, the one backend
  kCommandLine,  // the command line only: -c, -t, --help, --version
};

// Where an option may be written.
enum class Spelling : uint8_t { kBoth, kCommandLineOnly, kFileOnly };

// The listener modes a listener directive applies to, as bits (0: every mode). Writing it in a
// listener of another mode is refused: it would be silently ignored.
inline constexpr uint8_t kModeTcp = 1;
inline constexpr uint8_t kModeForward = 2;
inline constexpr uint8_t kModeHttp = 4;
constexpr uint8_t mode_bit(ListenerMode m) noexcept {
  return static_cast<uint8_t>(1u << static_cast<uint8_t>(m));
}
// "tcp", "forward and http", ...: the modes of a non-zero `modes`, for messages.
std::string mode_names(uint8_t modes);
// "'mode forward' or 'mode http'" (`prefix` "mode "), or "--mode forward" (prefix "--mode ").
std::string mode_choices(uint8_t modes, const char* prefix);

enum class ValueKind : uint8_t {
  kFlag,      // no value (command line only)
  kSwitch,    // `on` or `off` in a file; --NAME and --no-NAME on the command line
  kCount,     // a whole decimal number in [min, max], or the word `special` (stored as 0)
  kDuration,  // a whole number with an optional unit ms, s, m, h; a bare number is in unit_ms
  kSize,      // bytes: a whole number with an optional unit k, m, g (1024-based)
  kEnum,      // one of the words in `choices` ("a|b|c"); stored as its index
  kString,    // any text
  kAddress,   // an IPv4/IPv6 literal or a host name, not empty
  kCpuList,   // CPUs and ascending ranges: 0,2-3
  kHostPort,  // HOST:PORT or [IPv6]:PORT, port 1-65535, or the word `special` (stored as "")
};

// A parsed value. `number` holds counts, durations (in the option's unit_ms), sizes (bytes),
// switches (1 = on) and enum indexes; `text` strings, addresses and HOST:PORT values; `cpus` CPU
// lists.
struct OptionValue {
  uint64_t number = 0;
  std::string text;
  std::vector<uint16_t> cpus;
};

// What an option's apply() may write. Command-line-only options (-l -p -b -P -c -t -h -V) write
// command_line; the others the object their scope names (-v and -q: global). The one an
// option writes is never null.
struct OptionTargets {
  Config* global = nullptr;
  ListenerSpec* listener = nullptr;
  BackendSpec* backend = nullptr;
  CommandLine* command_line = nullptr;
};

struct OptionSpec {
  const char* name = "";  // directive and long flag
  char short_name = 0;    // 0 = none
  OptionScope scope = OptionScope::kGlobal;
  Spelling spelling = Spelling::kBoth;
  uint8_t modes = 0;  // listener options: the modes they apply to (kModeTcp | ...; 0 = every)
  ValueKind kind = ValueKind::kFlag;
  const char* metavar = "";  // --help: "N", "ADDR"
  uint64_t min = 0;          // counts, durations (in unit_ms), sizes (bytes)
  uint64_t max = 0;
  uint32_t unit_ms = 1;             // durations: the stored unit and a bare number's: 1 or 1000
  const char* unit_word = nullptr;  // messages: "milliseconds", "a port"
  const char* special = nullptr;    // counts, durations, sizes: a word accepted as 0 ("off")
  const char* choices = nullptr;    // enums: "roundrobin|leastconn"
  const char* note = nullptr;       // appended to the expected values: "0 = none"
  bool per_second = false;          // counts and sizes: a rate, written with an optional "/s"
  const char* default_text = "";    // as --help and the docs show it
  const char* example = "";         // a valid value (tests, docs); "" for flags
  const char* help = "";            // one sentence; --help wraps it
  void (*apply)(OptionTargets&, const OptionValue&) = nullptr;
  // Strings: a further check of the text (null: any). Error: one phrase, as parse_option_value's.
  Result<Ok> (*check)(std::string_view) = nullptr;

  bool takes_value() const noexcept {
    return kind != ValueKind::kFlag && kind != ValueKind::kSwitch;
  }
  bool on_command_line() const noexcept { return spelling != Spelling::kFileOnly; }
  bool in_file() const noexcept { return spelling != Spelling::kCommandLineOnly; }
};

// Every option, in --help order.
std::span<const OptionSpec> option_table() noexcept;

// The entry named `name` (a directive or long flag without "--"), or null.
const OptionSpec* find_option(std::string_view name) noexcept;
// The entry with short flag `c`, or null.
const OptionSpec* find_short_option(char c) noexcept;

// What a value of `o` looks like, for "(expected ...)": "milliseconds 1-3600000, or ...".
std::string expected_value(const OptionSpec& o);

// Parses `text` as a value of `o` (not for flags; switches take "on" or "off"). Error: one
// phrase without the option's name, e.g. "invalid value 'x' (expected 1-1024 or auto)".
Result<OptionValue> parse_option_value(const OptionSpec& o, std::string_view text);

// Parses a whole decimal number in [min, max]; anything else (sign, blanks, suffix) is refused.
bool parse_decimal(std::string_view text, uint64_t min, uint64_t max, uint64_t& out) noexcept;

// The --help text, generated from the table: every command-line option with its default, then
// the file-only directives.
std::string usage();

}  // namespace edgeproxy
