// SHA-256 (FIPS 180-4) through OpenSSL's EVP interface; hex digests are lowercase.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <openssl/evp.h>

namespace ssiat {

// Incremental hasher: update() any number of times, then hex() or bytes() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex();  // finalises
  void bytes(uint8_t out[32]);  // finalises

 private:
  EVP_MD_CTX* ctx_;
};

std::string sha256_hex(const void* data, size_t n);
inline std::string sha256_hex(std::string_view s) { return sha256_hex(s.data(), s.size()); }
// Streams the file; throws IoError naming the path if it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace ssiat
