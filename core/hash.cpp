#include "core/hash.h"

#include <cstdio>
#include <vector>

#include "core/error.h"

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
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw IoError(path.string() + ": cannot open for reading");
  Sha256 h;
  std::vector<char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h.update(buf.data(), n);
  const bool err = std::ferror(f);
  std::fclose(f);
  if (err) throw IoError(path.string() + ": read error");
  return h.hex();
}

}  // namespace ssiat
