// Small wrappers over OpenSSL's libcrypto: content hashes (script versions),
// token secrets and their comparison. All functions are thread-safe
// (OpenSSL 3 needs no locking setup).
#pragma once

#include <string>
#include <string_view>

#include "host/common/status.h"

namespace quern::crypto {

// Lowercase hex SHA-256 of data (OpenSSL EVP). Aborts only when libcrypto
// itself is broken (nothing can be checked without hashing).
std::string sha256_hex(std::string_view data);

// `bytes` bytes from the OpenSSL CSPRNG, as 2*bytes lowercase hex digits.
// Fails only if the generator cannot be seeded.
StatusOr<std::string> random_hex(int bytes);

// Constant-time equality of two strings of the same length (the time
// depends only on the length, which is never secret here: hashes).
bool equal_constant_time(std::string_view a, std::string_view b);

}  // namespace quern::crypto
