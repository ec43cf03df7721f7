// Config and the command line: parse_command_line with argv arrays, every option in every
// spelling, every refusal, and the --help text. New behaviour (-c, -t, units):
// command_line_test.cc.
#include "edgeproxy/config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "command_line_args.h"
#include "edgeproxy/command_line.h"
#include "edgeproxy/options.h"

namespace edgeproxy {
namespace {

using command_line_args::Err;
using command_line_args::Ok;
using command_line_args::Parse;

// `message` names `what`.
::testing::AssertionResult Names(const std::string& message, const std::string& what) {
  if (message.find(what) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << message << "' does not mention '" << what << "'";
}

// Refuses a non-number for `flag`, reads the "A-B" range the message states, and checks that
// A and B are accepted and A-1 and B+1 refused.
void CheckStatedRange(const char* flag) {
  const std::string message = Err({flag, "x"});
  const size_t expected = message.find("(expected ");
  ASSERT_NE(expected, std::string::npos) << message;
  const size_t first = message.find_first_of("0123456789", expected);
  ASSERT_NE(first, std::string::npos) << message;
  const size_t dash = message.find_first_not_of("0123456789", first);
  ASSERT_TRUE(dash != std::string::npos && message[dash] == '-') << message;
  const size_t last = message.find_first_not_of("0123456789", dash + 1);
  ASSERT_NE(last, dash + 1) << message;
  const std::string low_text = message.substr(first, dash - first);
  const std::string high_text = message.substr(dash + 1, last - dash - 1);
  const unsigned long low = std::stoul(low_text);
  const unsigned long high = std::stoul(high_text);
  EXPECT_TRUE(Parse({flag, std::to_string(low).c_str()}).ok())
      << flag << " " << low << " is refused, but '" << message << "' offers it";
  EXPECT_TRUE(Parse({flag, std::to_string(high).c_str()}).ok()) << flag << " " << high;
  if (low > 0) {
    EXPECT_FALSE(Parse({flag, std::to_string(low - 1).c_str()}).ok()) << flag;
  }
  EXPECT_FALSE(Parse({flag, std::to_string(high + 1).c_str()}).ok()) << flag;
}

TEST(ConfigTest, Defaults) {
  const CommandLine c = Ok({});
  EXPECT_EQ(c.listen_host, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 8080);
  EXPECT_EQ(c.backend_host, "127.0.0.1");
  EXPECT_EQ(c.backend_port, 8081);
  EXPECT_EQ(c.config.max_connections, 1024u);
  EXPECT_EQ(c.config.buffers, 0u);
  EXPECT_EQ(c.connect_timeout_ms, 5000u);
  EXPECT_EQ(c.idle_timeout_s, 3600u);
  EXPECT_EQ(c.config.shutdown_timeout_s, 10u);
  EXPECT_EQ(c.config.backlog, 4096);
  EXPECT_TRUE(c.config.no_delay);
  EXPECT_EQ(c.config.log_level, LogLevel::kNormal);
  EXPECT_FALSE(c.show_help);
  EXPECT_FALSE(c.show_version);
  EXPECT_EQ(c.config.buffer_count(), 2048u);
}

// --- value options in every spelling -------------------------------------------------------

TEST(ConfigTest, ListenInEveryForm) {
  EXPECT_EQ(Ok({"--listen", "::1"}).listen_host, "::1");
  EXPECT_EQ(Ok({"--listen=10.0.0.1"}).listen_host, "10.0.0.1");
  EXPECT_EQ(Ok({"-l", "localhost"}).listen_host, "localhost");
  EXPECT_EQ(Ok({"-l127.0.0.2"}).listen_host, "127.0.0.2");
}

TEST(ConfigTest, PortInEveryForm) {
  EXPECT_EQ(Ok({"--port", "1"}).listen_port, 1);
  EXPECT_EQ(Ok({"--port=65535"}).listen_port, 65535);
  EXPECT_EQ(Ok({"-p", "80"}).listen_port, 80);
  EXPECT_EQ(Ok({"-p443"}).listen_port, 443);
}

TEST(ConfigTest, BackendInEveryForm) {
  EXPECT_EQ(Ok({"--backend", "example.org"}).backend_host, "example.org");
  EXPECT_EQ(Ok({"--backend=fe80::1"}).backend_host, "fe80::1");
  EXPECT_EQ(Ok({"-b", "10.1.2.3"}).backend_host, "10.1.2.3");
  EXPECT_EQ(Ok({"-bhost"}).backend_host, "host");
}

TEST(ConfigTest, BackendPortInEveryForm) {
  EXPECT_EQ(Ok({"--backend-port", "9000"}).backend_port, 9000);
  EXPECT_EQ(Ok({"--backend-port=9001"}).backend_port, 9001);
  EXPECT_EQ(Ok({"-P", "9002"}).backend_port, 9002);
  EXPECT_EQ(Ok({"-P9003"}).backend_port, 9003);
  // -p and -P are different options.
  const CommandLine c = Ok({"-p", "1", "-P", "2"});
  EXPECT_EQ(c.listen_port, 1);
  EXPECT_EQ(c.backend_port, 2);
}

TEST(ConfigTest, MaxConnections) {
  EXPECT_EQ(Ok({"--max-connections", "1"}).config.max_connections, 1u);
  EXPECT_EQ(Ok({"--max-connections=1000000"}).config.max_connections, 1'000'000u);
  const CommandLine c = Ok({"--max-connections", "10"});
  EXPECT_EQ(c.config.buffer_count(), 20u) << "default pool is 2 x max-connections";
}

TEST(ConfigTest, Buffers) {
  const CommandLine c = Ok({"--buffers", "2"});
  EXPECT_EQ(c.config.buffers, 2u);
  EXPECT_EQ(c.config.buffer_count(), 2u);
  EXPECT_EQ(Ok({"--buffers=4000000"}).config.buffers, 4'000'000u);
  const CommandLine d = Ok({"--max-connections", "10", "--buffers", "7"});
  EXPECT_EQ(d.config.buffer_count(), 7u) << "an explicit pool size wins over the default";
}

TEST(ConfigTest, BufferCountDefaultIsTwiceMax) {
  Config c;
  c.max_connections = 300;
  EXPECT_EQ(c.buffer_count(), 600u);
  c.buffers = 5;
  EXPECT_EQ(c.buffer_count(), 5u);
  c.buffers = 0;
  c.max_connections = 1'000'000;
  EXPECT_EQ(c.buffer_count(), 2'000'000u);
}

TEST(ConfigTest, Timeouts) {
  EXPECT_EQ(Ok({"--connect-timeout", "1"}).connect_timeout_ms, 1u);
  EXPECT_EQ(Ok({"--connect-timeout=3600000"}).connect_timeout_ms, 3'600'000u);
  EXPECT_EQ(Ok({"--idle-timeout", "0"}).idle_timeout_s, 0u);
  EXPECT_EQ(Ok({"--idle-timeout=31536000"}).idle_timeout_s, 31'536'000u);
  EXPECT_EQ(Ok({"--shutdown-timeout", "0"}).config.shutdown_timeout_s, 0u);
  EXPECT_EQ(Ok({"--shutdown-timeout=86400"}).config.shutdown_timeout_s, 86'400u);
}

TEST(ConfigTest, Backlog) {
  EXPECT_EQ(Ok({"--backlog", "1"}).config.backlog, 1);
  EXPECT_EQ(Ok({"--backlog=65535"}).config.backlog, 65535);
}

// --- flags ---------------------------------------------------------------------------------

TEST(ConfigTest, NoDelayFlags) {
  EXPECT_FALSE(Ok({"--no-no-delay"}).config.no_delay);
  EXPECT_TRUE(Ok({"--no-delay"}).config.no_delay);
  EXPECT_TRUE(Ok({"--no-no-delay", "--no-delay"}).config.no_delay) << "the last one wins";
  EXPECT_FALSE(Ok({"--no-delay", "--no-no-delay"}).config.no_delay);
}

TEST(ConfigTest, LogLevelFlags) {
  EXPECT_EQ(Ok({"--verbose"}).config.log_level, LogLevel::kVerbose);
  EXPECT_EQ(Ok({"-v"}).config.log_level, LogLevel::kVerbose);
  EXPECT_EQ(Ok({"--quiet"}).config.log_level, LogLevel::kQuiet);
  EXPECT_EQ(Ok({"-q"}).config.log_level, LogLevel::kQuiet);
  EXPECT_EQ(Ok({"-v", "-q"}).config.log_level, LogLevel::kQuiet);
}

TEST(ConfigTest, HelpAndVersionFlags) {
  EXPECT_TRUE(Ok({"--help"}).show_help);
  EXPECT_TRUE(Ok({"-h"}).show_help);
  EXPECT_TRUE(Ok({"--version"}).show_version);
  EXPECT_TRUE(Ok({"-V"}).show_version);
  EXPECT_FALSE(Ok({"-V"}).show_help);
}

TEST(ConfigTest, EverythingTogether) {
  const CommandLine c =
      Ok({"-l", "::", "--port=1000", "-b10.0.0.9", "--backend-port", "2000", "--max-connections=50",
          "--buffers", "64", "--connect-timeout", "250", "--idle-timeout=0", "--shutdown-timeout",
          "3", "--backlog=128", "--no-no-delay", "-q"});
  EXPECT_EQ(c.listen_host, "::");
  EXPECT_EQ(c.listen_port, 1000);
  EXPECT_EQ(c.backend_host, "10.0.0.9");
  EXPECT_EQ(c.backend_port, 2000);
  EXPECT_EQ(c.config.max_connections, 50u);
  EXPECT_EQ(c.config.buffers, 64u);
  EXPECT_EQ(c.config.buffer_count(), 64u);
  EXPECT_EQ(c.connect_timeout_ms, 250u);
  EXPECT_EQ(c.idle_timeout_s, 0u);
  EXPECT_EQ(c.config.shutdown_timeout_s, 3u);
  EXPECT_EQ(c.config.backlog, 128);
  EXPECT_FALSE(c.config.no_delay);
  EXPECT_EQ(c.config.log_level, LogLevel::kQuiet);
}

TEST(ConfigTest, LaterValueWins) {
  EXPECT_EQ(Ok({"-p", "1", "--port=2"}).listen_port, 2);
}

TEST(ConfigTest, ValueMayLookLikeAnOption) {
  // "--name value" takes the next argument whatever it is, as getopt does.
  EXPECT_EQ(Ok({"--listen", "-weird"}).listen_host, "-weird");
}

// --- refusals ------------------------------------------------------------------------------

TEST(ConfigTest, UnknownOptionIsNamed) {
  EXPECT_TRUE(Names(Err({"--frobnicate"}), "--frobnicate"));
  EXPECT_TRUE(Names(Err({"--frobnicate=1"}), "--frobnicate"));
  EXPECT_TRUE(Names(Err({"-x"}), "-x"));
  EXPECT_TRUE(Names(Err({"-xyz"}), "-xyz"));
  EXPECT_TRUE(Names(Err({"--Port", "80"}), "--Port")) << "long names are case-sensitive";
  EXPECT_TRUE(Names(Err({"--por", "80"}), "--por")) << "no prefix abbreviations";
  EXPECT_TRUE(Names(Err({"--max-connection", "1"}), "--max-connection"));
}

TEST(ConfigTest, MissingValueIsNamed) {
  for (const char* flag : {"--listen", "--port", "--backend", "--backend-port", "--max-connections",
                           "--buffers", "--connect-timeout", "--idle-timeout", "--shutdown-timeout",
                           "--backlog", "-l", "-p", "-b", "-P"}) {
    const std::string message = Err({flag});
    EXPECT_TRUE(Names(message, flag));
    EXPECT_TRUE(Names(message, "missing value"));
  }
  // Only the last argument can lack its value.
  EXPECT_TRUE(Names(Err({"-p", "80", "--backend-port"}), "--backend-port"));
}

TEST(ConfigTest, BadPortsAreRefusedNamingFlagAndValue) {
  for (const char* value : {"0", "65536", "-1", "80x", "", " 80", "80 ", "+80", "0x50", "1e3",
                            "99999999999999", "8O"}) {
    for (const char* flag : {"--port", "--backend-port", "-p", "-P"}) {
      const std::string message = Err({flag, value});
      EXPECT_TRUE(Names(message, flag)) << "value '" << value << "'";
      EXPECT_TRUE(Names(message, std::string("'") + value + "'")) << flag;
    }
    const std::string inline_long = std::string("--port=") + value;
    EXPECT_TRUE(Names(Err({inline_long.c_str()}), "--port"));
    if (value[0] != '\0') {  // "-p" with an empty attached value is "-p" with its value missing
      const std::string attached = std::string("-p") + value;
      EXPECT_TRUE(Names(Err({attached.c_str()}), std::string("'") + value + "'"));
    }
  }
}

TEST(ConfigTest, PortBoundaries) {
  EXPECT_EQ(Ok({"-p", "1"}).listen_port, 1);
  EXPECT_EQ(Ok({"-p", "65535"}).listen_port, 65535);
  EXPECT_EQ(Ok({"-p", "08080"}).listen_port, 8080) << "leading zeros are still decimal";
}

TEST(ConfigTest, NonNumericCountsAreRefused) {
  for (const char* flag : {"--max-connections", "--buffers", "--connect-timeout", "--idle-timeout",
                           "--shutdown-timeout", "--backlog"}) {
    for (const char* value : {"abc", "", "-5", "12k", "1.5", " 3", "3 "}) {
      const std::string message = Err({flag, value});
      EXPECT_TRUE(Names(message, flag)) << "value '" << value << "'";
      EXPECT_TRUE(Names(message, std::string("'") + value + "'")) << flag;
    }
  }
}

TEST(ConfigTest, OutOfRangeCountsAreRefused) {
  EXPECT_TRUE(Names(Err({"--max-connections", "0"}), "--max-connections"));
  EXPECT_TRUE(Names(Err({"--max-connections", "1000001"}), "'1000001'"));
  EXPECT_TRUE(Names(Err({"--buffers", "0"}), "--buffers"));
  EXPECT_TRUE(Names(Err({"--buffers", "4000001"}), "--buffers"));
  EXPECT_TRUE(Names(Err({"--connect-timeout", "0"}), "--connect-timeout"));
  EXPECT_TRUE(Names(Err({"--connect-timeout", "3600001"}), "--connect-timeout"));
  EXPECT_TRUE(Names(Err({"--idle-timeout", "31536001"}), "--idle-timeout"));
  EXPECT_TRUE(Names(Err({"--shutdown-timeout", "86401"}), "--shutdown-timeout"));
  EXPECT_TRUE(Names(Err({"--backlog", "0"}), "--backlog"));
  EXPECT_TRUE(Names(Err({"--backlog", "65536"}), "--backlog"));
}

TEST(ConfigTest, OneBufferIsRefused) {
  const std::string message = Err({"--buffers", "1"});
  EXPECT_TRUE(Names(message, "--buffers"));
  EXPECT_TRUE(Names(message, "'1'"));
  EXPECT_TRUE(Names(message, "2")) << "the message states the minimum of 2";
  EXPECT_TRUE(Names(Err({"--buffers=1", "--max-connections", "5"}), "--buffers"));
}

TEST(ConfigTest, EmptyAddressIsRefused) {
  EXPECT_TRUE(Names(Err({"--listen", ""}), "--listen"));
  EXPECT_TRUE(Names(Err({"--listen="}), "--listen"));
  EXPECT_TRUE(Names(Err({"-b", ""}), "-b"));
  EXPECT_TRUE(Names(Err({"--backend="}), "empty address"));
}

TEST(ConfigTest, FlagsTakeNoValue) {
  for (const char* arg : {"--quiet=1", "--verbose=yes", "--help=", "--version=1", "--no-delay=0",
                          "--no-no-delay=1"}) {
    const std::string message = Err({arg});
    const std::string flag = std::string(arg).substr(0, std::string(arg).find('='));
    EXPECT_TRUE(Names(message, flag));
    EXPECT_TRUE(Names(message, "takes no value"));
  }
}

TEST(ConfigTest, ShortFlagsDoNotCombine) {
  EXPECT_TRUE(Names(Err({"-vq"}), "-vq"));
  EXPECT_TRUE(Names(Err({"-q1"}), "-q1"));
  EXPECT_TRUE(Names(Err({"-hV"}), "-hV"));
}

TEST(ConfigTest, StrayPositionalArgumentIsRefused) {
  EXPECT_TRUE(Names(Err({"extra"}), "'extra'"));
  EXPECT_TRUE(Names(Err({"-p", "80", "8081"}), "'8081'"));
  EXPECT_TRUE(Names(Err({"--quiet", "yes"}), "'yes'")) << "a flag does not eat the next argument";
  EXPECT_TRUE(Names(Err({"-"}), "'-'"));
  EXPECT_TRUE(Names(Err({"--"}), "'--'"));
  EXPECT_TRUE(Names(Err({""}), "''"));
}

TEST(ConfigTest, FirstErrorStopsParsing) {
  const std::string message = Err({"--port", "0", "--frobnicate"});
  EXPECT_TRUE(Names(message, "--port"));
  EXPECT_EQ(message.find("--frobnicate"), std::string::npos) << message;
}

TEST(ConfigTest, ErrorIsOneLine) {
  for (const std::string& message :
       {Err({"--frobnicate"}), Err({"-p"}), Err({"-p", "x"}), Err({"--buffers", "1"}),
        Err({"--quiet=1"}), Err({"stray"}), Err({"--listen="})}) {
    EXPECT_FALSE(message.empty());
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_NE(message.rfind("edgeproxy:", 0), 0u) << "main adds the program-name prefix";
  }
}

// Every numeric option states its range when refusing a value; both ends of the stated range
// must be accepted and the values just outside refused.
TEST(ConfigTest, StatedRangesMatchAcceptedValues) {
  for (const char* flag : {"--port", "--backend-port", "--max-connections", "--connect-timeout",
                           "--idle-timeout", "--shutdown-timeout", "--backlog"}) {
    CheckStatedRange(flag);
  }
}

// Regression: `--buffers 0` answered "(expected 1-4000000)", yet `--buffers 1` is then refused
// with "(expected at least 2)": the stated range offers a value the parser refuses.
TEST(ConfigTest, BuffersZeroErrorOffersRefusedValueOne) {
  CheckStatedRange("--buffers");
  EXPECT_FALSE(Parse({"--buffers", "1"}).ok());
}

// --- splice --------------------------------------------------------------------------------

TEST(ConfigTest, SpliceDefaults) {
  const CommandLine c = Ok({});
  EXPECT_EQ(c.config.splice, SpliceMode::kAuto);
  EXPECT_EQ(c.config.splice_threshold_bytes, 65536u);
  EXPECT_EQ(c.config.splice_pipes, 0u);
  EXPECT_EQ(c.config.pipe_count(), 256u) << "a quarter of max-connections";
  EXPECT_EQ(Ok({"--splice", "never"}).config.pipe_count(), 0u)
      << "no pipes (no descriptors) when off";
}

TEST(ConfigTest, SpliceModesInEveryForm) {
  EXPECT_EQ(Ok({"--splice", "auto"}).config.splice, SpliceMode::kAuto);
  EXPECT_EQ(Ok({"--splice=always"}).config.splice, SpliceMode::kAlways);
  EXPECT_EQ(Ok({"--splice", "always", "--splice=never"}).config.splice, SpliceMode::kNever);
  EXPECT_STREQ(to_string(SpliceMode::kNever), "never");
  EXPECT_STREQ(to_string(SpliceMode::kAuto), "auto");
  EXPECT_STREQ(to_string(SpliceMode::kAlways), "always");
}

TEST(ConfigTest, BadSpliceModeIsRefusedNamingFlagValueAndChoices) {
  for (const char* value : {"", "yes", "Auto", "ALWAYS", "1", "auto "}) {
    const std::string message = Err({"--splice", value});
    EXPECT_TRUE(Names(message, "--splice")) << "value '" << value << "'";
    EXPECT_TRUE(Names(message, std::string("'") + value + "'"));
    EXPECT_TRUE(Names(message, "auto, always or never"));
  }
  EXPECT_TRUE(Names(Err({"--splice"}), "missing value"));
}

TEST(ConfigTest, SpliceThresholdAndPipes) {
  const CommandLine c = Ok({"--splice", "auto", "--splice-threshold", "0", "--splice-pipes=7"});
  EXPECT_EQ(c.config.splice_threshold_bytes, 0u);
  EXPECT_EQ(c.config.splice_pipes, 7u);
  EXPECT_EQ(c.config.pipe_count(), 7u);
  EXPECT_EQ(Ok({"--splice-threshold=1048576"}).config.splice_threshold_bytes, 1048576u);
  CheckStatedRange("--splice-threshold");
  CheckStatedRange("--splice-pipes");
  for (const char* flag : {"--splice-threshold", "--splice-pipes"}) {
    for (const char* value : {"abc", "", "-5", "64x", "1.5", "64K", "2g"}) {
      EXPECT_TRUE(Names(Err({flag, value}), flag)) << "value '" << value << "'";
    }
  }
  // A size takes a unit k, m or g (1024-based).
  EXPECT_EQ(Ok({"--splice-threshold", "64k"}).config.splice_threshold_bytes, 65536u);
  EXPECT_EQ(Ok({"--splice-threshold=1m"}).config.splice_threshold_bytes, 1048576u);
  EXPECT_EQ(Ok({"--splice-threshold=1g"}).config.splice_threshold_bytes, 1073741824u);
}

TEST(ConfigTest, PipeCountFollowsModeAndMaxConnections) {
  EXPECT_EQ(Ok({"--splice", "always"}).config.pipe_count(), 256u) << "a quarter of max-connections";
  EXPECT_EQ(Ok({"--splice", "auto", "--max-connections", "40"}).config.pipe_count(), 10u);
  EXPECT_EQ(Ok({"--splice", "auto", "--max-connections", "3"}).config.pipe_count(), 1u)
      << "at least 1";
  EXPECT_EQ(Ok({"--splice", "never", "--splice-pipes", "9"}).config.pipe_count(), 0u);
  CommandLine c = Ok({"--splice", "auto"});
  c.config.max_connections = 100;  // main lowers it to fit the open-file limit: the default follows
  EXPECT_EQ(c.config.pipe_count(), 25u);
}

// --- usage ---------------------------------------------------------------------------------

struct Documented {
  const char* long_name;
  char short_name;
};

// The command-line options of before the option table (options.cc); all must still be there.
constexpr Documented kOptions[] = {
    {"listen", 'l'},         {"port", 'p'},           {"backend", 'b'},       {"backend-port", 'P'},
    {"max-connections", 0},  {"buffers", 0},          {"connect-timeout", 0}, {"idle-timeout", 0},
    {"shutdown-timeout", 0}, {"backlog", 0},          {"no-delay", 0},        {"no-no-delay", 0},
    {"verbose", 'v'},        {"quiet", 'q'},          {"help", 'h'},          {"version", 'V'},
    {"splice", 0},           {"splice-threshold", 0}, {"splice-pipes", 0},    {"workers", 0},
    {"cpu-list", 0},
};

TEST(ConfigTest, UsageMentionsEveryOption) {
  const std::string text = usage();
  for (const Documented& o : kOptions) {
    const std::string long_flag = std::string("--") + o.long_name + " ";
    EXPECT_TRUE(Names(text, long_flag));
    if (o.short_name != 0) {
      EXPECT_TRUE(Names(text, std::string("-") + o.short_name + ", --" + o.long_name));
    }
  }
}

TEST(ConfigTest, UsageShowsDefaults) {
  const std::string text = usage();
  const CommandLine d;
  EXPECT_TRUE(Names(text, "(default " + d.listen_host + ")"));
  EXPECT_TRUE(Names(text, "(default " + std::to_string(d.listen_port) + ")"));
  EXPECT_TRUE(Names(text, "(default " + d.backend_host + ")"));
  EXPECT_TRUE(Names(text, "(default " + std::to_string(d.backend_port) + ")"));
  EXPECT_TRUE(Names(text, "(default " + std::to_string(d.config.max_connections) + ")"));
  EXPECT_TRUE(Names(text, "(default " + std::to_string(d.connect_timeout_ms) + ")"));
  EXPECT_TRUE(Names(text, "(default " + std::to_string(d.idle_timeout_s) + ")"));
  EXPECT_TRUE(Names(text, "(default " + std::to_string(d.config.shutdown_timeout_s) + ")"));
  EXPECT_TRUE(Names(text, "(default " + std::to_string(d.config.backlog) + ")"));
  EXPECT_TRUE(Names(text, "2 x max-connections"));
  EXPECT_TRUE(Names(text, std::string("(default ") + to_string(d.config.splice) + ")"));
  EXPECT_TRUE(Names(text, "(default " + std::to_string(d.config.splice_threshold_bytes) + ")"));
  EXPECT_TRUE(Names(text, "max-connections / 4"));
}

TEST(ConfigTest, EveryDocumentedOptionParses) {
  // The usage table and the parser agree: each documented long option is accepted.
  for (const Documented& o : kOptions) {
    const std::string flag = std::string("--") + o.long_name;
    Result<CommandLine> r = Parse({flag.c_str()});
    if (!r.ok()) {
      EXPECT_TRUE(Names(r.error(), "missing value")) << flag << ": " << r.error();
    }
  }
}

}  // namespace
}  // namespace edgeproxy

namespace edgeproxy {
namespace {

TEST(ConfigTest, WorkersTakeACountOrAuto) {
  const char* two[] = {"edgeproxy", "--workers", "2"};
  auto c = parse_command_line(3, two);
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c.value().config.workers, 2u);
  const char* autos[] = {"edgeproxy", "--workers=auto"};
  c = parse_command_line(2, autos);
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c.value().config.workers, 0u);
  for (const char* bad : {"0", "1025", "-1", "Auto", ""}) {
    const char* argv[] = {"edgeproxy", "--workers", bad};
    auto r = parse_command_line(3, argv);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error(),
              std::string("--workers: invalid value '") + bad + "' (expected 1-1024 or auto)");
  }
}

TEST(ConfigTest, CpuListKeepsTheWrittenOrder) {
  auto r = parse_cpu_list("3,0-2,7,1");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value(), (std::vector<uint16_t>{3, 0, 1, 2, 7, 1}));
  r = parse_cpu_list("1023");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value(), (std::vector<uint16_t>{1023}));
}

