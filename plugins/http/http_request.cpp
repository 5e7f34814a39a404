#include "http_request.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "http_text.h"

namespace quern::http {
namespace {

using nlohmann::ordered_json;

// RFC 9110 token characters (methods and header names).
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

std::string scalar_text(const std::string& arg, const ordered_json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number() || v.is_boolean()) return v.dump();
  if (v.is_null()) return "";
  throw std::invalid_argument("\"" + arg + "\" values must be strings, numbers or booleans");
}

double positive_number(const ordered_json& args, const char* name) {
  const auto& v = args[name];
  if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>()))
    throw std::invalid_argument(std::string("\"") + name + "\" must be a positive number of seconds");
  return v.get<double>();
}

struct UrlDeleter {
  void operator()(CURLU* u) const noexcept { curl_url_cleanup(u); }
};
struct CurlFree {
  void operator()(char* p) const noexcept { curl_free(p); }
};

std::string escape(std::string_view s) {
  std::unique_ptr<char, CurlFree> e(curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size())));
  if (!e) throw std::bad_alloc();
  return e.get();
}

}  // namespace

bool Request::status_ok(long status) const {
  if (!fail_on_status) return true;
  if (status >= 200 && status < 300) return true;
  return std::find(allow_status.begin(), allow_status.end(), status) != allow_status.end();
}

const std::string* Request::header(std::string_view name) const {
  const std::string wanted = to_lower(name);
  for (const auto& [n, v] : headers)
    if (to_lower(n) == wanted) return &v;
  return nullptr;
}

Request parse_request(const ordered_json& args) {
  if (!args.is_object()) throw std::invalid_argument("args must be an object with at least \"url\"");
  Request r;
  for (const auto& [key, value] : args.items()) {
    if (key == "method") {
      if (!value.is_string()) throw std::invalid_argument("\"method\" must be a string");
      r.method = value.get<std::string>();
      std::transform(r.method.begin(), r.method.end(), r.method.begin(),
                     [](char c) { return std::toupper(c); });
      if (!is_token(r.method)) throw std::invalid_argument("\"method\" is not a valid HTTP method");
    } else if (key == "url") {
      if (!value.is_string() || value.get<std::string>().empty())
        throw std::invalid_argument("\"url\" must be a non-empty string");
      r.url = value.get<std::string>();
    } else if (key == "headers") {
      if (!value.is_object()) throw std::invalid_argument("\"headers\" must be an object");
      for (const auto& [name, v] : value.items()) {
        if (!is_token(name)) throw std::invalid_argument("header name '" + name + "' is not valid");
        std::string text = scalar_text("headers", v);
        if (text.find_first_of("\r\n", 0) != std::string::npos || text.find('\0') != std::string::npos)
          throw std::invalid_argument("header '" + name + "' contains a line break");
        r.headers.emplace_back(name, std::move(text));
      }
    } else if (key == "query") {
      if (!value.is_object()) throw std::invalid_argument("\"query\" must be an object");
      for (const auto& [name, v] : value.items()) {
        if (v.is_array()) {
          for (const auto& item : v) r.query.emplace_back(name, scalar_text("query", item));
        } else {
          r.query.emplace_back(name, scalar_text("query", v));
        }
      }
    } else if (key == "body") {
      if (!value.is_string())
        throw std::invalid_argument("\"body\" must be a string (use \"json\" for JSON)");
      r.body = value.get<std::string>();
    } else if (key == "json") {
      r.body = value.dump(-1, ' ', false, ordered_json::error_handler_t::strict);
      r.body_is_json = true;
    } else if (key == "timeout_s") {
      r.timeout_s = positive_number(args, "timeout_s");
    } else if (key == "connect_timeout_s") {
      r.connect_timeout_s = positive_number(args, "connect_timeout_s");
    } else if (key == "max_redirects") {
      if (!value.is_number_integer() || value.get<long>() < 0 || value.get<long>() > 50)
        throw std::invalid_argument("\"max_redirects\" must be an integer from 0 to 50");
      r.max_redirects = value.get<long>();
    } else if (key == "allow_status") {
      if (!value.is_array()) throw std::invalid_argument("\"allow_status\" must be an array of status codes");
      for (const auto& s : value) {
        if (!s.is_number_integer())
          throw std::invalid_argument("\"allow_status\" must be an array of status codes");
        r.allow_status.push_back(s.get<long>());
      }
    } else if (key == "fail_on_status") {
      if (!value.is_boolean()) throw std::invalid_argument("\"fail_on_status\" must be true or false");
      r.fail_on_status = value.get<bool>();
    } else {
      throw std::invalid_argument("unknown argument \"" + key + "\"");
    }
  }
  if (r.url.empty()) throw std::invalid_argument("\"url\" is required");
  if (args.contains("body") && args.contains("json"))
    throw std::invalid_argument("give \"body\" or \"json\", not both");
  return r;
}

std::string build_url(const Request& request) {
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u) throw std::bad_alloc();
  // NON_SUPPORT_SCHEME: parse any scheme, so that the error below can say
  // which one was refused.
  if (CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, request.url.c_str(), CURLU_NON_SUPPORT_SCHEME);
      rc != CURLUE_OK)
    throw std::invalid_argument(std::string("invalid url: ") + curl_url_strerror(rc));
  char* scheme_raw = nullptr;
  if (curl_url_get(u.get(), CURLUPART_SCHEME, &scheme_raw, 0) != CURLUE_OK)
    throw std::invalid_argument("invalid url: no scheme");
  std::unique_ptr<char, CurlFree> scheme(scheme_raw);
  const std::string s = to_lower(scheme.get());
  if (s != "http" && s != "https")
    throw std::invalid_argument("unsupported scheme '" + s + "': only http and https are allowed");
  for (const auto& [name, value] : request.query) {
    const std::string pair = escape(name) + "=" + escape(value);
    if (CURLUcode rc = curl_url_set(u.get(), CURLUPART_QUERY, pair.c_str(), CURLU_APPENDQUERY);
        rc != CURLUE_OK)
      throw std::invalid_argument(std::string("cannot add the query: ") + curl_url_strerror(rc));
  }
  char* full_raw = nullptr;
  if (CURLUcode rc = curl_url_get(u.get(), CURLUPART_URL, &full_raw, 0); rc != CURLUE_OK)
    throw std::invalid_argument(std::string("invalid url: ") + curl_url_strerror(rc));
  std::unique_ptr<char, CurlFree> full(full_raw);
  return full.get();
}

}  // namespace quern::http
