#include "host/common/json_input.h"

#include <utility>
#include <vector>

#include "host/common/utf8.h"

namespace quern::json_input {

Scan scan(std::string_view text, int max_depth) {
  Scan s;
  s.too_deep = quern_json_too_deep(text.data(), text.size(), max_depth) != 0;
  // \u0000 can only appear escaped (a raw NUL inside a string is invalid
  // JSON), so look for the escape inside strings only.
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!in_string) {
      in_string = c == '"';
      continue;
    }
    if (c == '"') {
      in_string = false;
    } else if (c == '\\') {
      if (text.substr(i + 1, 5) == "u0000") {
        s.nul_escape = true;
        break;
      }
      ++i;
    }
  }
  return s;
}

std::string depth_error(std::string_view what) {
  return std::string(what) + " nests arrays/objects deeper than " + std::to_string(kMaxJsonDepth) +
         " levels (the limit for any JSON Quern accepts)";
}

template <typename Json>
StatusOr<Json> parse(std::string_view text, std::string_view what, bool storable) {
  const Scan s = scan(text);
  if (s.too_deep) return Status::invalid(depth_error(what));
  if (storable && s.nul_escape)
    return Status::invalid(std::string(what) + " holds \\u0000 (a NUL character), which cannot be stored");
  // A NUL byte is never valid JSON text (inside a string it must be escaped),
  // but nlohmann's lexer takes it for the end of the input and would accept
  // "{}\0anything" as {}.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos)
    return Status::invalid(std::string(what) + " is not valid JSON: a NUL byte at byte " +
                           std::to_string(nul + 1));
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 4: ..."
    std::string detail = e.what();
    if (size_t close = detail.find("] ");
        detail.rfind("[json.exception.", 0) == 0 && close != std::string::npos)
      detail.erase(0, close + 2);
    // The message quotes what was read, which may be any bytes.
    return Status::invalid(std::string(what) + " is not valid JSON: " + text::to_storable(detail));
  }
}

template <typename Json>
Status check_storable(const Json& value, std::string_view what) {
  const Status nul =
      Status::invalid(std::string(what) + " holds \\u0000 (a NUL character), which cannot be stored");
  std::vector<std::pair<const Json*, int>> stack{{&value, 1}};
  while (!stack.empty()) {
    auto [v, depth] = stack.back();
    stack.pop_back();
    if (v->is_string()) {
      if (v->template get_ref<const typename Json::string_t&>().find('\0') != std::string::npos) return nul;
      continue;
    }
    if (!v->is_structured()) continue;
    if (depth > kMaxJsonDepth) return Status::invalid(depth_error(what));
    if (v->is_object()) {
      for (auto it = v->begin(); it != v->end(); ++it) {
        if (it.key().find('\0') != std::string::npos) return nul;
        stack.push_back({&it.value(), depth + 1});
      }
    } else {
      for (const auto& e : *v) stack.push_back({&e, depth + 1});
    }
  }
  return Status::ok();
}

template Status check_storable<nlohmann::json>(const nlohmann::json&, std::string_view);
template Status check_storable<nlohmann::ordered_json>(const nlohmann::ordered_json&, std::string_view);
template StatusOr<nlohmann::json> parse<nlohmann::json>(std::string_view, std::string_view, bool);
template StatusOr<nlohmann::ordered_json> parse<nlohmann::ordered_json>(std::string_view, std::string_view,
                                                                        bool);

}  // namespace quern::json_input
