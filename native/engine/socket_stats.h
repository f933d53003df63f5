// Counters of one socket, written by whichever thread holds the engine's ioMutex_ (the I/O thread, or
// JavaScript's for a small send or a turn of its own while the I/O thread sleeps) and read by JavaScript at
// any time.
#pragma once

#include <atomic>
#include <cstdint>

namespace volley {

struct SocketStats {
  std::atomic<uint64_t> packetsIn{0};
  std::atomic<uint64_t> bytesIn{0};
  std::atomic<uint64_t> batchesIn{0};
  std::atomic<uint64_t> packetsOut{0};
  std::atomic<uint64_t> bytesOut{0};
  std::atomic<uint64_t> batchesOut{0};   // sendmmsg calls that sent at least one datagram
  std::atomic<uint64_t> sendErrors{0};   // datagrams the kernel refused (EMSGSIZE, EHOSTUNREACH, ...)
  std::atomic<uint64_t> receiveErrors{0};
  std::atomic<uint64_t> kernelDrops{0};  // SO_MEMINFO: dropped by the kernel, receive buffer full
  std::atomic<uint64_t> truncated{0};    // datagrams larger than the receive slot
  std::atomic<uint64_t> sendDropped{0};  // queued datagrams discarded because the socket closed first
  std::atomic<uint64_t> batchesOutInline{0};  // of batchesOut, those the JavaScript thread made itself
  std::atomic<uint64_t> batchesInInline{0};   // of batchesIn, those the JavaScript thread read itself

  // A protocol's counters (netcode server or client), copied here by the I/O thread at each timer tick.
  static constexpr int kProtocolFieldCount = 24;
  std::atomic<double> protocol[kProtocolFieldCount] = {};
  // The network simulator's (network_simulator.h), when the socket has one: datagrams it lost, duplicated,
  // reordered, and dropped because its queue was full.
  static constexpr int kSimulatorFieldCount = 4;
  std::atomic<double> simulator[kSimulatorFieldCount] = {};

  static constexpr int kFieldCount = 13;
  void CopyTo(double* out) const {
    const std::atomic<uint64_t>* fields[kFieldCount] = {&packetsIn,   &bytesIn,    &batchesIn,   &packetsOut,
                                                        &bytesOut,    &batchesOut, &sendErrors,  &receiveErrors,
                                                        &kernelDrops, &truncated,  &sendDropped, &batchesOutInline,
                                                        &batchesInInline};
    for (int i = 0; i < kFieldCount; ++i) out[i] = static_cast<double>(fields[i]->load(std::memory_order_relaxed));
  }
  static void Add(std::atomic<uint64_t>& counter, uint64_t amount) {
    // One writer at a time (ioMutex_ orders them): a plain load/store pair is enough and avoids a locked add.
    counter.store(counter.load(std::memory_order_relaxed) + amount, std::memory_order_relaxed);
  }
};

}  // namespace volley
