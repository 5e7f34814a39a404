#include "host/common/json_input.h"

#include <gtest/gtest.h>

#include <string>

namespace quern::json_input {
namespace {

std::string nested(size_t levels, const std::string& inner = "1") {
  return std::string(levels, '[') + inner + std::string(levels, ']');
}

TEST(JsonInput, ParsesWithinTheDepthLimit) {
  auto ok = parse(nested(kMaxJsonDepth), "args");
  ASSERT_TRUE(ok) << ok.message();
  auto obj = parse<nlohmann::ordered_json>(R"({"b": 1, "a": [true, null, "x"]})", "body");
  ASSERT_TRUE(obj);
  EXPECT_EQ(obj->begin().key(), "b");  // order kept
}

TEST(JsonInput, RefusesNestingBeyondTheLimitBeforeParsing) {
  for (size_t levels : {size_t(kMaxJsonDepth + 1), size_t(1000), size_t(60000), size_t(1000000)}) {
    auto r = parse(nested(levels), "args");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.code(), StatusCode::invalid_argument);
    EXPECT_NE(r.message().find("args nests arrays/objects deeper than 128 levels"), std::string::npos)
        << r.message();
  }
  // Objects count too; brackets inside strings do not.
  std::string deep_obj;
  for (int i = 0; i < 200; ++i) deep_obj += "{\"k\":";
  deep_obj += "1" + std::string(200, '}');
  EXPECT_FALSE(parse(deep_obj, "x"));
  EXPECT_TRUE(parse("[\"" + std::string(5000, '[') + "\"]", "x"));
}

TEST(JsonInput, NamesSyntaxErrorsAndTheirPlace) {
  auto r = parse("{\"a\": tru}", "the request body");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), StatusCode::invalid_argument);
  EXPECT_EQ(r.message().rfind("the request body is not valid JSON: parse error at line 1, column", 0), 0u)
      << r.message();
  // Invalid UTF-8 inside a string, and numbers out of range, are errors too.
  EXPECT_FALSE(parse("[\"caf\xE9\"]", "x"));
  EXPECT_FALSE(parse("[1e400]", "x"));
  // The message is storable text even when the input is not.
  auto bad = parse("\xFF\xFE", "x");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.message().find("not valid JSON"), std::string::npos);
}

TEST(JsonInput, RefusesANulByteWhereverItIs) {
  // nlohmann's lexer ends the input at a NUL byte: "{}\0junk" must not pass
  // as {} (found by tests/fuzz/fuzz_json_input).
  using namespace std::string_literals;
  for (const std::string& text : {"{}\0junk"s, "3.5\0"s, "[1]\0\0\0"s, "{\"a\":\"x\0y\"}"s, "\0"s}) {
    for (bool storable : {true, false}) {
      auto r = parse(text, "the request body", storable);
      ASSERT_FALSE(r) << text.size();
      EXPECT_EQ(r.code(), StatusCode::invalid_argument);
      EXPECT_EQ(r.message().rfind("the request body is not valid JSON", 0), 0u) << r.message();
    }
  }
  EXPECT_EQ(parse("{} \0"s, "x").message(), "x is not valid JSON: a NUL byte at byte 4");
}

TEST(JsonInput, NulCharactersAreRefusedWhenStorableIsAsked) {
  EXPECT_FALSE(parse(R"({"a": "x\u0000y"})", "the job's result"));
  EXPECT_EQ(parse(R"({"a": "x\u0000y"})", "r").message(),
            "r holds \\u0000 (a NUL character), which cannot be stored");
  EXPECT_FALSE(parse(R"({"\u0000": 1})", "r"));
  EXPECT_TRUE(parse(R"({"a": "x\\u0000y"})", "r"));  // an escaped backslash, then text
  auto lenient = parse(R"({"a": "x\u0000y"})", "r", /*storable=*/false);
  ASSERT_TRUE(lenient);
  EXPECT_FALSE(check_storable(*lenient, "args"));
  EXPECT_EQ(check_storable(*lenient, "args").message(),
            "args holds \\u0000 (a NUL character), which cannot be stored");
  EXPECT_TRUE(check_storable(nlohmann::json{{"a", {1, "b"}}}, "args"));
}

TEST(JsonInput, CheckStorableBoundsDepthOfBuiltValues) {
  nlohmann::json v = 1;
  for (int i = 0; i < kMaxJsonDepth + 5; ++i) v = nlohmann::json::array({std::move(v)});
  EXPECT_FALSE(check_storable(v, "v"));
}

}  // namespace
}  // namespace quern::json_input
