// Counts the allocations made through operator new while `counting` is set: for a harness that proves a
// path allocates nothing in steady state. Included by one translation unit of each harness binary (it
// replaces the global operator new and delete).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

inline bool counting = false;
inline int allocations = 0;

// Not inlined: GCC would otherwise pair a free() it sees with the operator new it inlined, and warn.
__attribute__((noinline)) void* operator new(size_t size) {
  if (counting) ++allocations;
  void* block = std::malloc(size != 0 ? size : 1);
  if (block == nullptr) throw std::bad_alloc();
  return block;
}
__attribute__((noinline)) void operator delete(void* block) noexcept { std::free(block); }
__attribute__((noinline)) void operator delete(void* block, size_t) noexcept { std::free(block); }
