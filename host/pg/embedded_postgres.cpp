// EmbeddedPostgres: see embedded_postgres.h. Child processes (initdb, pg_ctl)
// are run with fork/exec, as the unprivileged OS user when we are root, with
// their output captured so that every failure can say what happened.
#include "host/pg/embedded_postgres.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <pqxx/pqxx>

#include "host/pg/embedded_auth.h"
#include "host/pg/pg_process.h"

namespace fs = std::filesystem;

namespace quern::pg {
namespace {

constexpr size_t kMaxSocketPath = 107;  // sizeof(sockaddr_un::sun_path) - 1
constexpr const char* kConfFile = "quern.conf";
constexpr const char* kInclude = "include_if_exists = 'quern.conf'";

std::string tail_of_file(const fs::path& p, size_t max_bytes = 3000) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff start = size > static_cast<std::streamoff>(max_bytes) ? size - max_bytes : 0;
  in.seekg(start);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return s;
}

std::string tail(const std::string& s, size_t max_bytes = 3000) {
  return s.size() > max_bytes ? "..." + s.substr(s.size() - max_bytes) : s;
}

// Percent-encodes a URL query value (keeps '/' readable: libpq accepts it).
std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// Socket directory: the data directory unless the socket path would exceed
// the sun_path limit, else a short per-data-dir directory under /tmp.
fs::path choose_socket_dir(const fs::path& data_dir, int port) {
  const std::string sock = (data_dir / (".s.PGSQL." + std::to_string(port))).string();
  if (sock.size() <= kMaxSocketPath) return data_dir;
  char name[64];
  std::snprintf(name, sizeof name, "quern-pg-%016llx",
                static_cast<unsigned long long>(fnv1a64(data_dir.string())));
  return fs::path("/tmp") / name;
}

std::string describe(const CommandResult& r) {
  std::string s = "`" + r.command + "` ";
  if (r.exit_code < 0)
    s += "could not run: " + r.output;
  else
    s += "exited with code " + std::to_string(r.exit_code) + (r.output.empty() ? "" : ":\n" + tail(r.output));
  return s;
}

// The lines of postmaster.pid (pid, data dir, start time, port, socket dir,
// listen address, shmem key, status).
std::vector<std::string> read_pid_file(const fs::path& data_dir) {
  std::ifstream in(data_dir / "postmaster.pid");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

Status write_file(const fs::path& p, const std::string& text, const RunAs& as) {
  std::ofstream out(p, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Status::error("cannot write " + p.string() + ": " + std::strerror(errno));
  if (as.switch_user && ::chown(p.c_str(), as.uid, as.gid) != 0)
    return Status::error("cannot chown " + p.string() + ": " + std::strerror(errno));
  return Status::ok();
}

// Writes quern.conf (rewritten at every start) and makes postgresql.conf include it.
Status write_settings(const fs::path& data_dir, const fs::path& socket_dir, int port,
                      const std::vector<std::string>& settings, const RunAs& as) {
  std::string conf = "# Written by quern at every start; edit the quern configuration instead.\n";
  conf += "listen_addresses = ''\n";
  conf += "unix_socket_directories = '" + socket_dir.string() + "'\n";
  conf += "port = " + std::to_string(port) + "\n";
  for (const std::string& s : settings) conf += s + "\n";
  if (Status st = write_file(data_dir / kConfFile, conf, as); !st) return st;

  const fs::path main_conf = data_dir / "postgresql.conf";
  std::ifstream in(main_conf);
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().find(kInclude) == std::string::npos) {
    std::ofstream out(main_conf, std::ios::app);
    out << "\n" << kInclude << "\n";
    if (!out) return Status::error("cannot append to " + main_conf.string());
  }
  return Status::ok();
}

// As root the cluster runs as another user, who must be able to traverse
// every existing directory above data_dir (initdb would fail later with a
// bare "Permission denied", e.g. for a checkout under /root). The kernel
// decides (ACLs and groups included): `test -x` runs as that user, on the
// nearest existing directory, then, only when that fails, on each one from
// the root down to name the one in the way.
Status check_reachable(const fs::path& data_dir, const RunAs& as) {
  if (!as.switch_user) return Status::ok();
  std::vector<fs::path> chain;  // existing ancestors, nearest first
  for (fs::path dir = data_dir.parent_path(); !dir.empty(); dir = dir.parent_path()) {
    std::error_code ec;
    if (fs::is_directory(dir, ec)) chain.push_back(dir);
    if (dir == dir.root_path()) break;
  }
  auto passes = [&](const fs::path& dir) {
    return run_command({"test", "-x", dir.string()}, as).exit_code == 0;
  };
  if (chain.empty() || passes(chain.front())) return Status::ok();
  fs::path blocker = chain.front();
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if (!passes(*it)) {
      blocker = *it;
      break;
    }
  }
  struct stat st {};
  char mode[8] = "?";
  if (::stat(blocker.c_str(), &st) == 0)
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return Status::error("the embedded PostgreSQL runs as the OS user " + as.user +
                       " (PostgreSQL refuses root), which cannot reach " + data_dir.string() + ": " +
                       blocker.string() + " is mode " + mode +
                       ". Put the data directory where that user can reach it (<database data-dir=\"/var/"
                       "lib/quern\">, or quern up --data-dir), or let it through: chmod o+x " +
                       blocker.string());
}

bool settings_disable_fsync(const std::vector<std::string>& settings) {
  for (std::string s : settings) {
    s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t'; }), s.end());
    if (s == "fsync=off" || s == "fsync=false" || s == "fsync=0") return true;
  }
  return false;
}

}  // namespace

