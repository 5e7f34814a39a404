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

std::string size_expectation(int64_t lo) {
  return "expected a size like 256M, 1.5G or 512K (K, M, G, T: powers of 1024), at least " +
         std::to_string(lo) + " bytes";
}

StatusOr<int64_t> parse_size(std::string_view t, std::string_view field, int64_t lo) {
  size_t end = 0;
  while (end < t.size() && ((t[end] >= '0' && t[end] <= '9') || t[end] == '.')) ++end;
  std::string_view unit = t.substr(end);
  for (std::string_view tail : {"iB", "B"})
    if (unit.size() > tail.size() && unit.substr(unit.size() - tail.size()) == tail) {
      unit.remove_suffix(tail.size());
      break;
    }
  double scale = -1;
  if (unit.empty() || unit == "B")
    scale = 1;
  else if (unit == "K")
    scale = 1024.0;
  else if (unit == "M")
    scale = 1048576.0;
  else if (unit == "G")
    scale = 1073741824.0;
  else if (unit == "T")
    scale = 1099511627776.0;
  double value = -1;
  const std::string_view number = t.substr(0, end);
  auto [ptr, ec] =
      std::from_chars(number.data(), number.data() + number.size(), value, std::chars_format::fixed);
  const double bytes = value * scale;
  if (scale < 0 || number.empty() || ec != std::errc() || ptr != number.data() + number.size() ||
      !std::isfinite(bytes) || bytes < static_cast<double>(lo) || bytes > 1125899906842624.0)
    return Status::invalid(std::string(field) + ": " + size_expectation(lo));
  return static_cast<int64_t>(bytes);
}

StatusOr<int64_t> parse_cpus(std::string_view t, std::string_view field) {
  double cpus = -1;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), cpus, std::chars_format::fixed);
  if (t.empty() || ec != std::errc() || ptr != t.data() + t.size() || !(cpus >= 0.01 && cpus <= 1024))
    return Status::invalid(std::string(field) + ": " + kCpusExpectation);
  return static_cast<int64_t>(cpus * 1000 + 0.5);
}

}  // namespace quern::validation
