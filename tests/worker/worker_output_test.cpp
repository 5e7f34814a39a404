// What a job sends back is bytes: invalid UTF-8, NUL bytes, a 1 MB line
// without a newline, a result holding \u0000, one that is not JSON or nests
// too deep. Each such job ends (success, or a failure saying why), its log
// is stored with the bad bytes as U+FFFD, and the worker goes on: the next
// job on the same single slot completes within a second. Real worker, real
// bash and python plugins, real PostgreSQL.
#include <gtest/gtest.h>

#include <string>

#include "host/common/utf8.h"
#include "host/worker/worker.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

const std::string kFffd = "\xEF\xBF\xBD";

struct Case {
  const char* name;
  const char* language;
  std::string code;
  const char* state;     // the job's final state
  std::string in_error;  // a substring of its error ("" = no check)
  std::string in_log;    // a substring of its log ("" = no check)
};

class WorkerOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q) << q.message();
    q_ = std::move(q).value();
    ASSERT_TRUE(registry_.load_directory(testing::plugin_dir()));
  }

  int64_t push(const std::string& language, const std::string& code) {
    queue::NewJob j;
    j.language = language;
    j.tag = "out";
    j.payload["code"] = code;
    auto id = q_->push(j);
    EXPECT_TRUE(id) << id.message();
    return id ? *id : 0;
  }

  std::optional<queue::JobRecord> finished(int64_t id) {
    auto r = q_->get_job(id);
    if (!r || !*r || (*r)->state == "queued" || (*r)->state == "running") return std::nullopt;
    return **r;
  }

  std::string url_;
  std::unique_ptr<queue::Queue> q_;
  plugin::PluginRegistry registry_;
};

TEST_F(WorkerOutputTest, BadBytesEndTheJobAndTheNextJobRunsAtOnce) {
  const std::string deep_bash = "printf '%.0s[' $(seq 200); printf '%.0s]' $(seq 200); echo";
  const std::vector<Case> cases = {
      {"bash latin-1", "bash", "printf 'caf\\xe9\\n'; echo '{}'", "success", "", "caf" + kFffd + "\n"},
      {"bash NUL", "bash", "printf 'a\\0b\\n'", "success", "", "a" + kFffd + "b\n"},
      {"bash 1 MB line", "bash", "head -c 1048576 /dev/zero | tr '\\0' x", "success", "",
       std::string(1000, 'x')},
      {"bash result with \\u0000", "bash", "echo '{\"a\": \"x\\u0000y\"}'", "failure",
       "the job's result holds \\u0000", ""},
      {"bash result not JSON", "bash", "echo '{\"a\": '", "success", "", ""},
      {"bash result too deep", "bash", deep_bash, "success", "", ""},
      {"bash error bytes", "bash", "printf 'bad \\xff\\0 end' >&2; exit 3", "failure", "bad " + kFffd, ""},
      {"python latin-1", "python3",
       "import sys\ndef main():\n    sys.stdout.buffer.write(b'caf\\xe9\\n'); sys.stdout.flush()\n",
       "success", "", "caf" + kFffd + "\n"},
      {"python NUL", "python3", "import sys\ndef main():\n    sys.stdout.buffer.write(b'a\\x00b\\n')\n",
       "success", "", "a" + kFffd + "b\n"},
      {"python 1 MB line", "python3", "import sys\ndef main():\n    sys.stdout.write('y' * 1048576)\n",
       "success", "", std::string(1000, 'y')},
      {"python result with \\u0000", "python3", "def main():\n    return {'a': 'x\\x00y'}\n", "failure",
       "the job's result holds \\u0000", ""},
      {"python result too deep", "python3",
       "def main():\n    v = 1\n    for _ in range(200):\n        v = [v]\n    return v\n", "failure",
       "nested deeper than 128 levels", ""},
  };
  worker::WorkerOptions o;
  o.database_url = url_;
  o.tags = {"out"};
  o.slots = 1;  // every job on the same slot: a wedged slot stops the next job
  o.poll_interval = 200ms;
  o.heartbeat_interval = 200ms;
  worker::Worker w(o, registry_);
  ASSERT_TRUE(w.start());

  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const int64_t id = push(c.language, c.code);
    std::optional<queue::JobRecord> rec;
    ASSERT_TRUE(wait_until([&] { return (rec = finished(id)).has_value(); }, 30s));
    EXPECT_EQ(rec->state, c.state) << rec->error;
    if (!c.in_error.empty()) {
      EXPECT_NE(rec->error.find(c.in_error), std::string::npos) << rec->error;
    }
    EXPECT_TRUE(text::is_storable(rec->error));
    auto logs = q_->read_logs(id);
    ASSERT_TRUE(logs) << logs.message();
    EXPECT_TRUE(text::is_storable(*logs));
    if (!c.in_log.empty()) {
      EXPECT_NE(logs->find(c.in_log), std::string::npos) << logs->substr(0, 400);
    }
    if (c.in_log.find(kFffd) != std::string::npos) {
      EXPECT_NE(logs->find("[quern] the job's output is not valid UTF-8 text"), std::string::npos);
    }

    // The worker is not wedged: the next job on its one slot completes within a second.
    const int64_t next = push("bash", "echo '{\"next\": true}'");
    const auto pushed = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_until([&] { return (rec = finished(next)).has_value(); }, 10s));
    EXPECT_LT(std::chrono::steady_clock::now() - pushed, 1s);
    EXPECT_EQ(rec->state, "success") << rec->error;
  }
}

TEST_F(WorkerOutputTest, ALongLineIsStoredInPiecesOfAtMost64KiB) {
  worker::WorkerOptions o;
  o.database_url = url_;
  o.tags = {"out"};
  o.slots = 1;
  worker::Worker w(o, registry_);
  ASSERT_TRUE(w.start());
  // 200 KiB of 'é' (2 bytes each) without a newline: pieces are cut between characters.
  const int64_t id = push("bash", "for i in $(seq 102400); do printf '\\xc3\\xa9'; done");
  std::optional<queue::JobRecord> rec;
  ASSERT_TRUE(wait_until([&] { return (rec = finished(id)).has_value(); }, 60s));
  EXPECT_EQ(rec->state, "success") << rec->error;
  auto logs = q_->read_logs(id);
  ASSERT_TRUE(logs);
  EXPECT_TRUE(text::is_storable(*logs));
  EXPECT_EQ(logs->find(kFffd), std::string::npos);  // no character was split
  size_t start = 0, total = 0;
  while (start < logs->size()) {
    size_t nl = logs->find('\n', start);
    ASSERT_NE(nl, std::string::npos);
    EXPECT_LE(nl - start, size_t{64 * 1024});
    total += nl - start;
    start = nl + 1;
  }
  EXPECT_EQ(total, size_t{204800});
}

}  // namespace
}  // namespace quern
