// host/log/log.h: both line formats and their fields, the severity filter,
// parse_severity, one record per line whatever the message holds, whole
// lines from concurrent writers, and the default output before configure().
#include "host/log/log.h"

#include <gtest/gtest.h>

#include <latch>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/common/utf8.h"

namespace quern::log {
namespace {

const std::string kTime = R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)";

class LogTest : public ::testing::Test {
 protected:
  // Back to stderr: out_ goes away with the test.
  void TearDown() override { configure(Options{}); }

  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

  std::ostringstream out_;
};

TEST_F(LogTest, JsonLinesCarryEveryField) {
  configure({.level = Severity::debug, .json = true}, &out_);
  warning("worker", "lease lost", {.worker = "w-1", .job = 42});
  info("server", "listening");
  const auto l = lines();
  ASSERT_EQ(l.size(), 2u) << out_.str();
  // The documented key order, so that lines read well as they are.
  EXPECT_EQ(l[0].rfind(R"({"time":")", 0), 0u) << l[0];
  EXPECT_LT(l[0].find(R"("level")"), l[0].find(R"("component")")) << l[0];
  EXPECT_LT(l[0].find(R"("job")"), l[0].find(R"("message")")) << l[0];
  const auto j = nlohmann::json::parse(l[0]);
  EXPECT_TRUE(std::regex_match(j["time"].get<std::string>(), std::regex(kTime))) << l[0];
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["component"], "worker");
  EXPECT_EQ(j["worker"], "w-1");
  EXPECT_EQ(j["job"], 42);
  EXPECT_EQ(j["message"], "lease lost");
  EXPECT_EQ(j.size(), 6u) << l[0];
  // Fields that are not set are left out.
  const auto k = nlohmann::json::parse(l[1]);
  EXPECT_EQ(k["level"], "info");
  EXPECT_EQ(k["component"], "server");
  EXPECT_EQ(k["message"], "listening");
  EXPECT_FALSE(k.contains("worker")) << l[1];
  EXPECT_FALSE(k.contains("job")) << l[1];
}

TEST_F(LogTest, TextLinesHaveTheDocumentedShape) {
  configure({}, &out_);
  warning("worker", "lease lost", {.worker = "w-1", .job = 42});
  info("server", "listening on http://127.0.0.1:8420");
  error("scheduler", "no database", {.worker = {}, .job = 7});
  const auto l = lines();
  ASSERT_EQ(l.size(), 3u) << out_.str();
  EXPECT_TRUE(std::regex_match(l[0], std::regex(kTime + " warning worker w-1 job 42: lease lost"))) << l[0];
  EXPECT_TRUE(
      std::regex_match(l[1], std::regex(kTime + " info server: listening on http://127\\.0\\.0\\.1:8420")))
      << l[1];
  EXPECT_TRUE(std::regex_match(l[2], std::regex(kTime + " error scheduler job 7: no database"))) << l[2];
}

TEST_F(LogTest, RecordsBelowTheLevelAreDropped) {
  configure({.level = Severity::warning, .json = true}, &out_);
  EXPECT_FALSE(enabled(Severity::debug));
  EXPECT_FALSE(enabled(Severity::info));
  EXPECT_TRUE(enabled(Severity::warning));
  EXPECT_TRUE(enabled(Severity::error));
  debug("http", "d");
  info("http", "i");
  warning("http", "w");
  error("http", "e");
  auto l = lines();
  ASSERT_EQ(l.size(), 2u) << out_.str();
  EXPECT_EQ(nlohmann::json::parse(l[0])["message"], "w");
  EXPECT_EQ(nlohmann::json::parse(l[1])["message"], "e");

  // Reconfigured, the new level holds at once.
  out_.str("");
  configure({.level = Severity::debug, .json = true}, &out_);
  EXPECT_TRUE(enabled(Severity::debug));
  debug("http", "d");
  l = lines();
  ASSERT_EQ(l.size(), 1u) << out_.str();
  EXPECT_EQ(nlohmann::json::parse(l[0])["level"], "debug");
}

TEST(ParseSeverity, AcceptsTheFourLevelsAndRejectsOthersNamingThem) {
  for (Severity s : {Severity::debug, Severity::info, Severity::warning, Severity::error}) {
    auto parsed = parse_severity(to_string(s));
    ASSERT_TRUE(parsed) << parsed.message();
    EXPECT_EQ(*parsed, s);
  }
  auto bad = parse_severity("verbose");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.code(), StatusCode::invalid_argument);
  EXPECT_NE(bad.message().find("'verbose'"), std::string::npos) << bad.message();
  EXPECT_NE(bad.message().find("debug, info, warning, error"), std::string::npos) << bad.message();
  EXPECT_FALSE(parse_severity("INFO"));  // exact names only

