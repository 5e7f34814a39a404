/*
 * The definitions of quern/process.h (header-only C process runner): include
 * that header, not this one. Names ending in _ are internal.
 */
#ifndef QUERN_PROCESS_IMPL_H
#define QUERN_PROCESS_IMPL_H

#ifndef QUERN_PROCESS_H
#error "include quern/process.h, not quern/process_impl.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

static inline quern_process_options quern_process_options_default(void) {
  quern_process_options o;
  memset(&o, 0, sizeof o);
  o.kill_grace_ms = 2000;
  o.drain_deadline_ms = 200;
  o.max_line_bytes = 64 * 1024;
  o.stderr_tail_bytes = 4 * 1024;
  return o;
}

static inline void quern_process_result_free(quern_process_result* r) {
  if (r == NULL) return;
  free(r->last_stdout_line);
  free(r->stderr_tail);
  r->last_stdout_line = NULL;
  r->stderr_tail = NULL;
}

static inline const char* quern_signal_name(int sig) {
  static const struct {
    int sig;
    const char* name;
  } kNames[] = {{SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
                {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"},
                {SIGSEGV, "SIGSEGV"}, {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
                {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}};
  size_t i;
  for (i = 0; i < sizeof kNames / sizeof kNames[0]; ++i)
    if (kNames[i].sig == sig) return kNames[i].name;
  return "a signal";
}

/* ---- Internals (names ending in _) ----------------------------------------- */

static inline int64_t quern_proc_now_ms_(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

static inline void quern_proc_close_(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* result->error = "<what>: <strerror(err)>". */
static inline void quern_proc_fail_(quern_process_result* r, const char* what, int err) {
  char text[128];
#if defined(__GLIBC__)
  const char* reason = strerror_r(err, text, sizeof text); /* the GNU variant under _GNU_SOURCE */
#else
  const char* reason = strerror_r(err, text, sizeof text) == 0 ? text : "unknown error";
#endif
  snprintf(r->error, sizeof r->error, "%s: %s", what, reason);
}

/* argv[0] resolved against the PATH in env (the child's, not ours), before
 * fork so that the child need not allocate; malloc'ed, or NULL. */
static inline char* quern_proc_resolve_(const char* name, const char* const* env) {
  const char* path = "/usr/local/bin:/usr/bin:/bin";
  size_t i;
  if (strchr(name, '/') != NULL) {
    char* copy = (char*)malloc(strlen(name) + 1);
    if (copy != NULL) strcpy(copy, name);
    return copy;
  }
  for (i = 0; env != NULL && env[i] != NULL; ++i)
    if (strncmp(env[i], "PATH=", 5) == 0) path = env[i] + 5;
  for (;;) {
    const char* colon = strchr(path, ':');
    size_t dir_len = colon != NULL ? (size_t)(colon - path) : strlen(path);
    char* candidate = (char*)malloc(dir_len + strlen(name) + 3);
    if (candidate == NULL) return NULL;
    if (dir_len == 0) {
      strcpy(candidate, ".");
    } else {
      memcpy(candidate, path, dir_len);
      candidate[dir_len] = '\0';
    }
    strcat(candidate, "/");
    strcat(candidate, name);
    if (access(candidate, X_OK) == 0) return candidate;
    free(candidate);
    if (colon == NULL) break;
    path = colon + 1;
  }
  errno = ENOENT;
  return NULL;
}

/* Closes every descriptor >= from except keep, in the child after fork. */
static inline void quern_proc_close_from_(int from, int keep) {
  long max;
  int fd;
#if defined(__linux__) && defined(SYS_close_range)
  int ok = 1;
  if (keep >= from) {
    if (keep > from && syscall(SYS_close_range, from, keep - 1, 0) != 0) ok = 0;
    if (ok && syscall(SYS_close_range, keep + 1, ~0U, 0) != 0) ok = 0;
  } else if (syscall(SYS_close_range, from, ~0U, 0) != 0) {
    ok = 0;
  }
  if (ok) return;
#endif
  max = sysconf(_SC_OPEN_MAX); /* kernels before 5.9 */
  if (max < 0 || max > 65536) max = 65536;
  for (fd = from; fd < max; ++fd)
    if (fd != keep) close(fd);
}

/* Starts the child with fds[0..2] as its stdin, stdout, stderr in a new
 * process group (= its pid), reported through the job as soon as it
 * exists. Returns the pid, or -1 with result->error set (the child, if any,
 * reaped; the group withdrawn). */
static inline pid_t quern_proc_spawn_raw_(const quern_job* job, const quern_process_spec* spec,
                                          const char* program, const quern_setup* setup, const int fds[3],
                                          quern_process_result* result) {
  static const char* const kNoEnv[] = {NULL};
  char* const* argv = (char* const*)spec->argv;
  char* const* envp = (char* const*)(spec->env != NULL ? spec->env : kNoEnv);
  const char* workdir = spec->workdir != NULL && spec->workdir[0] != '\0' ? spec->workdir : NULL;
  const int high_base = 3 + 10; /* above every target, so that placing one never overwrites another */
  int high[3] = {-1, -1, -1};
  int status_pipe[2] = {-1, -1};
  int report[2] = {0, 0};
  sigset_t empty_mask;
  ssize_t n;
  pid_t pid;
  int i, fd;

  sigemptyset(&empty_mask);
  for (i = 0; i < 3; ++i) {
    high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, high_base);
    if (high[i] < 0) {
      quern_proc_fail_(result, "starting child process: fcntl(F_DUPFD_CLOEXEC)", errno);
      goto fail_fds;
    }
  }
  /* Reports a failed step to the parent; closes itself on exec. */
  if (pipe2(status_pipe, O_CLOEXEC) != 0) {
    quern_proc_fail_(result, "starting child process: pipe", errno);
    goto fail_fds;
  }
  fd = fcntl(status_pipe[1], F_DUPFD_CLOEXEC, high_base);
  if (fd < 0) {
    quern_proc_fail_(result, "starting child process: fcntl(F_DUPFD_CLOEXEC)", errno);
    goto fail_fds;
  }
  close(status_pipe[1]);
  status_pipe[1] = fd;

  pid = fork();
  if (pid < 0) {
    quern_proc_fail_(result, "starting child process: fork", errno);
    goto fail_fds;
  }
  if (pid == 0) {
    /* Child: async-signal-safe calls only. */
    struct sigaction dfl;
    int step = 0;
    if (setpgid(0, 0) != 0) goto child_fail;
    /* Ignored and blocked signals survive exec; the child starts with defaults. */
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (i = 1; i < NSIG; ++i) sigaction(i, &dfl, NULL);
    sigprocmask(SIG_SETMASK, &empty_mask, NULL);
    step = quern_setup_apply(setup);
    if (step != 0) {
      step += 10;
      goto child_fail;
    }
    step = 2;
    for (i = 0; i < 3; ++i)
      if (dup2(high[i], i) < 0) goto child_fail;
    step = 3;
    if (workdir != NULL && chdir(workdir) != 0) goto child_fail;
    quern_proc_close_from_(3, status_pipe[1]);
    step = 4;
    execve(program, argv, envp);
  child_fail:
    report[0] = step;
    report[1] = errno;
    n = write(status_pipe[1], report, sizeof report);
    (void)n;
    _exit(127);
  }

  /* Parent. The group is set here too, so that it exists before anyone
   * signals it, whichever of the two runs first (EACCES: already exec'd). */
  setpgid(pid, pid);
  for (i = 0; i < 3; ++i) quern_proc_close_(&high[i]);
  quern_proc_close_(&status_pipe[1]);
  quern_set_process_group(job, (int64_t)pid);
  do n = read(status_pipe[0], report, sizeof report);
  while (n < 0 && errno == EINTR);
  quern_proc_close_(&status_pipe[0]);
  if (n == (ssize_t)sizeof report) {
    char what[400];
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    quern_set_process_group(job, 0);
    switch (report[0]) {
      case 0:
        snprintf(what, sizeof what, "starting child process: setpgid");
        break;
      case 2:
        snprintf(what, sizeof what, "starting child process: redirecting stdio");
        break;
      case 3:
        snprintf(what, sizeof what, "starting child process: chdir to '%.300s'", workdir);
        break;
      case 11:
      case 12:
      case 13:
        snprintf(what, sizeof what, "starting child process: %s", quern_setup_step_(report[0] - 10));
        break;
      default:
        snprintf(what, sizeof what, "starting child process: exec '%.300s'", program);
        break;
    }
    quern_proc_fail_(result, what, report[1]);
    return -1;
  }
  return pid;

fail_fds:
  for (i = 0; i < 3; ++i) quern_proc_close_(&high[i]);
  quern_proc_close_(&status_pipe[0]);
  quern_proc_close_(&status_pipe[1]);
  return -1;
}

/* quern_proc_spawn_raw_ with the host's confinement (quern/sandbox.h):
 * QUERN_SANDBOX and QUERN_SETUP leave the environment; the sandbox's wrapper
 * goes in front of the command line and the setup is applied in the child. */
static inline pid_t quern_proc_spawn_(const quern_job* job, const quern_process_spec* spec,
                                      const char* program, const int fds[3], quern_process_result* result) {
  const char* sandbox = quern_sandbox_find(spec->env);
  const char* setup_value = quern_env_find(spec->env, QUERN_SETUP_ENV);
  char* setup_text = strdup(setup_value != NULL ? setup_value : "");
  quern_setup setup;
  quern_process_spec wrapped = *spec;
  const char** env = NULL;
  char** argv = NULL;
  size_t n = 0, k = 0;
  pid_t pid = -1;
  if (setup_text == NULL) {
    quern_proc_fail_(result, "starting child process: out of memory", ENOMEM);
    return -1;
  }
  if (quern_setup_parse(setup_text, &setup) != 0) {
    quern_proc_fail_(result, "starting child process: the host's " QUERN_SETUP_ENV " is not understood", EINVAL);
    goto done;
  }
  if (sandbox != NULL) {
    argv = quern_sandbox_argv(sandbox, spec->workdir, program, spec->argv);
    if (argv == NULL) {
      quern_proc_fail_(result, "starting child process: the sandbox needs a working directory", EINVAL);
      goto done;
    }
    wrapped.argv = (const char* const*)argv;
    program = argv[0];
  }
  if (spec->env != NULL) {
    while (spec->env[n] != NULL) ++n;
    env = (const char**)malloc((n + 1) * sizeof *env);
    if (env == NULL) {
      quern_proc_fail_(result, "starting child process: out of memory", ENOMEM);
      goto done;
    }
    for (n = 0; spec->env[n] != NULL; ++n)
      if (strncmp(spec->env[n], QUERN_SANDBOX_ENV "=", sizeof(QUERN_SANDBOX_ENV)) != 0 &&
          strncmp(spec->env[n], QUERN_SETUP_ENV "=", sizeof(QUERN_SETUP_ENV)) != 0)
        env[k++] = spec->env[n];
    env[k] = NULL;
    wrapped.env = env;
  }
  pid = quern_proc_spawn_raw_(job, &wrapped, program, &setup, fds, result);
done:
  free((void*)env);
  free(argv);
  free(setup_text);
  return pid;
}

/* One output stream of the child, split into lines for the log. */
typedef struct quern_proc_stream_ {
  int32_t stream;
  int fd;     /* read end; -1 once at EOF */
  char* line; /* the line being gathered: at most max_line_bytes */
  size_t len;
} quern_proc_stream_;

typedef struct quern_proc_run_ {
  const quern_job* job;
  const quern_process_options* opt;
  quern_process_result* result;
  char* tail; /* stderr tail being gathered */
  size_t tail_len, tail_cap;
  int out_of_memory;
} quern_proc_run_;

static inline void quern_proc_emit_(quern_proc_run_* run, int32_t stream, const char* data, size_t n) {
  size_t i, cap = run->opt->stderr_tail_bytes;
  quern_log_n(run->job, stream, data, n);
  if (stream == QUERN_STREAM_STDOUT) {
    for (i = 0; i < n; ++i) {
      if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r') {
        char* copy = (char*)realloc(run->result->last_stdout_line, n + 1);
        if (copy == NULL) {
          run->out_of_memory = 1;
          return;
        }
        memcpy(copy, data, n);
        copy[n] = '\0';
        run->result->last_stdout_line = copy;
        return;
      }
    }
    return;
  }
  if (run->tail_len + n + 1 > run->tail_cap) {
    size_t want = run->tail_len + n + 1 > 2 * cap + 2 ? run->tail_len + n + 1 : 2 * cap + 2;
    char* grown = (char*)realloc(run->tail, want + 1);
    if (grown == NULL) {
      run->out_of_memory = 1;
      return;
    }
    run->tail = grown;
    run->tail_cap = want;
  }
  memcpy(run->tail + run->tail_len, data, n);
  run->tail_len += n;
  run->tail[run->tail_len++] = '\n';
  /* Trimmed in batches, so that keeping the tail stays linear overall. */
  if (run->tail_len > 2 * cap + 1) {
    memmove(run->tail, run->tail + run->tail_len - (cap + 1), cap + 1);
    run->tail_len = cap + 1;
  }
}

static inline void quern_proc_feed_(quern_proc_run_* run, quern_proc_stream_* s, const char* data, size_t n) {
  const size_t max = run->opt->max_line_bytes;
  while (n > 0) {
    const char* nl = (const char*)memchr(data, '\n', n);
    const size_t seg = nl != NULL ? (size_t)(nl - data) : n;
    size_t i = 0;
    while (i < seg) {
      size_t take;
      if (s->len == max) { /* a full piece, and the line goes on */
        quern_proc_emit_(run, s->stream, s->line, s->len);
        s->len = 0;
      }
      take = seg - i < max - s->len ? seg - i : max - s->len;
      memcpy(s->line + s->len, data + i, take);
      s->len += take;
      i += take;
    }
    if (nl == NULL) break;
    quern_proc_emit_(run, s->stream, s->line, s->len);
    s->len = 0;
    data += seg + 1;
    n -= seg + 1;
  }
}

/* At EOF (or when we stop reading): a partial last line is still a line. */
static inline void quern_proc_flush_(quern_proc_run_* run, quern_proc_stream_* s) {
  if (s->len > 0) quern_proc_emit_(run, s->stream, s->line, s->len);
  s->len = 0;
}

static inline void quern_proc_read_(quern_proc_run_* run, quern_proc_stream_* s, char* buf, size_t size) {
  ssize_t n = read(s->fd, buf, size);
  if (n > 0) {
    quern_proc_feed_(run, s, buf, (size_t)n);
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    quern_proc_flush_(run, s);
    quern_proc_close_(&s->fd);
  }
}

static inline int32_t quern_proc_stop_reason_(const quern_job* job, const quern_process_options* opt) {
  int32_t why = quern_cancelled(job);
  if (why == QUERN_RUNNING && opt->stop_check != NULL) why = opt->stop_check(opt->stop_arg);
  return why;
}

static inline int quern_proc_nonblocking_(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

/* The stderr tail trimmed to cap bytes, from a line start when one is near. */
static inline char* quern_proc_finish_tail_(quern_proc_run_* run) {
  size_t cap = run->opt->stderr_tail_bytes, start = 0, len = run->tail_len;
  char* out;
  if (len > 0 && run->tail[len - 1] == '\n') --len;
  if (len > cap) {
    const char* nl;
    start = len - cap;
    nl = (const char*)memchr(run->tail + start, '\n', len - start);
    if (nl != NULL && (size_t)(nl - (run->tail + start)) < 256) start = (size_t)(nl - run->tail) + 1;
  }
  out = (char*)malloc(len - start + 1);
  if (out == NULL) return NULL;
  if (len > start) memcpy(out, run->tail + start, len - start);
  out[len - start] = '\0';
  return out;
}

/* ---- The runner ------------------------------------------------------------- */

static inline int quern_run_process(const quern_job* job, const quern_process_spec* spec,
                                    const quern_process_options* options, quern_process_result* result) {
  quern_process_options opt = options != NULL ? *options : quern_process_options_default();
  quern_proc_run_ run;
  quern_proc_stream_ out, err;
  int child_fds[3] = {-1, -1, -1};
  int in_fd = -1, exit_fd = -1, status = 0, exited = 0, term_sent = 0, kill_sent = 0, pipe_fds[2], i;
  int64_t kill_at = 0, drain_until = 0;
  size_t stdin_written = 0;
  char* program = NULL;
  char* buf = NULL;
  pid_t pid = -1;

  memset(result, 0, sizeof *result);
  result->exit_code = -1;
  result->stop_reason = QUERN_RUNNING;
  memset(&run, 0, sizeof run);
  run.job = job;
  run.opt = &opt;
  run.result = result;
  out.stream = QUERN_STREAM_STDOUT;
  err.stream = QUERN_STREAM_STDERR;
  out.fd = err.fd = -1;
  out.len = err.len = 0;
  if (opt.max_line_bytes == 0) opt.max_line_bytes = 1;
  out.line = (char*)malloc(opt.max_line_bytes);
  err.line = (char*)malloc(opt.max_line_bytes);
  buf = (char*)malloc(64 * 1024);
  if (out.line == NULL || err.line == NULL || buf == NULL) {
    snprintf(result->error, sizeof result->error, "quern_run_process: out of memory");
    goto done_setup;
  }
  if (spec == NULL || spec->argv == NULL || spec->argv[0] == NULL) {
    snprintf(result->error, sizeof result->error, "quern_run_process: empty argv");
    goto done_setup;
  }
  program = quern_proc_resolve_(spec->argv[0], spec->env);
  if (program == NULL) {
    char what[400];
    snprintf(what, sizeof what, "starting child process: program '%.300s' not found in PATH", spec->argv[0]);
    quern_proc_fail_(result, what, errno);
    goto done_setup;
  }
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    quern_proc_fail_(result, "starting child process: pipe", errno);
    goto done_setup;
  }
  out.fd = pipe_fds[0];
  child_fds[1] = pipe_fds[1];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    quern_proc_fail_(result, "starting child process: pipe", errno);
    goto done_setup;
  }
  err.fd = pipe_fds[0];
  child_fds[2] = pipe_fds[1];
  if (spec->stdin_data != NULL) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pipe_fds) != 0) {
      quern_proc_fail_(result, "starting child process: socketpair", errno);
      goto done_setup;
    }
    in_fd = pipe_fds[0];
    child_fds[0] = pipe_fds[1];
  } else {
    child_fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (child_fds[0] < 0) {
      quern_proc_fail_(result, "starting child process: open /dev/null", errno);
      goto done_setup;
    }
  }
  if (!quern_proc_nonblocking_(out.fd) || !quern_proc_nonblocking_(err.fd) ||
      (in_fd >= 0 && !quern_proc_nonblocking_(in_fd))) {
    quern_proc_fail_(result, "starting child process: fcntl(O_NONBLOCK)", errno);
    goto done_setup;
  }

  pid = quern_proc_spawn_(job, spec, program, child_fds, result);
  for (i = 0; i < 3; ++i) quern_proc_close_(&child_fds[i]);
  if (pid < 0) goto done_setup;
  if (in_fd >= 0 && spec->stdin_size == 0) quern_proc_close_(&in_fd);
