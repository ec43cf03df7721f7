// The release build's compiler flags against a miscompile they must avoid: GCC 12.2 with AVX-512
// enabled (-march=native on an AVX-512 machine) SLP-vectorised the constant {100, 100, 100, 0}
// into a broadcast of 100, so comparing a vector with that literal gave the wrong answer
// (CMakeLists.txt adds -mno-avx512f for GCC before 13; this test fails without it).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace {

// Out of line, and fed from a volatile, so the comparison with the literal is compiled as it is in
// any test or product code, not folded at compile time.
[[gnu::noinline]] bool equals_literal(const std::vector<uint64_t>& v) {
  return v == std::vector<uint64_t>{100, 100, 100, 0};
}

TEST(ToolchainTest, AConstantVectorEndingInZeroIsNotABroadcast) {
  volatile uint64_t last = 0;
  const std::vector<uint64_t> v{100, 100, 100, last};
  EXPECT_TRUE(equals_literal(v));
  const std::vector<uint64_t> w{100, 100, 100, 100};
  EXPECT_FALSE(equals_literal(w));
}

}  // namespace
