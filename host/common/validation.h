// Checks of values that come from outside (HTTP requests, the CLI, config,
// agents), in one place so that every route refuses the same things with
// the same words. Each failure is Status::invalid with a message that
// starts with the field's name and says what was expected. The limits are
// listed in docs/LIMITS.md.
//
// Pure functions, thread-safe.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "host/common/status.h"

namespace quern::validation {

// A tag is 1..kMaxTagBytes of [A-Za-z0-9_.:/-] ("dedicated:" plus a
// 255-byte script path must fit).
inline constexpr size_t kMaxTagBytes = 300;
inline constexpr std::string_view kTagCharset = "[A-Za-z0-9_.:/-]";
bool is_tag_char(char c);
bool is_tag(std::string_view tag);
Status check_tag(std::string_view tag, std::string_view field);

// Text that will be stored: valid UTF-8, no NUL, at most max_bytes.
Status check_text(std::string_view text, std::string_view field, size_t max_bytes);

// Strict decimal integer text: an optional '-' then digits, nothing else (no
// spaces, no '+', no hex), within [lo, hi].
StatusOr<int64_t> parse_integer(std::string_view text, std::string_view field, int64_t lo, int64_t hi);
// A positive id (1 .. 2^63-1) as strict decimal text.
StatusOr<int64_t> parse_id(std::string_view text, std::string_view field);

// A non-negative finite decimal number text ("1.5"), within [lo, hi].
StatusOr<double> parse_number(std::string_view text, std::string_view field, double lo, double hi);

std::string range_message(std::string_view field, int64_t lo, int64_t hi);

// A size: "256M", "1.5G", "512K", "1048576" (K, M, G, T are powers of 1024;
// "B" or "iB" may follow), in whole bytes within [lo, 2^50]. The message is
// size_expectation(lo) after "field: ".
StatusOr<int64_t> parse_size(std::string_view text, std::string_view field, int64_t lo);
std::string size_expectation(int64_t lo);
// CPUs: "0.5", "2", from 0.01 to 1024, in thousandths of a CPU. The message
// is kCpusExpectation after "field: ".
StatusOr<int64_t> parse_cpus(std::string_view text, std::string_view field);
inline constexpr const char* kCpusExpectation = "expected a number of CPUs from 0.01 to 1024, like 0.5 or 2";

// A JSON integer within [lo, hi]. Floats ("5.0"), strings and numbers
// beyond 64 bits are refused, never wrapped or truncated.
template <typename Json>
StatusOr<int64_t> json_integer(const Json& v, std::string_view field, int64_t lo, int64_t hi) {
  bool in_range = false;
  int64_t n = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.template get<uint64_t>();
    in_range = u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    n = static_cast<int64_t>(u);
  } else if (v.is_number_integer()) {
    in_range = true;
    n = v.template get<int64_t>();
  }
  if (!in_range || n < lo || n > hi) return Status::invalid(range_message(field, lo, hi));
  return n;
}

// A finite JSON number (integer or not) within [lo, hi].
template <typename Json>
StatusOr<double> json_number(const Json& v, std::string_view field, double lo, double hi) {
  if (!v.is_number()) return Status::invalid(std::string(field) + ": expected a number");
  const double d = v.template get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    return Status::invalid(std::string(field) + ": expected a number from " + std::to_string(lo) + " to " +
                           std::to_string(hi));
  return d;
}

}  // namespace quern::validation
