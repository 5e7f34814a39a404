// Fuzz target: host/common/json_input.h, the one entry for JSON from outside.
//
// Properties, for json and ordered_json alike:
// - parse never crashes, whatever the bytes (LLVMFuzzerInitialize also
//   feeds it 1M-deep nesting once, beyond what -max_len lets the fuzzer try);
// - nesting deeper than the limit is refused with the depth error exactly
//   when quern_json_too_deep (sdk/include/quern/limits.h) says so;
// - every error is invalid_argument, starts with `what` and is storable text;
// - text with a NUL byte is refused (nlohmann's lexer alone ends the input
//   there, accepting "{}\0junk");
// - a parsed value dumps, and the dump parses back to an equal value within
//   the limit;
// - check_storable of a value parsed with storable=false agrees with whether
//   parse with storable=true accepts the text (and then gives the same value).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "host/common/json_input.h"
#include "host/common/utf8.h"
#include "quern/limits.h"

namespace {

using quern::StatusCode;
namespace json_input = quern::json_input;

template <typename Json>
void check(std::string_view text) {
  const bool too_deep = quern_json_too_deep(text.data(), text.size(), json_input::kMaxJsonDepth) != 0;
  const std::string depth_error = json_input::depth_error("x");
  auto loose = json_input::parse<Json>(text, "x", /*storable=*/false);
  auto strict = json_input::parse<Json>(text, "x", /*storable=*/true);

  for (const auto* r : {&loose, &strict}) {
    if (r->is_ok()) continue;
    FUZZ_CHECK_MSG(r->code() == StatusCode::invalid_argument, r->message());
    FUZZ_CHECK_MSG(r->message().rfind("x ", 0) == 0, r->message());
    FUZZ_CHECK_MSG(quern::text::is_storable(r->message()), r->message());
    FUZZ_CHECK_MSG((r->message() == depth_error) == too_deep, r->message());
  }
  if (too_deep) {
    FUZZ_CHECK(!loose && !strict);
    return;
  }
  if (!loose) {
    FUZZ_CHECK_MSG(!strict, loose.message());
    return;
  }

  // JSON text never holds a NUL byte (nlohmann alone would stop reading there).
  FUZZ_CHECK(text.find('\0') == std::string_view::npos);

  std::string dumped;
  try {
    dumped = loose->dump();
  } catch (const nlohmann::json::exception& e) {
    FUZZ_CHECK_MSG(false, std::string("dump threw: ") + e.what());
  }
  FUZZ_CHECK(quern_json_too_deep(dumped.data(), dumped.size(), json_input::kMaxJsonDepth) == 0);
  auto again = json_input::parse<Json>(dumped, "x", /*storable=*/false);
  FUZZ_CHECK_MSG(again.is_ok(), again.message());
  FUZZ_CHECK_MSG(*again == *loose, dumped);

  const quern::Status storable = json_input::check_storable(*loose, "x");
  FUZZ_CHECK_MSG(storable.is_ok() == strict.is_ok(), storable.message() + " / " + strict.message());
  if (!storable) {
    FUZZ_CHECK(storable.code() == StatusCode::invalid_argument);
    FUZZ_CHECK_MSG(storable.message() == strict.message(), storable.message() + " / " + strict.message());
  } else {
    FUZZ_CHECK(*strict == *loose);
  }
}

void check_both(std::string_view text) {
  check<nlohmann::ordered_json>(text);
  check<nlohmann::json>(text);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Deep nesting far beyond -max_len: arrays, objects, and both unclosed.
  constexpr size_t kDeep = 1000 * 1000;
  const std::string arrays = std::string(kDeep, '[') + std::string(kDeep, ']');
  std::string objects;
  for (size_t i = 0; i < kDeep; ++i) objects += "{\"a\":";
  objects += "1" + std::string(kDeep, '}');
  for (const std::string& text : {arrays, objects, std::string(kDeep, '['), std::string(kDeep, '{')}) {
    check_both(text);
    FUZZ_CHECK(!json_input::parse<nlohmann::json>(text, "x", false));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check_both(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
