#include "sql_values.h"

#include <libpq-fe.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "quern/limits.h"

namespace quern::sql {
namespace {

// Type OIDs from PostgreSQL's pg_type.dat (stable across versions).
constexpr unsigned kBool = 16, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kJson = 114, kFloat4 = 700,
                   kFloat8 = 701, kNumeric = 1700, kJsonb = 3802;
constexpr int64_t kMaxExact = int64_t{1} << 53;

using nlohmann::ordered_json;

std::optional<int64_t> parse_int(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

bool exact_integer(int64_t v) { return v >= -kMaxExact && v <= kMaxExact; }

// Significant digits of a plain decimal text ("-001.2300" → 3: "123").
int significant_digits(std::string_view s) {
  std::string digits;
  for (char c : s) {
    if (c == 'e' || c == 'E') break;
    if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
  }
  const auto first = digits.find_first_not_of('0');
  if (first == std::string::npos) return 0;
  const auto last = digits.find_last_not_of('0');
  return static_cast<int>(last - first + 1);
}

ordered_json numeric_to_json(std::string_view s) {
  if (auto v = parse_int(s)) return exact_integer(*v) ? ordered_json(*v) : ordered_json(std::string(s));
  if (s.find_first_not_of("+-0123456789.eE") != std::string_view::npos)
    return std::string(s);  // NaN, Infinity
  if (significant_digits(s) > 15) return std::string(s);
  const std::string text(s);
  const double d = std::strtod(text.c_str(), nullptr);
  return std::isfinite(d) ? ordered_json(d) : ordered_json(text);
}

}  // namespace

ordered_json value_to_json(unsigned type_oid, const char* text, std::size_t length) {
  const std::string_view s(text, length);
  switch (type_oid) {
    case kBool:
      return s == "t";
    case kInt2:
    case kInt4:
    case kInt8:
    case kOid: {
      auto v = parse_int(s);
      if (v && exact_integer(*v)) return *v;
      return std::string(s);
    }
    case kFloat4:
    case kFloat8: {
      const std::string t(s);
      char* end = nullptr;
      const double d = std::strtod(t.c_str(), &end);
      if (end == t.c_str() + t.size() && std::isfinite(d)) return d;
      return t;
    }
    case kNumeric:
      return numeric_to_json(s);
    case kJson:
    case kJsonb: {
      // Nested past the host's limit: kept as its text.
      if (quern_json_too_deep(s.data(), s.size(), QUERN_MAX_JSON_DEPTH - 8)) return std::string(s);
      ordered_json v = ordered_json::parse(s.begin(), s.end(), nullptr, /*allow_exceptions=*/false);
      return v.is_discarded() ? ordered_json(std::string(s)) : v;
    }
    default:
      return std::string(s);
  }
}

ordered_json result_to_json(const pg_result* r) {
  auto* result = const_cast<PGresult*>(r);  // libpq's getters take non-const pointers
  ordered_json out = ordered_json::object();
  ordered_json columns = ordered_json::array();
  const int ncols = PQnfields(result);
  for (int c = 0; c < ncols; ++c) columns.push_back(PQfname(result, c));
  ordered_json rows = ordered_json::array();
  const int nrows = PQntuples(result);
  for (int row = 0; row < nrows; ++row) {
    ordered_json values = ordered_json::array();
    for (int c = 0; c < ncols; ++c) {
      if (PQgetisnull(result, row, c)) {
        values.push_back(nullptr);
      } else {
        values.push_back(value_to_json(PQftype(result, c), PQgetvalue(result, row, c),
                                       static_cast<std::size_t>(PQgetlength(result, row, c))));
      }
    }
    rows.push_back(std::move(values));
  }
  out["columns"] = std::move(columns);
  out["rows"] = std::move(rows);
  const std::string_view affected = PQcmdTuples(result);
  out["affected"] = parse_int(affected).value_or(0);
  return out;
}

std::optional<std::string> param_text(const ordered_json& value) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

}  // namespace quern::sql
