// Small wrappers over OpenSSL's libcrypto (internal to host/auth; the public
// entry point sha256_hex is declared in tokens.h). All functions are
// thread-safe (OpenSSL 3 needs no locking setup).
#pragma once

#include <string>
#include <string_view>

#include "host/common/status.h"

namespace quern::auth {

// `bytes` bytes from the OpenSSL CSPRNG, as 2*bytes lowercase hex digits.
// Fails only if the generator cannot be seeded.
StatusOr<std::string> random_hex(int bytes);

// Constant-time equality of two strings of the same length (the time
// depends only on the length, which is never secret here: hashes).
bool equal_constant_time(std::string_view a, std::string_view b);

}  // namespace quern::auth
