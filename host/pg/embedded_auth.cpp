#include "host/pg/embedded_auth.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <pqxx/pqxx>

#include "host/common/crypto.h"

namespace fs = std::filesystem;

namespace quern::pg {
namespace {

std::string os_error(const std::string& what) { return what + ": " + std::strerror(errno); }

// Writes text to path with mode 0600 (owned by us, or by `as` when given).
Status write_private(const fs::path& path, const std::string& text, const RunAs* as) {
  const fs::path tmp = path.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::error(os_error("cannot create " + tmp.string()));
  bool ok =
      ::fchmod(fd, 0600) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (ok && as != nullptr && as->switch_user) ok = ::fchown(fd, as->uid, as->gid) == 0;
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const Status s = Status::error(os_error("cannot write " + path.string()));
    ::unlink(tmp.c_str());
    return s;
  }
  return Status::ok();
}

// Our passwords are hex: nothing to escape in a password file or in SQL.
std::string pgpass_line(const char* role, const std::string& password) {
  return std::string("*:*:*:") + role + ":" + password + "\n";
}

}  // namespace

StatusOr<ClusterSecrets> load_or_create_secrets(const fs::path& passfile) {
  ClusterSecrets s;
  s.passfile = passfile;
  struct stat st {};
  if (::stat(passfile.c_str(), &st) == 0) {
    if ((st.st_mode & 077) != 0)
      return Status::error("the embedded cluster's password file " + passfile.string() +
                           " is readable by others (mode " + std::to_string(st.st_mode & 0777) +
                           "); make it 0600: chmod 600 " + passfile.string());
    std::ifstream in(passfile);
    for (std::string line; std::getline(in, line);) {
      const size_t colon = line.rfind(':');
      if (line.rfind("*:*:*:", 0) != 0 || colon == std::string::npos || colon < 6) continue;
      const std::string role = line.substr(6, colon - 6), password = line.substr(colon + 1);
      if (role == kSuperuser) s.superuser_password = password;
      if (role == kQuernRole) s.quern_password = password;
    }
    if (s.superuser_password.empty() || s.quern_password.empty())
      return Status::error("the embedded cluster's password file " + passfile.string() +
                           " lacks the postgres or the quern line (*:*:*:ROLE:PASSWORD)");
    return s;
  }
  if (errno != ENOENT) return Status::error(os_error("cannot read " + passfile.string()));
  std::error_code ec;
  fs::create_directories(passfile.parent_path(), ec);
  if (ec) return Status::error("cannot create " + passfile.parent_path().string() + ": " + ec.message());
  auto a = crypto::random_hex(24), b = crypto::random_hex(24);
  if (!a) return a.status();
  if (!b) return b.status();
  s.superuser_password = *a;
  s.quern_password = *b;
  if (Status w = write_private(
          passfile,
          "# The embedded PostgreSQL's passwords (libpq password file). Keep it 0600.\n" +
              pgpass_line(kSuperuser, s.superuser_password) + pgpass_line(kQuernRole, s.quern_password),
          nullptr);
      !w)
    return w;
  return s;
}

StatusOr<fs::path> write_initdb_pwfile(const ClusterSecrets& s, const RunAs& as) {
  char name[] = "/tmp/quern-initdb-XXXXXX";
  int fd = ::mkstemp(name);
  if (fd < 0) return Status::error(os_error("cannot create a password file for initdb"));
  ::close(fd);
  if (Status w = write_private(name, s.superuser_password + "\n", &as); !w) {
    ::unlink(name);
    return w;
  }
  return fs::path(name);
}

std::string scram_only_hba() {
  return "# Written by quern: every connection authenticates with a password (SCRAM).\n"
         "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
         "local   all       all                 scram-sha-256\n"
         "host    all       all   127.0.0.1/32  scram-sha-256\n"
         "host    all       all   ::1/128       scram-sha-256\n";
}

bool hba_trusts(const fs::path& data_dir) {
  std::ifstream in(data_dir / "pg_hba.conf");
  for (std::string line; std::getline(in, line);) {
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    for (std::string w; words >> w;)
      if (w == "trust") return true;
  }
  return false;
}

