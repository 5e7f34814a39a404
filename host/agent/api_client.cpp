#include "host/agent/api_client.h"

#include <curl/curl.h>

#include <mutex>

#include "host/common/json_input.h"
#include "host/common/utf8.h"

namespace quern::agent {
namespace {

std::once_flag g_curl_init;

size_t on_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

}  // namespace

nlohmann::ordered_json ApiResponse::json() const {
  auto parsed = json_input::parse<nlohmann::ordered_json>(body, "the server's answer");
  return parsed ? std::move(parsed).value() : nlohmann::ordered_json();
}

std::string ApiResponse::error_message() const {
  auto j = json();
  if (j.is_object() && j.contains("error") && j["error"].is_object() && j["error"].contains("message") &&
      j["error"]["message"].is_string())
    return j["error"]["message"].get<std::string>();
  return text::to_storable(body.substr(0, 2000));
}

StatusCode code_for_http_status(int status) {
  switch (status) {
    case 400:
    case 413:
    case 422:
      return StatusCode::invalid_argument;  // sending the same again fails again
    case 404:
      return StatusCode::not_found;
    case 409:
      return StatusCode::conflict;
    default:
      // 401/403 (a revoked token) are not the data's fault: internal, retried.
      return status >= 500 || status == 408 || status == 429 ? StatusCode::unavailable : StatusCode::internal;
  }
}

ApiClient::ApiClient(std::string base_url, std::string token)
    : base_url_(std::move(base_url)), token_(std::move(token)) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  curl_ = curl_easy_init();
}

ApiClient::~ApiClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

StatusOr<ApiResponse> ApiClient::request(const std::string& method, const std::string& path,
                                         const std::string& body, std::chrono::milliseconds timeout) {
  CURL* c = static_cast<CURL*>(curl_);
  if (c == nullptr) return Status::error("libcurl could not be initialised");
  curl_easy_reset(c);  // keeps the connection cache
  const std::string url = base_url_ + path;
  ApiResponse resp;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp.body);
  curl_slist* headers = nullptr;
  const std::string auth = "Authorization: Bearer " + token_;
  headers = curl_slist_append(headers, auth.c_str());
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  if (!body.empty() || method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  const CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) return Status::unavailable(method + " " + url + ": " + curl_easy_strerror(rc));
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  char* ctype = nullptr;
  curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
  resp.status = static_cast<int>(status);
  if (ctype) resp.content_type = ctype;
  return resp;
}

StatusOr<nlohmann::ordered_json> ApiClient::call(const std::string& method, const std::string& path,
                                                 const nlohmann::ordered_json& body,
                                                 std::chrono::milliseconds timeout) {
  auto r = request(method, path, body.is_null() ? std::string() : body.dump(), timeout);
  if (!r) return r.status();
  if (r->status < 200 || r->status > 299)
    return Status::with_code(
        code_for_http_status(r->status),
        method + " " + path + ": HTTP " + std::to_string(r->status) + ": " + r->error_message());
  auto j = r->json();
  if (j.is_null() && !r->body.empty())
    return Status::unavailable(method + " " + path + ": the answer is not JSON");
  return j;
}

}  // namespace quern::agent
