// Running PostgreSQL's command-line tools (initdb, pg_ctl) as a child
// process, optionally as another OS user. Private to host/pg.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "host/common/status.h"

namespace quern::pg {

// Who runs the child. switch_user is true only when we are root: PostgreSQL
// refuses to run as root, so the cluster belongs to an unprivileged user.
struct RunAs {
  bool switch_user = false;
  std::string user;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::vector<gid_t> groups;  // supplementary groups, resolved before fork
};

// When root: `os_user`, or "postgres" if it exists, else "nobody".
// Otherwise: the current user, no switch.
StatusOr<RunAs> resolve_run_as(const std::string& os_user);

struct CommandResult {
  std::string command;  // for messages
  int exit_code = -1;   // -1: could not run (output says why); 128+N: killed by signal N
  std::string output;   // stdout and stderr together
};

// Runs argv (argv[0] searched in PATH when it has no '/'), stdin from
// /dev/null, with stdout+stderr captured, no other descriptors inherited (a
// server started by pg_ctl must not keep our pipes or sockets open), and
// PG* environment variables removed. Thread-safe; only async-signal-safe
// calls happen between fork and exec.
CommandResult run_command(const std::vector<std::string>& argv, const RunAs& as);

}  // namespace quern::pg
