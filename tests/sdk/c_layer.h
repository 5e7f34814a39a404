/* The SDK's C layer (quern/job.h, quern/process.h) compiled as C11 with the
 * strict flags a C plugin uses (c_layer.c), for the C++ tests to drive: what
 * runs in a C plugin is the C compilation of these static inline functions,
 * not the C++ one the tests would get by calling them directly. */
#ifndef QUERN_TESTS_SDK_C_LAYER_H
#define QUERN_TESTS_SDK_C_LAYER_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "quern/job.h"
#include "quern/process.h"

#ifdef __cplusplus
extern "C" {
#endif

/* quern_run_process, compiled as C. */
int quern_test_c_run_process(const quern_job* job, const quern_process_spec* spec,
                             const quern_process_options* options, quern_process_result* result);
/* quern_logf(job, stream, "%s=%d", name, value), compiled as C. */
void quern_test_c_logf(const quern_job* job, int32_t stream, const char* name, int value);
/* quern_set_errorf(job, "%s", text), compiled as C. */
void quern_test_c_set_errorf(const quern_job* job, const char* text);
/* quern_arg_int(job, name, out), compiled as C. */
int32_t quern_test_c_arg_int(const quern_job* job, const char* name, int64_t* out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QUERN_TESTS_SDK_C_LAYER_H */
