#include "host/common/validation.h"

#include <gtest/gtest.h>

#include <limits>

namespace quern::validation {
namespace {

using namespace std::string_literals;

TEST(Validation, Tags) {
  EXPECT_TRUE(check_tag("bash", "tag"));
  EXPECT_TRUE(check_tag("dedicated:f/team/hello-world_2.x", "tag"));
  EXPECT_TRUE(check_tag(std::string(kMaxTagBytes, 'a'), "tag"));
  for (const std::string& bad :
       {""s, "a b"s, "a\0b"s, "caf\xC3\xA9"s, "a,b"s, std::string(kMaxTagBytes + 1, 'a')}) {
    Status s = check_tag(bad, "tag");
    EXPECT_FALSE(s) << ::testing::PrintToString(bad);
    EXPECT_EQ(s.code(), StatusCode::invalid_argument);
    EXPECT_EQ(s.message().rfind("tag: ", 0), 0u) << s.message();
  }
}

TEST(Validation, StrictIntegersAndIds) {
  EXPECT_EQ(*parse_id("42", "job id"), 42);
  EXPECT_EQ(*parse_integer("-5", "n", -10, 10), -5);
  for (const std::string& bad :
       {""s, " 1"s, "1 "s, "+1"s, "0x10"s, "1e3"s, "9223372036854775808"s, "0"s, "-1"s, "1\0"s})
    EXPECT_FALSE(parse_id(bad, "job id")) << ::testing::PrintToString(bad);
  EXPECT_EQ(parse_id(" 1", "job id").message(),
            "job id: expected an integer from 1 to 9223372036854775807, got \" 1\"");
}

TEST(Validation, JsonIntegersAreRangeCheckedNotWrapped) {
  using J = nlohmann::json;
  EXPECT_EQ(*json_integer(J(50), "priority", 1, 100), 50);
  for (const J& bad : {J(4294967346ULL), J(18446744073709551615ULL), J(-1), J(5.0), J("5"), J(nullptr)}) {
    auto r = json_integer(bad, "priority", 1, 100);
    EXPECT_FALSE(r) << bad.dump();
    EXPECT_EQ(r.message(), "priority: expected an integer from 1 to 100");
  }
}

TEST(Validation, NumbersAreFiniteAndBounded) {
  using J = nlohmann::json;
  EXPECT_DOUBLE_EQ(*json_number(J(1.5), "delay_s", 0, 10), 1.5);
  EXPECT_FALSE(json_number(J(1e300), "delay_s", 0, 10));
  EXPECT_FALSE(json_number(J(std::numeric_limits<double>::infinity()), "delay_s", 0, 1e308));
  EXPECT_FALSE(json_number(J(-0.5), "delay_s", 0, 10));
  EXPECT_EQ(json_number(J("x"), "delay_s", 0, 10).message(), "delay_s: expected a number");
  EXPECT_TRUE(parse_number("2.5", "timeout_s", 0, 10));
  EXPECT_FALSE(parse_number("nan", "timeout_s", 0, 10));
  EXPECT_FALSE(parse_number("1e999", "timeout_s", 0, 10));
}

TEST(Validation, Text) {
  EXPECT_TRUE(check_text("caf\xC3\xA9", "label", 10));
  EXPECT_EQ(check_text("caf\xE9", "label", 10).message(), "label: not valid UTF-8");
  EXPECT_EQ(check_text("a\0b"s, "label", 10).message(), "label: must not hold NUL bytes");
  EXPECT_EQ(check_text("abcdef", "label", 3).message(), "label: at most 3 bytes, got 6");
}

}  // namespace
}  // namespace quern::validation
