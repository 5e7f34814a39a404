// Small text helpers of the http executor: UTF-8 validation, base64, and the
// content-type test for JSON bodies.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace quern::http {

// True when s is well-formed UTF-8 (no overlongs, surrogates or values past
// U+10FFFF); NUL bytes are allowed (JSON escapes them).
bool is_valid_utf8(std::string_view s);

// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

// application/json, text/json, or any application/<x>+json, with or without
// parameters; case-insensitive.
bool is_json_content_type(std::string_view content_type);

std::string to_lower(std::string_view s);

}  // namespace quern::http
