// The script store: path and request validation (no database), and deploy /
// latest / by_hash / list / versions / archive against a real PostgreSQL.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "host/auth/tokens.h"
#include "host/common/crypto.h"
#include "host/common/utf8.h"
#include "host/scripts/script_store.h"
#include "tests/support/test_postgres.h"

namespace quern::scripts {
namespace {

template <typename T>
T must(StatusOr<T> v) {
  if (!v.is_ok()) throw std::runtime_error(v.message());
  return std::move(v).value();
}

NewScript script(const std::string& path, const std::string& content) {
  NewScript s;
  s.path = path;
  s.language = "bash";
  s.content = content;
  s.summary = "a test script";
  s.deployed_by = "tester";
  return s;
}

// The message of validate_path, or "" when valid.
std::string path_error(std::string_view path) { return validate_path(path).message(); }

TEST(ScriptPath, Valid) {
  for (const char* p : {"f/ops/backup", "u/ada/hello", "f/a/b/c/d", "f/x-y/z_1", "u/0/9"})
    EXPECT_EQ(path_error(p), "") << p;
  std::string longest = "f/" + std::string(64, 'a') + "/" + std::string(64, 'b') + "/" +
                        std::string(64, 'c') + "/" + std::string(58, 'd');
  ASSERT_EQ(longest.size(), 255u);
  EXPECT_EQ(path_error(longest), "");
}

TEST(ScriptPath, InvalidWithClearMessages) {
  struct Case {
    const char* path;
    const char* expect;  // part of the message
  };
  const Case cases[] = {
      {"", "empty"},
      {"x/ops/backup", "must start with f/ (folder) or u/ (user)"},
      {"F/ops/backup", "must start with f/"},
      {"/f/ops/backup", "must start with f/"},
      {"f/backup", "needs a folder and a name"},
      {"u/ada", "needs a user and a name"},
      {"f", "needs a folder"},
      {"f/ops/", "empty segment"},
      {"f//backup", "empty segment"},
      {"f/ops/Backup", "segment \"Backup\" may only hold a-z, 0-9, _ and -"},
      {"f/ops/back up", "may only hold"},
      {"f/ops/back.sh", "may only hold"},
      {"f/ops/..", "may only hold"},
      {"f/ops/é", "may only hold"},
  };
  for (const Case& c : cases) {
    const std::string msg = path_error(c.path);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "path \"" << c.path << "\": " << msg;
  }
  EXPECT_NE(path_error("f/ops/" + std::string(65, 'a')).find("longer than 64"), std::string::npos);
  std::string too_long = "f/" + std::string(64, 'a') + "/" + std::string(64, 'b') + "/" +
                         std::string(64, 'c') + "/" + std::string(59, 'd');
  EXPECT_NE(path_error(too_long).find("longer than 255"), std::string::npos);
}

// Messages quote at most 300 bytes of the path (80 of a segment): the cut
// must not split a character, the message goes back to the client as text
// (found by tests/fuzz/fuzz_api_requests).
TEST(ScriptPath, QuotesAreCutToValidUtf8) {
  const std::string long_path = "f/" + std::string(297, 'a') + "\xC3\xA9";        // é straddles byte 300
  const std::string long_segment = "f/ops/" + std::string(79, 'a') + "\xC3\xA9";  // é straddles byte 80
  for (const std::string& path : {long_path, long_segment}) {
    const std::string msg = path_error(path);
    EXPECT_FALSE(msg.empty());
    EXPECT_TRUE(text::is_valid_utf8(msg)) << msg;
  }
  NewScript s = script("f/a/b", "x");
  s.language = std::string(79, 'a') + "\xC3\xA9";
  EXPECT_TRUE(text::is_valid_utf8(validate(s).message())) << validate(s).message();
}

TEST(ScriptValidation, Fields) {
  EXPECT_TRUE(validate(script("f/a/b", "echo hi")).is_ok());
  NewScript s = script("f/a/b", "x");
  s.language = "";
  EXPECT_NE(validate(s).message().find("language is required"), std::string::npos);
  s.language = "Bash";
  EXPECT_NE(validate(s).message().find("language"), std::string::npos);
  s.language = "python_3";
  EXPECT_TRUE(validate(s).is_ok());
  s.content = std::string(1024 * 1024, 'x');
  EXPECT_TRUE(validate(s).is_ok());
  s.content.push_back('x');
  EXPECT_NE(validate(s).message().find("1 MiB"), std::string::npos);
  s.content = std::string("a\0b", 3);
  EXPECT_NE(validate(s).message().find("NUL"), std::string::npos);
  s.content = "\xC3\x28";  // invalid UTF-8
  EXPECT_FALSE(validate(s).is_ok());
  s.content = "ok";
  for (int p : {1, 50, 100, 0}) {
    s.settings.priority = p;
    EXPECT_TRUE(validate(s).is_ok()) << p;
  }
  for (int p : {-1, 101}) {
    s.settings.priority = p;
    EXPECT_NE(validate(s).message().find("priority"), std::string::npos) << p;
  }
  s.settings.priority = 0;
  s.settings.timeout_s = -1;
  EXPECT_NE(validate(s).message().find("timeout_s"), std::string::npos);
  s.settings.timeout_s = 0;
  s.settings.tag = "gpu pool";
  EXPECT_NE(validate(s).message().find("tag: tag \"gpu pool\""), std::string::npos) << validate(s).message();
  s.settings.tag = "gpu:a100";
  EXPECT_TRUE(validate(s).is_ok());
  s.path = "f/a";
  EXPECT_NE(validate(s).message().find("script path"), std::string::npos);
}

TEST(ScriptHash, CoversLanguageSettingsAndContentOnly) {
  ScriptSettings st;
  const std::string h = script_hash("bash", st, "echo hi");
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h, script_hash("bash", st, "echo hi"));
  EXPECT_NE(h, script_hash("python", st, "echo hi"));
  EXPECT_NE(h, script_hash("bash", st, "echo hi "));
  ScriptSettings other = st;
  other.priority = 7;
  EXPECT_NE(h, script_hash("bash", other, "echo hi"));
  // The documented formula, with the canonical (sorted-key) settings JSON.
  EXPECT_EQ(h, crypto::sha256_hex(
                   "bash\n{\"dedicated\":false,\"priority\":0,\"tag\":\"\",\"timeout_s\":0}\necho hi"));
}

TEST(ScriptSettingsJson, RoundTripAndDefaults) {
  ScriptSettings s{"gpu", 80, 30, true, {}, {}, {}};
  nlohmann::json j = s;
  // Policies absent: the canonical JSON (and so every hash) is what it was before they existed.
  EXPECT_EQ(j.dump(), R"({"dedicated":true,"priority":80,"tag":"gpu","timeout_s":30})");
  EXPECT_EQ(j.get<ScriptSettings>(), s);
  EXPECT_EQ(nlohmann::json::parse(R"({"tag":"x"})").get<ScriptSettings>(),
            (ScriptSettings{"x", 0, 0, false, {}, {}, {}}));

  s.concurrency = queue::ConcurrencyLimit{"api:$args[region]", 3, 10, std::chrono::seconds(60)};
  s.retry = queue::RetryPolicy{};
  s.retry->max_attempts = 4;
  j = s;
  EXPECT_EQ(j["concurrency"]["rate"]["window_s"], 60.0);
  EXPECT_EQ(j["retry"]["max_attempts"], 4);
  EXPECT_EQ(j.get<ScriptSettings>(), s);
}

class ScriptStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url("scripts");
    store_ = must(ScriptStore::connect(url_));
  }
  std::string url_;
  std::unique_ptr<ScriptStore> store_;
};

