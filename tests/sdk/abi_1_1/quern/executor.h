/*
 * Quern executor plugin ABI, version 1 (1.1: adds resources()).
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
#define QUERN_ABI_MINOR 1

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
} quern_job_callbacks;

/*
 * The descriptor returned by the entry function. Static storage, immutable.
 * Required functions: create, destroy, execute. Optional (may be NULL):
 * prepare, health, interrupt, and (1.1) resources.
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
} quern_executor_descriptor;

/* The entry function every plugin exports. */
typedef const quern_executor_descriptor* (*quern_executor_entry_fn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QUERN_EXECUTOR_H */
