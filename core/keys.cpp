// Ed25519 keys and key files (contract in core/keys.h).
#include "core/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <sodium.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"

namespace fs = std::filesystem;

namespace ssiat {

namespace {

constexpr std::string_view kPubTag = "ssiat-ed25519-pub ";
constexpr std::string_view kKeyTag = "ssiat-ed25519-key ";
constexpr size_t kMaxKeyFileBytes = 4096;  // a key file is one line of ~110 bytes

// A fixed buffer wiped when it goes out of scope (secret material never outlives its use).
template <size_t N>
struct WipedBuffer {
  unsigned char data[N];
  size_t size = 0;
  ~WipedBuffer() { sodium_memzero(data, sizeof(data)); }
  std::string_view view() const { return {reinterpret_cast<const char*>(data), size}; }
};

// Decodes canonical base64 into out[0..cap); false if the text is not base64 in the allowed
// variants or the bytes do not fit.
bool decode_base64(std::string_view text, unsigned char* out, size_t cap, size_t& len, bool url_safe_too) {
  const int variants[] = {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                          sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
  for (const int variant : variants) {
    if (!url_safe_too && variant != sodium_base64_VARIANT_ORIGINAL) break;
    const char* end = nullptr;
    if (sodium_base642bin(out, cap, text.data(), text.size(), nullptr, &len, &end, variant) == 0 &&
        end == text.data() + text.size())
      return true;
  }
  return false;
}

std::string mode_octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Reads a key file (at most kMaxKeyFileBytes) into `buf`; with `secret`, first refuses a file
// that group or others may read or write (checked on the opened descriptor).
void read_key_file(const fs::path& path, bool secret, WipedBuffer<kMaxKeyFileBytes + 1>& buf) {
  const std::string name = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(name + ": cannot open key file: " + errno_message(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw IoError(name + ": cannot stat key file: " + errno_message(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(name + (S_ISDIR(st.st_mode) ? ": is a directory" : ": not a regular file") + ", expected a key file");
  }
  if (secret && (st.st_mode & 077) != 0) {
    ::close(fd);
    throw ConfigError(name + ": key file permissions " + mode_octal(st.st_mode) +
                      " are too open (must be 0600 or stricter); chmod 600 " + name);
  }
  buf.size = 0;
  while (buf.size < sizeof(buf.data)) {
    const ssize_t n = ::read(fd, buf.data + buf.size, sizeof(buf.data) - buf.size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw ReadError(name + ": read error at byte " + std::to_string(buf.size) + ": " + errno_message(err));
    }
    if (n == 0) break;
    buf.size += static_cast<size_t>(n);
  }
  ::close(fd);
  if (buf.size > kMaxKeyFileBytes)
    throw IntegrityError(name + ": not an ssiat key file (over " + std::to_string(kMaxKeyFileBytes) +
                         " bytes; a key file is one line)");
}

// The base64 field of a key file's one line "<tag><base64>[\n]"; IntegrityError naming the file
// (and the other kind of key file, if that is what it is) otherwise.
std::string_view key_line_body(const fs::path& path, std::string_view text, bool secret) {
  const std::string_view want = secret ? kKeyTag : kPubTag, other = secret ? kPubTag : kKeyTag;
  const char* want_name = secret ? "secret key (PREFIX.key)" : "public key (PREFIX.pub)";
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.substr(0, other.size()) == other)
    throw IntegrityError(path.string() + ": is an ssiat " + (secret ? "public" : "secret") +
                         " key file, expected a " + want_name);
  if (text.substr(0, want.size()) != want)
    throw IntegrityError(path.string() + ": not an ssiat Ed25519 " + want_name + " file (expected one line '" +
                         std::string(want) + "<base64>')");
  return text.substr(want.size());
}

// Writes `content` to a new temporary beside `final_path` with exactly `mode`, fsynced; returns
// the temporary's path.
fs::path write_temporary(const fs::path& final_path, std::string_view content, mode_t mode) {
  const fs::path tmp = temporary_beside(final_path);  // the pattern of remove_stale_temporaries
  const int fd = ::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0) throw IoError(final_path.string() + ": cannot create: " + errno_message(errno));
  int err = 0;
  if (::fchmod(fd, mode) != 0) err = errno;  // exactly `mode`, whatever the umask
  for (size_t off = 0; err == 0 && off < content.size();) {
    const ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    else off += static_cast<size_t>(n);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    throw IoError(final_path.string() + ": cannot write: " + errno_message(err));
  }
  return tmp;
}

void refuse_existing(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0)
    throw IoError(path.string() + ": already exists; refusing to overwrite a key file");
}

}  // namespace

void sodium_ready() {
  static const int rc = sodium_init();  // thread-safe once; 1 means "already initialised"
  if (rc < 0) throw Error("libsodium could not be initialised (sodium_init failed)");
}

std::string base64_encode(std::string_view bytes) {
  const size_t n = sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string out(n, '\0');
  sodium_bin2base64(out.data(), n, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(n - 1);  // drop the terminating NUL
  return out;
}

bool base64_decode(std::string_view text, std::string& out, bool url_safe_too) {
  std::string buf(text.size() / 4 * 3 + 3, '\0');
  size_t len = 0;
  if (!decode_base64(text, reinterpret_cast<unsigned char*>(buf.data()), buf.size(), len, url_safe_too))
    return false;
  buf.resize(len);
  out = std::move(buf);
  return true;
}

std::string PublicKey::keyid() const { return sha256_hex(bytes_.data(), bytes_.size()); }

bool PublicKey::verify_detached(std::string_view message, std::string_view sig) const {
  sodium_ready();
  if (sig.size() != kEd25519SignatureBytes) return false;
  return crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig.data()),
                                     reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                                     bytes_.data()) == 0;
}

SecretKey SecretKey::from_seed(const std::array<uint8_t, kEd25519SeedBytes>& seed) {
  sodium_ready();
  SecretKey key;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_seed_keypair(pk, key.bytes_.data(), seed.data());
  return key;
}

SecretKey SecretKey::generate() {
  sodium_ready();
  SecretKey key;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_keypair(pk, key.bytes_.data());
  return key;
}

SecretKey::~SecretKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

SecretKey::SecretKey(SecretKey&& other) noexcept : bytes_(other.bytes_) {
  sodium_memzero(other.bytes_.data(), other.bytes_.size());
}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    bytes_ = other.bytes_;
    sodium_memzero(other.bytes_.data(), other.bytes_.size());
  }
  return *this;
}

