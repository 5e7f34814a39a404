// Converts PostgreSQL results (text format) into the JSON the sql executor
// returns, and JSON arguments into text parameters.
//
// Values by column type: int2/int4/int8/oid → JSON integers, except int8
// beyond ±2^53 (not exact in a double) → string; float4/float8 → numbers
// (NaN, ±Infinity → string); numeric → integer when integral within ±2^53,
// a number when it has at most 15 significant digits, else its exact text;
// bool → true/false; json/jsonb → the parsed value; NULL → null; any other
// type → its text output.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

struct pg_result;

namespace quern::sql {

// {"columns": [names...], "rows": [[values...], ...], "affected": n}. affected
// is the count the command reported (rows returned by SELECT, rows changed by
// INSERT/UPDATE/DELETE/MERGE), 0 for commands without one.
nlohmann::ordered_json result_to_json(const pg_result* result);

// One value from its type OID and text output.
nlohmann::ordered_json value_to_json(unsigned type_oid, const char* text, std::size_t length);

// A job argument as a statement parameter: strings as they are, null as SQL
// NULL, anything else (numbers, booleans, objects, arrays) as its JSON text.
std::optional<std::string> param_text(const nlohmann::ordered_json& value);

}  // namespace quern::sql
