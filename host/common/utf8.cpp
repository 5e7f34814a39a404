#include "host/common/utf8.h"

#include <cstdint>

namespace quern::text {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes
// there do not start one. When 0, *bad_len is the length of the maximal
// invalid subpart to replace (at least 1).
size_t sequence_length(std::string_view s, size_t i, size_t* bad_len) {
  const auto c = static_cast<uint8_t>(s[i]);
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    *bad_len = 1;  // C0, C1, F5..FF, or a stray continuation byte
    return 0;
  }
  size_t k = 1;
  for (; k <= need; ++k) {
    if (i + k >= s.size()) break;
    const auto b = static_cast<uint8_t>(s[i + k]);
    const uint8_t l = k == 1 ? lo : 0x80;
    const uint8_t h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) break;
  }
  if (k > need) return need + 1;
  *bad_len = k;  // the lead byte plus the continuation bytes that were right
  return 0;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  size_t bad = 0;
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = sequence_length(s, i, &bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool is_storable(std::string_view s) { return s.find('\0') == std::string_view::npos && is_valid_utf8(s); }

Repairs append_storable(std::string& out, std::string_view in) {
  Repairs r;
  size_t i = 0;
  size_t run = 0;  // start of the pending run of good bytes
  auto flush = [&](size_t end) {
    if (end > run) out.append(in.data() + run, end - run);
  };
  while (i < in.size()) {
    const auto c = static_cast<uint8_t>(in[i]);
    if (c != 0 && c < 0x80) {
      ++i;
      continue;
    }
    if (c == 0) {
      flush(i);
      out.append(kReplacement);
      ++r.nul;
      run = ++i;
      continue;
    }
    size_t bad = 0;
    const size_t n = sequence_length(in, i, &bad);
    if (n > 0) {
      i += n;
      continue;
    }
    flush(i);
    out.append(kReplacement);
    ++r.invalid;
    i += bad;
    run = i;
  }
  flush(in.size());
  return r;
}

std::string to_storable(std::string_view in, Repairs* repairs) {
  std::string out;
  out.reserve(in.size());
  Repairs r = append_storable(out, in);
  if (repairs) *repairs = r;
  return out;
}

}  // namespace quern::text
