// SHA-256 via OpenSSL's one-shot EVP_Digest (tokenizer/digest.h).
#include "tokenizer/digest.h"

#include <openssl/evp.h>

#include "tokenizer/vocab.h"

namespace ssiat::tokenizer {

std::string sha256_hex_of(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1 || len != 32)
    throw TokenizerError("SHA-256 failed (OpenSSL EVP_Digest)");
  static const char* hex = "0123456789abcdef";
  std::string out(64, '0');
  for (unsigned i = 0; i < 32; i++) out[2 * i] = hex[md[i] >> 4], out[2 * i + 1] = hex[md[i] & 15];
  return out;
}

}  // namespace ssiat::tokenizer
