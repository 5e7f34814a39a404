// JSON that enters the host from outside: request bodies, job arguments,
// results from plugins and agents, config attributes, notifications.
//
// Every such text goes through parse_json(), which refuses nesting deeper
// than kMaxJsonDepth *before* anything recursive runs (nlohmann::json
// parses iteratively but copies, compares and dumps recursively; PostgreSQL
// parses jsonb recursively), and names what was wrong and where.
//
// Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "host/common/status.h"
#include "quern/limits.h"

namespace quern::json_input {

inline constexpr int kMaxJsonDepth = QUERN_MAX_JSON_DEPTH;

// What a lexical scan of JSON text found (no validation).
struct Scan {
  bool too_deep = false;    // arrays/objects nest deeper than the limit
  bool nul_escape = false;  // a string holds \u0000 (jsonb cannot store it)
};
Scan scan(std::string_view text, int max_depth = kMaxJsonDepth);

// Parses `text` as JSON. Errors (invalid_argument) start with `what` ("the
// request body", "args", "the job's result") and say which rule was broken:
// nesting deeper than the limit (checked first), syntax (with the position;
// a NUL byte anywhere is a syntax error), a number out of range. With
// `storable`, a \u0000 anywhere is refused too, so the value can go into a
// jsonb column as it is.
template <typename Json = nlohmann::json>
StatusOr<Json> parse(std::string_view text, std::string_view what, bool storable = true);

// The message of an error in the one shape above, for text that failed to
// parse (exposed for callers that parse with other options).
std::string depth_error(std::string_view what);

// Whether a parsed value can go into a jsonb column: no NUL character in
// any string or key (a value parsed with storable=false may hold one), and
// no nesting deeper than the limit (values built in code). Walks the value
// without recursion. Errors (invalid_argument) start with `what`.
template <typename Json>
Status check_storable(const Json& value, std::string_view what);

extern template StatusOr<nlohmann::json> parse<nlohmann::json>(std::string_view, std::string_view, bool);
extern template Status check_storable<nlohmann::json>(const nlohmann::json&, std::string_view);
extern template Status check_storable<nlohmann::ordered_json>(const nlohmann::ordered_json&,
                                                              std::string_view);
extern template StatusOr<nlohmann::ordered_json> parse<nlohmann::ordered_json>(std::string_view,
                                                                               std::string_view, bool);

}  // namespace quern::json_input
