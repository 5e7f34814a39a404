// A job's arguments as an HTTP request, validated before anything is sent.
//
// Args: {"method": "GET" (default), "url": "...", "headers": {name: value},
// "query": {name: value | [values]}, "body": "text" | "json": <any>,
// "timeout_s", "connect_timeout_s", "max_redirects" (default 5),
// "allow_status": [codes] | "fail_on_status": false}.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace quern::http {

struct Request {
  std::string method = "GET";
  std::string url;  // as given; query appended by build_url
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> query;  // in order, arrays expanded
  std::optional<std::string> body;                         // from "body" or "json"
  bool body_is_json = false;
  std::optional<double> timeout_s;
  std::optional<double> connect_timeout_s;
  long max_redirects = 5;
  std::vector<long> allow_status;
  bool fail_on_status = true;

  // Whether the job accepts this final status without failing.
  bool status_ok(long status) const;
  // The header named name (case-insensitive), if the job gave one.
  const std::string* header(std::string_view name) const;
};

// Throws std::invalid_argument with a message that names the bad argument.
Request parse_request(const nlohmann::ordered_json& args);

// The request URL with the query appended (names and values percent-encoded).
// Throws std::invalid_argument for a malformed URL or a scheme other than
// http / https.
std::string build_url(const Request& request);

}  // namespace quern::http
