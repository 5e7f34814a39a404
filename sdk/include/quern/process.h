/*
 * A C process runner for executor plugins (POSIX, Linux-tuned; C11, also
 * valid C++; header-only, every function static inline). quern_run_process
 * runs one child for a job with the semantics of quern::sdk::run_process in
 * quern/process.hpp:
 *
 *  - the child starts in its own process group (setpgid), reported to the
 *    host at once (set_process_group) so that the host can kill it even if
 *    the plugin is stuck, and withdrawn (0) when it is reaped;
 *  - with exactly spec->env as its environment, in spec->workdir, stdin from
 *    spec->stdin_data (or /dev/null), default signal dispositions, an empty
 *    signal mask and every other descriptor closed;
 *  - its stdout and stderr go to the job's log line by line (lines longer
 *    than max_line_bytes in pieces), keeping the last non-blank stdout line
 *    and the stderr tail for the result;
 *  - cancelled() (and options->stop_check) is polled every 50 ms at most: on
 *    a stop the group gets SIGTERM, and SIGKILL after kill_grace_ms;
 *  - when the main child exits, the rest of its group gets SIGKILL (no stray
 *    background process of the job survives it), the pipes are drained for
 *    at most drain_deadline_ms, and the child is reaped;
 *  - the stop reason is read once more after the child exited, so that a
 *    stop the host carried out itself (it kills the group on timeout and
 *    cancel) is reported as such rather than as the child's own exit.
 *
 * Needs _GNU_SOURCE (pipe2, close_range, pidfd_open, NSIG): define it before
 * the first #include of the file, or build with -D_GNU_SOURCE.
 *
 * The definitions are in quern/process_impl.h, which this header includes.
 * Header-only rather than a library: the SDK installs headers only (one
 * include path in the CMake package and pkg-config file, nothing to link or
 * match at run time), a plugin keeps the behaviour it was built with, and
 * no symbol of it can clash with another plugin's under RTLD_LOCAL.
 * Behaviour, not contract, like quern/process.hpp.
 *
 * Thread-safety: several threads may run children at once (one each); it
 * touches no process-wide state (no signal dispositions: stdin is written
 * with MSG_NOSIGNAL). Between fork and exec the child makes only
 * async-signal-safe calls on data prepared before fork.
 */
#ifndef QUERN_PROCESS_H
#define QUERN_PROCESS_H

#if !defined(_GNU_SOURCE)
#error \
    "quern/process.h needs _GNU_SOURCE: #define _GNU_SOURCE before the first #include (or build with -D_GNU_SOURCE)"
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "quern/job.h"
#include "quern/sandbox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct quern_process_spec {
  /* NULL-terminated; argv[0] is the program: a path, or a name looked up in
   * the PATH of env (not the plugin's). */
  const char* const* argv;
  /* The child's whole environment, "NAME=value" entries, NULL-terminated;
   * NULL = empty. */
  const char* const* env;
  /* Working directory of the child; NULL or "" = the plugin's. */
  const char* workdir;
  /* Bytes fed to stdin; NULL = stdin is /dev/null. */
  const char* stdin_data;
  size_t stdin_size;
} quern_process_spec;

typedef struct quern_process_options {
  int64_t kill_grace_ms;     /* between SIGTERM and SIGKILL on a stop (2000) */
  int64_t drain_deadline_ms; /* reading the pipes after the main child exited (200) */
  size_t max_line_bytes;     /* longer lines go to the log in pieces of this size (64 KiB) */
  size_t stderr_tail_bytes;  /* stderr kept in the result (4 KiB) */
  /* Optional, polled with cancelled(): a value other than QUERN_RUNNING
   * stops the child with that reason. E.g. return QUERN_CANCEL_REQUESTED
   * once the plugin's interrupt() set an atomic flag. */
  int32_t (*stop_check)(void* arg);
  void* stop_arg;
} quern_process_options;

typedef struct quern_process_result {
  int exit_code;       /* WEXITSTATUS, or -1 when killed by a signal (or not started) */
  int term_signal;     /* WTERMSIG, or 0 when it exited */
  int32_t stop_reason; /* QUERN_RUNNING, or why the job was stopped (a cancelled() value) */
  /* After a return of 0: malloc'ed NUL-terminated text, never NULL ("" when
   * none); free both with quern_process_result_free. */
  char* last_stdout_line; /* the last stdout line that is not blank */
  char* stderr_tail;      /* the last stderr_tail_bytes of stderr, from a line start when one is near */
  char error[512];        /* after a return of -1: what failed */
} quern_process_result;

/* The defaults: kill_grace_ms 2000, drain_deadline_ms 200, max_line_bytes
 * 64 KiB, stderr_tail_bytes 4 KiB, no stop_check. */
static inline quern_process_options quern_process_options_default(void);

/* Frees the result's text (either return of quern_run_process); NULL-safe. */
static inline void quern_process_result_free(quern_process_result* r);

/* "SIGKILL", "SIGSEGV", ... ("a signal" when unknown), for messages. */
static inline const char* quern_signal_name(int sig);

/* Runs spec->argv to completion (see the top of this file). options NULL =
 * quern_process_options_default(). Returns 0 when the child ran, whatever
 * its end (result says: exit_code / term_signal / stop_reason, output);
 * -1 when it could not be started or running it failed (result->error says
 * why, e.g. "starting child process: exec '/x': No such file or directory";
 * a started child is killed and reaped first). Free the result with
 * quern_process_result_free either way. */
static inline int quern_run_process(const quern_job* job, const quern_process_spec* spec,
                                    const quern_process_options* options, quern_process_result* result);

#ifdef __cplusplus
} /* extern "C" */
#endif

/* The definitions. */
#include "quern/process_impl.h"

#endif /* QUERN_PROCESS_H */
