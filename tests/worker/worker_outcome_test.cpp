// The host owns a job's outcome: a job the host stopped (timeout, cancel) is
// recorded as such whatever the plugin returns — a script that traps SIGTERM
// and exits 0, a plugin that never polls — and a cancel reaches the worker
// at once (NOTIFY), not at its next heartbeat. Real worker, real bash and
// python plugins (both run their process through quern/process.hpp), real
// PostgreSQL.
#include <gtest/gtest.h>

#include <atomic>

#include "host/worker/worker.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

const char* kTrapBash = "trap 'echo trapped; exit 0' TERM; echo started; sleep 30 & wait";
const char* kTrapPython =
    "import signal, sys, time\n"
    "def main():\n"
    "    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
    "    print('started', flush=True)\n"
    "    time.sleep(30)\n"
    "    return {'finished': True}\n";

class WorkerOutcomeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q) << q.message();
    q_ = std::move(q).value();
    ASSERT_TRUE(registry_.load_directory(testing::plugin_dir()));
    worker::WorkerOptions o;
    o.database_url = url_;
    o.tags = {"out"};
    o.slots = 2;
    o.poll_interval = 200ms;
    // Heartbeats far apart: only the cancel NOTIFY can deliver a cancel in time.
    o.heartbeat_interval = 60s;
    o.lease_timeout = 180s;
    o.kill_grace = 500ms;
    o.on_stop_requested = [this](int64_t, int32_t reason) {
      if (reason == QUERN_CANCEL_REQUESTED) cancel_seen_ = std::chrono::steady_clock::now();
    };
    worker_ = std::make_unique<worker::Worker>(o, registry_);
    ASSERT_TRUE(worker_->start());
  }
  void TearDown() override { worker_.reset(); }

  int64_t push(const std::string& language, const std::string& code, int timeout_s = 0,
               nlohmann::ordered_json args = nlohmann::ordered_json::object()) {
    queue::NewJob j;
    j.language = language;
    j.tag = "out";
    j.timeout_s = timeout_s;
    j.payload["code"] = code;
    j.payload["args"] = std::move(args);
    auto id = q_->push(j);
    EXPECT_TRUE(id) << id.message();
    return id ? *id : 0;
  }
  queue::JobRecord wait_finished(int64_t id, std::chrono::milliseconds within = 30s) {
    queue::JobRecord rec;
    EXPECT_TRUE(wait_until(
        [&] {
          auto r = q_->get_job(id);
          if (!r || !*r || (*r)->state == "queued" || (*r)->state == "running") return false;
          rec = **r;
          return true;
        },
        within));
    return rec;
  }
  bool log_has(int64_t id, const std::string& text) {
    auto logs = q_->read_logs(id);
    return logs && logs->find(text) != std::string::npos;
  }

  std::string url_;
  std::unique_ptr<queue::Queue> q_;
  plugin::PluginRegistry registry_;
  std::unique_ptr<worker::Worker> worker_;
  std::atomic<std::chrono::steady_clock::time_point> cancel_seen_{};
};

TEST_F(WorkerOutcomeTest, ATermTrappingScriptThatExits0IsATimeout) {
  for (const auto& [language, code] : {std::pair{"bash", kTrapBash}, std::pair{"python3", kTrapPython}}) {
    SCOPED_TRACE(language);
    const int64_t id = push(language, code, /*timeout_s=*/1);
    auto rec = wait_finished(id);
    EXPECT_EQ(rec.state, "timeout") << rec.error;
    EXPECT_EQ(rec.error, "timed out after 1 s");
    EXPECT_TRUE(rec.result.is_null());
  }
}

TEST_F(WorkerOutcomeTest, ATermTrappingScriptThatExits0IsCanceledAtOnceWithTheCancelersReason) {
  for (const auto& [language, code] : {std::pair{"bash", kTrapBash}, std::pair{"python3", kTrapPython}}) {
    SCOPED_TRACE(language);
    const int64_t id = push(language, code);
    ASSERT_TRUE(wait_until([&] { return log_has(id, "started"); }, 30s));
    const auto asked = std::chrono::steady_clock::now();
    ASSERT_EQ(*q_->cancel(id, "canceled through the API"), queue::CancelOutcome::requested);
    auto rec = wait_finished(id, 10s);  // heartbeats come every 60 s: only the NOTIFY is this fast
    EXPECT_EQ(rec.state, "canceled") << rec.error;
    EXPECT_EQ(rec.error, "canceled through the API");
    EXPECT_TRUE(rec.cancel_requested);
    EXPECT_GE(cancel_seen_.load(), asked);
  }
}

TEST_F(WorkerOutcomeTest, APluginThatNeverPollsIsRecordedAsTimeout) {
  const int64_t id = push("noop", "", /*timeout_s=*/1, {{"stubborn_ms", 2500}, {"result", {{"late", true}}}});
  auto rec = wait_finished(id);
  EXPECT_EQ(rec.state, "timeout") << rec.error;
  EXPECT_TRUE(rec.result.is_null()) << rec.result.dump();
}

TEST_F(WorkerOutcomeTest, ACancelThatArrivesAfterTheEndIsKeptInTheRecord) {
  // Queue level, so the order is certain: claimed, cancel requested, then completed as success.
  queue::NewJob j;
  j.tag = j.language = "nobody-serves-this";
  const int64_t id = *q_->push(j);
  auto claimed = q_->claim("w", {"nobody-serves-this"}, 1);
  ASSERT_TRUE(claimed && claimed->size() == 1u);
  ASSERT_EQ(*q_->cancel(id, "too late"), queue::CancelOutcome::requested);
  ASSERT_TRUE(q_->complete("w", {{id, (*claimed)[0].attempt, queue::JobStatus::success, nullptr, ""}}));
  auto rec = q_->get_job(id);
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->state, "success");
  EXPECT_TRUE((*rec)->cancel_requested);
}

}  // namespace
}  // namespace quern