PublicKey SecretKey::public_key() const {
  std::array<uint8_t, kEd25519PublicKeyBytes> pk{};
  crypto_sign_ed25519_sk_to_pk(pk.data(), bytes_.data());
  return PublicKey(pk);
}

std::string SecretKey::sign_detached(std::string_view message) const {
  sodium_ready();
  std::string sig(kEd25519SignatureBytes, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size(), bytes_.data());
  return sig;
}

fs::path secret_key_path(const fs::path& prefix) { return fs::path(prefix.string() + ".key"); }
fs::path public_key_path(const fs::path& prefix) { return fs::path(prefix.string() + ".pub"); }

std::string public_key_file_text(const PublicKey& key) {
  const auto& b = key.bytes();
  return std::string(kPubTag) + base64_encode({reinterpret_cast<const char*>(b.data()), b.size()}) + "\n";
}

std::string secret_key_file_text(const SecretKey& key) {
  const auto& b = key.bytes();
  return std::string(kKeyTag) + base64_encode({reinterpret_cast<const char*>(b.data()), b.size()}) + "\n";
}

std::string generate_keypair(const fs::path& prefix) {
  const fs::path key_path = secret_key_path(prefix), pub_path = public_key_path(prefix);
  refuse_existing(key_path);
  refuse_existing(pub_path);
  const SecretKey key = SecretKey::generate();
  std::string key_text = secret_key_file_text(key);
  fs::path key_tmp;
  try {
    key_tmp = write_temporary(key_path, key_text, 0600);
  } catch (...) {
    sodium_memzero(key_text.data(), key_text.size());
    throw;
  }
  sodium_memzero(key_text.data(), key_text.size());
  fs::path pub_tmp;
  try {
    pub_tmp = write_temporary(pub_path, public_key_file_text(key.public_key()), 0644);
  } catch (...) {
    ::unlink(key_tmp.c_str());
    throw;
  }
  // link(2) fails with EEXIST instead of replacing a file created since the checks above.
  const auto publish = [](const fs::path& tmp, const fs::path& final_path) {
    if (::link(tmp.c_str(), final_path.c_str()) == 0) return 0;
    return errno;
  };
  const auto fail = [&](const fs::path& what, int err) {
    ::unlink(key_tmp.c_str());
    ::unlink(pub_tmp.c_str());
    throw IoError(what.string() + (err == EEXIST ? ": already exists; refusing to overwrite a key file"
                                                 : ": cannot create: " + errno_message(err)));
  };
  if (const int err = publish(key_tmp, key_path)) fail(key_path, err);
  if (const int err = publish(pub_tmp, pub_path)) {
    ::unlink(key_path.c_str());
    fail(pub_path, err);
  }
  ::unlink(key_tmp.c_str());
  ::unlink(pub_tmp.c_str());
  fsync_path(key_path.has_parent_path() ? key_path.parent_path() : fs::path("."));
  return key.keyid();
}

