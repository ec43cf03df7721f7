// ChunkedDecoder: valid bodies, where they end, truncation, every split of the input giving the
// same result (exhaustively for short bodies), malicious inputs refused at the offending byte,
// the line and trailer limits, remaining_data() and skip_data().
#include "edgeproxy/chunked_decoder.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace edgeproxy::http {

// static: several test files print these types.
static void PrintTo(BodyStatus s, std::ostream* os) {
  switch (s) {
    case BodyStatus::kMore:
      *os << "kMore";
      return;
    case BodyStatus::kDone:
      *os << "kDone";
      return;
    case BodyStatus::kInvalid:
      *os << "kInvalid";
      return;
  }
  *os << "BodyStatus(" << static_cast<int>(s) << ")";
}

namespace {

using namespace std::string_literals;

std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Where a run ended: the offset of the end of the body (kDone), of the offending byte
// (kInvalid), or of the end of the input (kMore).
struct Outcome {
  uint64_t at = 0;
  BodyStatus status = BodyStatus::kMore;
  bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  os << "{at " << o.at << ", ";
  PrintTo(o.status, &os);
  return os << "}";
}

// Feeds `bytes` cut at the offsets in `cuts` (ascending), checking the kMore contract on the way.
Outcome run(std::string_view bytes, const std::vector<size_t>& cuts) {
  ChunkedDecoder decoder;
  size_t start = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : bytes.size();
    const BodyProgress p = decoder.consume(as_bytes(bytes.substr(start, end - start)));
    if (p.status != BodyStatus::kMore) {
      EXPECT_LE(p.used, end - start);
      return {start + p.used, p.status};
    }
    EXPECT_EQ(p.used, end - start) << "kMore uses every byte";
    start = end;
  }
  return {bytes.size(), BodyStatus::kMore};
}

Outcome run_whole(std::string_view bytes) {
  return run(bytes, {});
}

Outcome run_byte_at_a_time(std::string_view bytes) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < bytes.size(); ++i) cuts.push_back(i);
  return run(bytes, cuts);
}

// Every way of cutting `bytes` (all 2^(n-1) of them) gives `expected`.
::testing::AssertionResult EverySplitGives(std::string_view bytes, Outcome expected) {
  const size_t gaps = bytes.size() - 1;
  for (uint64_t mask = 0; mask < (uint64_t{1} << gaps); ++mask) {
    std::vector<size_t> cuts;
    for (size_t i = 0; i < gaps; ++i) {
      if ((mask >> i & 1) != 0) cuts.push_back(i + 1);
    }
    const Outcome got = run(bytes, cuts);
    if (!(got == expected)) {
      return ::testing::AssertionFailure()
             << "cut mask " << mask << " gives " << got << ", whole gives " << expected;
    }
  }
  return ::testing::AssertionSuccess();
}

