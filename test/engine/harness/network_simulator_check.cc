// Drives native/network_simulator.cc directly (no engine, no sockets) and prints what it decided, as
// JSON, for test/engine/network-simulator.test.ts.
#include <cstdio>
#include <vector>

#include "network_simulator.h"

using volley::NetworkConditions;
using volley::NetworkSimulator;
using volley::ProtocolOutput;

namespace {

ProtocolOutput::Datagram Datagram(uint16_t size) {
  ProtocolOutput::Datagram datagram{};
  datagram.size = size;
  return datagram;
}

// Datagrams Release() gives back by nowUs.
size_t ReleasedBy(NetworkSimulator* simulator, uint64_t nowUs) {
  std::vector<ProtocolOutput::Datagram> out;
  return simulator->Release(nowUs, &out, 0);
}

}  // namespace

int main() {
  // 1. A full queue (maxHeld) drops what comes: those datagrams never use the link. 1,172 + 28 bytes at
  // 1,200,000 B/s take 1 ms each.
  uint64_t afterOverflowUs = 0, overflowed = 0;
  {
    NetworkConditions conditions;
    conditions.bandwidthBytesPerSec = 1200000;
    conditions.seed = 1;
    conditions.maxHeld = 4;
    NetworkSimulator simulator(conditions);
    for (int i = 0; i < 1004; ++i) simulator.Submit(Datagram(1172), 0);  // 4 held (1..4 ms), 1,000 dropped
    overflowed = simulator.counters().overflowed;
    ReleasedBy(&simulator, 5000);                 // the queue is empty at 5 ms, the link idle since 4 ms
    simulator.Submit(Datagram(1172), 5000);       // so this one leaves at 6 ms
    afterOverflowUs = simulator.NextReleaseUs();
  }
  // 2. A fast link: 1,000 datagrams of 1,200 + 28 bytes at 2e9 B/s take 614 µs, not nothing.
  uint64_t fastLinkLastUs = 0;
  {
    NetworkConditions conditions;
    conditions.bandwidthBytesPerSec = 2000000000;
    conditions.seed = 1;
    NetworkSimulator simulator(conditions);
    for (int i = 0; i < 1000; ++i) simulator.Submit(Datagram(1200), 0);
    // When the last one leaves (0: every datagram left at once).
    ReleasedBy(&simulator, 0);
    while (simulator.NextReleaseUs() != UINT64_MAX) {
      fastLinkLastUs = simulator.NextReleaseUs();
      ReleasedBy(&simulator, fastLinkLastUs);
    }
  }
  // 3. Seed 0 is a seed like any other: two simulators with it lose the same datagrams.
  bool seedZeroRepeats = true;
  uint64_t seedZeroLost = 0;
  {
    NetworkConditions conditions;
    conditions.loss = 0.5;
    conditions.seed = 0;
    NetworkSimulator first(conditions), second(conditions);
    for (int i = 0; i < 1000; ++i) {
      first.Submit(Datagram(100), 0);
      second.Submit(Datagram(100), 0);
      if (first.counters().lost != second.counters().lost) seedZeroRepeats = false;
    }
    seedZeroLost = first.counters().lost;
  }
  std::printf("{\"overflowed\":%llu,\"afterOverflowUs\":%llu,\"fastLinkLastUs\":%llu,\"seedZeroRepeats\":%s,\"seedZeroLost\":%llu}\n",
              static_cast<unsigned long long>(overflowed), static_cast<unsigned long long>(afterOverflowUs),
              static_cast<unsigned long long>(fastLinkLastUs), seedZeroRepeats ? "true" : "false",
              static_cast<unsigned long long>(seedZeroLost));
  return 0;
}
