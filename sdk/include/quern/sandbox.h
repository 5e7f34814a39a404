/* Quern executor SDK: the job sandbox, as the SDK's spawn applies it.
 *
 * The host decides how a job's processes are confined and tells the plugin
 * through the job's environment (the "env" of the job document, which a
 * plugin passes to its child anyway): QUERN_SANDBOX holds a wrapper command
 * (bubblewrap and its arguments), its arguments separated by the unit
 * separator '\x1f', in which the token {workdir} stands for the child's
 * working directory. quern::sdk::spawn() / run_process() (process.hpp) and
 * quern_run_process() (process.h) take QUERN_SANDBOX out of the child's
 * environment and start the child as
 *     <wrapper with {workdir} replaced> <program resolved in PATH> <args...>
 * so a plugin that spawns through the SDK with the job's environment and
 * working directory is sandboxed with no code of its own. A plugin that
 * starts processes some other way must do the same itself (docs/PLUGINS.md).
 *
 * QUERN_SETUP, beside it, is what the child does to itself between fork and
 * exec, also decided by the host: join the job's cgroups (so that all it
 * starts is counted, limited and killed with the job), set resource limits,
 * and, when the host runs as root, become an unprivileged user. Its items,
 * separated by '\x1f':
 *     cgroup=<a cgroup.procs file>   join that cgroup (at most 8 of them)
 *     nofile=<n>                     RLIMIT_NOFILE, soft and hard
 *     core=<n>                       RLIMIT_CORE, soft and hard (0: no dumps)
 *     user=<uid>:<gid>               drop supplementary groups, setgid, setuid
 * The SDK's spawn applies it (and takes it out of the environment) whether
 * or not QUERN_SANDBOX is set.
 *
 * Header-only, C99/C++; the helper below allocates with malloc. */
#ifndef QUERN_SANDBOX_H
#define QUERN_SANDBOX_H

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define QUERN_SANDBOX_ENV "QUERN_SANDBOX"
#define QUERN_SANDBOX_SEPARATOR '\x1f'
#define QUERN_SANDBOX_WORKDIR "{workdir}"
#define QUERN_SETUP_ENV "QUERN_SETUP"
#define QUERN_SETUP_MAX_CGROUPS 8

