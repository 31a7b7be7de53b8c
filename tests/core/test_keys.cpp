// core/keys.h: key files round-trip (sign with the loaded secret key, verify with the loaded
// public key), the secret key is created 0600 whatever the umask and never overwrites a file,
// loose permissions and malformed files are refused with one line naming the file, and
// `ssiat keygen` says what it wrote.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/dsse.h"
#include "core/error.h"
#include "core/keys.h"

namespace fs = std::filesystem;

namespace ssiat {
namespace {

class Keys : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ssiat_keys_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  static void put(const fs::path& p, const std::string& s, mode_t mode) {
    std::ofstream(p, std::ios::binary) << s;
    ::chmod(p.c_str(), mode);
  }
  static mode_t mode_of(const fs::path& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_mode & 07777;
  }
  // The message of the exception of type E that fn throws, or "" if none.
  template <typename E, typename Fn>
  static std::string error_of(Fn fn) {
    try {
      fn();
    } catch (const E& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
};

TEST_F(Keys, GenerateThenLoadSignsAndVerifies) {
  const fs::path prefix = dir_ / "release";
  const std::string keyid = generate_keypair(prefix);
  EXPECT_EQ(mode_of(dir_ / "release.key"), 0600u);
  EXPECT_EQ(mode_of(dir_ / "release.pub"), 0644u);
  const SecretKey sk = load_secret_key(dir_ / "release.key");
  const PublicKey pk = load_public_key(dir_ / "release.pub");
  EXPECT_EQ(sk.public_key(), pk);
  EXPECT_EQ(pk.keyid(), keyid);
  EXPECT_EQ(keyid.size(), 64u);
  const Envelope env = sign_envelope(kInTotoPayloadType, "{}", sk);
  EXPECT_NO_THROW(verify_envelope(parse_envelope(envelope_json(env), "a"), pk, "a"));
  // The documented formats, byte for byte.
  EXPECT_EQ(slurp(dir_ / "release.pub"), public_key_file_text(pk));
  const std::string pub = slurp(dir_ / "release.pub");
  EXPECT_EQ(pub.rfind("ssiat-ed25519-pub ", 0), 0u);
  EXPECT_EQ(pub.size(), 18u + 44u + 1u);  // tag, base64 of 32 bytes, "\n"
  const std::string key = slurp(dir_ / "release.key");
  EXPECT_EQ(key.rfind("ssiat-ed25519-key ", 0), 0u);
  EXPECT_EQ(key.size(), 18u + 88u + 1u);
  // Two keys differ; no temporaries are left behind.
  EXPECT_NE(generate_keypair(dir_ / "second"), keyid);
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) files++;
  EXPECT_EQ(files, 4u);
}

TEST_F(Keys, SecretKeyIsExactly0600WhateverTheUmask) {
  const mode_t old = ::umask(0077);
  generate_keypair(dir_ / "a");
  ::umask(0277);  // would drop the owner's write bit from a plain open(..., 0600)
  generate_keypair(dir_ / "b");
  ::umask(old);
  EXPECT_EQ(mode_of(dir_ / "a.key"), 0600u);
  EXPECT_EQ(mode_of(dir_ / "b.key"), 0600u);
  EXPECT_EQ(mode_of(dir_ / "b.pub"), 0644u);
}

TEST_F(Keys, RefusesToOverwrite) {
  put(dir_ / "k.pub", "keep me\n", 0644);
  EXPECT_EQ(error_of<IoError>([&] { generate_keypair(dir_ / "k"); }),
            (dir_ / "k.pub").string() + ": already exists; refusing to overwrite a key file");
  EXPECT_EQ(slurp(dir_ / "k.pub"), "keep me\n");
  EXPECT_FALSE(fs::exists(dir_ / "k.key"));  // nothing written when either file exists
  generate_keypair(dir_ / "j");
  const std::string before = slurp(dir_ / "j.key");
  EXPECT_EQ(error_of<IoError>([&] { generate_keypair(dir_ / "j"); }),
            (dir_ / "j.key").string() + ": already exists; refusing to overwrite a key file");
  EXPECT_EQ(slurp(dir_ / "j.key"), before);
  EXPECT_NE(error_of<IoError>([&] { generate_keypair(dir_ / "no_such_dir" / "k"); }).find("no such file or directory"),
            std::string::npos);
}

TEST_F(Keys, LoosePermissionsAreRefused) {
  generate_keypair(dir_ / "k");
  const fs::path key = dir_ / "k.key";
  for (const mode_t mode : {0644, 0640, 0604, 0660, 0602}) {
    ::chmod(key.c_str(), mode);
    char octal[8];
    std::snprintf(octal, sizeof(octal), "%04o", static_cast<unsigned>(mode));
    EXPECT_EQ(error_of<ConfigError>([&] { load_secret_key(key); }),
              key.string() + ": key file permissions " + octal +
                  " are too open (must be 0600 or stricter); chmod 600 " + key.string());
  }
  for (const mode_t mode : {0600, 0400}) {
    ::chmod(key.c_str(), mode);
    EXPECT_NO_THROW(load_secret_key(key)) << mode;
  }
  ::chmod((dir_ / "k.pub").c_str(), 0666);  // a public key may be world-readable (and more)
  EXPECT_NO_THROW(load_public_key(dir_ / "k.pub"));
}

TEST_F(Keys, MalformedKeyFilesAreRefusedNamingTheFile) {
  generate_keypair(dir_ / "k");
  const std::string good_key = slurp(dir_ / "k.key"), good_pub = slurp(dir_ / "k.pub");
  const fs::path f = dir_ / "bad.key", p = dir_ / "bad.pub";
  const std::string name = f.string(), pname = p.string();
  const auto key_err = [&](const std::string& text) {
    put(f, text, 0600);
    return error_of<IntegrityError>([&] { load_secret_key(f); });
  };
  const auto pub_err = [&](const std::string& text) {
    put(p, text, 0644);
    return error_of<IntegrityError>([&] { load_public_key(p); });
  };
  EXPECT_EQ(key_err(good_key.substr(0, good_key.size() - 1)), "") << "final newline is optional";
  const std::string not_key = name + ": not an ssiat Ed25519 secret key (PREFIX.key) file (expected one line 'ssiat-ed25519-key <base64>')";
  EXPECT_EQ(key_err(""), not_key);
  EXPECT_EQ(key_err("-----BEGIN PRIVATE KEY-----\n"), not_key);
  EXPECT_EQ(key_err(good_pub), name + ": is an ssiat public key file, expected a secret key (PREFIX.key)");
  EXPECT_EQ(key_err(good_key + "\n"), name + ": secret key is not valid base64");  // a second line
  EXPECT_EQ(key_err("ssiat-ed25519-key  " + good_key.substr(18)), name + ": secret key is not valid base64");
  EXPECT_EQ(key_err("ssiat-ed25519-key AAAA\n"), name + ": secret key is 3 bytes, expected 64");
  std::string flipped = good_key;
  flipped[18 + 50] = flipped[18 + 50] == 'A' ? 'B' : 'A';  // inside the public half
  EXPECT_EQ(key_err(flipped), name + ": secret key is corrupt (its public half does not match its seed)");
  EXPECT_EQ(key_err(std::string(5000, 'x')), name + ": not an ssiat key file (over 4096 bytes; a key file is one line)");

  EXPECT_EQ(pub_err(good_pub), "");
  EXPECT_EQ(pub_err(good_key), pname + ": is an ssiat secret key file, expected a public key (PREFIX.pub)");
  EXPECT_EQ(pub_err("ssiat-ed25519-pub AAAA\n"), pname + ": public key is 3 bytes, expected 32");
  EXPECT_EQ(pub_err("ssiat-ed25519-pub " + std::string(43, 'A') + "-\n"), pname + ": public key is not valid base64");
  EXPECT_EQ(pub_err("ssh-ed25519 AAAA\n"),
            pname + ": not an ssiat Ed25519 public key (PREFIX.pub) file (expected one line 'ssiat-ed25519-pub <base64>')");
  EXPECT_EQ(error_of<IoError>([&] { load_public_key(dir_ / "missing.pub"); }),
            (dir_ / "missing.pub").string() + ": cannot open key file: no such file or directory");
  EXPECT_EQ(error_of<IoError>([&] { load_secret_key(dir_); }), dir_.string() + ": is a directory, expected a key file");
}

#ifdef SSIAT_CLI
// stdout and stderr of `ssiat ARGS`, and its exit status.
std::string run_cli(const std::string& args, int& rc) {
  FILE* p = ::popen((std::string(SSIAT_CLI) + " " + args + " 2>&1").c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof(buf), p)) out += buf;
  rc = ::pclose(p);
  return out;
}

TEST_F(Keys, KeygenCommandReportsWhatItWrote) {
  int rc = 0;
  if (run_cli("--help", rc).find("keygen") == std::string::npos)
    GTEST_SKIP() << "this ssiat has no keygen command (tools/cli/main.cpp does not register it)";
  const std::string out = run_cli("keygen --out " + (dir_ / "cli").string(), rc);
  ASSERT_EQ(rc, 0) << out;
  const std::string keyid = load_public_key(dir_ / "cli.pub").keyid();
  EXPECT_EQ(out, "wrote " + (dir_ / "cli.key").string() + " (0600) and " + (dir_ / "cli.pub").string() +
                     ", key id " + keyid + "\n");
  EXPECT_EQ(load_secret_key(dir_ / "cli.key").keyid(), keyid);
  // A second run refuses, in one line, and leaves the key alone.
  const std::string again = run_cli("keygen --out " + (dir_ / "cli").string(), rc);
  EXPECT_NE(rc, 0);
  EXPECT_EQ(again, "ssiat: " + (dir_ / "cli.key").string() + ": already exists; refusing to overwrite a key file\n");
  EXPECT_EQ(load_secret_key(dir_ / "cli.key").keyid(), keyid);
}
#endif

}  // namespace
}  // namespace ssiat
