#include "host/common/validation.h"

#include <algorithm>
#include <cstdio>

#include "host/common/utf8.h"

namespace quern::validation {
namespace {

// A bounded, printable quote of client input for messages.
std::string quote(std::string_view s) {
  std::string q = "\"" + text::to_storable(s.substr(0, 80));
  if (s.size() > 80) q += "...";
  return q + "\"";
}

}  // namespace

bool is_tag_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == ':' || c == '/' || c == '-';
}

bool is_tag(std::string_view tag) {
  return !tag.empty() && tag.size() <= kMaxTagBytes && std::all_of(tag.begin(), tag.end(), is_tag_char);
}

Status check_tag(std::string_view tag, std::string_view field) {
  if (is_tag(tag)) return Status::ok();
  if (tag.empty()) return Status::invalid(std::string(field) + ": a tag must not be empty");
  if (tag.size() > kMaxTagBytes)
    return Status::invalid(std::string(field) + ": a tag is at most " + std::to_string(kMaxTagBytes) +
                           " bytes, got " + std::to_string(tag.size()));
  return Status::invalid(std::string(field) + ": tag " + quote(tag) + " may only hold " +
                         std::string(kTagCharset) + " characters");
}

Status check_text(std::string_view t, std::string_view field, size_t max_bytes) {
  if (t.size() > max_bytes)
    return Status::invalid(std::string(field) + ": at most " + std::to_string(max_bytes) + " bytes, got " +
                           std::to_string(t.size()));
  if (!text::is_valid_utf8(t)) return Status::invalid(std::string(field) + ": not valid UTF-8");
  if (t.find('\0') != std::string_view::npos)
    return Status::invalid(std::string(field) + ": must not hold NUL bytes");
  return Status::ok();
}

std::string range_message(std::string_view field, int64_t lo, int64_t hi) {
  return std::string(field) + ": expected an integer from " + std::to_string(lo) + " to " +
         std::to_string(hi);
}

StatusOr<int64_t> parse_integer(std::string_view t, std::string_view field, int64_t lo, int64_t hi) {
  int64_t n = 0;
  const char* end = t.data() + t.size();
  auto [ptr, ec] = std::from_chars(t.data(), end, n);
  // from_chars takes no '+' and no spaces; digits only after an optional '-'.
  if (t.empty() || ec != std::errc() || ptr != end || n < lo || n > hi)
    return Status::invalid(range_message(field, lo, hi) + ", got " + quote(t));
  return n;
}

StatusOr<int64_t> parse_id(std::string_view t, std::string_view field) {
  return parse_integer(t, field, 1, std::numeric_limits<int64_t>::max());
}

StatusOr<double> parse_number(std::string_view t, std::string_view field, double lo, double hi) {
  double d = 0;
  const char* end = t.data() + t.size();
  auto [ptr, ec] = std::from_chars(t.data(), end, d, std::chars_format::fixed);
  if (t.empty() || ec != std::errc() || ptr != end || !std::isfinite(d) || d < lo || d > hi)
    return Status::invalid(std::string(field) + ": expected a number from " + std::to_string(lo) + " to " +
                           std::to_string(hi) + ", got " + quote(t));
  return d;
}

}  // namespace quern::validation