  Options o;
  ASSERT_TRUE(parse_format("json", o));
  EXPECT_TRUE(o.json);
  ASSERT_TRUE(parse_format("text", o));
  EXPECT_FALSE(o.json);
  Status s = parse_format("xml", o);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("'xml'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("text or json"), std::string::npos) << s.message();
}

TEST_F(LogTest, NewlinesControlCharactersAndInvalidUtf8StayOnOneLine) {
  const std::string nasty = std::string("first\nsecond\r\tthird \xff\xfe end \x1b[31m red") + '\0' + "!";
  const std::string replacement(text::kReplacement);
  for (bool json : {false, true}) {
    SCOPED_TRACE(json ? "json" : "text");
    out_.str("");
    configure({.json = json}, &out_);
    error("http", nasty, {.worker = "w\n2", .job = 3});
    const std::string out = out_.str();
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.find('\n'), out.size() - 1) << out;  // one line, ended once
    EXPECT_EQ(out.find('\r'), std::string::npos) << out;
    EXPECT_TRUE(text::is_valid_utf8(out)) << out;
    if (json) {
      const auto j = nlohmann::json::parse(out);
      const std::string message = j["message"];
      EXPECT_EQ(message.rfind("first\nsecond\r\tthird " + replacement, 0), 0u) << message;
      EXPECT_NE(message.find("end \x1b[31m red"), std::string::npos) << message;
      EXPECT_EQ(j["worker"], "w\n2");
    } else {
      EXPECT_NE(out.find("error http w\\n2 job 3: first\\nsecond\\r\\tthird " + replacement),
                std::string::npos)
          << out;
      EXPECT_NE(out.find("end \\x1b[31m red\\x00!"), std::string::npos) << out;
    }
  }
}

TEST_F(LogTest, ConcurrentWritersNeverInterleaveWithinALine) {
  constexpr int kThreads = 8;
  constexpr int kRecords = 500;
  configure({.json = true}, &out_);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &start] {
      const std::string body(300, static_cast<char>('a' + t));  // long enough to be written in pieces
      start.arrive_and_wait();
      for (int i = 0; i < kRecords; ++i)
        info("worker", body + " " + std::to_string(i), {.worker = std::to_string(t), .job = i + 1});
    });
  }
  for (auto& th : threads) th.join();
  const auto l = lines();
  ASSERT_EQ(l.size(), static_cast<size_t>(kThreads * kRecords));
  std::vector<int> next(kThreads, 0);  // each writer's records arrive in its order
  for (const std::string& line : l) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    const int t = std::stoi(j["worker"].get<std::string>());
    ASSERT_TRUE(t >= 0 && t < kThreads) << line;
    const int i = next[t]++;
    EXPECT_EQ(j["message"], std::string(300, static_cast<char>('a' + t)) + " " + std::to_string(i)) << line;
    EXPECT_EQ(j["job"], i + 1) << line;
  }
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(next[t], kRecords);
}

// In a process of its own (the death test re-runs this test alone), so that
// nothing configured the output yet: text at info on stderr.
TEST(LogDefault, BeforeConfigureRecordsAreTextAtInfoOnStderr) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        debug("server", "hidden");
        info("server", "hello", {.worker = "w-1"});
        std::exit(0);
      },
      ::testing::ExitedWithCode(0),
      "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z info server w-1: hello\n$");
}

}  // namespace
}  // namespace quern::log
