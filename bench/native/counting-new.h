// The micro-benchmarks' count of allocations: the global operator new replaced by one that counts calls
// and bytes. Included once by each benchmark's one source file.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <new>

// (GCC takes the malloc/free of a replaced global operator new/delete for a mismatch.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
static uint64_t gAllocs = 0, gAllocBytes = 0;
void* operator new(size_t n) {
  ++gAllocs;
  gAllocBytes += n;
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
