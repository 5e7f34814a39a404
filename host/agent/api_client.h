// A small JSON-over-HTTP client for the Quern API (libcurl): used by the
// agent and by the CLI's client commands (--server URL --token T).
//
// Thread-safety: one ApiClient per thread (it owns a curl easy handle, which
// keeps the connection alive between requests).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "host/common/status.h"

namespace quern::agent {

struct ApiResponse {
  int status = 0;
  std::string body;
  std::string content_type;
  // The parsed body when it is JSON (null otherwise).
  nlohmann::ordered_json json() const;
  // The API's error message ({"error": {"message"}}), or the raw body.
  std::string error_message() const;
};

// The Status code of an HTTP error answer: 400/413/422 invalid_argument (the
// same request fails again), 404 not_found, 409 conflict, 5xx/408/429
// unavailable, anything else internal.
StatusCode code_for_http_status(int status);

class ApiClient {
 public:
  // base_url like "http://127.0.0.1:8420"; token sent as a bearer token.
  ApiClient(std::string base_url, std::string token);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // A transport failure (refused, timed out, reset) is an error Status; any
  // HTTP answer, 4xx/5xx included, is a response.
  StatusOr<ApiResponse> request(const std::string& method, const std::string& path,
                                const std::string& body = "",
                                std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // request() + a 2xx check + JSON parse; anything else is an error naming
  // the status, with its code (code_for_http_status; a transport failure or
  // a body that is not JSON is unavailable).
  StatusOr<nlohmann::ordered_json> call(const std::string& method, const std::string& path,
                                        const nlohmann::ordered_json& body = nullptr,
                                        std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  std::string base_url_;
  std::string token_;
  void* curl_;  // CURL*
};

}  // namespace quern::agent
