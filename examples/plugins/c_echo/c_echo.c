/* The "c_echo" executor: a third-party plugin in plain C11, built against the
 * installed SDK's C layer only (quern/executor.h, quern/job.h,
 * quern/process.h): it reads its arguments by name without parsing JSON,
 * logs, runs a child process through the C runner, sets a result and
 * honours cancel, timeout and interrupt().
 *
 * Arguments of a job (language and tag "c_echo"):
 *   message  string, required          the text to print
 *   times    integer 1..1000, default 1 how many lines
 *   delay_s  number 0..60, default 0    pause between two lines
 *   stderr   boolean, default false     print to stderr instead of stdout
 * It runs /bin/sh in the job's working directory with the job's environment
 * plus MESSAGE, TIMES, DELAY and TO_STDERR; every line the shell prints is a
 * line of the job's log. Result: {"message": <the arg>, "times": N}.
 *
 * It needs a host of ABI 1.2 or later (the job accessors) and says so: in
 * create() when the host never called host_abi(), in execute() when the
 * callback table is too short.
 *
 * Thread-safety: the host calls execute() on one instance from one thread at
 * a time; interrupt() may come from another thread, hence the atomic. */
#define _GNU_SOURCE /* quern/process.h: before the first #include */

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quern/executor.h"
#include "quern/job.h"
#include "quern/process.h"

struct quern_instance {
  atomic_int interrupted;
};

/* The ABI minor of the host that loaded us; 0 until a 1.2+ host says (an
 * older one never calls host_abi). Written at load, before any create. */
static uint16_t host_minor;

static void c_echo_host_abi(uint16_t abi_major, uint16_t abi_minor) {
  host_minor = abi_major == QUERN_ABI_MAJOR ? abi_minor : 0;
}

static int32_t c_echo_create(quern_str config_json, quern_instance** out, quern_errbuf err) {
  (void)config_json; /* no settings */
  *out = NULL;
  if (host_minor < 2) {
    snprintf(err.data, (size_t)err.size,
             "c_echo needs a Quern host of ABI 1.2 or later (the job accessors); this host is older");
    return 1;
  }
  *out = (quern_instance*)calloc(1, sizeof(quern_instance));
  if (*out == NULL) {
    snprintf(err.data, (size_t)err.size, "c_echo: out of memory");
    return 1;
  }
  return 0;
}

static void c_echo_destroy(quern_instance* self) { free(self); }

static void c_echo_interrupt(quern_instance* self) { atomic_store(&self->interrupted, 1); }

static int32_t c_echo_health(quern_instance* self, quern_errbuf err) {
  (void)self;
  if (access("/bin/sh", X_OK) == 0) return 0;
  snprintf(err.data, (size_t)err.size, "c_echo: /bin/sh is not executable here");
  return 1;
}

/* quern_process_options.stop_check: interrupt() counts as a cancel. */
static int32_t c_echo_stop_check(void* arg) {
  quern_instance* self = (quern_instance*)arg;
  return atomic_load(&self->interrupted) ? QUERN_CANCEL_REQUESTED : QUERN_RUNNING;
}

/* printf into a malloc'ed string (NULL when out of memory). */
static char* format(const char* fmt, ...) QUERN_PRINTF_FORMAT(1, 2);
static char* format(const char* fmt, ...) {
  va_list ap;
  char* text;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || (text = (char*)malloc((size_t)n + 1)) == NULL) return NULL;
  va_start(ap, fmt);
  vsnprintf(text, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return text;
}

/* Prints $MESSAGE $TIMES times, $DELAY seconds apart, to stderr when $TO_STDERR is 1. */
static const char kScript[] =
    "i=0\n"
    "while [ \"$i\" -lt \"$TIMES\" ]; do\n"
    "  if [ \"$TO_STDERR\" = 1 ]; then printf '%s\\n' \"$MESSAGE\" >&2; else printf '%s\\n' \"$MESSAGE\"; "
    "fi\n"
    "  i=$((i + 1))\n"
    "  if [ \"$i\" -lt \"$TIMES\" ]; then sleep \"$DELAY\"; fi\n"
    "done\n";

