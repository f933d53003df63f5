// Memory that the engine's I/O thread and JavaScript both use (the receive and send slabs, the event list),
// owned jointly: the engine holds one share, and every ArrayBuffer made over the memory holds another until
// it is collected. JavaScript can detach an ArrayBuffer with ArrayBuffer.prototype.transfer() (Node 22 on)
// or a BYOB stream read, whatever markAsUntransferable() said (which on such buffers makes Node 24 abort at
// exit); the detached memory then belongs to the new buffer, which may be collected at once. Were the
// memory JavaScript's, the I/O thread would go on writing into freed memory; here the new buffer takes a
// share along, and the memory lives while anyone uses it.
#pragma once

#include <napi.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <memory>

#if defined(__SANITIZE_THREAD__)
#define VOLLEY_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VOLLEY_THREAD_SANITIZER 1
#endif
#endif
#ifdef VOLLEY_THREAD_SANITIZER
extern "C" void AnnotateBenignRaceSized(const char* file, int line, const volatile void* address, size_t size,
                                        const char* description);
#endif

namespace volley {

class SharedMemory {
 public:
  // Zeroed memory, or nullptr when there is none. Mapped, its pages touched (and counted in RSS) only once
  // used, as an ArrayBuffer's are, and given back to the system when freed. Not calloc: once one such block
  // was freed, glibc serves the next from its heap and keeps them (200 dedicated engines opened and closed
  // left 700 MB of RSS behind).
  static std::shared_ptr<SharedMemory> Allocate(size_t bytes) {
    void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) return nullptr;
#ifdef VOLLEY_THREAD_SANITIZER
    // The threads hand this memory to each other through JavaScript's Atomics, in Node, which is not
    // instrumented: ThreadSanitizer would take every reuse of a slab for a race (and, over a 60 KB copy,
    // spend minutes reporting it word by word). Races on the engine's own state are still reported.
    AnnotateBenignRaceSized(__FILE__, __LINE__, data, bytes, "slab handed over through JavaScript's Atomics");
#endif
    live_.fetch_add(bytes, std::memory_order_relaxed);
    return std::shared_ptr<SharedMemory>(new SharedMemory(static_cast<uint8_t*>(data), bytes));
  }

  // The bytes of all SharedMemory not yet freed, in the process: tests see engines give theirs back.
  static size_t LiveBytes() { return live_.load(std::memory_order_relaxed); }

  ~SharedMemory() {
    munmap(data_, size_);
    live_.fetch_sub(size_, std::memory_order_relaxed);
  }
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  SharedMemory(uint8_t* data, size_t size) : data_(data), size_(size) {}

  uint8_t* data_;
  size_t size_;
  inline static std::atomic<size_t> live_{0};
};

// An ArrayBuffer over `bytes` bytes at `data`, memory that `owner` keeps alive: the buffer holds a share of
// the owner until it is collected, wherever a detach took it. Empty, with a JavaScript exception pending,
// when N-API refuses external buffers.
template <typename Owner>
Napi::ArrayBuffer ArrayBufferSharing(Napi::Env env, const std::shared_ptr<Owner>& owner, void* data, size_t bytes) {
  auto* share = new std::shared_ptr<Owner>(owner);
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
      env, data, bytes, [](Napi::Env, void*, std::shared_ptr<Owner>* held) { delete held; }, share);
  if (buffer.IsEmpty()) delete share;  // no buffer, so no finalizer will
  return buffer;
}

inline Napi::ArrayBuffer ArrayBufferSharing(Napi::Env env, const std::shared_ptr<SharedMemory>& memory) {
  return ArrayBufferSharing(env, memory, memory->data(), memory->size());
}

}  // namespace volley