struct EmbeddedPostgres::State {
  EmbeddedOptions options;
  fs::path bindir;
  fs::path socket_dir;
  int port = 5432;
  RunAs as;
  ClusterSecrets secrets;
  bool started_by_us = false;
  bool stopped = false;
};

StatusOr<fs::path> find_postgres_bindir() {
  std::string searched;
  auto usable = [](const fs::path& dir) {
    return ::access((dir / "initdb").c_str(), X_OK) == 0 && ::access((dir / "pg_ctl").c_str(), X_OK) == 0;
  };
  CommandResult cfg = run_command({"pg_config", "--bindir"}, RunAs{});
  if (cfg.exit_code == 0) {
    std::string dir = cfg.output;
    while (!dir.empty() && (dir.back() == '\n' || dir.back() == ' ')) dir.pop_back();
    if (usable(dir)) return fs::path(dir);
    searched += dir + " (pg_config --bindir: no initdb/pg_ctl), ";
  } else {
    searched += "pg_config --bindir (not available), ";
  }
  // Highest installed major version of the Debian/Ubuntu layout.
  int best = -1;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    if (usable(e.path() / "bin")) best = std::max(best, std::stoi(name));
  }
  if (best >= 0) return fs::path("/usr/lib/postgresql") / std::to_string(best) / "bin";
  searched += "/usr/lib/postgresql/*/bin";
  return Status::error("PostgreSQL server binaries (initdb, pg_ctl) not found; searched " + searched +
                       ". Install the PostgreSQL server package or give a database URL.");
}

