// The http executor through the real loader, against a local test server on
// 127.0.0.1 (allowed by the config). No traffic goes anywhere else: the
// private / metadata addresses used here must be refused before a socket is
// opened, which the tests check by time and by the error text.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "host/plugin/plugin_registry.h"
#include "tests/plugin/recording_sink.h"
#include "tests/plugins/http/test_http_server.h"
#include "tests/support/child_process.h"

namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using quern::testing::RecordingSink;
using Clock = std::chrono::steady_clock;

class HttpExecutor : public ::testing::Test {
 protected:
  void SetUp() override {
    quern::Status s = registry_.load_file(std::filesystem::path(QUERN_PLUGIN_DIR) / "libquern_http.so");
    ASSERT_TRUE(s.is_ok()) << s.message();
    executor_ = create(R"({"allowed_hosts": ["127.0.0.1"], "max_response_bytes": 100000})");
    ASSERT_NE(executor_, nullptr);
  }

  std::unique_ptr<quern::plugin::Executor> create(const std::string& config) {
    auto created = registry_.by_name("http")->create(config);
    EXPECT_TRUE(created.is_ok()) << created.message();
    return created.is_ok() ? std::move(created.value()) : nullptr;
  }

  quern_status run(RecordingSink& sink, const ordered_json& args,
                   quern::plugin::Executor* executor = nullptr) {
    ordered_json job = {{"id", 1}, {"attempt", 1}, {"language", "http"}, {"code", ""}, {"args", args}};
    return (executor ? executor : executor_.get())->execute(job.dump(), sink);
  }

  // Runs a request that must succeed and returns its result.
  ordered_json ok(const ordered_json& args) {
    RecordingSink sink;
    EXPECT_EQ(run(sink, args), QUERN_STATUS_SUCCESS) << sink.error().value_or("");
    return sink.result() ? ordered_json::parse(*sink.result()) : ordered_json();
  }

  // A request that must fail fast with an error containing `expected`.
  void expect_failure(const ordered_json& args, const std::string& expected,
                      quern::plugin::Executor* executor = nullptr) {
    RecordingSink sink;
    const auto start = Clock::now();
    EXPECT_EQ(run(sink, args, executor), QUERN_STATUS_FAILURE) << args.dump();
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(2)) << args.dump();
    EXPECT_NE(sink.error().value_or("").find(expected), std::string::npos)
        << args.dump() << " → " << sink.error().value_or("(no error)");
  }

  quern::testing::TestHttpServer server_;  // declared first: outlives the executor
  quern::plugin::PluginRegistry registry_;
  std::unique_ptr<quern::plugin::Executor> executor_;
};

TEST_F(HttpExecutor, GetJsonResponse) {
  ordered_json r = ok({{"url", server_.url("/json")}});
  EXPECT_EQ(r["status"], 200);
  EXPECT_EQ(r["body"], json::parse(R"({"hello":"world","n":[1,2,3]})"));
  EXPECT_EQ(r["headers"]["content-type"], "application/json; charset=utf-8");
  EXPECT_EQ(r["url"], server_.url("/json"));
}

