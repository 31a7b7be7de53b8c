#include "core/hash.h"

#include <cstdio>
#include <vector>

#include "core/error.h"
#include "core/fs.h"

namespace ssiat {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  SSIAT_CHECK(ctx_ && EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1) << "sha256: OpenSSL init failed";
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* data, size_t n) {
  SSIAT_CHECK(EVP_DigestUpdate(ctx_, data, n) == 1) << "sha256: update failed";
}

void Sha256::bytes(uint8_t out[32]) {
  unsigned int len = 0;
  SSIAT_CHECK(EVP_DigestFinal_ex(ctx_, out, &len) == 1 && len == 32) << "sha256: final failed";
}

std::string Sha256::hex() {
  uint8_t d[32];
  bytes(d);
  static const char* kHex = "0123456789abcdef";
  std::string s(64, '0');
  for (int i = 0; i < 32; i++) {
    s[2 * i] = kHex[d[i] >> 4];
    s[2 * i + 1] = kHex[d[i] & 15];
  }
  return s;
}

std::string sha256_hex(const void* data, size_t n) {
  Sha256 h;
  h.update(data, n);
  return h.hex();
}

std::string sha256_file(const std::filesystem::path& path) {
  // Checked reads: an I/O error or a short read names the file and the byte offset (core/fs.h).
  Sha256 h;
  read_file_chunks(path, InputKind::kRegularFile, [&](const char* p, size_t n) { h.update(p, n); });
  return h.hex();
}

}  // namespace ssiat
