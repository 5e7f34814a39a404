// Who may connect to the embedded cluster, and how (docs/SECURITY.md,
// "The embedded database"). Private to host/pg.
//
// The cluster trusts nobody: every connection, over its Unix socket too,
// authenticates with SCRAM-SHA-256. Two roles have passwords:
//   postgres  the superuser: initdb, creating the database, changing roles
//   quern     what Quern itself connects as: LOGIN, no SUPERUSER, CREATEDB
//             or CREATEROLE; owns the quern database and its schema
// Both passwords are random and live in one libpq password file next to the
// data directory (<data_dir>.pgpass, mode 0600, owned by the user Quern runs
// as). URLs name that file (passfile=...) instead of carrying a password, so
// the database.url file `quern up` writes holds no secret.
//
// A cluster initialized by an older Quern (trust authentication) is
// converted at its next start: passwords set, the quern role created and
// given the database and the objects of its quern schema, pg_hba.conf
// rewritten to scram-sha-256 and reloaded.
#pragma once

#include <filesystem>
#include <string>

#include "host/common/status.h"
#include "host/pg/pg_process.h"

namespace quern::pg {

inline constexpr const char* kSuperuser = "postgres";
inline constexpr const char* kQuernRole = "quern";

struct ClusterSecrets {
  std::filesystem::path passfile;
  std::string superuser_password;
  std::string quern_password;
};

// The password file of data_dir: read it, or create it with new random
// passwords (0600). Errors: unreadable, malformed, or not 0600 (libpq would
// ignore it).
StatusOr<ClusterSecrets> load_or_create_secrets(const std::filesystem::path& passfile);

// A file holding only the superuser's password, for initdb --pwfile, readable
// by `as`; the caller removes it.
StatusOr<std::filesystem::path> write_initdb_pwfile(const ClusterSecrets& s, const RunAs& as);

// The pg_hba.conf Quern writes: scram-sha-256 for every local and loopback
// connection, nothing else.
std::string scram_only_hba();
// True when data_dir's pg_hba.conf lets anyone in without a password.
bool hba_trusts(const std::filesystem::path& data_dir);

// As the superuser at superuser_url (which must work: right after initdb,
// or on a trust cluster): sets both passwords, creates or fixes the quern
// role, rewrites pg_hba.conf to scram_only_hba() and reloads it.
Status secure_cluster(const std::string& superuser_url, const std::filesystem::path& data_dir,
                      const ClusterSecrets& s, const RunAs& as);

// As the superuser: `database` exists and it and everything in its quern
// schema belong to the quern role (created, or taken over from postgres).
Status give_database_to_quern(const std::string& superuser_url_of_postgres_db,
                              const std::string& superuser_url_of_database, const std::string& database);

}  // namespace quern::pg
