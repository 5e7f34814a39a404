/* What ABI 1.0 fixed, as X-macro lists, so that the same list is evaluated
 * twice: once against the frozen 1.0 header (abi_1_0_layout.c, plain C) and
 * once against the current sdk/include/quern/executor.h (sdk_abi_test.cpp).
 * The two cannot meet in one translation unit (same type names), so the C
 * side exports its numbers as a table and the test compares.
 *
 * Adding a field in a later 1.x minor appends to the structs and is allowed;
 * it does not belong in these lists, which are 1.0 and never change. */
#ifndef QUERN_TESTS_SDK_ABI_1_0_FIELDS_H
#define QUERN_TESTS_SDK_ABI_1_0_FIELDS_H

#include <stdint.h>

/* F(struct type, field) */
#define QUERN_ABI_1_0_FIELDS(F)              \
  F(quern_str, data)                         \
  F(quern_str, size)                         \
  F(quern_errbuf, data)                      \
  F(quern_errbuf, size)                      \
  F(quern_job_callbacks, struct_size)        \
  F(quern_job_callbacks, reserved)           \
  F(quern_job_callbacks, log_line)           \
  F(quern_job_callbacks, progress)           \
  F(quern_job_callbacks, is_cancelled)       \
  F(quern_job_callbacks, set_result)         \
  F(quern_job_callbacks, set_error)          \
  F(quern_job_callbacks, set_process_group)  \
  F(quern_executor_descriptor, struct_size)  \
  F(quern_executor_descriptor, abi_major)    \
  F(quern_executor_descriptor, abi_minor)    \
  F(quern_executor_descriptor, name)         \
  F(quern_executor_descriptor, version)      \
  F(quern_executor_descriptor, languages)    \
  F(quern_executor_descriptor, tags)         \
  F(quern_executor_descriptor, capabilities) \
  F(quern_executor_descriptor, create)       \
  F(quern_executor_descriptor, destroy)      \
  F(quern_executor_descriptor, prepare)      \
  F(quern_executor_descriptor, execute)      \
  F(quern_executor_descriptor, health)       \
  F(quern_executor_descriptor, interrupt)

/* S(struct type): structs may grow at the end, never shrink. */
#define QUERN_ABI_1_0_STRUCTS(S) \
  S(quern_str)                   \
  S(quern_errbuf)                \
  S(quern_job_callbacks)         \
  S(quern_executor_descriptor)

/* C(macro or enumerator): values both sides must agree on, forever. */
#define QUERN_ABI_1_0_CONSTANTS(C) \
  C(QUERN_ABI_MAJOR)               \
  C(QUERN_STATUS_SUCCESS)          \
  C(QUERN_STATUS_FAILURE)          \
  C(QUERN_STATUS_CANCELED)         \
  C(QUERN_STATUS_TIMEOUT)          \
  C(QUERN_STATUS_INTERNAL)         \
  C(QUERN_RUNNING)                 \
  C(QUERN_CANCEL_REQUESTED)        \
  C(QUERN_TIMEOUT_REACHED)         \
  C(QUERN_SHUTDOWN)                \
  C(QUERN_STREAM_STDOUT)           \
  C(QUERN_STREAM_STDERR)           \
  C(QUERN_STREAM_SYSTEM)           \
  C(QUERN_CAP_DEDICATED)           \
  C(QUERN_CAP_SPAWNS_PROCESSES)

/* One row of the tables: "type.field" (offset, size), "type" (0, sizeof) or
 * "CONSTANT" (0, value). */
typedef struct quern_abi_row {
  const char* what;
  uint64_t offset;
  uint64_t value;
} quern_abi_row;

#ifdef __cplusplus
extern "C" {
#endif

/* Defined in abi_1_0_layout.c, computed from the frozen 1.0 header. */
extern const quern_abi_row quern_abi_1_0_fields[];
extern const uint64_t quern_abi_1_0_field_count;
extern const quern_abi_row quern_abi_1_0_structs[];
extern const uint64_t quern_abi_1_0_struct_count;
extern const quern_abi_row quern_abi_1_0_constants[];
extern const uint64_t quern_abi_1_0_constant_count;
extern const char* const quern_abi_1_0_entry_name;

#ifdef __cplusplus
}
#endif

#define QUERN_ABI_FIELD_ROW(T, f) {#T "." #f, offsetof(T, f), sizeof(((T*)0)->f)},
#define QUERN_ABI_STRUCT_ROW(T) {#T, 0, sizeof(T)},
#define QUERN_ABI_CONSTANT_ROW(c) {#c, 0, (uint64_t)(c)},

#endif /* QUERN_TESTS_SDK_ABI_1_0_FIELDS_H */
