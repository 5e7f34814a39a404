// A real `quern worker --group` process picks up a rewritten config on SIGHUP:
// the group's new tags are claimed and listened on (the poll interval is far
// longer than the test, so only NOTIFY on the new channel can wake it), the
// old tag is no longer claimed, the registry row and the queue statistics
// show the new tags, and a broken config changes nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "host/queue/queue.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::wait_until;

class WorkerReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    url_ = testing::fresh_database_url(name_);
    auto q = queue::Queue::connect(url_);
    ASSERT_TRUE(q) << q.message();
    q_ = std::move(q).value();
    config_ = std::filesystem::temp_directory_path() / (name_ + ".xml");
  }
  void TearDown() override { std::filesystem::remove(config_); }

  void write_config(const std::string& group) {
    std::ofstream(config_)
        << "<quern>\n"
        << "  <plugins dir=\"" << testing::plugin_dir() << "\"/>\n"
        << "  <queue lease-timeout=\"30s\" heartbeat-interval=\"250ms\" poll-interval=\"1h\"/>\n"
        << "  <workers>\n"
        << "    " << group << "\n"
        << "  </workers>\n"
        << "</quern>\n";
  }

  std::unique_ptr<ChildProcess> start_worker() {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{testing::quern_binary(), "worker", "--config", config_.string(), "--group",
                                 "g", "--database-url", url_, "--worker-id", "reload-" + name_},
        std::filesystem::temp_directory_path() / (name_ + ".log"));
  }

  int64_t push(const std::string& tag, int priority = queue::kDefaultPriority) {
    queue::NewJob job;
    job.language = "noop";
    job.tag = tag;
    job.priority = priority;
    job.payload["args"] = {{"result", tag}};
    auto id = q_->push(job);
    EXPECT_TRUE(id) << id.message();
    return id ? *id : 0;
  }

  std::string state(int64_t id) {
    auto r = q_->get_job(id);
    return r && *r ? (*r)->state : "?";
  }

  std::string registry(const std::string& column) {
    auto v = q_->exec_scalar("select " + column + " from quern.workers where id = 'reload-" + name_ + "'");
    return v ? *v : "";
  }

  // Whether the queue statistics say a live worker serves the tag; nullopt
  // when the tag is not in them.
  std::optional<bool> served(const std::string& tag) {
    auto stats = q_->queue_stats(std::chrono::seconds(30));
    EXPECT_TRUE(stats) << stats.message();
    if (!stats) return std::nullopt;
    for (const auto& s : *stats)
      if (s.tag == tag) return s.served;
    return std::nullopt;
  }

  std::string name_, url_;
  std::filesystem::path config_;
  std::unique_ptr<queue::Queue> q_;
};

TEST_F(WorkerReloadTest, SighupChangesTheGroupsTagsAndSlots) {
  write_config(R"(<group name="g" slots="2" tags="alpha" plugins="noop"/>)");
  auto worker = start_worker();
  ASSERT_TRUE(wait_until([&] { return registry("array_to_string(tags, ',')") == "alpha"; }, 30s))
      << worker->output();
  const int64_t first = push("alpha");
  ASSERT_TRUE(wait_until([&] { return state(first) == "success"; }, 20s)) << worker->output();

  write_config(R"(<group name="g" slots="3" tags="beta,gamma" plugins="noop,bash"/>)");
  worker->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return registry("array_to_string(tags, ',')") == "beta,gamma"; }, 20s))
      << worker->output();
  EXPECT_TRUE(wait_until([&] { return registry("slots") == "3"; }, 20s)) << worker->output();
  EXPECT_TRUE(wait_until(
      [&] {
        return worker->output().find("plugins changed to [noop, bash]: needs a restart") != std::string::npos;
      },
      20s))
      << worker->output();

  // The old tag first and at a higher priority: a worker still serving it
  // would take it before the new one.
  const int64_t old_tag = push("alpha", 100);
  const int64_t new_tag = push("beta");
  EXPECT_EQ(served("alpha"), std::optional<bool>(false));  // the queue statistics follow the registry
  ASSERT_TRUE(wait_until([&] { return state(new_tag) == "success"; }, 20s)) << worker->output();
  // With an hour's poll interval only a NOTIFY on gamma's channel wakes the worker for this one.
  const int64_t woken = push("gamma");
  ASSERT_TRUE(wait_until([&] { return state(woken) == "success"; }, 20s)) << worker->output();
  EXPECT_EQ(state(old_tag), "queued");
  EXPECT_EQ(served("gamma"), std::optional<bool>(true));

  // A broken file: the error with file and line, and the worker goes on as it was.
  std::ofstream(config_)
      << "<quern>\n  <workers>\n    <group name=\"g\" slots=\"abc\"/>\n  </workers>\n</quern>\n";
  worker->signal(SIGHUP);
  const std::string expected = "reloading the config failed, keeping the old settings: " + config_.string() +
                               ":3: <group slots=\"abc\">: expected a positive integer";
  ASSERT_TRUE(wait_until([&] { return worker->output().find(expected) != std::string::npos; }, 20s))
      << worker->output();
  const int64_t after_bad = push("beta");
  ASSERT_TRUE(wait_until([&] { return state(after_bad) == "success"; }, 20s)) << worker->output();
  EXPECT_EQ(registry("array_to_string(tags, ',')"), "beta,gamma");
  EXPECT_EQ(state(old_tag), "queued");

  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait_exit(30s), 0) << worker->output();
}