TEST_F(HttpExecutor, MethodsBodiesHeadersAndQuery) {
  for (std::string method : {"GET", "POST", "PUT", "DELETE", "PATCH"}) {
    ordered_json r = ok({{"method", method}, {"url", server_.url("/echo")}});
    EXPECT_EQ(r["body"]["method"], method);
  }
  ordered_json posted =
      ok({{"method", "post"}, {"url", server_.url("/echo")}, {"json", {{"a", 1}, {"b", "ü"}}}});
  EXPECT_EQ(posted["body"]["method"], "POST");
  EXPECT_EQ(json::parse(posted["body"]["body"].get<std::string>()), json::parse(R"({"a":1,"b":"ü"})"));
  EXPECT_EQ(posted["body"]["headers"]["Content-Type"], "application/json");

  ordered_json put = ok({{"method", "PUT"},
                         {"url", server_.url("/echo")},
                         {"body", "plain ünïcødé"},
                         {"headers", {{"X-Token", "abc def"}, {"Content-Type", "text/x-test"}}}});
  EXPECT_EQ(put["body"]["body"], "plain ünïcødé");
  EXPECT_EQ(put["body"]["headers"]["X-Token"], "abc def");
  EXPECT_EQ(put["body"]["headers"]["Content-Type"], "text/x-test");
  EXPECT_EQ(put["body"]["headers"]["User-Agent"], "quern-http/1.0");

  ordered_json q = ok(
      {{"url", server_.url("/echo?keep=1")}, {"query", {{"q", "a b&c=d/é"}, {"n", 5}, {"tag", {"x", "y"}}}}});
  // curl's URL API writes percent-escapes with lower-case hex (equivalent).
  EXPECT_EQ(q["body"]["query"], "keep=1&q=a%20b%26c%3dd%2f%c3%a9&n=5&tag=x&tag=y");

  expect_failure({{"url", server_.url("/echo")}, {"headers", {{"X-Evil", "a\r\nInjected: 1"}}}},
                 "line break");
  expect_failure({{"url", server_.url("/echo")}, {"method", "GE T"}}, "not a valid HTTP method");
  expect_failure({{"method", "GET"}}, "\"url\" is required");
}

TEST_F(HttpExecutor, TextAndBinaryBodies) {
  EXPECT_EQ(ok({{"url", server_.url("/text")}})["body"], "plain text, ünïcødé");
  ordered_json bin = ok({{"url", server_.url("/binary")}});
  EXPECT_TRUE(bin["body"].is_null());
  EXPECT_EQ(bin["body_base64"], "//4AAYA=");
}

TEST_F(HttpExecutor, NonSuccessStatusFailsUnlessAllowed) {
  RecordingSink sink;
  EXPECT_EQ(run(sink, {{"url", server_.url("/status/404")}}), QUERN_STATUS_FAILURE);
  EXPECT_NE(sink.error().value_or("").find("HTTP status 404"), std::string::npos)
      << sink.error().value_or("");
  ASSERT_TRUE(sink.result());
  EXPECT_EQ(json::parse(*sink.result())["status"], 404);  // the result is set anyway

  EXPECT_EQ(ok({{"url", server_.url("/status/404")}, {"allow_status", {404}}})["body"]["status"], 404);
  EXPECT_EQ(ok({{"url", server_.url("/status/503")}, {"fail_on_status", false}})["status"], 503);
}

TEST_F(HttpExecutor, TimeoutIsFast) {
  RecordingSink sink;
  const auto start = Clock::now();
  EXPECT_EQ(run(sink, {{"url", server_.url("/hang")}, {"timeout_s", 0.5}}), QUERN_STATUS_TIMEOUT);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  EXPECT_NE(sink.error().value_or("").find("timed out"), std::string::npos) << sink.error().value_or("");
}

TEST_F(HttpExecutor, CancelTimeoutAndInterruptStopAWaitingRequest) {
  for (int32_t why : {QUERN_CANCEL_REQUESTED, QUERN_TIMEOUT_REACHED, QUERN_SHUTDOWN}) {
    RecordingSink sink;
    const int before = server_.hanging();
    sink.set_cancel_check([&] { return server_.hanging() > before ? why : QUERN_RUNNING; });
    const auto start = Clock::now();
    EXPECT_EQ(run(sink, {{"url", server_.url("/hang")}}),
              why == QUERN_TIMEOUT_REACHED ? QUERN_STATUS_TIMEOUT : QUERN_STATUS_CANCELED);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  }
  RecordingSink sink;
  const int before = server_.hanging();
  std::thread stopper([&] {
    EXPECT_TRUE(
        quern::testing::wait_until([&] { return server_.hanging() > before; }, std::chrono::seconds(10)));
    executor_->interrupt();
  });
  EXPECT_EQ(run(sink, {{"url", server_.url("/hang")}}), QUERN_STATUS_CANCELED);
  stopper.join();
}