TEST(ConfigTest, BadCpuListsAreRefused) {
  EXPECT_EQ(parse_cpu_list("").error(), "empty CPU list (expected e.g. 0,2-3)");
  EXPECT_EQ(parse_cpu_list("0,").error(), "invalid CPU list: trailing comma (expected e.g. 0,2-3)");
  EXPECT_EQ(parse_cpu_list("3-1").error(), "invalid CPU range '3-1' (descending)");
  for (const char* bad : {"1024", "a", "1-", "-1", ",1", "1,,2", "0x1", " 1", "1-2-3"}) {
    EXPECT_FALSE(parse_cpu_list(bad).ok()) << bad;
  }
  const char* argv[] = {"edgeproxy", "--cpu-list", "2-x"};
  auto c = parse_command_line(3, argv);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(
      c.error(),
      "--cpu-list: invalid CPU list item '2-x' (expected a CPU 0-1023 or a range such as 2-3)");
}

// --- batch wait ----------------------------------------------------------------------------

TEST(ConfigTest, BatchWaitDefaultsAndValues) {
  const CommandLine c = Ok({});
  EXPECT_EQ(c.config.batch_wait_us, 200u);
  EXPECT_FALSE(c.config.batch_wait_given) << "the default is not the user's choice";
  const CommandLine off = Ok({"--batch-wait", "0"});
  EXPECT_EQ(off.config.batch_wait_us, 0u);
  EXPECT_TRUE(off.config.batch_wait_given);
  EXPECT_EQ(Ok({"--batch-wait=10000"}).config.batch_wait_us, 10000u);
  CheckStatedRange("--batch-wait");
  for (const char* value : {"abc", "", "-5", "100us", "1.5", "10001"}) {
    EXPECT_TRUE(Names(Err({"--batch-wait", value}), "--batch-wait")) << "value '" << value << "'";
  }
}

}  // namespace
}  // namespace edgeproxy
