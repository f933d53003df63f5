// Reading the records JavaScript queues in a send slab (layout.h), for the send path and a socket's close.
#pragma once

#include <cstdint>
#include <cstring>

#include "engine/layout.h"

namespace volley {

inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The records of socket `socketId` in data[from, limit) of a send slab (the pass has checked their lengths).
inline uint64_t CountRecordsOf(const uint8_t* data, size_t from, size_t limit, uint32_t socketId) {
  uint64_t count = 0;
  for (size_t cursor = from; cursor + kSendHeaderSize <= limit;) {
    const uint32_t length = LoadU32(data + cursor + 4);
    if (length > kMaxDatagramSize) break;
    if (LoadU32(data + cursor) == socketId) ++count;
    cursor += Align8(kSendHeaderSize + length);
  }
  return count;
}

}  // namespace volley
