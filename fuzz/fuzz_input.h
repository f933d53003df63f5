// Reads a fuzzer's input as a script of operations: small integers and byte strings taken from the
// front. Once the input runs out every read gives zeros and empty strings, so a target's loop ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace volley::fuzz {

// A property a target checks does not hold: libFuzzer keeps the input that shows it.
[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "fuzz: FAILED: %s\n", what);
  std::abort();
}

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return at_ >= size_; }

  uint8_t Byte() { return at_ < size_ ? data_[at_++] : 0; }

  // A little-endian integer of `bytes` bytes (at most 8).
  uint64_t Number(int bytes) {
    uint64_t value = 0;
    for (int i = 0; i < bytes; ++i) value |= uint64_t{Byte()} << (8 * i);
    return value;
  }

  // A string of up to maxSize bytes: a 2-byte length (taken modulo maxSize + 1), then that many bytes
  // or what is left. Points into the input: no copy.
  const uint8_t* Bytes(size_t maxSize, size_t* size) {
    size_t wanted = static_cast<size_t>(Number(2)) % (maxSize + 1);
    if (wanted > size_ - at_) wanted = size_ - at_;
    const uint8_t* start = data_ + at_;
    at_ += wanted;
    *size = wanted;
    return start;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

// `packet` with one to four edits the input chooses: a byte overwritten, or the rest cut off.
inline std::vector<uint8_t> Tampered(FuzzInput& in, std::vector<uint8_t> packet) {
  const int edits = 1 + in.Byte() % 4;
  for (int i = 0; i < edits && !packet.empty(); ++i) {
    const size_t at = in.Number(2) % packet.size();
    if (in.Byte() < 64) packet.resize(at);
    else packet[at] = in.Byte();
  }
  return packet;
}

}  // namespace volley::fuzz
