// A network between a socket and the wire, for tests and benchmarks: what the socket sends is lost,
// delayed (latency ± jitter), duplicated, reordered and held to a bandwidth, with a seeded random
// source so that runs repeat. The engine puts it between a protocol's outbox and sendmmsg.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <queue>
#include <vector>

#include "sockets/socket_protocol.h"

namespace volley {

struct NetworkConditions {
  double loss = 0;             // probability a datagram is dropped
  double duplicate = 0;        // probability it is sent twice
  double reorder = 0;          // probability it is held back latency + jitter + 1 ms more, so later ones overtake it
  uint64_t latencyUs = 0;      // one way
  uint64_t jitterUs = 0;       // uniform ± around the latency (a delay below 0 is 0)
  uint64_t bandwidthBytesPerSec = 0;  // 0: unlimited
  // The link's queue in bytes (0: one second of the bandwidth): a datagram that would wait behind more is
  // dropped, as a router's full queue drops it.
  uint64_t queueBytes = 0;
  uint64_t seed = 0;           // the random choices' seed: the same seed and datagrams, the same choices
  size_t maxHeld = 65536;      // datagrams held at once (queued or on the way) beyond this are dropped
};

struct NetworkSimulatorCounters {
  uint64_t submitted = 0, lost = 0, duplicated = 0, reordered = 0, overflowed = 0;
};

class NetworkSimulator {
 public:
  explicit NetworkSimulator(const NetworkConditions& conditions);

  // Takes a datagram the socket would send now.
  void Submit(const ProtocolOutput::Datagram& datagram, uint64_t nowUs);
  // Moves up to `limit` of the datagrams due by nowUs into out[0...]; returns how many.
  size_t Release(uint64_t nowUs, std::vector<ProtocolOutput::Datagram>* out, size_t limit);
  // When the next held datagram is due; UINT64_MAX when none is held.
  uint64_t NextReleaseUs() const;
  const NetworkSimulatorCounters& counters() const { return counters_; }

 private:
  struct Held {
    uint64_t releaseUs;
    uint64_t order;  // equal release times keep the order they were sent in
    uint32_t slot;   // in datagrams_
    bool operator>(const Held& other) const {
      return releaseUs != other.releaseUs ? releaseUs > other.releaseUs : order > other.order;
    }
  };

  double Uniform();  // [0, 1)
  void Hold(const ProtocolOutput::Datagram& datagram, uint64_t releaseUs);
  // When a datagram of this size that enters the link now leaves it (whole µs, rounded up); false when the
  // link's queue is full.
  bool Depart(size_t size, uint64_t nowUs, uint64_t* departUs);

  NetworkConditions conditions_;
  uint64_t random_;
  uint64_t order_ = 0;
  double linkFreeUs_ = 0;  // bandwidth: when the link has sent what it holds (fractions of a µs add up)
  std::priority_queue<Held, std::vector<Held>, std::greater<Held>> held_;
  std::vector<ProtocolOutput::Datagram> datagrams_;  // storage, reused through freeSlots_
  std::vector<uint32_t> freeSlots_;
  NetworkSimulatorCounters counters_;
};

}  // namespace volley
