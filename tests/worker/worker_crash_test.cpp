// A plugin's crash fails only its own job: a null dereference, an abort, an
// escaped C++ exception, a stack overflow, an endless loop that ignores the
// stop — each job ends with the reason naming the plugin and the signal,
// within the grace; a job on another slot of the same worker completes
// normally; the crashed job is not claimed again unless its retry policy says so; and
// the worker — here, this test's own process, with a server in it as in
// `quern up` — lives on. Real worker, real PostgreSQL, the real bash plugin
// next to the broken fixture.
#include <gtest/gtest.h>

#include <filesystem>

#include "host/auth/tokens.h"
#include "host/server/server.h"
#include "host/worker/worker.h"
#include "tests/http/http_test_client.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

TEST(WorkerCrashTest, ACrashingPluginFailsOnlyItsOwnJob) {
  const std::string url = testing::fresh_database_url("crash");
  auto q = queue::Queue::connect(url);
  ASSERT_TRUE(q);
  plugin::PluginRegistry registry;
  ASSERT_TRUE(registry.load_file(QUERN_BROKEN_PLUGIN));
  ASSERT_TRUE(registry.load_file(std::filesystem::path(testing::plugin_dir()) / "libquern_bash.so"));

  server::ServerOptions so;  // the API in the same process, as in `quern up`
  so.port = 0;
  so.api.database_url = url;
  so.run_scheduler = false;
  server::Server server(so);
  ASSERT_TRUE(server.start());
  const std::string healthz = "http://127.0.0.1:" + std::to_string(server.port()) + "/healthz";

  worker::WorkerOptions o;
  o.database_url = url;
  o.tags = {"broken", "bash"};
  o.slots = 2;
  o.poll_interval = 200ms;
  o.heartbeat_interval = 250ms;
  o.kill_grace = 500ms;
  worker::Worker w(o, registry);
  ASSERT_TRUE(w.start());

  auto push = [&](const std::string& language, const std::string& code, int timeout_s = 0) {
    queue::NewJob j;
    j.tag = j.language = language;
    j.timeout_s = timeout_s;
    j.payload["code"] = code;
    return *(*q)->push(j);
  };
  auto finished = [&](int64_t id) {
    auto r = (*q)->get_job(id);
    return r && *r && (*r)->state != "queued" && (*r)->state != "running" ? std::optional(**r) : std::nullopt;
  };
  const std::vector<std::pair<std::string, std::string>> crashes = {
      {"segv", "crashed with SIGSEGV"},
      {"abort", "crashed with SIGABRT"},
      {"throw", "crashed with SIGABRT"},  // std::terminate
      {"stack", "crashed with SIGSEGV"},
  };
  for (const auto& [mode, how] : crashes) {
    SCOPED_TRACE(mode);
    // A job of another plugin running on the other slot meanwhile.
    const int64_t neighbour = push("bash", "sleep 0.5; echo '{\"ok\": true}'");
    ASSERT_TRUE(wait_until([&] { return (*q)->get_job(neighbour).value()->state == "running"; }, 20s));
    const int64_t id = push("broken", mode);
    std::optional<queue::JobRecord> rec;
    ASSERT_TRUE(wait_until([&] { return (rec = finished(id)).has_value(); }, 20s));
    EXPECT_EQ(rec->state, "failure");
    EXPECT_EQ(rec->error,
              "plugin 'broken' " + how + " while running job " + std::to_string(id) + " (attempt 1)");
    EXPECT_EQ(rec->attempt, 1);  // not claimed again: no lost lease, no retry policy
    EXPECT_EQ(testing::http_request("GET", healthz).status, 200);
    std::optional<queue::JobRecord> other;
    ASSERT_TRUE(wait_until([&] { return (other = finished(neighbour)).has_value(); }, 20s));
    EXPECT_EQ(other->state, "success") << other->error;
  }
  // With a retry policy the crash is a failed attempt like any other: tried
  // again (here twice in all), then failed with the last attempt's reason.
  {
    queue::NewJob j;
    j.tag = j.language = "broken";
    j.payload["code"] = "segv";
    j.retry.max_attempts = 2;
    j.retry.backoff = 10ms;
    j.retry.jitter = 0;
    const int64_t id = *(*q)->push(j);
    std::optional<queue::JobRecord> rec;
    ASSERT_TRUE(wait_until([&] { return (rec = finished(id)).has_value(); }, 20s));
    EXPECT_EQ(rec->state, "failure");
    EXPECT_EQ(rec->attempt, 2);
    EXPECT_EQ(rec->error, "plugin 'broken' crashed with SIGSEGV while running job " + std::to_string(id) +
                              " (attempt 2)");
  }
  // An endless loop that never polls: killed after the grace, recorded as a timeout.
  const auto started = std::chrono::steady_clock::now();
  const int64_t loop = push("broken", "loop", /*timeout_s=*/1);
  std::optional<queue::JobRecord> rec;
  ASSERT_TRUE(wait_until([&] { return (rec = finished(loop)).has_value(); }, 20s));
  EXPECT_EQ(rec->state, "timeout") << rec->error;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);  // 1 s + 0.5 s grace, with room
  // The broken plugin's slot comes back: its next job runs.
  const int64_t fine = push("broken", "fine");
  ASSERT_TRUE(wait_until([&] { return (rec = finished(fine)).has_value(); }, 20s));
  EXPECT_EQ(rec->state, "success") << rec->error;
  EXPECT_EQ(testing::http_request("GET", healthz).status, 200);
  w.stop();
  w.wait();
  server.stop();
}

}  // namespace
}  // namespace quern
