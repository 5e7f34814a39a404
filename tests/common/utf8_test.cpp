#include "host/common/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace quern::text {
namespace {

using namespace std::string_literals;
const std::string R = std::string(kReplacement);

TEST(Utf8, ValidTextIsValid) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));                           // U+10FFFF
  EXPECT_TRUE(is_valid_utf8("a\0b"s));
}

TEST(Utf8, InvalidSequencesAreRefused) {
  for (const std::string& bad :
       {"caf\xE9"s, "\x80"s, "\xC0\xAF"s /* overlong '/' */, "\xE0\x80\xAF"s, "\xED\xA0\x80"s /* surrogate */,
        "\xF4\x90\x80\x80"s /* > U+10FFFF */, "\xF5\x80\x80\x80"s, "\xFF"s, "\xE2\x82"s /* truncated */})
    EXPECT_FALSE(is_valid_utf8(bad)) << ::testing::PrintToString(bad);
}

TEST(Utf8, StorableMeansValidWithoutNul) {
  EXPECT_TRUE(is_storable("caf\xC3\xA9"));
  EXPECT_FALSE(is_storable("a\0b"s));
  EXPECT_FALSE(is_storable("caf\xE9"));
}

TEST(Utf8, RepairReplacesEachMaximalInvalidSubpartAndNul) {
  Repairs r;
  EXPECT_EQ(to_storable("caf\xE9\n", &r), "caf" + R + "\n");
  EXPECT_EQ(r.invalid, 1u);
  EXPECT_EQ(r.nul, 0u);
  EXPECT_EQ(to_storable("a\0b"s, &r), "a" + R + "b");
  EXPECT_EQ(r.nul, 1u);
  // A truncated 3-byte sequence is one maximal subpart; the ASCII after it survives.
  EXPECT_EQ(to_storable("\xE2\x82z", &r), R + "z");
  EXPECT_EQ(r.invalid, 1u);
  // Surrogate lead E0 A0..: ED A0 is not a valid start of a 3-byte sequence: each byte replaced.
  EXPECT_EQ(to_storable("\xED\xA0\x80", &r), R + R + R);
  EXPECT_EQ(r.invalid, 3u);
  // Valid text is unchanged.
  const std::string ok = "\xF0\x9F\x98\x80 ok";
  EXPECT_EQ(to_storable(ok, &r), ok);
  EXPECT_FALSE(r.any());
}

TEST(Utf8, RepairedOutputIsAlwaysStorable) {
  // Every 1- and 2-byte string, and a few 3-byte ones: the repair's output is storable.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; b += 3) {
      const std::string in{static_cast<char>(a), static_cast<char>(b), static_cast<char>(0x80 + (a % 64))};
      ASSERT_TRUE(is_storable(to_storable(in))) << a << " " << b;
      ASSERT_TRUE(is_storable(to_storable(in.substr(0, 2))));
    }
  }
}

}  // namespace
}  // namespace quern::text
