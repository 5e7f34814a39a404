/*
 * C helpers for executor plugins (C11, also valid C++; header-only, every
 * function static inline): one handle for the job's callbacks, printf-style
 * logs and errors, and the ABI 1.2 job accessors in two forms: into a buffer
 * of yours (snprintf-style, as executor.h defines them) or malloc'ed.
 *
 *   static int32_t my_execute(quern_instance* self, quern_str job_json,
 *                             const quern_job_callbacks* callbacks, quern_job_ctx* ctx) {
 *     quern_job job = quern_job_make(callbacks, ctx);
 *     int64_t times = 1;  // stays 1 when the arg is absent
 *     if (quern_arg_int(&job, "times", &times) == QUERN_VALUE_WRONG_TYPE) {
 *       quern_set_errorf(&job, "arg 'times' must be an integer");
 *       return QUERN_STATUS_FAILURE;
 *     }
 *     char* name = quern_arg_string_dup(&job, "name", NULL);  // NULL when absent
 *     quern_logf(&job, QUERN_STREAM_STDOUT, "hello %s, %lld times", name ? name : "world", (long long)times);
 *     free(name);
 *     ...
 *   }
 *
 * Every helper reads a callback only when the host's table covers it (its
 * struct_size) and it is set: on a host older than the field, a function
 * does nothing and an accessor returns QUERN_VALUE_UNSUPPORTED
 * (quern_job_has_accessors says at once; executor.h, "On an older host").
 *
 * Behaviour, not contract: compiled into your plugin (like quern/process.hpp);
 * executor.h is the contract. Thread-safety: as the callbacks themselves —
 * any plugin thread may call these until execute() returns.
 */
#ifndef QUERN_JOB_H
#define QUERN_JOB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quern/executor.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define QUERN_PRINTF_FORMAT(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define QUERN_PRINTF_FORMAT(fmt_index, first_arg)
#endif

/* The _dup helpers' status when malloc failed (never returned by a host). */
#define QUERN_JOB_NO_MEMORY (-100)

/* The job's callbacks and the host's context, as execute() received them. */
typedef struct quern_job {
  const quern_job_callbacks* callbacks;
  quern_job_ctx* ctx;
} quern_job;

static inline quern_job quern_job_make(const quern_job_callbacks* callbacks, quern_job_ctx* ctx) {
  quern_job job;
  job.callbacks = callbacks;
  job.ctx = ctx;
  return job;
}

/* Nonzero when the host's table has callback `member`: its struct_size
 * covers the whole field and the pointer is set. */
#define QUERN_JOB_HAS(job, member)                                             \
  ((job) != NULL && (job)->callbacks != NULL &&                                \
   offsetof(quern_job_callbacks, member) + sizeof((job)->callbacks->member) <= \
       (job)->callbacks->struct_size &&                                        \
   (job)->callbacks->member != NULL)

/* Nonzero when the host offers the ABI 1.2 accessors (all of them). */
static inline int quern_job_has_accessors(const quern_job* job) {
  return QUERN_JOB_HAS(job, field_text) && QUERN_JOB_HAS(job, field_int) && QUERN_JOB_HAS(job, arg_count) &&
         QUERN_JOB_HAS(job, arg_name) && QUERN_JOB_HAS(job, arg_json) && QUERN_JOB_HAS(job, arg_string) &&
         QUERN_JOB_HAS(job, arg_int) && QUERN_JOB_HAS(job, arg_double) && QUERN_JOB_HAS(job, arg_bool) &&
         QUERN_JOB_HAS(job, env_count) && QUERN_JOB_HAS(job, env_entry);
}

static inline quern_str quern_str_of(const char* text) {
  quern_str s;
  s.data = text != NULL ? text : "";
  s.size = (uint64_t)strlen(s.data);
  return s;
}

static inline quern_errbuf quern_buf_of(char* buf, size_t size) {
  quern_errbuf b;
  b.data = size > 0 ? buf : NULL;
  b.size = buf != NULL ? (uint64_t)size : 0;
  return b;
}

/* ---- The 1.0 callbacks ---------------------------------------------------- */