TEST_F(WorkerReloadTest, UnknownGroupListsTheGroups) {
  write_config(R"(<group name="a" tags="x"/><group name="b" tags="y"/>)");
  auto worker = std::make_unique<ChildProcess>(
      std::vector<std::string>{testing::quern_binary(), "worker", "--config", config_.string(), "--group",
                               "nope", "--database-url", url_},
      std::filesystem::temp_directory_path() / (name_ + ".log"));
  EXPECT_EQ(worker->wait_exit(30s), 2);
  EXPECT_NE(worker->output().find("no worker group 'nope' in " + config_.string() + " (groups: a, b)"),
            std::string::npos)
      << worker->output();
}

// A group loads only the plugins it enables: a job whose plugin the group
// leaves out fails with the worker's "no executor plugin" message.
TEST_F(WorkerReloadTest, GroupLoadsOnlyItsPlugins) {
  write_config(R"(<group name="g" tags="noop,bash" plugins="noop"/>)");
  auto worker = start_worker();
  const int64_t noop = push("noop");
  queue::NewJob job;
  job.language = "bash";
  job.tag = "bash";
  job.payload["code"] = "echo hi";
  auto bash = q_->push(job);
  ASSERT_TRUE(bash);
  ASSERT_TRUE(wait_until([&] { return state(noop) == "success" && state(*bash) == "failure"; }, 30s))
      << worker->output();
  auto rec = q_->get_job(*bash);
  ASSERT_TRUE(rec && *rec);
  EXPECT_NE((*rec)->error.find("no executor plugin for language 'bash'"), std::string::npos) << (*rec)->error;
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait_exit(30s), 0) << worker->output();
}

// pass-env: the listed host variables reach the job, the others do not.
TEST_F(WorkerReloadTest, PassEnvHandsOnlyListedVariablesToJobs) {
  ::setenv("ROUTING_TEST_PASSED", "yes", 1);
  ::setenv("ROUTING_TEST_HIDDEN", "secret", 1);
  write_config(
      R"(<group name="g" tags="bash" plugins="bash" pass-env="ROUTING_TEST_PASSED,ROUTING_TEST_UNSET"/>)");
  auto worker = start_worker();
  ::unsetenv("ROUTING_TEST_PASSED");
  ::unsetenv("ROUTING_TEST_HIDDEN");
  queue::NewJob job;
  job.language = "bash";
  job.tag = "bash";
  job.payload["code"] =
      R"(echo "{\"passed\": \"$ROUTING_TEST_PASSED\", \"hidden\": \"${ROUTING_TEST_HIDDEN-unset}\", )"
      R"(\"unset\": \"${ROUTING_TEST_UNSET-unset}\"}")";
  auto id = q_->push(job);
  ASSERT_TRUE(id) << id.message();
  ASSERT_TRUE(wait_until([&] { return state(*id) != "queued" && state(*id) != "running"; }, 30s))
      << worker->output();
  auto rec = q_->get_job(*id);
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->state, "success") << (*rec)->error;
  EXPECT_EQ((*rec)->result, (nlohmann::json{{"passed", "yes"}, {"hidden", "unset"}, {"unset", "unset"}}));
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait_exit(30s), 0) << worker->output();
}

}  // namespace
}  // namespace quern
