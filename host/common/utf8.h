// UTF-8 checks and repair for text that comes from outside the host: job
// output, request paths and queries, names in requests.
//
// PostgreSQL `text` and `jsonb` (in a UTF8 database) hold only valid UTF-8
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF) and
// never a NUL. Text that breaks either rule must be refused (client input:
// a 400 naming the field) or repaired before storage (job output, which is
// bytes: docs/LIMITS.md "Job output").
//
// Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace quern::text {

// U+FFFD REPLACEMENT CHARACTER, what repair puts in place of bad bytes.
inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Whether s is valid UTF-8 (RFC 3629). NUL bytes are valid UTF-8.
bool is_valid_utf8(std::string_view s);

// Whether PostgreSQL can store s as text: valid UTF-8 without NUL bytes.
bool is_storable(std::string_view s);

// What repair changed.
struct Repairs {
  size_t invalid = 0;  // maximal invalid subsequences replaced by U+FFFD
  size_t nul = 0;      // NUL bytes replaced by U+FFFD
  bool any() const { return invalid != 0 || nul != 0; }
  Repairs& operator+=(const Repairs& o) {
    invalid += o.invalid;
    nul += o.nul;
    return *this;
  }
};

// Appends `in` to `out` made storable: each maximal invalid subsequence
// (Unicode's "substitution of maximal subparts", as WHATWG decoders do) and
// each NUL byte becomes U+FFFD. Valid input is appended unchanged. The
// output grows by at most 3 bytes per input byte.
Repairs append_storable(std::string& out, std::string_view in);

// The same, returning a new string.
std::string to_storable(std::string_view in, Repairs* repairs = nullptr);

}  // namespace quern::text
