// The sql executor through the real loader, against the test harness's real
// PostgreSQL: parameters (never interpolated), transactions, timeouts,
// cancellation, passwords kept secret, result value conversion.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>

#include "host/plugin/plugin_registry.h"
#include "tests/plugin/recording_sink.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using quern::testing::RecordingSink;
using Clock = std::chrono::steady_clock;

class SqlExecutor : public ::testing::Test {
 protected:
  void SetUp() override {
    quern::Status s = registry_.load_file(std::filesystem::path(QUERN_PLUGIN_DIR) / "libquern_sql.so");
    ASSERT_TRUE(s.is_ok()) << s.message();
    url_ = quern::testing::fresh_database_url("sql_executor");
    executor_ = create(json{{"resources", {{"main", {{"url", url_}}}}}}.dump());
    ASSERT_NE(executor_, nullptr);
  }

  std::unique_ptr<quern::plugin::Executor> create(const std::string& config) {
    auto created = registry_.by_name("sql")->create(config);
    EXPECT_TRUE(created.is_ok()) << created.message();
    return created.is_ok() ? std::move(created.value()) : nullptr;
  }

  static std::string job(const std::string& code, const ordered_json& args, double timeout_s) {
    ordered_json j = {{"id", 1}, {"attempt", 1}, {"language", "sql"}, {"code", code}, {"args", args}};
    if (timeout_s > 0) j["timeout_s"] = timeout_s;
    return j.dump();
  }

  quern_status run(RecordingSink& sink, const std::string& code,
                   const ordered_json& args = ordered_json::object(), double timeout_s = 0,
                   quern::plugin::Executor* executor = nullptr) {
    return (executor ? executor : executor_.get())->execute(job(code, args, timeout_s), sink);
  }

  // Runs code that must succeed and returns its result.
  ordered_json ok(const std::string& code, const ordered_json& args = ordered_json::object()) {
    RecordingSink sink;
    quern_status st = run(sink, code, args);
    EXPECT_EQ(st, QUERN_STATUS_SUCCESS) << sink.error().value_or("");
    return sink.result() ? ordered_json::parse(*sink.result()) : ordered_json();
  }

  quern::plugin::PluginRegistry registry_;
  std::string url_;
  std::unique_ptr<quern::plugin::Executor> executor_;
};

TEST_F(SqlExecutor, SelectOne) {
  ordered_json r = ok("select 1 as one");
  EXPECT_EQ(r["columns"], json::array({"one"}));
  EXPECT_EQ(r["rows"], json::parse("[[1]]"));
  EXPECT_EQ(r["affected"], 1);
  ASSERT_EQ(r["statements"].size(), 1u);
  EXPECT_EQ(r["statements"][0]["rows"], json::parse("[[1]]"));
}

TEST_F(SqlExecutor, ParametersRoundTripUnchanged) {
  ordered_json args = ordered_json::object();
  args["quotes"] = "it's \"quoted\" '' $$ $1 :x";
  args["backslashes"] = "C:\\path\\to\\ \\' \\\\ \\n";
  args["unicode"] = "ünïcødé 日本語 🎉 \u00a0";
  args["number"] = 42;
  args["nothing"] = nullptr;
  args["flag"] = true;
  ordered_json r = ok("select $1::text, $2::text, $3::text, $4::int, $5::text, $6::bool", args);
  ordered_json expected =
      ordered_json::array({args["quotes"], args["backslashes"], args["unicode"], 42, nullptr, true});
  EXPECT_EQ(r["rows"][0], expected);
}

TEST_F(SqlExecutor, InjectionAttemptsStayData) {
  ok("create table t(v text); insert into t values ('a')");
  for (std::string evil : {"1; drop table t; --", "' or '1'='1", "a'); drop table t; --"}) {
    ordered_json r = ok("insert into t values ($1) returning v", {{"v", evil}});
    EXPECT_EQ(r["rows"][0][0], evil);
    ordered_json matched = ok("select count(*) from t where v = $1", {{"v", evil}});
    EXPECT_EQ(matched["rows"][0][0], 1) << evil;
  }
  ordered_json n = ok("select count(*) from t");
  EXPECT_EQ(n["rows"][0][0], 4);  // the table is still there, with exactly the rows inserted
  ordered_json named = ok("select count(*) from t where v = :v", {{"v", "' or '1'='1"}});
  EXPECT_EQ(named["rows"][0][0], 1);
}