TEST_F(ScriptStoreTest, DeployMakesVersionsAndSameContentIsTheSameVersion) {
  ScriptVersion v1 = must(store_->deploy(script("f/ops/backup", "echo one")));
  EXPECT_EQ(v1.path, "f/ops/backup");
  EXPECT_EQ(v1.hash, script_hash("bash", ScriptSettings{}, "echo one"));
  EXPECT_EQ(v1.content, "echo one");
  EXPECT_EQ(v1.summary, "a test script");
  EXPECT_EQ(v1.deployed_by, "tester");
  EXPECT_FALSE(v1.archived);

  ScriptVersion again = must(store_->deploy(script("f/ops/backup", "echo one")));
  EXPECT_EQ(again.hash, v1.hash);
  EXPECT_EQ(again.created_at, v1.created_at);
  EXPECT_EQ(must(store_->versions("f/ops/backup")).size(), 1u);

  ScriptVersion v2 = must(store_->deploy(script("f/ops/backup", "echo two")));
  EXPECT_NE(v2.hash, v1.hash);
  EXPECT_GE(v2.created_at, v1.created_at);
  auto latest = must(store_->latest("f/ops/backup"));
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->hash, v2.hash);
  EXPECT_EQ(latest->content, "echo two");

  // Back to the first content: a new version (newest) with the first hash.
  ScriptVersion v3 = must(store_->deploy(script("f/ops/backup", "echo one")));
  EXPECT_EQ(v3.hash, v1.hash);
  auto versions = must(store_->versions("f/ops/backup"));
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(versions[0].hash, v1.hash);
  EXPECT_EQ(versions[1].hash, v2.hash);
  EXPECT_EQ(versions[2].hash, v1.hash);
  EXPECT_TRUE(versions[0].content.empty()) << "listings leave content empty";

  // Old versions stay reachable by hash after redeploys.
  auto old = must(store_->by_hash(v2.hash));
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->content, "echo two");
  EXPECT_EQ(old->path, "f/ops/backup");
  EXPECT_FALSE(must(store_->by_hash(std::string(64, '0'))).has_value());
  EXPECT_FALSE(must(store_->latest("f/ops/none")).has_value());
  EXPECT_TRUE(must(store_->versions("f/ops/none")).empty());
}

