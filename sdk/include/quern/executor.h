/*
 * Quern executor plugin ABI, version 1 (1.1: adds resources(); 1.2: adds the
 * job accessors to quern_job_callbacks, host_abi() to the descriptor, and
 * declares the entry function).
 *
 * This is the only contract between the Quern host and an executor plugin.
 * It is plain C so that a plugin built with any compiler (or language with a C
 * FFI) loads into any host of the same ABI major version.
 *
 * Rules (see docs/PLUGINS.md):
 *  - A plugin exports exactly one entry function, QUERN_EXECUTOR_ENTRY_V1
 *    ("quern_executor_entry_v1"), returning a pointer to a static descriptor
 *    that lives as long as the library is loaded.
 *  - The descriptor's first three fields never change: its own size, ABI major,
 *    ABI minor. Structs only grow at the end; the host reads a field only when
 *    struct_size covers it. A host refuses a plugin whose ABI major differs.
 *  - Only C types cross: fixed-width integers, doubles, pointer+length strings
 *    (quern_str) that the receiver copies before the call returns, and opaque
 *    handles. Nothing allocated on one side is freed on the other.
 *  - Exceptions (C++ or otherwise) never cross: every function pointer must
 *    catch everything before returning.
 *  - Error messages go into a caller-provided buffer (quern_errbuf); the callee
 *    writes at most size-1 bytes and NUL-terminates.
 */
#ifndef QUERN_EXECUTOR_H
#define QUERN_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QUERN_ABI_MAJOR 1
#define QUERN_ABI_MINOR 2

/* Name of the entry symbol; it carries the ABI major version. */
#define QUERN_EXECUTOR_ENTRY_V1 quern_executor_entry_v1
#define QUERN_EXECUTOR_ENTRY_V1_NAME "quern_executor_entry_v1"

#if defined(_WIN32)
#define QUERN_EXPORT __declspec(dllexport)
#else
#define QUERN_EXPORT __attribute__((visibility("default")))
#endif

/* A borrowed UTF-8 string: valid only for the duration of the call it is
 * passed to. Not necessarily NUL-terminated. */
typedef struct quern_str {
  const char* data;
  uint64_t size;
} quern_str;

/* A caller-owned buffer the callee may write a NUL-terminated message into. */
typedef struct quern_errbuf {
  char* data;
  uint64_t size;
} quern_errbuf;

/* Opaque per-job context owned by the host. */
typedef struct quern_job_ctx quern_job_ctx;

/* Opaque plugin instance owned by the plugin (created by create, freed by destroy). */
typedef struct quern_instance quern_instance;

/* Outcome of execute(). */
typedef enum quern_status {
  QUERN_STATUS_SUCCESS = 0,
  QUERN_STATUS_FAILURE = 1,  /* the job failed; set_error says why */
  QUERN_STATUS_CANCELED = 2, /* is_cancelled() was observed and the job stopped */
  QUERN_STATUS_TIMEOUT = 3,  /* is_cancelled() reported a timeout and the job stopped */
  QUERN_STATUS_INTERNAL = 4  /* the plugin itself failed (bug, resource exhaustion) */
} quern_status;

/* Values returned by is_cancelled(). */
#define QUERN_RUNNING 0
#define QUERN_CANCEL_REQUESTED 1
#define QUERN_TIMEOUT_REACHED 2
#define QUERN_SHUTDOWN 3 /* the worker is stopping and hands the job back */

/* Log streams. */
#define QUERN_STREAM_STDOUT 1
#define QUERN_STREAM_STDERR 2
#define QUERN_STREAM_SYSTEM 3 /* messages from the plugin itself */

/* Fields of the job document for the 1.2 accessors field_text (text) and
 * field_int (integers); docs/PLUGINS.md describes the document. */
#define QUERN_FIELD_CODE 1        /* text: the script */
#define QUERN_FIELD_LANGUAGE 2    /* text */
#define QUERN_FIELD_SCRIPT_PATH 3 /* text: the stored script's path, "" for ad-hoc jobs */
#define QUERN_FIELD_WORKDIR 4     /* text: only for plugins with QUERN_CAP_SPAWNS_PROCESSES */
#define QUERN_FIELD_ID 5          /* integer: the job's id */
#define QUERN_FIELD_ATTEMPT 6     /* integer: 1 for the first run */
#define QUERN_FIELD_TIMEOUT_S 7   /* integer: seconds the job may run */

/* What the 1.2 accessors return when there is no value (always negative;
 * 0 or more is a value or a length). */
#define QUERN_VALUE_MISSING (-1)    /* no such field, argument or index */
#define QUERN_VALUE_WRONG_TYPE (-2) /* there, but of another JSON type (or out of range) */
/* Never returned by a host: quern/job.h's helpers return it when the host's
 * callback table lacks the accessor (a host older than 1.2). */
#define QUERN_VALUE_UNSUPPORTED (-3)

/* Capability bits. */
#define QUERN_CAP_DEDICATED (1u << 0) /* prepare() keeps a warm runtime for one script */
#define QUERN_CAP_SPAWNS_PROCESSES (1u << 1) /* reports child process groups */