#if defined(__linux__) && defined(SYS_pidfd_open)
  /* Readable once the child exits (Linux 5.3+): exit is noticed at once,
   * even after the child closed its pipes; else the 50 ms poll finds it. */
  exit_fd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif

  for (;;) {
    struct pollfd fds[4];
    int nfds = 0, out_i = -1, err_i = -1, in_i = -1, timeout_ms = 50, r;
    int64_t now = quern_proc_now_ms_();
    /* 1. Has the main child exited? (WNOWAIT keeps the zombie, so that its
     *    pid, the group's id, cannot be reused while we signal the group.) */
    if (!exited) {
      siginfo_t info;
      memset(&info, 0, sizeof info);
      if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
        exited = 1;
        kill(-pid, SIGKILL); /* background processes of the job die with it */
        quern_proc_close_(&in_fd);
        drain_until = now + opt.drain_deadline_ms;
        /* The host may have stopped the job and killed the group before we
         * polled: then its reason, not the exit, is what happened. */
        if (!term_sent) result->stop_reason = quern_proc_stop_reason_(job, &opt);
      }
    }
    /* 2. Stop requests. */
    if (!exited) {
      if (!term_sent) {
        int32_t why = quern_proc_stop_reason_(job, &opt);
        if (why != QUERN_RUNNING) {
          result->stop_reason = why;
          kill(-pid, SIGTERM);
          term_sent = 1;
          kill_at = now + opt.kill_grace_ms;
        }
      } else if (!kill_sent && now >= kill_at) {
        kill(-pid, SIGKILL);
        kill_sent = 1;
      }
    }
    if (run.out_of_memory) {
      snprintf(result->error, sizeof result->error, "quern_run_process: out of memory");
      goto fail_running;
    }
    if (exited && ((out.fd < 0 && err.fd < 0) || now >= drain_until)) break;

    /* 3. Wait for output (50 ms at most, so that the checks above stay timely). */
    if (!exited && exit_fd >= 0) {
      fds[nfds].fd = exit_fd;
      fds[nfds++].events = POLLIN;
    }
    if (out.fd >= 0) {
      out_i = nfds;
      fds[nfds].fd = out.fd;
      fds[nfds++].events = POLLIN;
    }
    if (err.fd >= 0) {
      err_i = nfds;
      fds[nfds].fd = err.fd;
      fds[nfds++].events = POLLIN;
    }
    if (in_fd >= 0) {
      in_i = nfds;
      fds[nfds].fd = in_fd;
      fds[nfds++].events = POLLOUT;
    }
    for (i = 0; i < nfds; ++i) fds[i].revents = 0;
    if (exited) {
      int64_t left = drain_until - now;
      timeout_ms = (int)(left < 0 ? 0 : left < 50 ? left : 50);
    }
    r = poll(nfds > 0 ? fds : NULL, (nfds_t)nfds, timeout_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      quern_proc_fail_(result, "running child process: poll", errno);
      goto fail_running;
    }
    if (out_i >= 0 && fds[out_i].revents != 0) quern_proc_read_(&run, &out, buf, 64 * 1024);
    if (err_i >= 0 && fds[err_i].revents != 0) quern_proc_read_(&run, &err, buf, 64 * 1024);
    if (in_i >= 0 && fds[in_i].revents != 0) {
      ssize_t n =
          send(in_fd, spec->stdin_data + stdin_written, spec->stdin_size - stdin_written, MSG_NOSIGNAL);
      if (n > 0) stdin_written += (size_t)n;
      /* Done, or the child closed its end (EPIPE): stdin is over either way. */
      if (stdin_written == spec->stdin_size || (n < 0 && errno != EAGAIN && errno != EINTR))
        quern_proc_close_(&in_fd);
    }
  }
  /* A stray outside the group may still hold a pipe: stop reading, keep what we have. */
  if (out.fd >= 0) quern_proc_flush_(&run, &out);
  if (err.fd >= 0) quern_proc_flush_(&run, &err);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  quern_set_process_group(job, 0);
  if (WIFEXITED(status)) {
    result->exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result->term_signal = WTERMSIG(status);
  }
  if (result->last_stdout_line == NULL) result->last_stdout_line = (char*)calloc(1, 1);
  result->stderr_tail = quern_proc_finish_tail_(&run);
  if (run.out_of_memory || result->last_stdout_line == NULL || result->stderr_tail == NULL) {
    snprintf(result->error, sizeof result->error, "quern_run_process: out of memory");
    quern_process_result_free(result);
    goto done_setup_reaped;
  }
  quern_proc_close_(&out.fd);
  quern_proc_close_(&err.fd);
  quern_proc_close_(&exit_fd);
  free(run.tail);
  free(out.line);
  free(err.line);
  free(buf);
  free(program);
  return 0;

fail_running:
  /* Whatever went wrong, the child must not outlive this call unreaped. */
  kill(-pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  quern_set_process_group(job, 0);
done_setup_reaped:
  result->exit_code = -1;
  result->term_signal = 0;
done_setup:
  for (i = 0; i < 3; ++i) quern_proc_close_(&child_fds[i]);
  quern_proc_close_(&in_fd);
  quern_proc_close_(&out.fd);
  quern_proc_close_(&err.fd);
  quern_proc_close_(&exit_fd);
  quern_process_result_free(result);
  free(run.tail);
  free(out.line);
  free(err.line);
  free(buf);
  free(program);
  return -1;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QUERN_PROCESS_IMPL_H */
