/* See c_layer.h. _GNU_SOURCE comes first, as quern/process.h asks. */
#define _GNU_SOURCE
#include "c_layer.h"

int quern_test_c_run_process(const quern_job* job, const quern_process_spec* spec,
                             const quern_process_options* options, quern_process_result* result) {
  return quern_run_process(job, spec, options, result);
}

void quern_test_c_logf(const quern_job* job, int32_t stream, const char* name, int value) {
  quern_logf(job, stream, "%s=%d\n", name, value);
}

void quern_test_c_set_errorf(const quern_job* job, const char* text) { quern_set_errorf(job, "%s", text); }

int32_t quern_test_c_arg_int(const quern_job* job, const char* name, int64_t* out) {
  return quern_arg_int(job, name, out);
}
