// EmbeddedPostgres against the system's real PostgreSQL binaries. Each test
// uses its own private cluster (the shared test cluster must not be stopped).
#include "host/pg/embedded_postgres.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

namespace fs = std::filesystem;
using quern::pg::EmbeddedOptions;
using quern::pg::EmbeddedPostgres;

namespace {

class EmbeddedPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(QUERN_BUILD_DIR) / "test-pg-embedded" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    cleanup();
  }
  void TearDown() override { cleanup(); }
  void cleanup() {
    ASSERT_TRUE(quern::pg::stop_cluster(dir_).is_ok());
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::remove(dir_.string() + ".pgpass", ec);
  }
  EmbeddedOptions options(const fs::path& dir) {
    EmbeddedOptions o;
    o.data_dir = dir;
    o.database = "quern";
    o.port = 5433;
    o.settings = {"fsync = off", "shared_buffers = 16MB", "max_connections = 20"};
    return o;
  }
  static std::string query(const std::string& url, const std::string& sql) {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<std::string>();
  }
  static bool can_connect(const std::string& url) {
    try {
      pqxx::connection c(url);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }
  static long server_pid(const fs::path& dir) {
    std::ifstream in(dir / "postmaster.pid");
    long pid = -1;
    in >> pid;
    return pid;
  }
  fs::path dir_;
};

TEST(FindPostgresBindir, FindsInitdbAndPgCtl) {
  auto dir = quern::pg::find_postgres_bindir();
  ASSERT_TRUE(dir.is_ok()) << dir.message();
  EXPECT_TRUE(fs::exists(*dir / "initdb"));
  EXPECT_TRUE(fs::exists(*dir / "pg_ctl"));
}

TEST_F(EmbeddedPostgresTest, StartsReusesAdoptsAndStops) {
  auto pg = EmbeddedPostgres::start(options(dir_));
  ASSERT_TRUE(pg.is_ok()) << pg.message();
  EXPECT_FALSE((*pg)->adopted());
  EXPECT_TRUE(fs::exists(dir_ / "PG_VERSION"));
  EXPECT_TRUE(fs::exists(dir_ / "postgres.log"));
  const std::string url = (*pg)->url();
  EXPECT_NE(url.find("postgresql:///quern?host="), std::string::npos) << url;
  EXPECT_EQ(query(url, "SELECT current_database()"), "quern");
  EXPECT_EQ(query(url, "SELECT current_setting('listen_addresses')"), "");
  EXPECT_EQ(query(url, "SELECT current_setting('fsync')"), "off");
  query(url, "CREATE TABLE marker AS SELECT 42 AS v; SELECT 1");

  if (::geteuid() == 0) {  // PostgreSQL refuses root: the server runs as "postgres"
    struct stat st {};
    ASSERT_EQ(::stat(("/proc/" + std::to_string(server_pid(dir_))).c_str(), &st), 0);
    const passwd* pw = ::getpwnam("postgres");
    ASSERT_NE(pw, nullptr);
    EXPECT_EQ(st.st_uid, pw->pw_uid);
  }

  // A second start adopts the running cluster; destroying it leaves the server up.
  {
    auto again = EmbeddedPostgres::start(options(dir_));
    ASSERT_TRUE(again.is_ok()) << again.message();
    EXPECT_TRUE((*again)->adopted());
    EXPECT_EQ((*again)->url(), url);
    EXPECT_TRUE((*again)->create_database("other").is_ok());
    EXPECT_TRUE((*again)->create_database("other").is_ok());  // exists: still OK
  }
  EXPECT_EQ(query((*pg)->url_for("other"), "SELECT current_database()"), "other");

  ASSERT_TRUE((*pg)->stop().is_ok());
  EXPECT_FALSE(can_connect(url));
  EXPECT_FALSE(fs::exists(dir_ / "postmaster.pid"));
  EXPECT_TRUE((*pg)->stop().is_ok());  // idempotent

  // Restart reuses the data directory (no initdb: the table survived).
  auto restarted = EmbeddedPostgres::start(options(dir_));
  ASSERT_TRUE(restarted.is_ok()) << restarted.message();
  EXPECT_FALSE((*restarted)->adopted());
  EXPECT_EQ(query((*restarted)->url(), "SELECT v FROM marker"), "42");
  restarted->reset();  // the destructor stops a cluster it started
  EXPECT_FALSE(can_connect(url));
}

TEST_F(EmbeddedPostgresTest, LongDataDirUsesShortSocketDir) {
  fs::path deep = dir_;
  while (deep.string().size() < 130) deep /= "long-directory-name";
  auto pg = EmbeddedPostgres::start(options(deep));
  ASSERT_TRUE(pg.is_ok()) << pg.message();
  EXPECT_EQ((*pg)->socket_dir().string().rfind("/tmp/quern-pg-", 0), 0u) << (*pg)->socket_dir();
  EXPECT_EQ(query((*pg)->url(), "SELECT current_database()"), "quern");
  ASSERT_TRUE((*pg)->stop().is_ok());
}

// The URL without its password file: what a job that read database.url but
// not the 0600 password file could try.
std::string without_passfile(const std::string& url) { return url.substr(0, url.find("&passfile=")); }