TEST_F(SqlExecutor, NamedParameters) {
  ordered_json r =
      ok("select :name::text as n, :count::int + 1 as c, ':name' as lit, 'x'::text as cast_kept,\n"
         "  /* :name */ -- :name\n  :name as again",
         {{"name", "Ada"}, {"count", 2}});
  EXPECT_EQ(r["columns"], json::parse(R"(["n","c","lit","cast_kept","again"])"));
  EXPECT_EQ(r["rows"][0], json::parse(R"(["Ada",3,":name","x","Ada"])"));
}

TEST_F(SqlExecutor, MultipleStatementsAndAffectedCounts) {
  ordered_json r =
      ok("create table m(v int); insert into m values (1), (2), (3);\n"
         "update m set v = v + 10 where v > 1; select v from m order by v; delete from m");
  ASSERT_EQ(r["statements"].size(), 5u);
  EXPECT_EQ(r["statements"][0]["affected"], 0);
  EXPECT_EQ(r["statements"][1]["affected"], 3);
  EXPECT_EQ(r["statements"][2]["affected"], 2);
  EXPECT_EQ(r["statements"][3]["rows"], json::parse("[[1],[12],[13]]"));
  EXPECT_EQ(r["statements"][4]["affected"], 3);
  EXPECT_FALSE(r.contains("rows"));  // top-level shortcut only for one statement
}

TEST_F(SqlExecutor, ErrorCarriesPostgresMessage) {
  RecordingSink sink;
  EXPECT_EQ(run(sink, "select * from no_such_table"), QUERN_STATUS_FAILURE);
  ASSERT_TRUE(sink.error());
  EXPECT_NE(sink.error()->find("relation \"no_such_table\" does not exist"), std::string::npos)
      << *sink.error();
  EXPECT_NE(sink.error()->find("42P01"), std::string::npos) << *sink.error();
  ok("select 1");  // the connection is fine afterwards
}

TEST_F(SqlExecutor, ErrorRollsBackTheWholeJob) {
  ok("create table r(v int)");
  RecordingSink sink;
  EXPECT_EQ(run(sink, "insert into r values (1); select 1/0"), QUERN_STATUS_FAILURE);
  ASSERT_TRUE(sink.error());
  EXPECT_NE(sink.error()->find("statement 2 of 2: division by zero"), std::string::npos) << *sink.error();
  EXPECT_EQ(ok("select count(*) from r")["rows"][0][0], 0);
}

TEST_F(SqlExecutor, NoTransactionKeepsEarlierStatements) {
  ok("create table r(v int)");
  RecordingSink sink;
  EXPECT_EQ(run(sink, "-- quern:no-transaction\ninsert into r values (1); select 1/0"), QUERN_STATUS_FAILURE);
  EXPECT_EQ(ok("select count(*) from r")["rows"][0][0], 1);
  // Statements that refuse to run inside a transaction block work there.
  ok("-- quern:no-transaction\nvacuum r");
}

TEST_F(SqlExecutor, StatementTimeoutStopsQuickly) {
  RecordingSink sink;
  const auto start = Clock::now();
  quern_status st = run(sink, "select pg_sleep(10)", ordered_json::object(), 1);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(st, QUERN_STATUS_TIMEOUT);
  ASSERT_TRUE(sink.error());
  EXPECT_NE(sink.error()->find("statement timeout"), std::string::npos) << *sink.error();
  // Same pooled connection, no timeout left behind (the next job has none).
  ok("select pg_sleep(1.2)");
}

// Whether the test database runs a statement containing marker right now.
bool active(const std::string& url, const std::string& marker) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  auto r = tx.exec_params(
      "select 1 from pg_stat_activity where state = 'active' and query like $1 and pid <> pg_backend_pid()",
      "%" + marker + "%");
  return !r.empty();
}

// Waits until the test database runs a statement containing marker.
bool query_running(const std::string& url, const std::string& marker) {
  return quern::testing::wait_until([&] { return active(url, marker); }, std::chrono::seconds(10));
}