TEST_F(ScriptStoreTest, SettingsChangeMakesANewVersionAndRoundTrip) {
  NewScript s = script("u/ada/train", "python train.py");
  s.language = "python";
  ScriptVersion v1 = must(store_->deploy(s));
  s.settings = ScriptSettings{"gpu:a100", 90, 3600, true, {}, {}, {}};
  ScriptVersion v2 = must(store_->deploy(s));
  EXPECT_NE(v1.hash, v2.hash);
  EXPECT_EQ(v2.settings, s.settings);
  auto got = must(store_->latest("u/ada/train"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->settings, s.settings);
  EXPECT_EQ(got->language, "python");
  EXPECT_EQ(must(store_->by_hash(v1.hash))->settings, ScriptSettings{});
}

TEST_F(ScriptStoreTest, ContentRoundTripsUnchanged) {
  const std::string content =
      "#!/bin/bash\necho \"double\" 'single' `back` $HOME \\ \\\\n\t tab\r\n"
      "unicode: héllo wörld — 日本語 🚀 \u00a0\n' OR 1=1; -- $1 $$ E'\\x00'\n";
  NewScript s = script("f/text/quotes", content);
  s.summary = "résumé «quoted» \"x\"";
  ScriptVersion v = must(store_->deploy(s));
  EXPECT_EQ(v.content, content);
  auto got = must(store_->by_hash(v.hash));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->content, content);
  EXPECT_EQ(got->summary, s.summary);
  EXPECT_EQ(got->hash, script_hash("bash", ScriptSettings{}, content));
}

