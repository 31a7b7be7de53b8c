// Typed errors for core/ and tools/. Every message is one line with its context (file, key,
// line, byte offset, rank); tools/ prints `ssiat: <what()>` and exits non-zero.
#pragma once

#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>

#include "kernels/check.h"

namespace ssiat {

// A recipe or command-line setting is unknown, of the wrong type or out of range.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A file could not be read or written, or is not what it claims to be (bad hash, bad format).
class IoError : public Error {
 public:
  using Error::Error;
};

// The operating system failed a read (EIO, a file that ended before the size it had when opened):
// "PATH: read error at byte N: <strerror>" (core/fs.h). Never taken for a torn file: resume stops
// at it instead of falling back (core/checkpoint.h).
class ReadError : public IoError {
 public:
  using IoError::IoError;
};

// A complete, readable file whose content contradicts itself or its digests: a checkpoint whose
// manifest_sha256 or a tensor's SHA-256 does not match, or whose fields disagree (step vs its
// directory name). Names the file and the key; resume refuses it rather than skipping it.
class IntegrityError : public IoError {
 public:
  using IoError::IoError;
};

// Input data is unusable (empty corpus, invalid UTF-8, tokens out of range).
class DataError : public Error {
 public:
  using Error::Error;
};

// The machine cannot hold what was asked for: memory for a recipe's buffers (core/memory_plan.h)
// or an allocation that failed. Disk-full errors are IoError with errno_message(ENOSPC).
class ResourceError : public Error {
 public:
  using Error::Error;
};

// strerror(err) in lower case, for "PATH: <message>" lines: ENOSPC gives "no space left on
// device", EDQUOT "disk quota exceeded".
inline std::string errno_message(int err) {
  std::string s = std::strerror(err);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z' && !(s.size() > 1 && s[1] >= 'A' && s[1] <= 'Z'))
    s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

// An exception's text for a one-line message: nlohmann::json's "[json.exception.type_error.302] "
// tag dropped (the rest names the problem, e.g. "type must be string, but is number").
inline std::string json_error_message(const std::exception& e) {
  std::string s = e.what();
  if (s.rfind("[json.exception.", 0) == 0) {
    const size_t close = s.find("] ");
    if (close != std::string::npos) s.erase(0, close + 2);
  }
  return s;
}

// A std::filesystem error as one line "PATH: <operation>: <reason>" (e.g. "runs/a: cannot create
// directories: no space left on device"), without the library's "filesystem error:" prefix and
// bracketed paths.
inline std::string describe_fs_error(const std::filesystem::filesystem_error& e) {
  std::string op = e.what();
  if (op.rfind("filesystem error: ", 0) == 0) op.erase(0, 18);
  if (const size_t colon = op.find(": "); colon != std::string::npos) op.resize(colon);  // drop reason and [paths]
  std::string where = e.path1().string();
  if (!e.path2().empty()) where += " -> " + e.path2().string();
  std::string msg = where.empty() ? "" : where + ": ";
  if (!op.empty()) msg += op + ": ";
  return msg + errno_message(e.code().value());
}

// True for the errno values that mean "the file system is full" (ENOSPC, EDQUOT).
inline bool is_disk_full(int err) { return err == ENOSPC || err == EDQUOT; }

}  // namespace ssiat