/*
 * Callbacks valid only until execute() returns. All may be called from the
 * thread that called execute() or from threads the plugin started, provided
 * those calls happen before execute() returns. Each is safe to call
 * concurrently with the others.
 */
typedef struct quern_job_callbacks {
  uint32_t struct_size; /* sizeof(quern_job_callbacks) as the host knows it */
  uint32_t reserved;
  /* One line of output, without the trailing newline. */
  void (*log_line)(quern_job_ctx* ctx, int32_t stream, quern_str line);
  /* Progress in [0, 1]. */
  void (*progress)(quern_job_ctx* ctx, double fraction);
  /* QUERN_RUNNING, or why the job must stop (see above). Cheap; poll it. */
  int32_t (*is_cancelled)(quern_job_ctx* ctx);
  /* The job's result as JSON text. The last call wins. */
  void (*set_result)(quern_job_ctx* ctx, quern_str json);
  /* A human-readable error. The last call wins. */
  void (*set_error)(quern_job_ctx* ctx, quern_str message);
  /* The process group of a child the plugin started for this job (0 = none
   * any more). The host kills that group (TERM, grace period, KILL) on timeout
   * and cancellation even if the plugin is slow to react. */
  void (*set_process_group)(quern_job_ctx* ctx, int64_t pgid);

  /* --- ABI 1.2: the job document, read for the plugin by the host, so that
   * a plugin needs no JSON parser. A plugin reads these fields only when
   * struct_size covers them: a 1.0 or 1.1 host's table ends just above
   * (struct_size 56), see "On an older host" below. Answers are computed
   * from the job_json that execute() received.
   *
   * Text comes back snprintf-style, as resources() writes it: at most
   * out.size-1 bytes and a NUL go into out (nothing when out.size is 0), and
   * the return value is the length of the whole text without the NUL. A
   * return value >= out.size means it did not fit: call again with at least
   * return+1 bytes. Text may contain a NUL byte where the JSON had "\u0000":
   * the length counts it. Numbers come back through `out` with a return
   * value of 0. Negative return values: QUERN_VALUE_MISSING,
   * QUERN_VALUE_WRONG_TYPE (out is then left unchanged, and text buffers
   * hold "" when out.size > 0). --- */

  /* A text field (QUERN_FIELD_CODE, _LANGUAGE, _SCRIPT_PATH, _WORKDIR);
   * WRONG_TYPE for an integer field, MISSING for an unknown one. */
  int64_t (*field_text)(quern_job_ctx* ctx, int32_t field, quern_errbuf out);
  /* An integer field (QUERN_FIELD_ID, _ATTEMPT, _TIMEOUT_S). */
  int32_t (*field_int)(quern_job_ctx* ctx, int32_t field, int64_t* out);
  /* How many arguments ("args") the job has, >= 0. */
  int64_t (*arg_count)(quern_job_ctx* ctx);
  /* The name of argument `index` (0 .. arg_count-1) in the submission's order. */
  int64_t (*arg_name)(quern_job_ctx* ctx, uint64_t index, quern_errbuf out);
  /* Argument `name` as compact JSON text, whatever its type ("abc" comes
   * quoted and escaped, 1.5 as 1.5, objects and arrays whole). */
  int64_t (*arg_json)(quern_job_ctx* ctx, quern_str name, quern_errbuf out);
  /* Argument `name`'s string value, unquoted and unescaped (UTF-8);
   * WRONG_TYPE unless it is a JSON string. */
  int64_t (*arg_string)(quern_job_ctx* ctx, quern_str name, quern_errbuf out);
  /* A JSON integer within int64 (WRONG_TYPE for 1.5, 1.0, 1e3, "1", or
   * beyond int64). */
  int32_t (*arg_int)(quern_job_ctx* ctx, quern_str name, int64_t* out);
  /* Any JSON number, as a double (large integers are rounded). */
  int32_t (*arg_double)(quern_job_ctx* ctx, quern_str name, double* out);
  /* true (1) or false (0); WRONG_TYPE for anything else (0, "true", null). */
  int32_t (*arg_bool)(quern_job_ctx* ctx, quern_str name, int32_t* out);
  /* How many environment entries the job's child must get, >= 0 (only
   * plugins with QUERN_CAP_SPAWNS_PROCESSES get an environment; else 0). */
  int64_t (*env_count)(quern_job_ctx* ctx);
  /* Entry `index` (0 .. env_count-1) as "NAME=value", ready for execve. */
  int64_t (*env_entry)(quern_job_ctx* ctx, uint64_t index, quern_errbuf out);
} quern_job_callbacks;

/*
 * On an older host (1.2 plugins on a 1.0 or 1.1 host): such a host loads a
 * 1.2 plugin like any 1.x plugin, but its callback table ends after
 * set_process_group and it never calls host_abi(). A plugin that needs the
 * accessors must not read past struct_size (quern/job.h's helpers check it
 * and return QUERN_VALUE_UNSUPPORTED), and either falls back to parsing
 * job_json itself, or refuses: in create(), when host_abi() was not called
 * with minor >= 2 before it ("needs a Quern host of ABI 1.2 or later"), and
 * in execute() when the table is short (fail the job with the same message).
 */

