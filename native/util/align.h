// Records in memory shared with JavaScript (slabs, the socket protocols' records) start 8-byte aligned, so
// that JavaScript reads their doubles and 32-bit fields in place.
#pragma once

#include <cstddef>

namespace volley {

constexpr size_t Align8(size_t n) { return (n + 7) & ~size_t{7}; }

}  // namespace volley
