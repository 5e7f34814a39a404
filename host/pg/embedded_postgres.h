// A private PostgreSQL cluster started from the system's binaries
// (docs/ARCHITECTURE.md §9). Used by `quern up` without a database URL and by the
// test harness: the same code path as production.
//
// The cluster lives in data_dir (created with initdb on first use, reused
// afterwards), listens only on a Unix socket inside data_dir, accepts only
// password (SCRAM) connections, gives Quern a non-superuser role (`quern`,
// owner of the database) and keeps both passwords in a 0600 libpq password
// file next to data_dir (embedded_auth.h), and is stopped
// (pg_ctl stop -m fast) by stop() or the destructor. When the current user is
// root, initdb/pg_ctl run as an unprivileged OS user (default "postgres",
// else "nobody") because PostgreSQL refuses to run as root.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "host/common/status.h"

namespace quern::pg {

struct EmbeddedOptions {
  std::filesystem::path data_dir;  // required; created if missing
  std::string database = "quern";  // created if missing
  int port = 5432;                 // only names the socket file (.s.PGSQL.<port>)
  std::string os_user;             // run as this user when root; empty = auto
  // The libpq password file with the cluster's passwords; created with new
  // random ones for a new cluster. Empty = <data_dir>.pgpass.
  std::filesystem::path passfile;
  // Extra postgresql.conf lines (e.g. "fsync = off" for tests). Written to
  // <data_dir>/quern.conf (included by postgresql.conf) at every start.
  std::vector<std::string> settings;
  // Leave the cluster running when the object is destroyed (the test harness:
  // many processes share one cluster and a ctest fixture stops it).
  bool keep_running = false;
};

class EmbeddedPostgres {
 public:
  // Finds initdb/pg_ctl (pg_config --bindir, else /usr/lib/postgresql/*/bin,
  // highest version), initializes if needed, starts (or adopts a cluster that
  // is already running on this data_dir), creates the database.
  static StatusOr<std::unique_ptr<EmbeddedPostgres>> start(const EmbeddedOptions& options);
  // stop(), unless keep_running or the cluster was adopted (already running
  // when start() was called: whoever started it stops it).
  ~EmbeddedPostgres();

  // libpq connection URL for the database (socket in data_dir), as the quern
  // role; the password comes from the password file the URL names.
  std::string url() const;
  std::string url_for(const std::string& database) const;
  // The same as the superuser: creating databases and roles (the test harness).
  std::string superuser_url_for(const std::string& database) const;
  // Creates the database owned by the quern role, or hands an existing one
  // (and its quern schema) to it. OK if it exists.
  Status create_database(const std::string& name);
  // pg_ctl stop -m fast -w. Idempotent; also stops an adopted cluster.
  Status stop();
  // pg_ctl restart -m <mode> -w (fast, immediate: a crash-like stop).
  Status restart(const std::string& mode = "fast");

  const std::filesystem::path& data_dir() const;    // absolute
  const std::filesystem::path& socket_dir() const;  // data_dir, or /tmp/quern-pg-<hash> when too long
  bool adopted() const;                             // true when start() found the cluster already running

 private:
  EmbeddedPostgres() = default;
  struct State;
  std::unique_ptr<State> state_;
};

// Directory holding initdb and pg_ctl, or an error that says what was searched.
StatusOr<std::filesystem::path> find_postgres_bindir();

// Stops the cluster of data_dir if one is running (pg_ctl stop -m fast -w);
// OK when none is. For tools that did not start it (the ctest fixture).
Status stop_cluster(const std::filesystem::path& data_dir, const std::string& os_user = "");

}  // namespace quern::pg
