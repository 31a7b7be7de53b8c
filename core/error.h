// Typed errors for core/ and tools/. Every message is one line with its context (file, key,
// line, byte offset, rank); tools/ prints `ssiat: <what()>` and exits non-zero.
#pragma once

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

// Input data is unusable (empty corpus, invalid UTF-8, tokens out of range).
class DataError : public Error {
 public:
  using Error::Error;
};

}  // namespace ssiat
