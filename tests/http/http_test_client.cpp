#include "tests/http/http_test_client.h"

#include <curl/curl.h>

#include <cctype>
#include <mutex>

namespace quern::testing {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

// Collects the headers of the last response (curl also reports 100 Continue's).
size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    headers->clear();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    (*headers)[name] = trim(line.substr(colon + 1));
  }
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

struct CurlRequest {
  CURL* curl;
  curl_slist* header_list = nullptr;
  CurlRequest(const std::string& url, const std::map<std::string, std::string>& headers,
              std::chrono::milliseconds timeout) {
    global_init();
    curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);
    header_list = curl_slist_append(header_list, "Expect:");
    for (const auto& [name, value] : headers)
      header_list = curl_slist_append(header_list, (name + ": " + value).c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, header_list);
  }
  ~CurlRequest() {
    curl_slist_free_all(header_list);
    curl_easy_cleanup(curl);
  }
  int status() {
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    return static_cast<int>(code);
  }
};

// Incremental parser of the text/event-stream format.
struct SseState {
  const std::function<bool(const SseEvent&)>* on_event;
  SseResult* result;
  bool is_stream = false;
  bool checked = false;
  std::string pending;
  SseEvent event;
  bool has_data = false;

  // Returns false when the callback asked to stop.
  bool feed_line(const std::string& line) {
    if (line.empty()) {
      if (has_data) {
        bool go_on = (*on_event)(event);
        event = SseEvent();
        has_data = false;
        if (!go_on) return false;
      }
      event.event.clear();
      return true;
    }
    if (line[0] == ':') return true;
    size_t colon = line.find(':');
    std::string field = line.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (field == "event") event.event = value;
    if (field == "id") event.id = value;
    if (field == "data") {
      if (has_data) event.data += "\n";
      event.data += value;
      has_data = true;
    }
    return true;
  }
};

size_t on_sse_body(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<SseState*>(user);
  if (!st->checked) {
    st->checked = true;
    st->is_stream = st->result->headers["content-type"].rfind("text/event-stream", 0) == 0;
  }
  if (!st->is_stream) {
    st->result->body.append(data, size * n);
    return size * n;
  }
  st->pending.append(data, size * n);
  size_t pos;
  while ((pos = st->pending.find_first_of("\r\n")) != std::string::npos) {
    std::string line = st->pending.substr(0, pos);
    size_t skip = 1;
    if (st->pending[pos] == '\r') {
      if (pos + 1 >= st->pending.size()) break;  // CR at the end: wait for a possible LF
      if (st->pending[pos + 1] == '\n') skip = 2;
    }
    st->pending.erase(0, pos + skip);
    if (!st->feed_line(line)) {
      st->result->stopped = true;
      return 0;  // aborts the transfer: curl closes the connection
    }
  }
  return size * n;
}

}  // namespace

HttpResult http_request(const std::string& method, const std::string& url, const std::string& body,
                        const std::map<std::string, std::string>& headers,
                        std::chrono::milliseconds timeout) {
  HttpResult result;
  CurlRequest req(url, headers, timeout);
  if (method == "HEAD") {
    curl_easy_setopt(req.curl, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(req.curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    curl_easy_setopt(req.curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(req.curl, CURLOPT_POSTFIELDS, body.data());
  }
  curl_easy_setopt(req.curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(req.curl, CURLOPT_HEADERDATA, &result.headers);
  curl_easy_setopt(req.curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(req.curl, CURLOPT_WRITEDATA, &result.body);
  CURLcode rc = curl_easy_perform(req.curl);
  if (rc != CURLE_OK) {
    result.error = curl_easy_strerror(rc);
    result.status = 0;
    return result;
  }
  result.status = req.status();
  return result;
}

SseResult read_sse(const std::string& url, const std::function<bool(const SseEvent&)>& on_event,
                   std::chrono::milliseconds deadline, const std::map<std::string, std::string>& headers) {
  SseResult result;
  std::map<std::string, std::string> with_accept = headers;
  with_accept.emplace("Accept", "text/event-stream");
  CurlRequest req(url, with_accept, deadline);
  SseState state;
  state.on_event = &on_event;
  state.result = &result;
  curl_easy_setopt(req.curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(req.curl, CURLOPT_HEADERDATA, &result.headers);
  curl_easy_setopt(req.curl, CURLOPT_WRITEFUNCTION, on_sse_body);
  curl_easy_setopt(req.curl, CURLOPT_WRITEDATA, &state);
  CURLcode rc = curl_easy_perform(req.curl);
  result.status = req.status();
  if (rc == CURLE_OK) {
    result.ended = true;
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    result.timed_out = true;
  } else if (!result.stopped) {
    result.error = curl_easy_strerror(rc);
  }
  return result;
}

int read_sse(const std::string& url, const std::map<std::string, std::string>& headers,
             const std::function<bool(const std::string& event, const std::string& data)>& on_event,
             std::chrono::milliseconds deadline) {
  return read_sse(
             url, [&](const SseEvent& e) { return on_event(e.event, e.data); }, deadline, headers)
      .status;
}

}  // namespace quern::testing
