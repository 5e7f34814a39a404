/* The ABI 1.0 numbers, computed from the frozen header tests/sdk/abi_1_0 (and
 * only that: this file is compiled without sdk/include on its include path).
 * sdk_abi_test.cpp computes the same rows from the current header and
 * compares. */
#include <stddef.h>

#include "abi_1_0_fields.h"
#include "quern/executor.h"

const quern_abi_row quern_abi_1_0_fields[] = {QUERN_ABI_1_0_FIELDS(QUERN_ABI_FIELD_ROW)};
const uint64_t quern_abi_1_0_field_count = sizeof quern_abi_1_0_fields / sizeof quern_abi_1_0_fields[0];

const quern_abi_row quern_abi_1_0_structs[] = {QUERN_ABI_1_0_STRUCTS(QUERN_ABI_STRUCT_ROW)};
const uint64_t quern_abi_1_0_struct_count = sizeof quern_abi_1_0_structs / sizeof quern_abi_1_0_structs[0];

const quern_abi_row quern_abi_1_0_constants[] = {QUERN_ABI_1_0_CONSTANTS(QUERN_ABI_CONSTANT_ROW)};
const uint64_t quern_abi_1_0_constant_count =
    sizeof quern_abi_1_0_constants / sizeof quern_abi_1_0_constants[0];

const char* const quern_abi_1_0_entry_name = QUERN_EXECUTOR_ENTRY_V1_NAME;
