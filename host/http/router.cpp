// Router, Request helpers, JSON error bodies and URL decoding. The router's
// matching works on the raw (percent-encoded) path so that an encoded slash
// ("%2F") inside a {name} segment stays inside that segment.
#include <algorithm>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "host/http/http_server.h"
#include "host/http/url_codec.h"

namespace quern::http {
namespace detail {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view text, bool plus_as_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;  // needs two hex digits
      int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::map<std::string, std::string>> parse_query(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    auto name = percent_decode(piece.substr(0, eq), true);
    auto value =
        percent_decode(eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1), true);
    if (!name || !value) return std::nullopt;
    out[std::move(*name)] = std::move(*value);
  }
  return out;
}

}  // namespace detail

namespace {

// "/a/b/" → {"a", "b", ""}; "/" → {""}. Offsets of each segment in the path
// are returned too, for {name+} captures.
void split_path(const std::string& path, std::vector<std::string_view>& segments,
                std::vector<size_t>& offsets) {
  segments.clear();
  offsets.clear();
  size_t start = 1;
  while (true) {
    size_t slash = path.find('/', start);
    size_t end = slash == std::string::npos ? path.size() : slash;
    segments.emplace_back(path.data() + start, end - start);
    offsets.push_back(start);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
}

}  // namespace

const std::string& Request::header(const std::string& lower_name) const {
  static const std::string empty;
  auto it = headers.find(lower_name);
  return it == headers.end() ? empty : it->second;
}

Response json_error(int status, const std::string& code, const std::string& message) {
  nlohmann::ordered_json body;
  body["error"]["code"] = code;
  body["error"]["message"] = message;
  // Replacement of invalid UTF-8 keeps a message built from client input from throwing.
  return json_response(status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Response json_response(int status, const std::string& json_text) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = json_text;
  return r;
}

void Router::add(Route route) {
  if (route.pattern.empty() || route.pattern[0] != '/') {
    throw std::invalid_argument("route pattern must start with '/': " + route.pattern);
  }
  std::vector<std::string_view> parts;
  std::vector<size_t> offsets;
  split_path(route.pattern, parts, offsets);
  std::vector<PatternSegment> compiled;
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view p = parts[i];
    PatternSegment seg;
    if (p.size() >= 2 && p.front() == '{' && p.back() == '}') {
      std::string_view name = p.substr(1, p.size() - 2);
      seg.kind = PatternSegment::Kind::Param;
      if (!name.empty() && name.back() == '+') {
        if (i + 1 != parts.size()) {
          throw std::invalid_argument("{name+} must be the last segment: " + route.pattern);
        }
        seg.kind = PatternSegment::Kind::Rest;
        name.remove_suffix(1);
      }
      if (name.empty()) throw std::invalid_argument("empty parameter name in route " + route.pattern);
      seg.text = std::string(name);
    } else {
      seg.kind = PatternSegment::Kind::Literal;
      seg.text = std::string(p);
    }
    compiled.push_back(std::move(seg));
  }
  compiled_.push_back(std::move(compiled));
  routes_.push_back(std::move(route));
}

bool Router::matches(size_t index, const std::string& path,
                     std::map<std::string, std::string>& params) const {
  if (path.empty() || path[0] != '/') return false;
  std::vector<std::string_view> segments;
  std::vector<size_t> offsets;
  split_path(path, segments, offsets);
  const auto& pattern = compiled_[index];
  size_t i = 0;
  for (; i < pattern.size(); ++i) {
    const PatternSegment& seg = pattern[i];
    if (i >= segments.size()) return false;
    if (seg.kind == PatternSegment::Kind::Rest) {
      std::string_view rest(path.data() + offsets[i], path.size() - offsets[i]);
      auto value = detail::percent_decode(rest, false);
      if (rest.empty() || !value) return false;
      params[seg.text] = std::move(*value);
      return true;
    }
    auto value = detail::percent_decode(segments[i], false);
    if (!value) return false;
    if (seg.kind == PatternSegment::Kind::Literal) {
      if (*value != seg.text) return false;
    } else {
      if (value->empty()) return false;
      params[seg.text] = std::move(*value);
    }
  }
  return i == segments.size();
}

// Among the routes matching the path, the most specific wins: compared
// segment by segment, a literal beats {name}, which beats {name+}. So
// "/api/jobs/stats" wins over "/api/jobs/{id}" whatever the order of add().
const Route* Router::match(const std::string& method, const std::string& path,
                           std::map<std::string, std::string>& path_params, bool* path_known) const {
  if (path_known) *path_known = false;
  const Route* best = nullptr;
  size_t best_index = 0;
  std::map<std::string, std::string> params;
  for (size_t i = 0; i < routes_.size(); ++i) {
    params.clear();
    if (!matches(i, path, params)) continue;
    if (path_known) *path_known = true;
    if (routes_[i].method != method) continue;
    if (best == nullptr || more_specific(i, best_index)) {
      best = &routes_[i];
      best_index = i;
      path_params = params;
    }
  }
  return best;
}

bool Router::more_specific(size_t a, size_t b) const {
  auto rank = [](PatternSegment::Kind k) {
    return k == PatternSegment::Kind::Literal ? 2 : k == PatternSegment::Kind::Param ? 1 : 0;
  };
  const auto& pa = compiled_[a];
  const auto& pb = compiled_[b];
  for (size_t i = 0; i < std::min(pa.size(), pb.size()); ++i) {
    if (rank(pa[i].kind) != rank(pb[i].kind)) return rank(pa[i].kind) > rank(pb[i].kind);
  }
  return false;
}

std::vector<std::string> Router::allowed_methods(const std::string& path) const {
  std::vector<std::string> methods;
  std::map<std::string, std::string> params;
  for (size_t i = 0; i < routes_.size(); ++i) {
    params.clear();
    if (matches(i, path, params)) methods.push_back(routes_[i].method);
  }
  if (std::find(methods.begin(), methods.end(), "GET") != methods.end()) methods.push_back("HEAD");
  std::sort(methods.begin(), methods.end());
  methods.erase(std::unique(methods.begin(), methods.end()), methods.end());
  return methods;
}

}  // namespace quern::http