static int32_t c_echo_execute(quern_instance* self, quern_str job_json, const quern_job_callbacks* callbacks,
                              quern_job_ctx* ctx) {
  quern_job job = quern_job_make(callbacks, ctx);
  const char* argv[] = {"/bin/sh", "-c", kScript, NULL};
  int32_t status = QUERN_STATUS_INTERNAL, why, to_stderr = 0;
  int64_t times = 1, id = 0, attempt = 0, missing;
  double delay = 0;
  char *message = NULL, *workdir = NULL, *message_json = NULL, *result = NULL;
  char** env = NULL;
  size_t n_env = 0;
  quern_process_spec spec;
  quern_process_options options;
  quern_process_result run;

  (void)job_json; /* read through the accessors instead */
  atomic_store(&self->interrupted, 0);
  if (!quern_job_has_accessors(&job)) {
    quern_set_errorf(
        &job,
        "c_echo needs a Quern host of ABI 1.2 or later (the job accessors); this host's callback "
        "table has %u bytes",
        callbacks != NULL ? (unsigned)callbacks->struct_size : 0u);
    return QUERN_STATUS_FAILURE;
  }

  /* Arguments by name; an absent optional one keeps its default. */
  message = quern_arg_string_dup(&job, "message", &missing);
  if (message == NULL) {
    quern_set_errorf(&job, "arg 'message' %s",
                     missing == QUERN_VALUE_MISSING      ? "is required"
                     : missing == QUERN_VALUE_WRONG_TYPE ? "must be a string"
                                                         : "cannot be read: out of memory");
    return QUERN_STATUS_FAILURE;
  }
  status = QUERN_STATUS_FAILURE;
  if (quern_arg_int(&job, "times", &times) == QUERN_VALUE_WRONG_TYPE || times < 1 || times > 1000) {
    quern_set_error(&job, "arg 'times' must be an integer from 1 to 1000");
    goto done;
  }
  if (quern_arg_double(&job, "delay_s", &delay) == QUERN_VALUE_WRONG_TYPE || !(delay >= 0 && delay <= 60)) {
    quern_set_error(&job, "arg 'delay_s' must be a number from 0 to 60");
    goto done;
  }
  if (quern_arg_bool(&job, "stderr", &to_stderr) == QUERN_VALUE_WRONG_TYPE) {
    quern_set_error(&job, "arg 'stderr' must be true or false");
    goto done;
  }
  quern_field_int(&job, QUERN_FIELD_ID, &id);
  quern_field_int(&job, QUERN_FIELD_ATTEMPT, &attempt);
  workdir = quern_field_text_dup(&job, QUERN_FIELD_WORKDIR, NULL); /* NULL: stay where we are */
  quern_logf(&job, QUERN_STREAM_SYSTEM, "c_echo: job %lld attempt %lld: %lld line(s) to %s, %g s apart",
             (long long)id, (long long)attempt, (long long)times, to_stderr ? "stderr" : "stdout", delay);

  /* The job's environment plus four variables of ours. */
  status = QUERN_STATUS_INTERNAL;
  env = quern_env_dup(&job, 4, &n_env);
  if (env == NULL || (env[n_env] = format("MESSAGE=%s", message)) == NULL ||
      (env[n_env + 1] = format("TIMES=%lld", (long long)times)) == NULL ||
      (env[n_env + 2] = format("DELAY=%g", delay)) == NULL ||
      (env[n_env + 3] = format("TO_STDERR=%d", to_stderr ? 1 : 0)) == NULL) {
    quern_set_error(&job, "c_echo: out of memory");
    goto done;
  }

  why = quern_cancelled(&job);
  if (why != QUERN_RUNNING || atomic_load(&self->interrupted)) {
    status = quern_stop_status(&job, why != QUERN_RUNNING ? why : QUERN_CANCEL_REQUESTED);
    goto done;
  }
  memset(&spec, 0, sizeof spec);
  spec.argv = argv;
  spec.env = (const char* const*)env;
  spec.workdir = workdir;
  options = quern_process_options_default();
  options.stop_check = c_echo_stop_check;
  options.stop_arg = self;
  if (quern_run_process(&job, &spec, &options, &run) != 0) {
    quern_set_errorf(&job, "c_echo: %s", run.error);
    status = QUERN_STATUS_INTERNAL;
  } else if (run.stop_reason != QUERN_RUNNING) {
    status = quern_stop_status(&job, run.stop_reason);
  } else if (run.term_signal != 0) {
    quern_set_errorf(&job, "killed by %s", quern_signal_name(run.term_signal));
    status = QUERN_STATUS_FAILURE;
  } else if (run.exit_code != 0) {
    quern_set_errorf(&job, "exit code %d%s%s", run.exit_code, run.stderr_tail[0] ? ": " : "",
                     run.stderr_tail);
    status = QUERN_STATUS_FAILURE;
  } else {
    /* The message goes back as the JSON the submission had: no escaping here. */
    message_json = quern_arg_json_dup(&job, "message", NULL);
    result = message_json != NULL ? format("{\"message\":%s,\"times\":%lld}", message_json, (long long)times)
                                  : NULL;
    if (result != NULL) {
      quern_set_result(&job, result);
      status = QUERN_STATUS_SUCCESS;
    } else {
      quern_set_error(&job, "c_echo: out of memory");
      status = QUERN_STATUS_INTERNAL;
    }
  }
  quern_process_result_free(&run);

done:
  quern_strv_free(env);
  free(result);
  free(message_json);
  free(workdir);
  free(message);
  return status;
}

static const quern_executor_descriptor descriptor = {
    .struct_size = sizeof(quern_executor_descriptor),
    .abi_major = QUERN_ABI_MAJOR,
    .abi_minor = QUERN_ABI_MINOR,
    .name = "c_echo",
    .version = "1.0.0",
    .languages = "c_echo",
    .tags = "c_echo",
    .capabilities = QUERN_CAP_SPAWNS_PROCESSES, /* to get a working directory and an environment */
    .create = c_echo_create,
    .destroy = c_echo_destroy,
    .execute = c_echo_execute,
    .health = c_echo_health,
    .interrupt = c_echo_interrupt,
    .host_abi = c_echo_host_abi,
};

/* Declared in quern/executor.h (1.2), so no -Wmissing-prototypes warning. */
QUERN_EXPORT const quern_executor_descriptor* QUERN_EXECUTOR_ENTRY_V1(void) { return &descriptor; }
