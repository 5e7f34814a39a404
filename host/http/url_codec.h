// Percent-decoding of request targets (RFC 3986) and query-string parsing.
// Pure functions, thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace quern::http::detail {

// Decodes %XX escapes; with plus_as_space, '+' becomes ' ' (query strings,
// application/x-www-form-urlencoded). nullopt on a malformed escape ("%4", "%zz").
std::optional<std::string> percent_decode(std::string_view text, bool plus_as_space);

// Parses "a=1&b=x%20y&flag" into {a: "1", b: "x y", flag: ""}; the last of a
// repeated name wins; empty pieces ("a=1&&b=2") are skipped. nullopt on a
// malformed escape.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view query);

}  // namespace quern::http::detail