#ifdef __cplusplus
extern "C" {
#endif

/* The value of the variable `name` in env (a NULL-terminated "NAME=value"
 * array), or NULL when there is none or it is empty. */
static inline const char* quern_env_find(const char* const* env, const char* name) {
  const size_t n = strlen(name);
  if (env == NULL) return NULL;
  for (; *env != NULL; ++env)
    if (strncmp(*env, name, n) == 0 && (*env)[n] == '=') return (*env)[n + 1] != '\0' ? *env + n + 1 : NULL;
  return NULL;
}

/* The value of QUERN_SANDBOX in env, or NULL when there is none or it is empty. */
static inline const char* quern_sandbox_find(const char* const* env) {
  return quern_env_find(env, QUERN_SANDBOX_ENV);
}

/* QUERN_SETUP, parsed. */
typedef struct quern_setup {
  const char* cgroups[QUERN_SETUP_MAX_CGROUPS];
  int n_cgroups;
  long long nofile, core; /* -1: leave as is */
  long long uid, gid;     /* -1: leave as is */
} quern_setup;

static inline long long quern_setup_number_(const char* p, const char** end) {
  long long v = 0;
  if (*p < '0' || *p > '9') return -1;
  for (; *p >= '0' && *p <= '9'; ++p) {
    if (v > 100000000000LL) return -1;
    v = v * 10 + (*p - '0');
  }
  *end = p;
  return v;
}

/* Parses QUERN_SETUP's value in place (text: a writable copy; separators
 * become NULs, and out points into it). 0, or -1 when an item is unknown or
 * malformed: the host and the SDK disagree, and the child must not start
 * less confined than the host asked. */
static inline int quern_setup_parse(char* text, quern_setup* out) {
  char* item = text;
  const char* end;
  memset(out, 0, sizeof *out);
  out->nofile = out->core = out->uid = out->gid = -1;
  while (item != NULL && *item != '\0') {
    char* next = strchr(item, QUERN_SANDBOX_SEPARATOR);
    if (next != NULL) *next++ = '\0';
    if (strncmp(item, "cgroup=", 7) == 0 && item[7] == '/') {
      if (out->n_cgroups == QUERN_SETUP_MAX_CGROUPS) return -1;
      out->cgroups[out->n_cgroups++] = item + 7;
    } else if (strncmp(item, "nofile=", 7) == 0) {
      if ((out->nofile = quern_setup_number_(item + 7, &end)) < 0 || *end != '\0') return -1;
    } else if (strncmp(item, "core=", 5) == 0) {
      if ((out->core = quern_setup_number_(item + 5, &end)) < 0 || *end != '\0') return -1;
    } else if (strncmp(item, "user=", 5) == 0) {
      if ((out->uid = quern_setup_number_(item + 5, &end)) < 0 || *end != ':') return -1;
      if ((out->gid = quern_setup_number_(end + 1, &end)) < 0 || *end != '\0') return -1;
    } else {
      return -1;
    }
    item = next;
  }
  return 0;
}

/* In the child, between fork and exec: async-signal-safe system calls only
 * (raw setgroups/setgid/setuid: the child has one thread). 0, or which step
 * failed, with errno set: 1 joining a cgroup, 2 a resource limit, 3 the user. */
static inline int quern_setup_apply(const quern_setup* s) {
  int i, fd;
  struct rlimit rl;
  for (i = 0; i < s->n_cgroups; ++i) {
    ssize_t n;
    int err;
    fd = open(s->cgroups[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0) return 1;
    n = write(fd, "0", 1);
    err = errno;
    close(fd);
    if (n != 1) {
      errno = err;
      return 1;
    }
  }
  if (s->nofile >= 0) {
    rl.rlim_cur = rl.rlim_max = (rlim_t)s->nofile;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 2;
  }
  if (s->core >= 0) {
    rl.rlim_cur = rl.rlim_max = (rlim_t)s->core;
    if (setrlimit(RLIMIT_CORE, &rl) != 0) return 2;
  }
  if (s->uid >= 0) {
    if (syscall(SYS_setgroups, 0, NULL) != 0) return 3;
    if (syscall(SYS_setgid, (gid_t)s->gid) != 0) return 3;
    if (syscall(SYS_setuid, (uid_t)s->uid) != 0) return 3;
  }
  return 0;
}

static inline const char* quern_setup_step_(int step) {
  switch (step) {
    case 1:
      return "joining the job's cgroup";
    case 2:
      return "setting the job's resource limits";
    default:
      return "switching to the job's user";
  }
}

/* The wrapper's arguments (sandbox: QUERN_SANDBOX's value) with {workdir}
 * replaced by workdir, followed by program and argv[1..]: a NULL-terminated
 * array in one malloc'd block (free() it once). NULL when out of memory or
 * when the wrapper names {workdir} and workdir is NULL or empty. */
static inline char** quern_sandbox_argv(const char* sandbox, const char* workdir, const char* program,
                                        const char* const* argv) {
  const size_t token = sizeof(QUERN_SANDBOX_WORKDIR) - 1;
  const size_t wlen = workdir != NULL ? strlen(workdir) : 0;
  size_t count = 1, bytes = 0, i, extra = 0;
  const char* p;
  char** out;
  char* text;
  for (p = sandbox; *p != '\0'; ++p) count += *p == QUERN_SANDBOX_SEPARATOR;
  /* Room for every {workdir} replaced. */
  for (p = strstr(sandbox, QUERN_SANDBOX_WORKDIR); p != NULL; p = strstr(p + token, QUERN_SANDBOX_WORKDIR)) {
    if (wlen == 0) return NULL;
    bytes += wlen;
  }
  bytes += strlen(sandbox) + 1 + strlen(program) + 1;
  for (i = 1; argv[0] != NULL && argv[i] != NULL; ++i, ++extra) bytes += strlen(argv[i]) + 1;
  out = (char**)malloc((count + 1 + extra + 1) * sizeof(char*) + bytes);
  if (out == NULL) return NULL;
  text = (char*)(out + count + 1 + extra + 1);
  i = 0;
  out[i++] = text;
  for (p = sandbox; *p != '\0';) {
    if (strncmp(p, QUERN_SANDBOX_WORKDIR, token) == 0) {
      memcpy(text, workdir, wlen);
      text += wlen;
      p += token;
    } else if (*p == QUERN_SANDBOX_SEPARATOR) {
      *text++ = '\0';
      out[i++] = text;
      ++p;
    } else {
      *text++ = *p++;
    }
  }
  *text++ = '\0';
  out[i++] = strcpy(text, program);
  text += strlen(program) + 1;
  for (count = 1; count <= extra; ++count) {
    out[i++] = strcpy(text, argv[count]);
    text += strlen(argv[count]) + 1;
  }
  out[i] = NULL;
  return out;
}

#ifdef __cplusplus
}
#endif

#endif /* QUERN_SANDBOX_H */
