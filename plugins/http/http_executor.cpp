// The http executor: makes one HTTP(S) request per job with libcurl, in
// process. See docs/HTTP.md.
//
// Config (create): {"allow_private": false, "allowed_hosts": ["127.0.0.1",
// "10.1.0.0/16", ...], "max_response_bytes": 10485760, "default_timeout_s":
// 30, "user_agent": "quern-http/1.0"}.
//
// Job args: see http_request.h. Only http and https, also on redirects.
// Every address curl is about to connect to (after DNS, on each redirect)
// goes through AddressPolicy first; a refused one never gets a socket.
// Environment proxies are ignored (the check must see the real peer).
//
// Result: {"status", "headers": {lower-case name: value}, "body" (JSON when
// the content type is JSON, else text) or "body_base64" (not UTF-8), "url"
// (after redirects)}. Status: SUCCESS; FAILURE for refused addresses,
// transport errors, the size cap, too many redirects and a status the job
// does not accept (the result is set then too); TIMEOUT when the request's
// timeout or the host's timeout stopped it; CANCELED on cancel, shutdown or
// interrupt(). Error texts never contain the URL (it may carry secrets).
//
// Thread-safety: one execute at a time per instance (the host's rule);
// interrupt() from any thread (curl_multi_wakeup is thread-safe).
#include <curl/curl.h>
#include <sys/socket.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "address_policy.h"
#include "http_request.h"
#include "http_text.h"
#include "quern/executor.hpp"
#include "quern/limits.h"

namespace {

using nlohmann::ordered_json;
using quern::http::AddressPolicy;
using quern::http::Request;
using quern::sdk::JobContext;

// Latency of noticing cancel / timeout while a transfer waits on the network.
constexpr int kPollStepMs = 25;

struct Config {
  bool allow_private = false;
  std::vector<quern::http::Cidr> allowed;
  int64_t max_response_bytes = 10 * 1024 * 1024;
  double default_timeout_s = 30;
  double default_connect_timeout_s = 10;
  std::string user_agent = "quern-http/1.0";
};

Config parse_config(std::string_view text) {
  const ordered_json j = text.empty() ? ordered_json::object() : ordered_json::parse(text);
  if (!j.is_object()) throw std::invalid_argument("http: config must be a JSON object");
  Config c;
  for (const auto& [key, v] : j.items()) {
    if (key == "allow_private") {
      if (!v.is_boolean()) throw std::invalid_argument("http: allow_private must be true or false");
      c.allow_private = v.get<bool>();
    } else if (key == "allowed_hosts") {
      if (!v.is_array())
        throw std::invalid_argument("http: allowed_hosts must be an array of addresses or CIDRs");
      for (const auto& h : v) {
        if (!h.is_string())
          throw std::invalid_argument("http: allowed_hosts must be an array of addresses or CIDRs");
        try {
          c.allowed.push_back(quern::http::parse_cidr(h.get<std::string>()));
        } catch (const std::invalid_argument& e) {
          throw std::invalid_argument(std::string("http: allowed_hosts: ") + e.what());
        }
      }
    } else if (key == "max_response_bytes") {
      if (!v.is_number_integer() || v.get<int64_t>() <= 0)
        throw std::invalid_argument("http: max_response_bytes must be a positive integer");
      c.max_response_bytes = v.get<int64_t>();
    } else if (key == "default_timeout_s" || key == "default_connect_timeout_s") {
      if (!v.is_number() || !(v.get<double>() > 0))
        throw std::invalid_argument("http: " + key + " must be a positive number");
      (key == "default_timeout_s" ? c.default_timeout_s : c.default_connect_timeout_s) = v.get<double>();
    } else if (key == "user_agent") {
      if (!v.is_string()) throw std::invalid_argument("http: user_agent must be a string");
      c.user_agent = v.get<std::string>();
    } else {
      throw std::invalid_argument("http: unknown config key \"" + key + "\"");
    }
  }
  return c;
}

// What one transfer collects; the curl callbacks' user data.
struct Transfer {
  const AddressPolicy* policy = nullptr;
  int64_t max_bytes = 0;
  std::string body;
  bool too_big = false;
  // Why the latest connect attempt was refused; cleared when a later attempt
  // gets a socket (redirects, happy eyeballs), so it explains a failure only
  // when the refusal was the last word.
  std::string refused;
  ordered_json headers = ordered_json::object();
};

curl_socket_t open_socket(void* user, curlsocktype /*purpose*/, curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(user);
  std::string why = t->policy->refusal(&address->addr);
  if (!why.empty()) {
    t->refused = std::move(why);
    return CURL_SOCKET_BAD;
  }
  // CLOEXEC: other plugins of this worker may start child processes.
  const curl_socket_t fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd != CURL_SOCKET_BAD) t->refused.clear();
  return fd;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  if (static_cast<int64_t>(t->body.size() + bytes) > t->max_bytes) {
    t->too_big = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  t->body.append(data, bytes);
  return bytes;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  std::string_view line(data, bytes);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.rfind("HTTP/", 0) == 0) {
    t->headers = ordered_json::object();  // a new response (redirect, 100 Continue): keep the last one's
    return bytes;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return bytes;
  const std::string name = quern::http::to_lower(line.substr(0, colon));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  std::string text(value);  // not UTF-8? dump() replaces the bad bytes
  if (t->headers.contains(name)) {
    t->headers[name] = t->headers[name].get<std::string>() + ", " + text;
  } else {
    t->headers[name] = std::move(text);
  }
  return bytes;
}

struct SlistDeleter {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};

class HttpExecutor {
 public:
  explicit HttpExecutor(std::string_view config_json)
      : config_(parse_config(config_json)), policy_(config_.allow_private, config_.allowed) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    easy_ = curl_easy_init();
    multi_ = curl_multi_init();
    if (easy_ == nullptr || multi_ == nullptr) {
      cleanup();
      throw std::runtime_error("http: cannot initialise libcurl");
    }
  }
  ~HttpExecutor() { cleanup(); }
  HttpExecutor(const HttpExecutor&) = delete;
  HttpExecutor& operator=(const HttpExecutor&) = delete;