TEST_F(ScriptStoreTest, ArchiveHidesPathButNotHashesAndRedeployRevives) {
  ScriptVersion a1 = must(store_->deploy(script("f/app/a", "echo a1")));
  ScriptVersion a2 = must(store_->deploy(script("f/app/a", "echo a2")));
  must(store_->deploy(script("f/app/b", "echo b")));
  ASSERT_EQ(must(store_->list()).size(), 2u);

  EXPECT_TRUE(must(store_->archive("f/app/a")));
  EXPECT_TRUE(must(store_->archive("f/app/a")));  // idempotent
  EXPECT_FALSE(must(store_->archive("f/app/none")));
  EXPECT_FALSE(must(store_->latest("f/app/a")).has_value());

  auto live = must(store_->list());
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].path, "f/app/b");
  auto all = must(store_->list(true));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].path, "f/app/a");
  EXPECT_TRUE(all[0].archived);
  EXPECT_EQ(all[0].hash, a2.hash);
  EXPECT_FALSE(all[1].archived);

  auto by_hash = must(store_->by_hash(a1.hash));
  ASSERT_TRUE(by_hash.has_value());
  EXPECT_TRUE(by_hash->archived);
  EXPECT_EQ(by_hash->content, "echo a1");

  // Redeploying un-archives the path with the new version.
  ScriptVersion a3 = must(store_->deploy(script("f/app/a", "echo a3")));
  EXPECT_FALSE(a3.archived);
  auto latest = must(store_->latest("f/app/a"));
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->hash, a3.hash);
  EXPECT_EQ(must(store_->list()).size(), 2u);
  EXPECT_EQ(must(store_->versions("f/app/a")).size(), 3u);

  // Redeploying exactly the archived latest version revives it without a new row.
  EXPECT_TRUE(must(store_->archive("f/app/b")));
  ScriptVersion b = must(store_->deploy(script("f/app/b", "echo b")));
  EXPECT_FALSE(b.archived);
  EXPECT_EQ(must(store_->versions("f/app/b")).size(), 1u);
  EXPECT_TRUE(must(store_->latest("f/app/b")).has_value());
}

TEST_F(ScriptStoreTest, ListIsSortedByPathWithoutContent) {
  for (const char* p : {"u/zed/x", "f/b/x", "f/a/y", "f/a/x"})
    must(store_->deploy(script(p, std::string("echo ") + p)));
  must(store_->deploy(script("f/b/x", "echo newer")));
  auto list = must(store_->list());
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0].path, "f/a/x");
  EXPECT_EQ(list[1].path, "f/a/y");
  EXPECT_EQ(list[2].path, "f/b/x");
  EXPECT_EQ(list[2].hash, script_hash("bash", ScriptSettings{}, "echo newer"));
  EXPECT_EQ(list[3].path, "u/zed/x");
  for (const auto& v : list) EXPECT_TRUE(v.content.empty());
}

TEST_F(ScriptStoreTest, SameContentAtTwoPaths) {
  ScriptVersion a = must(store_->deploy(script("f/one/s", "echo same")));
  ScriptVersion b = must(store_->deploy(script("f/two/s", "echo same")));
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(must(store_->latest("f/one/s"))->path, "f/one/s");
  EXPECT_EQ(must(store_->latest("f/two/s"))->path, "f/two/s");
  EXPECT_EQ(must(store_->by_hash(a.hash))->content, "echo same");
}

TEST_F(ScriptStoreTest, ReconnectsAfterTheBackendIsTerminated) {
  ScriptVersion v = must(store_->deploy(script("f/re/connect", "echo 1")));
  {
    pqxx::connection admin(url_);
    pqxx::nontransaction tx(admin);
    auto r = tx.exec(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    ASSERT_EQ(r[0][0].as<int>(), 1);
  }
  auto first = store_->latest("f/re/connect");
  if (!first.is_ok()) {
    EXPECT_NE(first.message().find("get script"), std::string::npos) << first.message();
  }
  auto latest = must(store_->latest("f/re/connect"));
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->hash, v.hash);
  EXPECT_EQ(must(store_->deploy(script("f/re/connect", "echo 2"))).content, "echo 2");
}

TEST_F(ScriptStoreTest, InvalidDeployWritesNothing) {
  EXPECT_FALSE(store_->deploy(script("f/bad", "x")).is_ok());
  EXPECT_TRUE(must(store_->list(true)).empty());
}

}  // namespace
}  // namespace quern::scripts