TEST_F(HttpExecutor, RedirectsAreFollowedUpToTheLimit) {
  ordered_json r = ok({{"url", server_.url("/redirect/3")}});
  EXPECT_EQ(r["body"], "done");
  EXPECT_EQ(r["url"], server_.url("/redirect/0"));
  expect_failure({{"url", server_.url("/redirect/3")}, {"max_redirects", 2}},
                 "too many redirects (max_redirects 2)");
}

TEST_F(HttpExecutor, RedirectToARefusedAddressOrSchemeIsRefused) {
  const int before = server_.connections();
  expect_failure({{"url", server_.url("/redirect-to")}, {"query", {{"location", "http://10.0.0.1:81/x"}}}},
                 "refused to connect: 10.0.0.1 is a private address");
  expect_failure({{"url", server_.url("/redirect-to")},
                  {"query", {{"location", "http://169.254.169.254/latest/meta-data/"}}}},
                 "refused to connect: 169.254.169.254 is a cloud metadata address");
  expect_failure({{"url", server_.url("/redirect-to")}, {"query", {{"location", "ftp://127.0.0.1:21/x"}}}},
                 "unsupported protocol");
  expect_failure({{"url", server_.url("/redirect-to")}, {"query", {{"location", "file:///etc/passwd"}}}},
                 "unsupported protocol");
  EXPECT_EQ(server_.connections(), before + 4);  // only the redirecting requests reached anything
}

TEST_F(HttpExecutor, DefaultConfigRefusesPrivateAddressesBeforeConnecting) {
  auto strict = create("{}");
  ASSERT_NE(strict, nullptr);
  const int before = server_.connections();
  const std::string port = std::to_string(server_.port());
  expect_failure({{"url", server_.url("/echo")}}, "refused to connect: 127.0.0.1 is a loopback address",
                 strict.get());
  expect_failure({{"url", "http://[::ffff:127.0.0.1]:" + port + "/echo"}},
                 "refused to connect: ::ffff:127.0.0.1 embeds", strict.get());
  expect_failure({{"url", "http://[::1]:" + port + "/echo"}}, "is a loopback address", strict.get());
  expect_failure({{"url", "http://10.0.0.1/"}}, "refused to connect: 10.0.0.1 is a private address",
                 strict.get());
  expect_failure({{"url", "http://169.254.169.254/latest/meta-data/"}},
                 "refused to connect: 169.254.169.254 is a cloud metadata address", strict.get());
  expect_failure({{"url", "http://0.0.0.0:" + port + "/"}}, "refused to connect: 0.0.0.0 is", strict.get());
  EXPECT_EQ(server_.connections(), before);  // nothing reached the server
}

TEST_F(HttpExecutor, OnlyHttpAndHttpsSchemes) {
  expect_failure({{"url", "file:///etc/passwd"}}, "unsupported scheme 'file'");
  expect_failure({{"url", "ftp://127.0.0.1/x"}}, "unsupported scheme 'ftp'");
  expect_failure({{"url", "gopher://127.0.0.1/x"}}, "unsupported scheme 'gopher'");
  expect_failure({{"url", "not a url"}}, "bad request");
}

TEST_F(HttpExecutor, ResponseSizeCap) {
  EXPECT_EQ(
      ok({{"url", server_.url("/big")}, {"query", {{"bytes", 99999}}}})["body"].get<std::string>().size(),
      99999u);
  expect_failure({{"url", server_.url("/big")}, {"query", {{"bytes", 100001}}}},
                 "response larger than max_response_bytes (100000)");
  expect_failure({{"url", server_.url("/big")}, {"query", {{"bytes", 500000}, {"chunked", 1}}}},
                 "response larger than max_response_bytes (100000)");
}

TEST_F(HttpExecutor, BadConfigIsRefused) {
  auto bad = registry_.by_name("http")->create(R"({"allowed_hosts": ["not-an-ip"]})");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.message().find("not-an-ip"), std::string::npos) << bad.message();
  auto unknown = registry_.by_name("http")->create(R"({"alow_private": true})");
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.message().find("alow_private"), std::string::npos) << unknown.message();
}

}  // namespace
