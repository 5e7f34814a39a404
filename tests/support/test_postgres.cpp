// The test harness's shared PostgreSQL cluster (see test_postgres.h).
#include "tests/support/test_postgres.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "host/pg/embedded_postgres.h"
#include "host/queue/queue.h"

namespace quern::testing {
namespace {

constexpr const char* kDataDir = QUERN_BUILD_DIR "/test-pgdata";
constexpr const char* kLockFile = QUERN_BUILD_DIR "/test-pgdata.lock";
constexpr const char* kTestDbPrefix = "t_";

pg::EmbeddedOptions cluster_options() {
  pg::EmbeddedOptions o;
  o.data_dir = kDataDir;
  o.database = "postgres";
  o.port = 5432;
  o.keep_running = true;  // shared by all test processes; the ctest fixture stops it
  // Speed over durability: the tests never survive a crash of the machine.
  o.settings = {"fsync = off", "synchronous_commit = off", "full_page_writes = off", "max_connections = 200",
                "shared_buffers = 64MB"};
  return o;
}

// Serializes cluster start/stop between processes (ctest -j) for its lifetime.
class FileLock {
 public:
  FileLock() {
    fd_ = ::open(kLockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0) {
      while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the flock
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Drops every test database. PostgreSQL 15 makes each DROP DATABASE wait for
// a checkpoint; drops on several connections share checkpoints, which keeps
// a suite's hundreds of databases from taking minutes on a loaded machine.
Status drop_test_databases(const std::string& admin_url) {
  constexpr size_t kConnections = 8;
  std::vector<std::string> names;
  try {
    pqxx::connection c(admin_url);
    pqxx::nontransaction tx(c);
    for (const auto& row : tx.exec("SELECT datname FROM pg_database WHERE datname LIKE 't\\_%'"))
      names.push_back(row[0].as<std::string>());
  } catch (const std::exception& e) {
    return Status::error(std::string("listing old test databases: ") + e.what());
  }
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::string first_error;  // guarded by mu
  std::vector<std::thread> threads;
  for (size_t t = 0; t < std::min(kConnections, names.size()); ++t) {
    threads.emplace_back([&] {
      try {
        pqxx::connection c(admin_url);
        pqxx::nontransaction tx(c);
        for (size_t i = next++; i < names.size(); i = next++)
          tx.exec("DROP DATABASE IF EXISTS " + c.quote_name(names[i]) + " WITH (FORCE)");
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        if (first_error.empty()) first_error = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (!first_error.empty()) return Status::error("dropping old test databases: " + first_error);
  return Status::ok();
}

std::mutex g_mu;
std::unique_ptr<pg::EmbeddedPostgres> g_cluster;  // guarded by g_mu

StatusOr<pg::EmbeddedPostgres*> cluster() {
  std::lock_guard lock(g_mu);
  if (g_cluster) return g_cluster.get();
  FileLock file_lock;
  if (!file_lock.ok())
    return Status::error(std::string("cannot open ") + kLockFile + ": " + std::strerror(errno));
  auto pg = pg::EmbeddedPostgres::start(cluster_options());
  if (!pg) return pg.status();
  if (!(*pg)->adopted()) {
    // We started it, so no test is using it: remove what earlier runs left.
    if (Status s = drop_test_databases((*pg)->superuser_url_for("postgres")); !s) return s;
  }
  g_cluster = std::move(*pg);
  return g_cluster.get();
}

[[noreturn]] void fail(const std::string& what) {
  ADD_FAILURE() << what;
  throw std::runtime_error(what);
}

std::string create_database(const std::string& hint) {
  auto pg = cluster();
  if (!pg) fail("test PostgreSQL: " + pg.message());
  static std::atomic<int> counter{0};
  std::string name = kTestDbPrefix;
  for (char c : hint) {
    if (name.size() >= 40) break;
    name += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
  }
  name += "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  try {
    pqxx::connection c((*pg)->superuser_url_for("postgres"));
    pqxx::nontransaction tx(c);
    // A leftover of an earlier run with the same pid would not be fresh.
    tx.exec("DROP DATABASE IF EXISTS " + c.quote_name(name) + " WITH (FORCE)");
    // Owned by the role Quern connects as, as `quern up` makes its database.
    tx.exec("CREATE DATABASE " + c.quote_name(name) + " OWNER quern");
  } catch (const std::exception& e) {
    fail("test PostgreSQL: creating database " + name + ": " + e.what());
  }
  return (*pg)->url_for(name);
}

}  // namespace

std::string empty_database_url(const std::string& hint) { return create_database(hint); }

std::string fresh_database_url(const std::string& hint) {
  std::string url = create_database(hint);
  auto q = queue::Queue::connect(url);
  if (!q) fail("test PostgreSQL: " + q.message());
  auto v = (*q)->migrate();
  if (!v) fail("test PostgreSQL: " + v.message());
  return url;
}

std::string admin_database_url() {
  auto pg = cluster();
  if (!pg) fail("test PostgreSQL: " + pg.message());
  return (*pg)->superuser_url_for("postgres");
}

Status start_shared_cluster() {
  auto pg = cluster();
  return pg ? Status::ok() : pg.status();
}

Status stop_shared_cluster() {
  FileLock file_lock;
  if (::access((std::string(kDataDir) + "/postmaster.pid").c_str(), F_OK) != 0) return Status::ok();
  auto pg = pg::EmbeddedPostgres::start(cluster_options());  // adopts the running cluster
  if (pg) {
    (void)drop_test_databases((*pg)->superuser_url_for("postgres"));  // best effort: keeps the disk small
    return (*pg)->stop();
  }
  return pg::stop_cluster(kDataDir);
}

std::string quern_binary() { return std::string(QUERN_BIN_DIR) + "/quern"; }
std::string plugin_dir() { return QUERN_PLUGIN_DIR; }
std::string source_dir() { return QUERN_SOURCE_DIR; }

}  // namespace quern::testing