SecretKey load_secret_key(const fs::path& path) {
  WipedBuffer<kMaxKeyFileBytes + 1> text;
  read_key_file(path, /*secret=*/true, text);
  const std::string_view body = key_line_body(path, text.view(), /*secret=*/true);
  WipedBuffer<kMaxKeyFileBytes> raw;
  if (!decode_base64(body, raw.data, sizeof(raw.data), raw.size, /*url_safe_too=*/false))
    throw IntegrityError(path.string() + ": secret key is not valid base64");
  if (raw.size != kEd25519SecretKeyBytes)
    throw IntegrityError(path.string() + ": secret key is " + std::to_string(raw.size) + " bytes, expected " +
                         std::to_string(kEd25519SecretKeyBytes));
  sodium_ready();
  SecretKey key;
  std::memcpy(key.bytes_.data(), raw.data, kEd25519SecretKeyBytes);
  // libsodium's layout is seed || public key: regenerate from the seed and compare the halves.
  WipedBuffer<kEd25519SecretKeyBytes> again;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_seed_keypair(pk, again.data, key.bytes_.data());
  if (sodium_memcmp(pk, key.bytes_.data() + kEd25519SeedBytes, crypto_sign_PUBLICKEYBYTES) != 0)
    throw IntegrityError(path.string() + ": secret key is corrupt (its public half does not match its seed)");
  return key;
}

PublicKey load_public_key(const fs::path& path) {
  WipedBuffer<kMaxKeyFileBytes + 1> text;
  read_key_file(path, /*secret=*/false, text);
  const std::string_view body = key_line_body(path, text.view(), /*secret=*/false);
  WipedBuffer<kMaxKeyFileBytes> raw;
  if (!decode_base64(body, raw.data, sizeof(raw.data), raw.size, /*url_safe_too=*/false))
    throw IntegrityError(path.string() + ": public key is not valid base64");
  if (raw.size != kEd25519PublicKeyBytes)
    throw IntegrityError(path.string() + ": public key is " + std::to_string(raw.size) + " bytes, expected " +
                         std::to_string(kEd25519PublicKeyBytes));
  std::array<uint8_t, kEd25519PublicKeyBytes> bytes{};
  std::memcpy(bytes.data(), raw.data, bytes.size());
  return PublicKey(bytes);
}

}  // namespace ssiat