  quern_status execute(std::string_view job_json, JobContext& ctx) {
    interrupted_.store(false);
    const ordered_json job = ordered_json::parse(job_json);
    static const ordered_json kNoArgs = ordered_json::object();
    auto args_it = job.find("args");
    Request req;
    std::string url;
    try {
      req = quern::http::parse_request(args_it != job.end() ? *args_it : kNoArgs);
      url = quern::http::build_url(req);
    } catch (const std::invalid_argument& e) {
      ctx.set_error(std::string("bad request: ") + e.what());
      return QUERN_STATUS_FAILURE;
    }

    Transfer t;
    t.policy = &policy_;
    t.max_bytes = config_.max_response_bytes;
    std::unique_ptr<curl_slist, SlistDeleter> headers;
    const double timeout_s = req.timeout_s.value_or(config_.default_timeout_s);
    configure(req, url, timeout_s, t, headers);

    curl_multi_add_handle(multi_, easy_);
    CURLcode code = CURLE_OK;
    int32_t stop = QUERN_RUNNING;
    while (true) {
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      bool done = false;
      while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
        if (m->msg == CURLMSG_DONE) {
          code = m->data.result;
          done = true;
        }
      }
      if (done) break;
      stop = ctx.cancelled();
      if (stop == QUERN_RUNNING && interrupted_.load()) stop = QUERN_CANCEL_REQUESTED;
      if (stop != QUERN_RUNNING) break;
      curl_multi_poll(multi_, nullptr, 0, kPollStepMs, nullptr);
    }
    curl_multi_remove_handle(multi_, easy_);

    if (stop != QUERN_RUNNING) return quern::sdk::stop_status(ctx, stop);
    if (code != CURLE_OK) return transfer_error(ctx, code, t, req, timeout_s);

    long status = 0;
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
    ordered_json result = ordered_json::object();
    result["status"] = status;
    const char* content_type = nullptr;
    curl_easy_getinfo(easy_, CURLINFO_CONTENT_TYPE, &content_type);
    result["headers"] = std::move(t.headers);
    set_body(result, t.body, content_type != nullptr && quern::http::is_json_content_type(content_type));
    const char* effective = nullptr;
    curl_easy_getinfo(easy_, CURLINFO_EFFECTIVE_URL, &effective);
    if (effective != nullptr) result["url"] = effective;
    ctx.set_result(result.dump(-1, ' ', false, ordered_json::error_handler_t::replace));