TEST_F(SqlExecutor, CancelAndHostTimeoutStopARunningQuery) {
  for (int32_t why : {QUERN_CANCEL_REQUESTED, QUERN_TIMEOUT_REACHED, QUERN_SHUTDOWN}) {
    RecordingSink sink;
    std::atomic<int32_t> flag{QUERN_RUNNING};
    sink.set_cancel_check([&] { return flag.load(); });
    const std::string marker = "cancel_me_" + std::to_string(why);
    std::thread stopper([&] {
      EXPECT_TRUE(query_running(url_, marker));
      flag = why;
    });
    const auto start = Clock::now();
    quern_status st = run(sink, "select pg_sleep(60) as " + marker);
    stopper.join();
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(15));
    EXPECT_EQ(st, why == QUERN_TIMEOUT_REACHED ? QUERN_STATUS_TIMEOUT : QUERN_STATUS_CANCELED);
    // The server really stopped the statement (the cancel reached it).
    EXPECT_TRUE(quern::testing::wait_until([&] { return !active(url_, marker); }, std::chrono::seconds(5)));
  }
  ok("select 1");  // the instance still works
}

TEST_F(SqlExecutor, InterruptStopsARunningQuery) {
  RecordingSink sink;
  std::thread stopper([&] {
    EXPECT_TRUE(query_running(url_, "interrupt_me"));
    executor_->interrupt();
  });
  EXPECT_EQ(run(sink, "select pg_sleep(60) as interrupt_me"), QUERN_STATUS_CANCELED);
  stopper.join();
}

// A role with a password (created by the superuser), dropped at the end.
class PasswordRole {
 public:
  explicit PasswordRole(const std::string& url) : url_(url) {
    name_ = "quern_pw_" + std::to_string(::getpid());
    password_ = "Sup3r-S3cret-" + std::to_string(::getpid());
    pqxx::connection c(quern::testing::admin_database_url());
    pqxx::nontransaction tx(c);
    tx.exec("drop role if exists " + name_);
    tx.exec("create role " + name_ + " login password " + tx.quote(password_));
  }
  ~PasswordRole() {
    try {
      pqxx::connection c(quern::testing::admin_database_url());
      pqxx::nontransaction tx(c);
      tx.exec("drop role if exists " + name_);
    } catch (...) {
    }
  }
  // The test URL with this role as the user.
  std::string url() const {
    std::string u = url_;
    // Without the harness's password file: this role's password comes from the plugin's settings.
    u = u.substr(0, u.find("&passfile="));
    auto pos = u.find("user=quern");
    return u.replace(pos, 10, "user=" + name_);
  }
  const std::string& name() const { return name_; }
  const std::string& password() const { return password_; }

 private:
  std::string url_, name_, password_;
};

void expect_no_secret(const RecordingSink& sink, const std::string& secret) {
  if (sink.result()) {
    EXPECT_EQ(sink.result()->find(secret), std::string::npos);
  }
  if (sink.error()) {
    EXPECT_EQ(sink.error()->find(secret), std::string::npos) << *sink.error();
  }
  for (const auto& line : sink.lines()) EXPECT_EQ(line.text.find(secret), std::string::npos) << line.text;
}

TEST_F(SqlExecutor, PasswordFromEnvAndFileNeverShows) {
  PasswordRole role(url_);
  const std::string env_name = "QUERN_SQL_TEST_PW_" + std::to_string(::getpid());
  ::setenv(env_name.c_str(), role.password().c_str(), 1);
  const std::string file =
      (std::filesystem::temp_directory_path() / ("quern_sql_pw_" + std::to_string(::getpid()))).string();
  std::ofstream(file) << role.password() << "\n";

  const json config = {{"resources",
                        {{"by_env", {{"url", role.url()}, {"password_env", env_name}}},
                         {"by_file", {{"url", role.url()}, {"password_file", file}}}}},
                       {"default_resource", "by_env"}};
  auto executor = create(config.dump());
  ASSERT_NE(executor, nullptr);
  for (std::string resource : {"by_env", "by_file"}) {
    RecordingSink good;
    EXPECT_EQ(run(good, "-- quern:resource " + resource + "\nselect current_user", {}, 0, executor.get()),
              QUERN_STATUS_SUCCESS)
        << good.error().value_or("");
    EXPECT_EQ(ordered_json::parse(good.result().value_or("null"))["rows"][0][0], role.name());
    expect_no_secret(good, role.password());

    RecordingSink bad;
    EXPECT_EQ(run(bad, "-- quern:resource " + resource + "\nselect 1/0", {}, 0, executor.get()),
              QUERN_STATUS_FAILURE);
    expect_no_secret(bad, role.password());
  }
  std::filesystem::remove(file);
  ::unsetenv(env_name.c_str());

  // A url that carries the password is refused, without echoing it.
  std::string with_password = role.url();
  with_password.replace(with_password.find("postgresql://"), 13,
                        "postgresql://" + role.name() + ":" + role.password() + "@");
  auto refused =
      registry_.by_name("sql")->create(json{{"resources", {{"x", {{"url", with_password}}}}}}.dump());
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.message().find("must not contain a password"), std::string::npos) << refused.message();
  EXPECT_EQ(refused.message().find(role.password()), std::string::npos);

  // A missing environment variable is a clear error at create.
  auto missing = registry_.by_name("sql")->create(
      json{{"resources", {{"x", {{"url", url_}, {"password_env", "QUERN_NO_SUCH_VARIABLE_HERE"}}}}}}.dump());
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.message().find("QUERN_NO_SUCH_VARIABLE_HERE is not set"), std::string::npos)
      << missing.message();
}