Status secure_cluster(const std::string& superuser_url, const fs::path& data_dir, const ClusterSecrets& s,
                      const RunAs& as) {
  try {
    pqxx::connection c(superuser_url);
    pqxx::nontransaction tx(c);
    tx.exec(std::string("ALTER ROLE ") + kSuperuser + " PASSWORD " + tx.quote(s.superuser_password));
    if (tx.exec_params("SELECT 1 FROM pg_roles WHERE rolname = $1", kQuernRole).empty())
      tx.exec(std::string("CREATE ROLE ") + kQuernRole);
    tx.exec(std::string("ALTER ROLE ") + kQuernRole +
            " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD " +
            tx.quote(s.quern_password));
    if (hba_trusts(data_dir)) {
      if (Status w = write_private(data_dir / "pg_hba.conf", scram_only_hba(), &as); !w) return w;
      tx.exec("SELECT pg_reload_conf()");
    }
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("securing the embedded cluster: ") + e.what());
  }
}

Status give_database_to_quern(const std::string& superuser_url_of_postgres_db,
                              const std::string& superuser_url_of_database, const std::string& database) {
  try {
    {
      pqxx::connection c(superuser_url_of_postgres_db);
      pqxx::nontransaction tx(c);
      auto owner =
          tx.exec_params("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", database);
      if (owner.empty()) {
        try {
          tx.exec("CREATE DATABASE " + c.quote_name(database) + " OWNER " + kQuernRole);
        } catch (const pqxx::sql_error& e) {
          if (e.sqlstate() != "42P04") throw;  // duplicate_database: created concurrently
        }
        return Status::ok();
      }
      if (owner[0][0].as<std::string>() != kQuernRole)
        tx.exec("ALTER DATABASE " + c.quote_name(database) + " OWNER TO " + kQuernRole);
    }
    // A database an older Quern used as the superuser: its quern schema and
    // everything in it change hands (tables carry their indexes and owned
    // sequences along).
    pqxx::connection c(superuser_url_of_database);
    pqxx::nontransaction tx(c);
    tx.exec(R"SQL(
DO $$
DECLARE r record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'quern') THEN RETURN; END IF;
  EXECUTE 'ALTER SCHEMA quern OWNER TO quern';
  FOR r IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
           WHERE c.relnamespace = 'quern'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
             AND pg_get_userbyid(c.relowner) <> 'quern' LOOP
    EXECUTE format(CASE r.relkind WHEN 'v' THEN 'ALTER VIEW %s OWNER TO quern'
                                  WHEN 'm' THEN 'ALTER MATERIALIZED VIEW %s OWNER TO quern'
                                  ELSE 'ALTER TABLE %s OWNER TO quern' END, r.name);
  END LOOP;
  FOR r IN SELECT c.oid::regclass AS name FROM pg_class c
           WHERE c.relnamespace = 'quern'::regnamespace AND c.relkind = 'S'
             AND pg_get_userbyid(c.relowner) <> 'quern' LOOP
    EXECUTE format('ALTER SEQUENCE %s OWNER TO quern', r.name);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p
           WHERE p.pronamespace = 'quern'::regnamespace AND pg_get_userbyid(p.proowner) <> 'quern' LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO quern', r.name);
  END LOOP;
  FOR r IN SELECT t.oid::regtype AS name, t.typtype FROM pg_type t
           WHERE t.typnamespace = 'quern'::regnamespace AND t.typtype IN ('e', 'd') AND t.typrelid = 0
             AND pg_get_userbyid(t.typowner) <> 'quern' LOOP
    EXECUTE format(CASE r.typtype WHEN 'd' THEN 'ALTER DOMAIN %s OWNER TO quern'
                                  ELSE 'ALTER TYPE %s OWNER TO quern' END, r.name);
  END LOOP;
END $$)SQL");
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error("giving database " + database + " to the quern role: " + e.what());
  }
}

}  // namespace quern::pg