    if (!req.status_ok(status))
      return failed(
          ctx, "HTTP status " + std::to_string(status) + " (allow it with allow_status or fail_on_status)",
          QUERN_STATUS_FAILURE);
    return QUERN_STATUS_SUCCESS;
  }

  void interrupt() {
    interrupted_.store(true);
    curl_multi_wakeup(multi_);
  }

 private:
  void cleanup() {
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    if (easy_ != nullptr) curl_easy_cleanup(easy_);
    multi_ = nullptr;
    easy_ = nullptr;
  }

  // Sets every option of the transfer; reset first so nothing of the last
  // job leaks (the connection cache survives the reset, which is safe: a
  // cached connection was checked against the same policy when opened).
  void configure(const Request& req, const std::string& url, double timeout_s, Transfer& t,
                 std::unique_ptr<curl_slist, SlistDeleter>& headers) {
    CURL* e = easy_;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PROXY, "");  // ignore http_proxy & co: the policy must see the real peer
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, req.max_redirects);
    curl_easy_setopt(e, CURLOPT_USERAGENT, config_.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");  // the size cap applies to the decoded body
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(config_.max_response_bytes));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(std::ceil(timeout_s * 1000)));
    const double connect_s = req.connect_timeout_s.value_or(config_.default_connect_timeout_s);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::ceil(connect_s * 1000)));

    auto add = [&](const std::string& line) {
      // Appending returns the same head once the list exists: hand it over
      // without freeing what `headers` already owns.
      curl_slist* next = curl_slist_append(headers.get(), line.c_str());
      if (next == nullptr) throw std::bad_alloc();
      (void)headers.release();
      headers.reset(next);
    };
    for (const auto& [name, value] : req.headers) add(value.empty() ? name + ";" : name + ": " + value);
    if (req.body && req.header("content-type") == nullptr)
      add(req.body_is_json ? "Content-Type: application/json" : "Content-Type: text/plain; charset=utf-8");
    if (req.body_is_json && req.header("accept") == nullptr) add("Accept: application/json");
    add("Expect:");  // no 100-continue round trip
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers.get());

    if (req.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (req.method == "POST") {
      curl_easy_setopt(e, CURLOPT_POST, 1L);
    } else if (req.method != "GET" || req.body) {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
    if (req.body || req.method == "POST") {
      const std::string& body = req.body ? *req.body : std::string();
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body.c_str());
    }
  }

  static void set_body(ordered_json& result, const std::string& body, bool json_type) {
    // A body nested past the host's limit is kept as text (parsing and
    // printing it would recurse that deep).
    if (json_type && !quern_json_too_deep(body.data(), body.size(), QUERN_MAX_JSON_DEPTH)) {
      ordered_json parsed = ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
      if (!parsed.is_discarded()) {
        result["body"] = std::move(parsed);
        return;
      }
    }
    if (quern::http::is_valid_utf8(body)) {
      result["body"] = body;
    } else {
      result["body"] = nullptr;
      result["body_base64"] = quern::http::base64_encode(body);
    }
  }

  quern_status transfer_error(JobContext& ctx, CURLcode code, const Transfer& t, const Request& req,
                              double timeout_s) {
    if (!t.refused.empty())
      return failed(ctx, "refused to connect: " + t.refused + " (not in the http plugin's allowed_hosts)",
                    QUERN_STATUS_FAILURE);
    if (t.too_big || code == CURLE_FILESIZE_EXCEEDED)
      return failed(
          ctx, "response larger than max_response_bytes (" + std::to_string(config_.max_response_bytes) + ")",
          QUERN_STATUS_FAILURE);
    switch (code) {
      case CURLE_OPERATION_TIMEDOUT:
        return failed(ctx, "timed out: no complete response within " + seconds(timeout_s) + " s",
                      QUERN_STATUS_TIMEOUT);
      case CURLE_TOO_MANY_REDIRECTS:
        return failed(ctx, "too many redirects (max_redirects " + std::to_string(req.max_redirects) + ")",
                      QUERN_STATUS_FAILURE);
      case CURLE_UNSUPPORTED_PROTOCOL:
        return failed(ctx, "unsupported protocol (a redirect to a scheme other than http or https?)",
                      QUERN_STATUS_FAILURE);
      default:
        return failed(ctx, std::string("request failed: ") + curl_easy_strerror(code), QUERN_STATUS_FAILURE);
    }
  }

  static std::string seconds(double s) {
    std::string text = std::to_string(s);
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
    return text;
  }

  static quern_status failed(JobContext& ctx, const std::string& message, quern_status status) {
    ctx.set_error(message);
    return status;
  }

  Config config_;
  AddressPolicy policy_;
  CURL* easy_ = nullptr;
  CURLM* multi_ = nullptr;
  std::atomic<bool> interrupted_{false};
};

}  // namespace

QUERN_EXECUTOR_PLUGIN(HttpExecutor, "http", "1.0.0", "http", "http", 0)
