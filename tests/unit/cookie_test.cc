// Cookie: tag | generation (24 bits) | index (32 bits) packed into one 64-bit value and back.
#include "edgeproxy/cookie.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace edgeproxy {
namespace {

constexpr CookieTag kAllTags[] = {CookieTag::kListener, CookieTag::kControl, CookieTag::kClient,
                                  CookieTag::kUpstream};

static_assert(Cookie::unpack(Cookie::pack(CookieTag::kClient, Handle{9, 4})).handle == Handle{9, 4},
              "pack/unpack is usable at compile time");

TEST(CookieTest, RoundTripEveryTagWithExtremeValues) {
  const uint32_t indexes[] = {0, 1, 0x12345678, UINT32_MAX - 1, UINT32_MAX};
  const uint32_t generations[] = {0, 1, 0x00ABCDEF, kGenerationMask - 1, kGenerationMask};
  for (const CookieTag tag : kAllTags) {
    for (const uint32_t index : indexes) {
      for (const uint32_t generation : generations) {
        const uint64_t v = Cookie::pack(tag, Handle{index, generation});
        const Cookie c = Cookie::unpack(v);
        EXPECT_EQ(c.tag, tag) << "index " << index << " generation " << generation;
        EXPECT_EQ(c.handle.index, index) << "tag " << static_cast<int>(tag);
        EXPECT_EQ(c.handle.generation, generation) << "tag " << static_cast<int>(tag);
        EXPECT_EQ(Cookie::pack(c.tag, c.handle), v);
      }
    }
  }
}

TEST(CookieTest, LayoutIsTagGenerationIndex) {
  EXPECT_EQ(Cookie::pack(CookieTag::kClient, Handle{5, 7}),
            (uint64_t{3} << 56) | (uint64_t{7} << 32) | uint64_t{5});
  EXPECT_EQ(Cookie::pack(CookieTag::kUpstream, Handle{UINT32_MAX, kGenerationMask}),
            0x04FFFFFFFFFFFFFFull);
  EXPECT_EQ(Cookie::pack(CookieTag::kListener, Handle{0, 0}), uint64_t{1} << 56);
}

TEST(CookieTest, GenerationIsMaskedTo24Bits) {
  for (const CookieTag tag : kAllTags) {
    const uint64_t v = Cookie::pack(tag, Handle{42, 0xFF123456u});
    const Cookie c = Cookie::unpack(v);
    EXPECT_EQ(c.tag, tag) << "high generation bits must not leak into the tag";
    EXPECT_EQ(c.handle.index, 42u);
    EXPECT_EQ(c.handle.generation, 0x123456u);
    EXPECT_EQ(v, Cookie::pack(tag, Handle{42, 0x123456u}));
  }
  EXPECT_EQ(Cookie::pack(CookieTag::kClient, Handle{1, kGenerationMask + 1}),
            Cookie::pack(CookieTag::kClient, Handle{1, 0}));
}

TEST(CookieTest, DistinctHandlesGiveDistinctCookies) {
  const uint64_t a = Cookie::pack(CookieTag::kClient, Handle{1, 2});
  EXPECT_NE(a, Cookie::pack(CookieTag::kUpstream, Handle{1, 2}));
  EXPECT_NE(a, Cookie::pack(CookieTag::kClient, Handle{2, 2}));
  EXPECT_NE(a, Cookie::pack(CookieTag::kClient, Handle{1, 3}));
}

TEST(CookieTest, UnpackOfArbitraryValueMasksGeneration) {
  const Cookie c = Cookie::unpack(0x03FFFFFF00000010ull);
  EXPECT_EQ(c.tag, CookieTag::kClient);
  EXPECT_EQ(c.handle.index, 0x10u);
  EXPECT_EQ(c.handle.generation, kGenerationMask);
}

}  // namespace
}  // namespace edgeproxy