/*
 * The descriptor returned by the entry function. Static storage, immutable.
 * Required functions: create, destroy, execute. Optional (may be NULL):
 * prepare, health, interrupt, (1.1) resources and (1.2) host_abi.
 */
typedef struct quern_executor_descriptor {
  /* --- never change: --- */
  uint32_t struct_size; /* sizeof(quern_executor_descriptor) as the plugin knows it */
  uint16_t abi_major;   /* QUERN_ABI_MAJOR the plugin was built with */
  uint16_t abi_minor;   /* QUERN_ABI_MINOR the plugin was built with */
  /* --- ABI 1.0: --- */
  const char* name;      /* unique plugin name, NUL-terminated, e.g. "bash" */
  const char* version;   /* plugin version, e.g. "1.2.0" */
  const char* languages; /* comma-separated languages it executes, e.g. "bash,sh" */
  const char* tags;      /* comma-separated default routing tags, e.g. "bash" */
  uint64_t capabilities; /* QUERN_CAP_* bits */

  /* Make an instance. config_json is the plugin's config object from the
   * host config ("{}" when none). Returns 0 on success, else writes err. */
  int32_t (*create)(quern_str config_json, quern_instance** out, quern_errbuf err);
  void (*destroy)(quern_instance* instance);
  /* Warm up for one script (dedicated workers). script_json is the job
   * payload without args. Returns 0 on success, else writes err. */
  int32_t (*prepare)(quern_instance* instance, quern_str script_json, quern_errbuf err);
  /* Run one job. job_json: {"id","attempt","language","code","args",
   * "timeout_s","workdir"...} (see docs/PLUGINS.md). Blocks until the job is
   * over. The host calls execute on one instance from one thread at a time. */
  int32_t (*execute)(quern_instance* instance, quern_str job_json,
                     const quern_job_callbacks* callbacks, quern_job_ctx* ctx);
  /* 0 = healthy, else writes why into err. */
  int32_t (*health)(quern_instance* instance, quern_errbuf err);
  /* Asks a running execute() on this instance to stop soon. May be called
   * from any thread while execute() runs. */
  void (*interrupt)(quern_instance* instance);

  /* --- ABI 1.1 (a host reads these only when struct_size covers them; a
   * 1.0 plugin has none of them): --- */

  /* The capacity this instance offers, as a JSON object, so that the host
   * can route to this worker only jobs it can run (Quern 1.1 does so for the
   * "gpus" of the plugin named gpu and jobs of language gpu; other plugins'
   * resources are only shown by `quern plugins`). Writes the JSON text into
   * out, snprintf-style: at most out.size-1 bytes, NUL-terminated, and
   * returns the length of the whole text (without the NUL). A return value
   * >= out.size means the text did not fit: the host calls again with a
   * buffer of at least return+1 bytes. A negative return value is a failure,
   * with a message in out. NULL (or a 1.0 plugin): the plugin reports no
   * resources.
   *
   * The object's keys are kinds of resource; a host ignores keys it does not
   * know, a kind the plugin does not report is absent. Defined kinds:
   *   "gpus": [{"index": 0, "uuid": "GPU-...", "name": "...",
   *             "memory_mb": 81920}, ...]
   *     the whole devices this instance can assign (after its own
   *     configuration, e.g. a device filter), total not free: index (integer),
   *     uuid (string), memory_mb (integer >= 0, total memory, 0 = unknown),
   *     name (string, optional). [] = no GPU (e.g. no driver).
   * The answer describes the instance for its lifetime. The host calls it
   * from one thread at a time per instance, never while execute() runs on
   * that instance. */
  int64_t (*resources)(quern_instance* instance, quern_errbuf out);

  /* --- ABI 1.2 (read only when struct_size covers it): --- */

  /* Optional. A 1.2 or later host calls it once per load, right after the
   * entry function and before any create(), with the ABI it speaks (the
   * callback table it passes to execute() is that minor's, or longer). A
   * plugin that needs a 1.2 feature records the minor here: when create()
   * finds it was never called, the host is older than 1.2 (see "On an older
   * host" above). Must not fail or block; the same library loaded twice
   * (two registries of one process) is told twice. */
  void (*host_abi)(uint16_t abi_major, uint16_t abi_minor);
} quern_executor_descriptor;

/* The entry function every plugin exports. */
typedef const quern_executor_descriptor* (*quern_executor_entry_fn)(void);

/* Its prototype (1.2), so that a C plugin's definition has one under
 * -Wmissing-prototypes and is exported whatever the default visibility:
 *   QUERN_EXPORT const quern_executor_descriptor* QUERN_EXECUTOR_ENTRY_V1(void) {
 *     return &descriptor;
 *   }
 * The host never calls it by this name (it looks the symbol up). */
QUERN_EXPORT const quern_executor_descriptor* QUERN_EXECUTOR_ENTRY_V1(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QUERN_EXECUTOR_H */
