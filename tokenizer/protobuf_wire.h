// Minimal proto2 wire format (https://protobuf.dev/programming-guides/encoding/), enough to
// write and read SentencePiece's ModelProto: varints, length-delimited fields and fixed32 floats.
//
// Writer contract: each put_* appends one complete field (key + payload) to `out`; signed
// int32 values are sign-extended to 64 bits before varint encoding (negative ids take 10
// bytes), as protobuf does for `int32` fields. Reader contract: WireReader walks one message
// (a byte range); every read checks bounds and throws TokenizerError naming `what` and the
// absolute byte offset of the bad field; skip() steps over any field of a known wire type, so
// unknown fields are ignored.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "tokenizer/vocab.h"

namespace ssiat::tokenizer::wire {

enum class WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

inline void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

inline void put_key(std::string& out, uint32_t field, WireType t) {
  put_varint(out, (static_cast<uint64_t>(field) << 3) | static_cast<uint32_t>(t));
}

inline void put_uint64(std::string& out, uint32_t field, uint64_t v) {
  put_key(out, field, WireType::kVarint);
  put_varint(out, v);
}

// int32 and enum fields: negative values are sign-extended (10-byte varint).
inline void put_int32(std::string& out, uint32_t field, int32_t v) {
  put_uint64(out, field, static_cast<uint64_t>(static_cast<int64_t>(v)));
}

inline void put_bool(std::string& out, uint32_t field, bool v) { put_uint64(out, field, v ? 1 : 0); }

inline void put_float(std::string& out, uint32_t field, float v) {
  put_key(out, field, WireType::kFixed32);
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

// string, bytes and embedded messages.
inline void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, WireType::kLen);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// One field as read: number, wire type, and payload (varint value, fixed32 bits or bytes).
struct WireField {
  uint32_t number = 0;
  WireType type = WireType::kVarint;
  uint64_t varint = 0;       // kVarint; also the raw bits for kFixed32/kFixed64
  std::string_view bytes;    // kLen
  size_t offset = 0;         // absolute offset of the field's key
};

class WireReader {
 public:
  // `data` is one message; `base` is its absolute offset in the file (for error messages).
  WireReader(std::string_view data, size_t base, std::string what) : data_(data), base_(base), what_(std::move(what)) {}

  bool done() const { return pos_ >= data_.size(); }

  WireField next() {
    WireField f;
    f.offset = base_ + pos_;
    const uint64_t key = varint();
    f.number = static_cast<uint32_t>(key >> 3);
    if (f.number == 0) fail(f.offset, "field number 0");
    switch (key & 7) {
      case 0:
        f.type = WireType::kVarint;
        f.varint = varint();
        break;
      case 1:
        f.type = WireType::kFixed64;
        f.varint = fixed(8);
        break;
      case 2: {
        f.type = WireType::kLen;
        const uint64_t n = varint();
        if (n > data_.size() - pos_) fail(f.offset, "length-delimited field runs past the end");
        f.bytes = data_.substr(pos_, n);
        pos_ += n;
        break;
      }
      case 5:
        f.type = WireType::kFixed32;
        f.varint = fixed(4);
        break;
      default:
        fail(f.offset, "unsupported wire type " + std::to_string(key & 7));
    }
    return f;
  }

  // Absolute offset of a field's payload, for nested readers.
  size_t payload_base(const WireField& f) const { return base_ + static_cast<size_t>(f.bytes.data() - data_.data()); }

  [[noreturn]] void fail(size_t offset, const std::string& msg) const {
    throw TokenizerError(what_ + ": malformed protobuf at byte " + std::to_string(offset) + ": " + msg);
  }

  // Checks that `f` has wire type `t` (a field number reused with another type is malformed).
  void expect(const WireField& f, WireType t) const {
    if (f.type != t) fail(f.offset, "field " + std::to_string(f.number) + " has wire type " +
                                        std::to_string(static_cast<uint32_t>(f.type)));
  }

 private:
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) fail(base_ + pos_, "truncated varint");
      const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail(base_ + pos_, "varint longer than 10 bytes");
  }

  uint64_t fixed(int n) {
    if (data_.size() - pos_ < static_cast<size_t>(n)) fail(base_ + pos_, "truncated fixed-width field");
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += n;
    return v;
  }

  std::string_view data_;
  size_t base_;
  std::string what_;
  size_t pos_ = 0;
};

inline float as_float(const WireField& f) {
  const uint32_t bits = static_cast<uint32_t>(f.varint);
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

}  // namespace ssiat::tokenizer::wire
