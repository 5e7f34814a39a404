// A small blocking HTTP client for tests (libcurl), reusable by the API tests.
// Every call has a deadline, so a hung server fails the test instead of
// hanging it. Thread-safe: each call uses its own curl handle.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>

namespace quern::testing {

struct HttpResult {
  int status = 0;                              // 0: no response (see error)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string error;  // transport error, when status == 0
};

// One request on a fresh connection. url: "http://127.0.0.1:PORT/path?query".
// HEAD is supported (no body read). Sends no "Expect: 100-continue".
HttpResult http_request(const std::string& method, const std::string& url, const std::string& body = "",
                        const std::map<std::string, std::string>& headers = {},
                        std::chrono::milliseconds timeout = std::chrono::seconds(30));

struct SseEvent {
  std::string event;  // "" when the event had no event: field
  std::string data;   // data: lines joined with '\n'
  std::string id;
};

struct SseResult {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body;        // the body when the response is not an event stream (errors)
  bool ended = false;      // the server ended the stream
  bool stopped = false;    // on_event returned false (the client then disconnected)
  bool timed_out = false;  // the deadline passed first
  std::string error;
};

// GETs url and calls on_event for each event as it arrives (comments and
// keep-alives are skipped) until on_event returns false, the server ends the
// stream, or the deadline passes. The connection is closed on return.
SseResult read_sse(const std::string& url, const std::function<bool(const SseEvent&)>& on_event,
                   std::chrono::milliseconds deadline,
                   const std::map<std::string, std::string>& headers = {});

// Short form: on_event(event name, data); returns the HTTP status (0: no response).
int read_sse(const std::string& url, const std::map<std::string, std::string>& headers,
             const std::function<bool(const std::string& event, const std::string& data)>& on_event,
             std::chrono::milliseconds deadline);

}  // namespace quern::testing