/* One line (without its newline) of `size` bytes to stream QUERN_STREAM_*. */
static inline void quern_log_n(const quern_job* job, int32_t stream, const char* data, size_t size) {
  quern_str s;
  if (!QUERN_JOB_HAS(job, log_line)) return;
  s.data = data != NULL ? data : "";
  s.size = data != NULL ? (uint64_t)size : 0;
  job->callbacks->log_line(job->ctx, stream, s);
}
static inline void quern_log(const quern_job* job, int32_t stream, const char* line) {
  quern_log_n(job, stream, line, line != NULL ? strlen(line) : 0);
}

static inline void quern_progress(const quern_job* job, double fraction) {
  if (QUERN_JOB_HAS(job, progress)) job->callbacks->progress(job->ctx, fraction);
}

/* QUERN_RUNNING, or why the job must stop (QUERN_CANCEL_REQUESTED, ...). */
static inline int32_t quern_cancelled(const quern_job* job) {
  return QUERN_JOB_HAS(job, is_cancelled) ? job->callbacks->is_cancelled(job->ctx) : QUERN_RUNNING;
}

/* The job's result, JSON text; the last call wins. */
static inline void quern_set_result(const quern_job* job, const char* json) {
  if (QUERN_JOB_HAS(job, set_result)) job->callbacks->set_result(job->ctx, quern_str_of(json));
}

/* A human-readable error; the last call wins. */
static inline void quern_set_error(const quern_job* job, const char* message) {
  if (QUERN_JOB_HAS(job, set_error)) job->callbacks->set_error(job->ctx, quern_str_of(message));
}

/* The process group of a child started for this job; 0 when it is gone. */
static inline void quern_set_process_group(const quern_job* job, int64_t pgid) {
  if (QUERN_JOB_HAS(job, set_process_group)) job->callbacks->set_process_group(job->ctx, pgid);
}

/* How a job that quern_cancelled() told to stop (`why`) ends, as the C++
 * stop_status(): sets the error ("timed out", "stopped: worker shutting
 * down" or "canceled") and returns QUERN_STATUS_TIMEOUT for a timeout, else
 * QUERN_STATUS_CANCELED (a job stopped by a shutdown is handed back). */
static inline quern_status quern_stop_status(const quern_job* job, int32_t why) {
  quern_set_error(job, why == QUERN_TIMEOUT_REACHED ? "timed out"
                       : why == QUERN_SHUTDOWN      ? "stopped: worker shutting down"
                                                    : "canceled");
  return why == QUERN_TIMEOUT_REACHED ? QUERN_STATUS_TIMEOUT : QUERN_STATUS_CANCELED;
}

/* ---- printf-style ----------------------------------------------------------- */

/* Formats into a heap buffer when 1 KiB is not enough; NULL (and *size 0)
 * only when vsnprintf fails. A result in `small` is not to be freed. */
static inline char* quern_vformat_(char* small, size_t small_size, size_t* size, const char* fmt,
                                   va_list ap) {
  va_list copy;
  int n;
  char* heap;
  va_copy(copy, ap);
  n = vsnprintf(small, small_size, fmt, copy);
  va_end(copy);
  *size = 0;
  if (n < 0) return NULL;
  if ((size_t)n < small_size) {
    *size = (size_t)n;
    return small;
  }
  heap = (char*)malloc((size_t)n + 1);
  if (heap == NULL) { /* out of memory: what fits */
    *size = small_size - 1;
    return small;
  }
  vsnprintf(heap, (size_t)n + 1, fmt, ap);
  *size = (size_t)n;
  return heap;
}

static inline void quern_vlogf(const quern_job* job, int32_t stream, const char* fmt, va_list ap) {
  char small[1024];
  size_t size;
  char* text = quern_vformat_(small, sizeof small, &size, fmt, ap);
  if (text == NULL) return;
  if (size > 0 && text[size - 1] == '\n') --size; /* printf habit: a line has no newline */
  quern_log_n(job, stream, text, size);
  if (text != small) free(text);
}

/* One log line, printf-style; a trailing newline is dropped (other newlines
 * stay in the line). Longer than 1 KiB is fine (it is malloc'ed). */
static inline void quern_logf(const quern_job* job, int32_t stream, const char* fmt, ...)
    QUERN_PRINTF_FORMAT(3, 4);
static inline void quern_logf(const quern_job* job, int32_t stream, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  quern_vlogf(job, stream, fmt, ap);
  va_end(ap);
}

