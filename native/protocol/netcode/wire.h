// Little-endian reading and writing over a fixed span. Reads past the end set failed() instead of
// touching memory: callers check once at the end of a parse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace volley::netcode {

class WireWriter {
 public:
  WireWriter(uint8_t* data, size_t size) : data_(data), size_(size) {}
  void U8(uint8_t v) { Put(&v, 1); }
  void U16(uint16_t v) {
    const uint8_t b[2] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)};
    Put(b, 2);
  }
  void U32(uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
    Put(b, 4);
  }
  void U64(uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
    Put(b, 8);
  }
  // LEB128: 7 bits per byte, low bits first; 1 byte below 128, at most 10.
  void Varint(uint64_t v) {
    uint8_t b[10];
    size_t n = 0;
    do {
      b[n] = static_cast<uint8_t>(v & 0x7f);
      v >>= 7;
      if (v != 0) b[n] |= 0x80;
      ++n;
    } while (v != 0);
    Put(b, n);
  }
  static size_t VarintSize(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
      v >>= 7;
      ++n;
    }
    return n;
  }
  void Bytes(const uint8_t* p, size_t n) { Put(p, n); }
  size_t offset() const { return offset_; }
  size_t remaining() const { return failed_ ? 0 : size_ - offset_; }
  bool failed() const { return failed_; }

 private:
  void Put(const uint8_t* p, size_t n) {
    if (failed_ || n > size_ - offset_) {
      failed_ = true;
      return;
    }
    if (n == 0) return;  // p may be null then (an empty vector's data()): memcpy must not see it
    std::memcpy(data_ + offset_, p, n);
    offset_ += n;
  }
  uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
  bool failed_ = false;
};

class WireReader {
 public:
  WireReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t U8() {
    uint8_t v = 0;
    Get(&v, 1);
    return v;
  }
  uint16_t U16() {
    uint8_t b[2] = {};
    Get(b, 2);
    return static_cast<uint16_t>(b[0] | (b[1] << 8));
  }
  uint32_t U32() {
    uint8_t b[4] = {};
    Get(b, 4);
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | b[i];
    return v;
  }
  uint64_t U64() {
    uint8_t b[8] = {};
    Get(b, 8);
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
    return v;
  }
  // LEB128 as WireWriter writes it, up to 2^53 − 1: what JavaScript holds exactly, so that the TypeScript
  // parser (src/protocol/delivery/wire-format.ts) reads every packet as this one does. No honest value comes
  // near it (packet numbers and sequences count from 0, times are µs). More than 8 bytes, or a larger
  // value, fail.
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 56; shift += 7) {
      if (failed_ || offset_ >= size_) break;
      const uint8_t byte = data_[offset_++];
      v |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) {
        if (v > kMaxVarint) break;
        return v;
      }
    }
    failed_ = true;
    return 0;
  }
  static constexpr uint64_t kMaxVarint = (uint64_t{1} << 53) - 1;
  void Bytes(uint8_t* out, size_t n) { Get(out, n); }
  size_t remaining() const { return failed_ ? 0 : size_ - offset_; }
  const uint8_t* Skip(size_t n) {
    if (failed_ || n > size_ - offset_) {
      failed_ = true;
      return nullptr;
    }
    const uint8_t* at = data_ + offset_;
    offset_ += n;
    return at;
  }
  bool failed() const { return failed_; }

 private:
  void Get(uint8_t* out, size_t n) {
    if (failed_ || n > size_ - offset_) {
      failed_ = true;
      std::memset(out, 0, n);
      return;
    }
    std::memcpy(out, data_ + offset_, n);
    offset_ += n;
  }
  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
  bool failed_ = false;
};

}  // namespace volley::netcode
