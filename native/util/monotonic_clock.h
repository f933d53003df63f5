// CLOCK_MONOTONIC, the clock of every engine timer and of the delivery layer (src/api/channels.ts reads the
// same one as process.hrtime).
#pragma once

#include <cstdint>
#include <ctime>

namespace volley {

inline uint64_t MonotonicNs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000u + static_cast<uint64_t>(now.tv_nsec);
}

}  // namespace volley