TEST_F(EmbeddedPostgresTest, EveryConnectionNeedsAPasswordAndQuernIsNoSuperuser) {
  auto pg = EmbeddedPostgres::start(options(dir_));
  ASSERT_TRUE(pg.is_ok()) << pg.message();
  const std::string url = (*pg)->url();
  EXPECT_EQ(url.find("password"), std::string::npos) << url;  // a file name, not a secret
  EXPECT_EQ(query(url,
                  "SELECT current_user || ' ' || rolsuper || rolcreaterole || rolcreatedb FROM pg_roles "
                  "WHERE rolname = current_user"),
            "quern falsefalsefalse");
  EXPECT_EQ(query(url, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"),
            "quern");
  // The superuser, and COPY ... TO PROGRAM, are out of the quern role's reach.
  try {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    tx.exec("COPY (SELECT 1) TO PROGRAM 'true'");
    ADD_FAILURE() << "COPY TO PROGRAM ran as the quern role";
  } catch (const pqxx::sql_error& e) {
    EXPECT_NE(std::string(e.what()).find("must be superuser"), std::string::npos) << e.what();
  }
  // Without the password file nobody gets in over the socket, the superuser neither.
  EXPECT_FALSE(can_connect(without_passfile(url)));
  EXPECT_FALSE(can_connect(without_passfile((*pg)->superuser_url_for("postgres"))));
  EXPECT_TRUE(can_connect((*pg)->superuser_url_for("postgres")));
  struct stat st {};
  ASSERT_EQ(::stat((dir_.string() + ".pgpass").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE((*pg)->stop().is_ok());
}

TEST_F(EmbeddedPostgresTest, ConvertsATrustClusterAnOlderQuernLeft) {
  {
    auto pg = EmbeddedPostgres::start(options(dir_));
    ASSERT_TRUE(pg.is_ok()) << pg.message();
    // What an older Quern left: everything owned by the superuser.
    {
      pqxx::connection c((*pg)->superuser_url_for("quern"));
      pqxx::nontransaction tx(c);
      tx.exec("ALTER DATABASE quern OWNER TO postgres");
      tx.exec("CREATE SCHEMA quern");
      tx.exec("ALTER SCHEMA quern OWNER TO postgres");
      tx.exec("CREATE TABLE quern.jobs (id bigserial PRIMARY KEY, note text)");
      tx.exec("CREATE FUNCTION quern.f() RETURNS int LANGUAGE sql AS 'SELECT 1'");
      tx.exec("INSERT INTO quern.jobs (note) VALUES ('kept')");
    }
    ASSERT_TRUE((*pg)->stop().is_ok());
  }
  std::ofstream(dir_ / "pg_hba.conf") << "local all all trust\n";
  fs::remove(dir_.string() + ".pgpass");
  auto pg = EmbeddedPostgres::start(options(dir_));
  ASSERT_TRUE(pg.is_ok()) << pg.message();
  const std::string url = (*pg)->url();
  EXPECT_EQ(query(url, "SELECT note FROM quern.jobs"), "kept");
  EXPECT_EQ(query(url, "INSERT INTO quern.jobs (note) VALUES ('new') RETURNING id::text"), "2");
  EXPECT_EQ(query(url, "SELECT quern.f()::text"), "1");
  EXPECT_EQ(query(url, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'quern'"), "quern");
  EXPECT_FALSE(can_connect(without_passfile(url)));  // pg_hba.conf asks for passwords again
  ASSERT_TRUE((*pg)->stop().is_ok());
}

TEST_F(EmbeddedPostgresTest, ALostPasswordFileIsAClearError) {
  {
    auto pg = EmbeddedPostgres::start(options(dir_));
    ASSERT_TRUE(pg.is_ok()) << pg.message();
    ASSERT_TRUE((*pg)->stop().is_ok());
  }
  fs::remove(dir_.string() + ".pgpass");
  auto pg = EmbeddedPostgres::start(options(dir_));
  ASSERT_FALSE(pg.is_ok());
  EXPECT_NE(
      pg.message().find("requires passwords but its password file " + dir_.string() + ".pgpass is missing"),
      std::string::npos)
      << pg.message();
}

TEST_F(EmbeddedPostgresTest, AsRootADataDirThePostgresUserCannotReachIsRefusedWithTheFix) {
  if (::geteuid() != 0) GTEST_SKIP() << "only root runs the cluster as another user";
  const fs::path locked = dir_ / "locked";
  fs::create_directories(locked);
  ::chmod(locked.c_str(), 0700);  // like /root
  auto pg = EmbeddedPostgres::start(options(locked / "data"));
  ASSERT_FALSE(pg.is_ok());
  EXPECT_NE(pg.message().find("which cannot reach " + (locked / "data").string() + ": " + locked.string() +
                              " is mode 0700"),
            std::string::npos)
      << pg.message();
  EXPECT_NE(pg.message().find("chmod o+x " + locked.string()), std::string::npos) << pg.message();
  EXPECT_FALSE(fs::exists(locked / "data"));  // refused before anything was made
}

TEST_F(EmbeddedPostgresTest, FailureSaysWhatAndWhere) {
  fs::create_directories(dir_);
  const fs::path file = dir_ / "not-a-directory";
  std::ofstream(file) << "x";
  auto pg = EmbeddedPostgres::start(options(file / "data"));
  ASSERT_FALSE(pg.is_ok());
  EXPECT_NE(pg.message().find(file.string()), std::string::npos) << pg.message();
}

}  // namespace
