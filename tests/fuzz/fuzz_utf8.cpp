// Fuzz target: host/common/utf8.h (UTF-8 checks and repair).
//
// Properties, for any bytes x:
// - to_storable(x) is storable, and repairing it again changes nothing;
// - storable x comes back unchanged with no repairs; otherwise something was
//   repaired; the output grows by at most 3 bytes per input byte;
// - append_storable appends exactly what to_storable returns;
// - is_storable(x) is "no NUL and is_valid_utf8(x)";
// - is_valid_utf8 agrees with nlohmann::json, an independent decoder:
//   dumping a JSON string of x with error_handler::strict throws iff x is
//   invalid;
// - where nlohmann's dump does not escape anything (no control characters,
//   quotes or backslashes), its error_handler::replace output is
//   to_storable's: both replace each maximal invalid subpart by one U+FFFD.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "host/common/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace text = quern::text;
  const std::string_view x(reinterpret_cast<const char*>(data), size);

  text::Repairs r;
  const std::string s = text::to_storable(x, &r);
  FUZZ_CHECK(text::is_storable(s));
  FUZZ_CHECK(text::is_valid_utf8(s));
  FUZZ_CHECK(s.size() <= 3 * x.size());
  FUZZ_CHECK(text::to_storable(s) == s);

  const bool has_nul = x.find('\0') != std::string_view::npos;
  const bool valid = text::is_valid_utf8(x);
  FUZZ_CHECK(text::is_storable(x) == (valid && !has_nul));
  if (text::is_storable(x)) {
    FUZZ_CHECK(s == x);
    FUZZ_CHECK(!r.any());
  } else {
    FUZZ_CHECK(r.any());
    FUZZ_CHECK(s != x);
  }
  FUZZ_CHECK((r.invalid == 0) == valid);
  size_t nuls = 0;
  for (char c : x) nuls += c == '\0';
  FUZZ_CHECK(r.nul == nuls);

  std::string out = "prefix";
  const text::Repairs r2 = text::append_storable(out, x);
  FUZZ_CHECK(out == "prefix" + s);
  FUZZ_CHECK(r2.invalid == r.invalid && r2.nul == r.nul);

  const nlohmann::json j = std::string(x);
  bool threw = false;
  try {
    (void)j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  } catch (const nlohmann::json::type_error&) {
    threw = true;
  }
  FUZZ_CHECK(threw == !valid);

  bool plain = true;
  for (char c : x) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || c == '"' || c == '\\') plain = false;
  }
  if (plain) {
    const std::string replaced = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    FUZZ_CHECK(replaced == "\"" + s + "\"");
  }
  return 0;
}