StatusOr<std::unique_ptr<EmbeddedPostgres>> EmbeddedPostgres::start(const EmbeddedOptions& options) {
  if (options.data_dir.empty()) return Status::error("embedded PostgreSQL: data_dir is empty");
  auto state = std::make_unique<State>();
  state->options = options;
  const fs::path data_dir = fs::absolute(options.data_dir).lexically_normal();
  state->options.data_dir = data_dir;
  const std::string ctx = "embedded PostgreSQL in " + data_dir.string();

  auto bindir = find_postgres_bindir();
  if (!bindir) return bindir.status().with_context(ctx);
  // Prefer the binaries of the cluster's own major version when both exist.
  {
    std::ifstream v(data_dir / "PG_VERSION");
    std::string major;
    if (v >> major) {
      const fs::path own = fs::path("/usr/lib/postgresql") / major / "bin";
      if (::access((own / "pg_ctl").c_str(), X_OK) == 0) *bindir = own;
    }
  }
  state->bindir = *bindir;

  auto as = resolve_run_as(options.os_user);
  if (!as) return as.status().with_context(ctx);
  state->as = *as;
  if (Status s = check_reachable(data_dir, state->as); !s) return s.with_context(ctx);

  // Data directory: created if missing, owned by the server's user, 0700.
  std::error_code ec;
  const bool initialized = fs::exists(data_dir / "PG_VERSION");

  // Passwords: a cluster that asks for them cannot be reached without its file.
  const fs::path passfile =
      options.passfile.empty() ? fs::path(data_dir.string() + ".pgpass") : fs::absolute(options.passfile);
  if (initialized && !fs::exists(passfile) && !hba_trusts(data_dir))
    return Status::error(ctx + ": the cluster requires passwords but its password file " + passfile.string() +
                         " is missing (restore it, or move the data directory away to start afresh)");
  auto secrets = load_or_create_secrets(passfile);
  if (!secrets) return secrets.status().with_context(ctx);
  state->secrets = *secrets;
  // What a new cluster, or one an older Quern left trusting everyone, needs
  // once it runs: roles, passwords, pg_hba.conf (embedded_auth.h).
  const bool needs_securing = !initialized || hba_trusts(data_dir);
  if (!initialized) {
    fs::create_directories(data_dir, ec);
    if (ec) return Status::error(ctx + ": cannot create the data directory: " + ec.message());
    if (state->as.switch_user && ::chown(data_dir.c_str(), state->as.uid, state->as.gid) != 0)
      return Status::error(ctx + ": cannot chown the data directory to " + state->as.user + ": " +
                           std::strerror(errno));
    ::chmod(data_dir.c_str(), 0700);
  }

  // The cluster runs (started or adopted): roles and passwords where needed,
  // then the database.
  auto running = [&](std::unique_ptr<State> st) -> StatusOr<std::unique_ptr<EmbeddedPostgres>> {
    std::unique_ptr<EmbeddedPostgres> pg(new EmbeddedPostgres());
    pg->state_ = std::move(st);
    if (needs_securing) {
      if (Status s = secure_cluster(pg->superuser_url_for("postgres"), data_dir, pg->state_->secrets,
                                    pg->state_->as);
          !s)
        return s.with_context(ctx);
    }
    if (Status s = pg->create_database(options.database); !s) return s.with_context(ctx);
    return pg;
  };

  // Adopt a cluster that is already running on this data directory.
  const fs::path pg_ctl = state->bindir / "pg_ctl";
  if (initialized) {
    CommandResult st = run_command({pg_ctl.string(), "status", "-D", data_dir.string()}, state->as);
    if (st.exit_code == 0) {
      // Wait (bounded) for a cluster that is still starting to be ready.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      std::vector<std::string> pid;
      for (;;) {
        pid = read_pid_file(data_dir);
        if (pid.size() >= 8 && pid[7].rfind("ready", 0) == 0) break;
        if (std::chrono::steady_clock::now() > deadline)
          return Status::error(ctx +
                               ": a server is running on this data directory but did not become "
                               "ready within 60 s; log:\n" +
                               tail_of_file(data_dir / "postgres.log"));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      state->port = std::stoi(pid[3]);
      std::string sockdir = pid[4];
      state->socket_dir = sockdir.empty() ? data_dir : fs::path(sockdir);
      return running(std::move(state));
    }
  }

  state->port = options.port;
  state->socket_dir = choose_socket_dir(data_dir, options.port);
  if (state->socket_dir != data_dir) {
    fs::create_directories(state->socket_dir, ec);
    if (ec) return Status::error(ctx + ": cannot create socket directory " + state->socket_dir.string());
    if (state->as.switch_user) {
      if (::chown(state->socket_dir.c_str(), state->as.uid, state->as.gid) != 0)
        return Status::error(ctx + ": cannot chown " + state->socket_dir.string());
    }
    ::chmod(state->socket_dir.c_str(), 0700);
  }

  if (!initialized) {
    auto pwfile = write_initdb_pwfile(state->secrets, state->as);
    if (!pwfile) return pwfile.status().with_context(ctx);
    std::vector<std::string> args = {(state->bindir / "initdb").string(),
                                     "-D",
                                     data_dir.string(),
                                     "-U",
                                     kSuperuser,
                                     "--pwfile=" + pwfile->string(),
                                     "--auth-local=scram-sha-256",
                                     "--auth-host=scram-sha-256",
                                     "-E",
                                     "UTF8",
                                     "--locale=C.UTF-8",
                                     "--no-instructions"};
    // Syncing the new cluster is pointless when the server will not fsync either.
    if (settings_disable_fsync(options.settings)) args.push_back("--no-sync");
    CommandResult r = run_command(args, state->as);
    fs::remove(*pwfile, ec);
    if (r.exit_code != 0) return Status::error(ctx + ": initdb failed: " + describe(r));
  }

  if (Status s = write_settings(data_dir, state->socket_dir, state->port, options.settings, state->as); !s)
    return s.with_context(ctx);

  const fs::path log = data_dir / "postgres.log";
  CommandResult r = run_command(
      {pg_ctl.string(), "start", "-w", "-t", "120", "-D", data_dir.string(), "-l", log.string()}, state->as);
  if (r.exit_code != 0)
    return Status::error(ctx + ": start failed: " + describe(r) + "\n--- " + log.string() + " (tail) ---\n" +
                         tail_of_file(log));
  state->started_by_us = true;

  return running(std::move(state));
}

EmbeddedPostgres::~EmbeddedPostgres() {
  if (state_ && state_->started_by_us && !state_->options.keep_running) (void)stop();
}

std::string EmbeddedPostgres::url() const { return url_for(state_->options.database); }

namespace {
std::string url_as(const std::string& role, const std::string& database, const fs::path& socket_dir, int port,
                   const fs::path& passfile) {
  return "postgresql:///" + url_encode(database) + "?host=" + url_encode(socket_dir.string()) +
         "&port=" + std::to_string(port) + "&user=" + role + "&passfile=" + url_encode(passfile.string());
}
}  // namespace

std::string EmbeddedPostgres::url_for(const std::string& database) const {
  return url_as(kQuernRole, database, state_->socket_dir, state_->port, state_->secrets.passfile);
}

std::string EmbeddedPostgres::superuser_url_for(const std::string& database) const {
  return url_as(kSuperuser, database, state_->socket_dir, state_->port, state_->secrets.passfile);
}

const fs::path& EmbeddedPostgres::data_dir() const { return state_->options.data_dir; }
const fs::path& EmbeddedPostgres::socket_dir() const { return state_->socket_dir; }
bool EmbeddedPostgres::adopted() const { return !state_->started_by_us; }

Status EmbeddedPostgres::create_database(const std::string& name) {
  if (name.empty() || name == "postgres") return Status::ok();
  return give_database_to_quern(superuser_url_for("postgres"), superuser_url_for(name), name);
}

Status EmbeddedPostgres::stop() {
  if (!state_ || state_->stopped) return Status::ok();
  Status s = stop_cluster(state_->options.data_dir, state_->options.os_user);
  if (s) {
    state_->stopped = true;
    if (state_->socket_dir != state_->options.data_dir) {
      std::error_code ec;
      fs::remove(state_->socket_dir, ec);  // our short /tmp directory; only if empty
    }
  }
  return s;
}

Status EmbeddedPostgres::restart(const std::string& mode) {
  if (!state_ || state_->stopped) return Status::error("restart: the cluster is not running");
  const fs::path& data_dir = state_->options.data_dir;
  const fs::path log = data_dir / "postgres.log";
  CommandResult r = run_command({(state_->bindir / "pg_ctl").string(), "restart", "-m", mode, "-w", "-t",
                                 "120", "-D", data_dir.string(), "-l", log.string()},
                                state_->as);
  if (r.exit_code != 0)
    return Status::error("restart embedded PostgreSQL in " + data_dir.string() + ": " + describe(r) +
                         "\n--- " + log.string() + " (tail) ---\n" + tail_of_file(log));
  return Status::ok();
}

Status stop_cluster(const fs::path& data_dir_in, const std::string& os_user) {
  const fs::path data_dir = fs::absolute(data_dir_in).lexically_normal();
  const std::string ctx = "stop embedded PostgreSQL in " + data_dir.string();
  if (!fs::exists(data_dir / "postmaster.pid")) return Status::ok();
  auto bindir = find_postgres_bindir();
  if (!bindir) return bindir.status().with_context(ctx);
  auto as = resolve_run_as(os_user);
  if (!as) return as.status().with_context(ctx);
  const std::string pg_ctl = (*bindir / "pg_ctl").string();
  CommandResult st = run_command({pg_ctl, "status", "-D", data_dir.string()}, *as);
  if (st.exit_code != 0) return Status::ok();  // not running (3) or no cluster (4)
  CommandResult r =
      run_command({pg_ctl, "stop", "-D", data_dir.string(), "-m", "fast", "-w", "-t", "120"}, *as);
  if (r.exit_code != 0) {
    // A concurrent stop may have won the race; only a server still up is an error.
    CommandResult again = run_command({pg_ctl, "status", "-D", data_dir.string()}, *as);
    if (again.exit_code == 0)
      return Status::error(ctx + ": " + describe(r) + "\n--- postgres.log (tail) ---\n" +
                           tail_of_file(data_dir / "postgres.log"));
  }
  return Status::ok();
}

}  // namespace quern::pg