TEST_F(SqlExecutor, ReconnectsWhenThePooledConnectionDied) {
  const int64_t pid = ok("select pg_backend_pid()")["rows"][0][0].get<int64_t>();
  EXPECT_EQ(ok("select pg_backend_pid()")["rows"][0][0], pid);  // pooled: the same backend
  {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    tx.exec_params("select pg_terminate_backend($1)", pid);
  }
  ASSERT_TRUE(quern::testing::wait_until(
      [&] {
        pqxx::connection c(url_);
        pqxx::nontransaction tx(c);
        return tx.exec_params("select 1 from pg_stat_activity where pid = $1", pid).empty();
      },
      std::chrono::seconds(10)));
  ordered_json r = ok("select pg_backend_pid()");
  EXPECT_NE(r["rows"][0][0], pid);
}

TEST_F(SqlExecutor, MissingResourceIsAClearError) {
  RecordingSink sink;
  EXPECT_EQ(run(sink, "-- quern:resource nope\nselect 1"), QUERN_STATUS_FAILURE);
  ASSERT_TRUE(sink.error());
  EXPECT_NE(sink.error()->find("unknown resource 'nope' (configured: main)"), std::string::npos)
      << *sink.error();

  auto none = registry_.by_name("sql")->create("{}");
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.message().find("resources"), std::string::npos) << none.message();
}

TEST_F(SqlExecutor, ValueConversion) {
  ordered_json r =
      ok("select 9007199254740993::int8 as big, 42::int8 as i8, 7::int2 as i2, 1.5::float8 as f, "
         "'NaN'::float8 as nan,"
         " 12345678901234567890.5::numeric as bignum, 3.25::numeric as num, 100::numeric as intnum,"
         " '{\"a\": [1, 2]}'::jsonb as jb, '[true]'::json as j, null::int as nothing, true as yes, 'x'::text "
         "as t,"
         " '2024-01-02'::date as d");
  EXPECT_EQ(r["rows"][0],
            json::parse(R"(["9007199254740993", 42, 7, 1.5, "NaN", "12345678901234567890.5", 3.25,
                                          100, {"a": [1, 2]}, [true], null, true, "x", "2024-01-02"])"));
}

TEST_F(SqlExecutor, NoticesAreLoggedAndDollarQuotesKeepTheirSemicolons) {
  RecordingSink sink;
  EXPECT_EQ(run(sink, "do $body$ begin raise notice 'hello %; bye', 1; end $body$; select 2"),
            QUERN_STATUS_SUCCESS)
      << sink.error().value_or("");
  auto lines = sink.lines(QUERN_STREAM_STDOUT);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("hello 1; bye"), std::string::npos) << lines[0];
}

TEST_F(SqlExecutor, MalformedScriptsAndArgumentsFailClearly) {
  RecordingSink unterminated;
  EXPECT_EQ(run(unterminated, "select 'abc"), QUERN_STATUS_FAILURE);
  EXPECT_NE(unterminated.error().value_or("").find("unterminated quoted string"), std::string::npos);

  RecordingSink missing_arg;
  EXPECT_EQ(run(missing_arg, "select $2::text", {{"a", "1"}}), QUERN_STATUS_FAILURE);
  EXPECT_NE(missing_arg.error().value_or("").find("uses $2 but the job has 1 argument"), std::string::npos)
      << missing_arg.error().value_or("");

  RecordingSink empty;
  EXPECT_EQ(run(empty, " -- nothing\n ; ;"), QUERN_STATUS_FAILURE);
  EXPECT_NE(empty.error().value_or("").find("no statement"), std::string::npos);
}

}  // namespace