static inline void quern_vset_errorf(const quern_job* job, const char* fmt, va_list ap) {
  char small[1024];
  size_t size;
  char* text = quern_vformat_(small, sizeof small, &size, fmt, ap);
  quern_str s;
  if (text == NULL || !QUERN_JOB_HAS(job, set_error)) {
    if (text != NULL && text != small) free(text);
    return;
  }
  s.data = text;
  s.size = (uint64_t)size;
  job->callbacks->set_error(job->ctx, s);
  if (text != small) free(text);
}

/* The job's error, printf-style; the last call wins. */
static inline void quern_set_errorf(const quern_job* job, const char* fmt, ...) QUERN_PRINTF_FORMAT(2, 3);
static inline void quern_set_errorf(const quern_job* job, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  quern_vset_errorf(job, fmt, ap);
  va_end(ap);
}

/* ---- The 1.2 accessors (executor.h) ----------------------------------------
 * Text: snprintf-style into buf (at most size-1 bytes and a NUL; buf may be
 * NULL when size is 0), returning the whole length, or a negative
 * QUERN_VALUE_*. Numbers: 0 with *out set, or a negative QUERN_VALUE_*.
 * Names are NUL-terminated here. */

static inline int64_t quern_field_text(const quern_job* job, int32_t field, char* buf, size_t size) {
  if (!QUERN_JOB_HAS(job, field_text)) return QUERN_VALUE_UNSUPPORTED;
  return job->callbacks->field_text(job->ctx, field, quern_buf_of(buf, size));
}
static inline int32_t quern_field_int(const quern_job* job, int32_t field, int64_t* out) {
  if (!QUERN_JOB_HAS(job, field_int)) return QUERN_VALUE_UNSUPPORTED;
  return job->callbacks->field_int(job->ctx, field, out);
}
static inline int64_t quern_arg_count(const quern_job* job) {
  return QUERN_JOB_HAS(job, arg_count) ? job->callbacks->arg_count(job->ctx) : QUERN_VALUE_UNSUPPORTED;
}
static inline int64_t quern_arg_name(const quern_job* job, uint64_t index, char* buf, size_t size) {
  if (!QUERN_JOB_HAS(job, arg_name)) return QUERN_VALUE_UNSUPPORTED;
  return job->callbacks->arg_name(job->ctx, index, quern_buf_of(buf, size));
}
static inline int64_t quern_arg_json(const quern_job* job, const char* name, char* buf, size_t size) {
  if (!QUERN_JOB_HAS(job, arg_json)) return QUERN_VALUE_UNSUPPORTED;
  return job->callbacks->arg_json(job->ctx, quern_str_of(name), quern_buf_of(buf, size));
}
static inline int64_t quern_arg_string(const quern_job* job, const char* name, char* buf, size_t size) {
  if (!QUERN_JOB_HAS(job, arg_string)) return QUERN_VALUE_UNSUPPORTED;
  return job->callbacks->arg_string(job->ctx, quern_str_of(name), quern_buf_of(buf, size));
}
static inline int32_t quern_arg_int(const quern_job* job, const char* name, int64_t* out) {
  if (!QUERN_JOB_HAS(job, arg_int)) return QUERN_VALUE_UNSUPPORTED;
  return job->callbacks->arg_int(job->ctx, quern_str_of(name), out);
}
static inline int32_t quern_arg_double(const quern_job* job, const char* name, double* out) {
  if (!QUERN_JOB_HAS(job, arg_double)) return QUERN_VALUE_UNSUPPORTED;
  return job->callbacks->arg_double(job->ctx, quern_str_of(name), out);
}
static inline int32_t quern_arg_bool(const quern_job* job, const char* name, int32_t* out) {
  if (!QUERN_JOB_HAS(job, arg_bool)) return QUERN_VALUE_UNSUPPORTED;
  return job->callbacks->arg_bool(job->ctx, quern_str_of(name), out);
}
static inline int64_t quern_env_count(const quern_job* job) {
  return QUERN_JOB_HAS(job, env_count) ? job->callbacks->env_count(job->ctx) : QUERN_VALUE_UNSUPPORTED;
}
static inline int64_t quern_env_entry(const quern_job* job, uint64_t index, char* buf, size_t size) {
  if (!QUERN_JOB_HAS(job, env_entry)) return QUERN_VALUE_UNSUPPORTED;
  return job->callbacks->env_entry(job->ctx, index, quern_buf_of(buf, size));
}

