// Ed25519 signing keys (RFC 8032, "PureEdDSA" Ed25519) through libsodium, and their files.
//
// Key id: the lowercase hex SHA-256 (FIPS 180-4) of the 32-byte public key, 64 characters. It
// names a key in messages and in DSSE signatures (core/dsse.h); it is a hint, never trusted alone.
//
// Files (written by generate_keypair, `ssiat keygen --out PREFIX`), each exactly one line ending
// in "\n", base64 in the standard alphabet with padding (RFC 4648 section 4):
//   PREFIX.pub  mode 0644  "ssiat-ed25519-pub <base64 of the 32-byte public key>\n"
//   PREFIX.key  mode 0600  "ssiat-ed25519-key <base64 of the 64-byte libsodium secret key>\n"
// The 64-byte secret key is libsodium's layout: the 32-byte seed (RFC 8032's private key) followed
// by the 32-byte public key. A reader accepts the line with or without its final "\n" and nothing
// else (no other lines, no spaces, no other base64 alphabet).
//
// Errors (core/error.h), one line naming the file:
//   - a key file readable or writable by group or others: ConfigError "PATH: key file permissions
//     0644 are too open (must be 0600 or stricter); chmod 600 PATH" (checked on the opened file);
//   - content that is not a key of the expected kind (a .pub given where a .key is expected, bad
//     base64, wrong length, a secret key whose public half does not match its seed): IntegrityError;
//   - a file that cannot be opened, read or created, or a key file that already exists: IoError.
// Secret key bytes never appear in a message, and are wiped (sodium_memzero) when a SecretKey
// dies and from every buffer that held them.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace ssiat {

inline constexpr size_t kEd25519PublicKeyBytes = 32;
inline constexpr size_t kEd25519SecretKeyBytes = 64;
inline constexpr size_t kEd25519SeedBytes = 32;
inline constexpr size_t kEd25519SignatureBytes = 64;

// sodium_init() once per process (thread-safe); throws ssiat::Error if libsodium cannot start.
void sodium_ready();

class PublicKey {
 public:
  // From the raw 32 bytes (not checked to be a valid curve point: verification then fails).
  explicit PublicKey(const std::array<uint8_t, kEd25519PublicKeyBytes>& bytes) : bytes_(bytes) {}
  const std::array<uint8_t, kEd25519PublicKeyBytes>& bytes() const { return bytes_; }
  std::string keyid() const;  // lowercase hex SHA-256 of bytes()
  // True iff `sig` (64 bytes) is this key's Ed25519 signature of `message`.
  bool verify_detached(std::string_view message, std::string_view sig) const;
  bool operator==(const PublicKey&) const = default;

 private:
  std::array<uint8_t, kEd25519PublicKeyBytes> bytes_;
};

// The 64-byte libsodium secret key (seed || public key); wiped on destruction. Movable, not
// copyable (a moved-from key is wiped too and must not be used).
class SecretKey {
 public:
  // RFC 8032 key generation from a 32-byte seed (crypto_sign_seed_keypair).
  static SecretKey from_seed(const std::array<uint8_t, kEd25519SeedBytes>& seed);
  // A fresh key from libsodium's CSPRNG (crypto_sign_keypair).
  static SecretKey generate();
  ~SecretKey();
  SecretKey(SecretKey&& other) noexcept;
  SecretKey& operator=(SecretKey&& other) noexcept;
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;

  PublicKey public_key() const;
  std::string keyid() const { return public_key().keyid(); }
  // The 64-byte Ed25519 signature of `message` (crypto_sign_detached; deterministic).
  std::string sign_detached(std::string_view message) const;
  const std::array<uint8_t, kEd25519SecretKeyBytes>& bytes() const { return bytes_; }

 private:
  SecretKey() = default;
  std::array<uint8_t, kEd25519SecretKeyBytes> bytes_{};
  friend SecretKey load_secret_key(const std::filesystem::path& path);
};

// Writes PREFIX.key (0600) and PREFIX.pub (0644) for a fresh key, each through a temporary in
// the same directory (O_CREAT|O_EXCL, fsync) published with link(2), which never replaces a file:
// if either target exists nothing is written and IoError "PATH: already exists; refusing to
// overwrite a key file" is thrown. Returns the new key's id.
std::string generate_keypair(const std::filesystem::path& prefix);
// PREFIX + ".key" / ".pub" (appended to the whole name: "a/b" -> "a/b.key").
std::filesystem::path secret_key_path(const std::filesystem::path& prefix);
std::filesystem::path public_key_path(const std::filesystem::path& prefix);

SecretKey load_secret_key(const std::filesystem::path& path);  // refuses loose permissions
PublicKey load_public_key(const std::filesystem::path& path);

// Base64 (RFC 4648) through libsodium. Encoding: standard alphabet, padded. Decoding returns false
// unless the whole text is canonical base64 (no whitespace, zero unused bits) in the standard
// padded alphabet or, with url_safe_too, also the URL-safe one and either without padding.
std::string base64_encode(std::string_view bytes);
bool base64_decode(std::string_view text, std::string& out, bool url_safe_too = false);

// The file contents, as generate_keypair writes them.
std::string public_key_file_text(const PublicKey& key);
std::string secret_key_file_text(const SecretKey& key);  // the caller wipes the result

}  // namespace ssiat
