#include "host/common/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace quern::crypto {
namespace {

std::string to_hex(const unsigned char* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xF];
  }
  return out;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), md, &size, EVP_sha256(), nullptr) != 1 || size != 32) {
    // Only possible when libcrypto cannot allocate or its default provider
    // is missing: nothing sensible can continue without hashing (tokens could
    // not be checked), so this is fatal rather than a Status.
    std::fputs("quern: fatal: OpenSSL SHA-256 failed\n", stderr);
    std::abort();
  }
  return to_hex(md, size);
}

StatusOr<std::string> random_hex(int bytes) {
  std::vector<unsigned char> buf(static_cast<size_t>(bytes));
  if (RAND_bytes(buf.data(), bytes) != 1)
    return Status::error("the random number generator failed (OpenSSL RAND_bytes)");
  std::string hex = to_hex(buf.data(), buf.size());
  OPENSSL_cleanse(buf.data(), buf.size());
  return hex;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace quern::crypto