/* ---- The same text, malloc'ed ----------------------------------------------
 * NUL-terminated text to free(), or NULL. *status (when not NULL) is the
 * length, or why there is none: a QUERN_VALUE_* or QUERN_JOB_NO_MEMORY. */

enum {
  QUERN_TEXT_FIELD_,
  QUERN_TEXT_ARG_NAME_,
  QUERN_TEXT_ARG_JSON_,
  QUERN_TEXT_ARG_STRING_,
  QUERN_TEXT_ENV_
};

static inline int64_t quern_text_(const quern_job* job, int kind, int32_t field, uint64_t index,
                                  const char* name, char* buf, size_t size) {
  switch (kind) {
    case QUERN_TEXT_FIELD_:
      return quern_field_text(job, field, buf, size);
    case QUERN_TEXT_ARG_NAME_:
      return quern_arg_name(job, index, buf, size);
    case QUERN_TEXT_ARG_JSON_:
      return quern_arg_json(job, name, buf, size);
    case QUERN_TEXT_ARG_STRING_:
      return quern_arg_string(job, name, buf, size);
    default:
      return quern_env_entry(job, index, buf, size);
  }
}

static inline char* quern_text_dup_(const quern_job* job, int kind, int32_t field, uint64_t index,
                                    const char* name, int64_t* status) {
  char small[256];
  char* text;
  int64_t n = quern_text_(job, kind, field, index, name, small, sizeof small);
  if (status != NULL) *status = n;
  if (n < 0) return NULL;
  text = (char*)malloc((size_t)n + 1);
  if (text == NULL) {
    if (status != NULL) *status = QUERN_JOB_NO_MEMORY;
    return NULL;
  }
  if ((uint64_t)n < sizeof small) {
    memcpy(text, small, (size_t)n + 1);
  } else if (quern_text_(job, kind, field, index, name, text, (size_t)n + 1) != n) {
    /* The document does not change during a job; a host that says otherwise is not trusted. */
    free(text);
    if (status != NULL) *status = QUERN_VALUE_MISSING;
    return NULL;
  }
  return text;
}

static inline char* quern_field_text_dup(const quern_job* job, int32_t field, int64_t* status) {
  return quern_text_dup_(job, QUERN_TEXT_FIELD_, field, 0, NULL, status);
}
static inline char* quern_arg_name_dup(const quern_job* job, uint64_t index, int64_t* status) {
  return quern_text_dup_(job, QUERN_TEXT_ARG_NAME_, 0, index, NULL, status);
}
static inline char* quern_arg_json_dup(const quern_job* job, const char* name, int64_t* status) {
  return quern_text_dup_(job, QUERN_TEXT_ARG_JSON_, 0, 0, name, status);
}
static inline char* quern_arg_string_dup(const quern_job* job, const char* name, int64_t* status) {
  return quern_text_dup_(job, QUERN_TEXT_ARG_STRING_, 0, 0, name, status);
}
static inline char* quern_env_entry_dup(const quern_job* job, uint64_t index, int64_t* status) {
  return quern_text_dup_(job, QUERN_TEXT_ENV_, 0, index, NULL, status);
}

/* Frees a NULL-terminated array of malloc'ed strings and the array. */
static inline void quern_strv_free(char** v) {
  size_t i;
  if (v == NULL) return;
  for (i = 0; v[i] != NULL; ++i) free(v[i]);
  free(v);
}

/* The job's environment (env_entry 0 .. env_count-1) as a malloc'ed,
 * NULL-terminated array with room for `extra` more entries before the NULL
 * (all NULL: add your own malloc'ed "NAME=value" strings there), ready as
 * quern_process_spec.env. *count (when not NULL) is the number of job
 * entries. NULL when the host has no accessors or memory ran out. Free it
 * with quern_strv_free. */
static inline char** quern_env_dup(const quern_job* job, size_t extra, size_t* count) {
  int64_t n = quern_env_count(job);
  int64_t i;
  char** v;
  if (count != NULL) *count = 0;
  if (n < 0) return NULL;
  v = (char**)calloc((size_t)n + extra + 1, sizeof(char*));
  if (v == NULL) return NULL;
  for (i = 0; i < n; ++i) {
    v[i] = quern_env_entry_dup(job, (uint64_t)i, NULL);
    if (v[i] == NULL) {
      quern_strv_free(v);
      return NULL;
    }
  }
  if (count != NULL) *count = (size_t)n;
  return v;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QUERN_JOB_H */