// Every cut into two and three pieces gives `expected`.
::testing::AssertionResult EveryTwoCutSplitGives(std::string_view bytes, Outcome expected) {
  for (size_t a = 1; a < bytes.size(); ++a) {
    for (size_t b = a; b < bytes.size(); ++b) {
      const std::vector<size_t> cuts = b == a ? std::vector<size_t>{a} : std::vector<size_t>{a, b};
      const Outcome got = run(bytes, cuts);
      if (!(got == expected)) {
        return ::testing::AssertionFailure()
               << "cuts " << a << "," << b << " give " << got << ", whole gives " << expected;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

const std::string kNext = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

struct Valid {
  const char* name;
  std::string body;
};

std::vector<Valid> valid_bodies() {
  return {
      {"last chunk only", "0\r\n\r\n"},
      {"one chunk", "5\r\nhello\r\n0\r\n\r\n"},
      {"two chunks, both hex cases", "a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n"},
      {"zeros", "000\r\n\r\n"},
      {"leading zeros, 16 digits", "0000000000000003\r\nabc\r\n0000000000000000\r\n\r\n"},
      {"extension name", "5;ext\r\nhello\r\n0\r\n\r\n"},
      {"extension token value", "5;a=b;c=d-e\r\nhello\r\n0;last\r\n\r\n"},
      {"extension quoted value", "5;a=\"q \\\"x;y\\\\\"\r\nhello\r\n0\r\n\r\n"},
      {"extension empty quoted value", "1;a=\"\"\r\nx\r\n0\r\n\r\n"},
      {"extension with obs-text", "1;a=\"caf\xc3\xa9\"\r\nx\r\n0\r\n\r\n"},
      {"data that looks like framing", "7\r\n0\r\n\r\nxx\r\n0\r\n\r\n"},
      {"binary data", "4\r\n\0\r\n\xff\r\n0\r\n\r\n"s},
      {"trailers", "1\r\nx\r\n0\r\nTrailer-A: v\r\nX:\r\nX-B: \t a b \t\r\n\r\n"},
      {"trailer with obs-text", "0\r\nX: caf\xc3\xa9\r\n\r\n"},
  };
}

TEST(ChunkedDecoderTest, ValidBodiesEndExactlyBeforeTheNextMessage) {
  for (const Valid& v : valid_bodies()) {
    const std::string bytes = v.body + kNext;
    const Outcome expected{v.body.size(), BodyStatus::kDone};
    EXPECT_EQ(run_whole(bytes), expected) << v.name;
    EXPECT_EQ(run_byte_at_a_time(bytes), expected) << v.name;
    EXPECT_EQ(run_whole(v.body), expected) << v.name << ", nothing after it";
  }
}

TEST(ChunkedDecoderTest, EverySplitOfAShortBodyGivesTheSameResult) {
  const std::string bodies[] = {
      "0\r\n\r\nGET",           "5\r\nhello\r\n0\r\n\r\n", "1;a=\"\\\"\"\r\nx\r\n0\r\n\r\n",
      "0\r\nX: y\r\n\r\nnext",
      "3\r\nabc\r\n0\r\n\r",     // truncated: kMore
      "3\r\nabcd\r\n0\r\n\r\n",  // data longer than its size: kInvalid
      "2;a=b c\r\nxy",           // blank in an extension: kInvalid
  };
  for (const std::string& bytes : bodies) {
    ASSERT_LE(bytes.size(), 20u);
    const Outcome whole = run_whole(bytes);
    EXPECT_TRUE(EverySplitGives(bytes, whole)) << bytes;
  }
  EXPECT_EQ(run_whole(bodies[4]), (Outcome{bodies[4].size(), BodyStatus::kMore}));
  EXPECT_EQ(run_whole(bodies[5]), (Outcome{6, BodyStatus::kInvalid}));
  EXPECT_EQ(run_whole(bodies[6]), (Outcome{5, BodyStatus::kInvalid}));
}

TEST(ChunkedDecoderTest, EveryTwoCutSplitOfLongerBodiesGivesTheSameResult) {
  std::vector<std::string> bodies;
  for (const Valid& v : valid_bodies()) bodies.push_back(v.body + kNext);
  bodies.push_back("10\r\n" + std::string(16, 'd') + "\r\n8;x=\"y\"\r\n" + std::string(8, 'e') +
                   "\r\n0\r\nA: b\r\nC: d\r\n\r\n");
  bodies.push_back("5\r\nhello\r\n0\r\nX : y\r\n\r\n");  // invalid in the trailers
  for (const std::string& bytes : bodies) {
    const Outcome whole = run_whole(bytes);
    EXPECT_TRUE(EveryTwoCutSplitGives(bytes, whole)) << bytes;
    EXPECT_EQ(run_byte_at_a_time(bytes), whole) << bytes;
  }
}

TEST(ChunkedDecoderTest, EveryTruncationNeedsMore) {
  for (const Valid& v : valid_bodies()) {
    for (size_t n = 0; n < v.body.size(); ++n) {
      const std::string_view prefix = std::string_view(v.body).substr(0, n);
      EXPECT_EQ(run_whole(prefix), (Outcome{n, BodyStatus::kMore})) << v.name << " " << n;
    }
  }
}

struct Invalid {
  const char* name;
  std::string bytes;
  size_t at;  // the offending byte
};

std::vector<Invalid> invalid_bodies() {
  const std::string long_extension = "5;" + std::string(kMaxChunkLineBytes, 'a');
  return {
      {"empty input line", "\r\n", 0},
      {"not hex", "g\r\n", 0},
      {"blank before the size", " 5\r\nhello\r\n0\r\n\r\n", 0},
      {"blank after the size", "5 \r\nhello\r\n0\r\n\r\n", 1},
      {"tab after the size", "5\t\r\nhello\r\n0\r\n\r\n", 1},
      {"blank before an extension", "5 ;a\r\nhello\r\n0\r\n\r\n", 1},
      {"plus sign", "+5\r\nhello\r\n0\r\n\r\n", 0},
      {"minus sign", "-5\r\nhello\r\n0\r\n\r\n", 0},
      {"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", 1},
      {"17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", 16},
      {"2^63", "8000000000000000\r\nx", 15},
      {"2^64 - 1", "ffffffffffffffff\r\nx", 15},
      {"overflow past 2^64", "10000000000000000\r\n", 16},
      {"bare LF after the size", "5\nhello\r\n0\r\n\r\n", 1},
      {"bare CR after the size", "5\rhello\r\n0\r\n\r\n", 2},
      {"data then bare LF", "5\r\nhello\n0\r\n\r\n", 8},
      {"data then another byte", "5\r\nhelloX\r\n0\r\n\r\n", 8},
      {"data then CR without LF", "5\r\nhello\rX0\r\n\r\n", 9},
      {"data shorter than the size", "5\r\nhell\r\n0\r\n\r\n", 8},
      {"data longer than the size", "3\r\nhello\r\n0\r\n\r\n", 6},
      {"empty extension name", "5;\r\nhello\r\n0\r\n\r\n", 2},
      {"blank after ;", "5; a\r\nhello\r\n0\r\n\r\n", 2},
      {"blank before =", "5;a =b\r\nhello\r\n0\r\n\r\n", 3},
      {"blank after =", "5;a= b\r\nhello\r\n0\r\n\r\n", 4},
      {"empty extension value", "5;a=\r\nhello\r\n0\r\n\r\n", 4},
      {"blank in a token value", "5;a=b c\r\nhello\r\n0\r\n\r\n", 5},
      {"non-token extension name", "5;a(b\r\nhello\r\n0\r\n\r\n", 3},
      {"CR in a quoted value", "5;a=\"x\r\nhello\r\n0\r\n\r\n", 6},
      {"control char in a quoted value", "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", 5},
      {"control char after a backslash", "5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n", 6},
      {"bytes after a quoted value", "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", 7},
      {"size line too long", long_extension + "\r\nhello\r\n0\r\n\r\n", kMaxChunkLineBytes},
      {"bare LF after the last chunk", "0\n\r\n", 1},
      {"bare LF ends the body", "0\r\n\n", 3},
      {"CR then not LF ends the body", "0\r\n\r\r", 4},
      {"obs-fold in trailers", "0\r\nX: a\r\n b\r\n\r\n", 9},
      {"blank before a trailer", "0\r\n X: a\r\n\r\n", 3},
      {"blank before the colon", "0\r\nX : a\r\n\r\n", 4},
      {"empty trailer name", "0\r\n: a\r\n\r\n", 3},
      {"trailer without colon", "0\r\nX\r\n\r\n", 4},
      {"control char in a trailer", "0\r\nX: a\x01\r\n\r\n", 7},
      {"DEL in a trailer", "0\r\nX: a\x7f\r\n\r\n", 7},
      {"bare LF in a trailer", "0\r\nX: a\n\r\n", 7},
      {"bare CR in a trailer", "0\r\nX: a\rb\r\n\r\n", 8},
      {"a request where a body should be", "GET / HTTP/1.1\r\n", 0},
  };
}

TEST(ChunkedDecoderTest, MaliciousBodiesAreRefusedAtTheOffendingByte) {
  for (const Invalid& c : invalid_bodies()) {
    const Outcome expected{c.at, BodyStatus::kInvalid};
    EXPECT_EQ(run_whole(c.bytes), expected) << c.name;
    EXPECT_EQ(run_byte_at_a_time(c.bytes), expected) << c.name;
    if (c.bytes.size() < 200) {
      EXPECT_TRUE(EveryTwoCutSplitGives(c.bytes, expected)) << c.name;
    }
  }
}

TEST(ChunkedDecoderTest, LargestChunkSizeAndLineLength) {
  ChunkedDecoder decoder;
  BodyProgress p = decoder.consume(as_bytes("7fffffffffffffff\r\n"));
  EXPECT_EQ(p.status, BodyStatus::kMore);
  EXPECT_EQ(decoder.remaining_data(), kMaxChunkSize);

  // The size line may be kMaxChunkLineBytes long, CRLF included, and not one byte more.
  const std::string prefix = "5;";
  const std::string fits = prefix + std::string(kMaxChunkLineBytes - prefix.size() - 2, 'a');
  EXPECT_EQ(run_whole(fits + "\r\nhello\r\n0\r\n\r\n"),
            (Outcome{fits.size() + 14, BodyStatus::kDone}));
  EXPECT_EQ(run_whole(fits + "a\r\nhello\r\n0\r\n\r\n"),
            (Outcome{kMaxChunkLineBytes, BodyStatus::kInvalid}))
      << "the LF would be byte kMaxChunkLineBytes + 1";
  // The limit is per line: many long lines are fine.
  std::string many;
  for (int i = 0; i < 4; ++i) many += fits + "\r\nhello\r\n";
  many += "0\r\n\r\n";
  EXPECT_EQ(run_whole(many), (Outcome{many.size(), BodyStatus::kDone}));
}

TEST(ChunkedDecoderTest, TrailerSectionLimit) {
  // Trailer lines and the final CRLF: kMaxTrailerBytes in all, not one more.
  const std::string start = "0\r\n";
  const std::string name = "X-Pad: ";
  const std::string fits =
      start + name + std::string(kMaxTrailerBytes - name.size() - 4, 'p') + "\r\n\r\n";
  EXPECT_EQ(run_whole(fits), (Outcome{fits.size(), BodyStatus::kDone}));
  const std::string over =
      start + name + std::string(kMaxTrailerBytes - name.size() - 3, 'p') + "\r\n\r\n";
  EXPECT_EQ(run_whole(over), (Outcome{start.size() + kMaxTrailerBytes, BodyStatus::kInvalid}));
  std::string many_lines = start;
  while (many_lines.size() < start.size() + kMaxTrailerBytes) many_lines += "A: b\r\n";
  EXPECT_EQ(run_whole(many_lines + "\r\n").status, BodyStatus::kInvalid);
}

TEST(ChunkedDecoderTest, RemainingDataAndSkipData) {
  ChunkedDecoder decoder;
  EXPECT_EQ(decoder.remaining_data(), 0u);
  BodyProgress p = decoder.consume(as_bytes("a\r\nhel"));
  EXPECT_EQ(p.status, BodyStatus::kMore);
  EXPECT_EQ(p.used, 6u);
  EXPECT_EQ(decoder.remaining_data(), 7u);
  decoder.skip_data(4);  // "lo, " forwarded without a look (e.g. spliced)
  EXPECT_EQ(decoder.remaining_data(), 3u);
  p = decoder.consume(as_bytes("abc\r"));
  EXPECT_EQ(p.status, BodyStatus::kMore);
  EXPECT_EQ(decoder.remaining_data(), 0u) << "in the CRLF after the data";
  decoder.skip_data(0);
  p = decoder.consume(as_bytes("\n3\r\n"));
  EXPECT_EQ(decoder.remaining_data(), 3u);
  decoder.skip_data(3);
  EXPECT_EQ(decoder.remaining_data(), 0u);
  p = decoder.consume(as_bytes("\r\n0\r\n\r\nrest"));
  EXPECT_EQ(p.status, BodyStatus::kDone);
  EXPECT_EQ(p.used, 7u);
  EXPECT_TRUE(decoder.done());
}

TEST(ChunkedDecoderTest, DoneAndInvalidAreFinalUntilReset) {
  ChunkedDecoder decoder;
  BodyProgress p = decoder.consume(as_bytes("0\r\n\r\n0\r\n\r\n"));
  ASSERT_EQ(p.status, BodyStatus::kDone);
  EXPECT_EQ(p.used, 5u);
  p = decoder.consume(as_bytes("0\r\n\r\n"));
  EXPECT_EQ(p.status, BodyStatus::kDone);
  EXPECT_EQ(p.used, 0u);
  p = decoder.consume({});
  EXPECT_EQ(p.status, BodyStatus::kDone);

  decoder.reset();
  EXPECT_FALSE(decoder.done());
  p = decoder.consume(as_bytes("5\r\nhello\r\nz"));
  ASSERT_EQ(p.status, BodyStatus::kInvalid);
  EXPECT_EQ(p.used, 10u);
  EXPECT_TRUE(decoder.failed());
  p = decoder.consume(as_bytes("0\r\n\r\n"));
  EXPECT_EQ(p.status, BodyStatus::kInvalid);
  EXPECT_EQ(p.used, 0u);

  decoder.reset();
  p = decoder.consume(as_bytes("0\r\n\r\n"));
  EXPECT_EQ(p.status, BodyStatus::kDone);
}

TEST(ChunkedDecoderTest, EmptyInputNeedsMore) {
  ChunkedDecoder decoder;
  const BodyProgress p = decoder.consume({});
  EXPECT_EQ(p.status, BodyStatus::kMore);
  EXPECT_EQ(p.used, 0u);
}

TEST(ChunkedDecoderTest, LargeBodyInBufferSizedPieces) {
  // 100 chunks of 1000 bytes, fed in 8 KiB pieces as the proxy's buffers hold them.
  std::string body;
  for (int i = 0; i < 100; ++i)
    body += "3e8;n=" + std::to_string(i) + "\r\n" + std::string(1000, 'x') + "\r\n";
  body += "0\r\n\r\n";
  const std::string bytes = body + kNext;
  std::vector<size_t> cuts;
  for (size_t at = 8192; at < bytes.size(); at += 8192) cuts.push_back(at);
  EXPECT_EQ(run(bytes, cuts), (Outcome{body.size(), BodyStatus::kDone}));
}

}  // namespace
}  // namespace edgeproxy::http
