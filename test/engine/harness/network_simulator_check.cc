// Drives native/sockets/network_simulator.cc directly (no engine, no sockets) and prints what it decided, as
// JSON, for test/engine/network-simulator.test.ts.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "sockets/network_simulator.h"

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
  return simulator->Release(nowUs, &out, SIZE_MAX);
}

// Releases everything, each datagram when it is due, calling onRelease(datagram, atUs) for each; returns
// when the last one left (0 when none).
template <typename OnRelease>
uint64_t ReleaseAll(NetworkSimulator* simulator, OnRelease onRelease) {
  uint64_t last = 0;
  std::vector<ProtocolOutput::Datagram> out;
  while (simulator->NextReleaseUs() != UINT64_MAX) {
    last = simulator->NextReleaseUs();
    const size_t count = simulator->Release(last, &out, SIZE_MAX);
    for (size_t i = 0; i < count; ++i) onRelease(out[i], last);
  }
  return last;
}

uint64_t LastReleaseUs(NetworkSimulator* simulator) {
  return ReleaseAll(simulator, [](const ProtocolOutput::Datagram&, uint64_t) {});
}

// A link of this bandwidth and nothing else, seeded 1.
NetworkConditions Link(uint64_t bytesPerSec) {
  NetworkConditions conditions;
  conditions.bandwidthBytesPerSec = bytesPerSec;
  conditions.seed = 1;
  return conditions;
}

}  // namespace

int main() {
  // 1. A full queue (maxHeld) drops what comes: those datagrams never use the link. 1,172 + 28 bytes at
  // 1,200,000 B/s take 1 ms each.
  uint64_t afterOverflowUs = 0, overflowed = 0;
  {
    NetworkConditions conditions = Link(1200000);
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
    NetworkSimulator simulator(Link(2000000000));
    for (int i = 0; i < 1000; ++i) simulator.Submit(Datagram(1200), 0);
    fastLinkLastUs = LastReleaseUs(&simulator);  // 0: every datagram left at once
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
  // 4. The link's queue in bytes: 1,172 + 28 bytes at 1,200,000 B/s, a queue of 12,000 bytes. The first
  // finds the link idle; nine more fit behind it; the rest are dropped. Left to its default (one second of
  // the bandwidth: 1,200 bytes at 1,200 B/s), the queue takes the first and nothing behind it.
  uint64_t queueHeld = 0, queueDropped = 0, defaultQueueDropped = 0;
  {
    NetworkConditions conditions = Link(1200000);
    conditions.queueBytes = 12000;
    NetworkSimulator simulator(conditions);
    for (int i = 0; i < 100; ++i) simulator.Submit(Datagram(1172), 0);
    queueDropped = simulator.counters().overflowed;
    queueHeld = ReleasedBy(&simulator, 1000000);
    NetworkSimulator slow(Link(1200));
    for (int i = 0; i < 10; ++i) slow.Submit(Datagram(1172), 0);
    defaultQueueDropped = slow.counters().overflowed;
  }
  // 5. Each copy of a duplicated datagram takes the link: ten datagrams, twenty copies of 1 ms each.
  uint64_t duplicatesLastUs = 0;
  {
    NetworkConditions conditions = Link(1200000);
    conditions.duplicate = 1;
    NetworkSimulator simulator(conditions);
    for (int i = 0; i < 10; ++i) simulator.Submit(Datagram(1172), 0);
    duplicatesLastUs = LastReleaseUs(&simulator);
  }
  // 6. A datagram a full queue drops draws its random choices all the same: the datagrams after it get the
  // choices they get without the overflow. Two simulators with one seed, one of them able to hold only
  // 5 datagrams, both released as time goes on, so that the cramped one keeps datagrams between its
  // overflows; each datagram's size names it, and each copy the cramped one lets out must leave when one of
  // the roomy one's copies of that datagram leaves.
  bool overflowKeepsChoices = true;
  uint64_t overflowDropped = 0, keptAfterOverflow = 0;
  {
    NetworkConditions conditions;
    conditions.loss = 0.3;
    conditions.duplicate = 0.2;
    conditions.reorder = 0.2;
    conditions.latencyUs = 10000;
    conditions.jitterUs = 5000;
    conditions.seed = 9;
    NetworkSimulator roomy(conditions);
    conditions.maxHeld = 5;
    NetworkSimulator cramped(conditions);
    std::vector<std::vector<uint64_t>> roomyAt(401);
    std::vector<std::pair<uint16_t, uint64_t>> crampedAt;
    std::vector<ProtocolOutput::Datagram> out;
    const auto releaseBoth = [&](uint64_t nowUs) {
      for (size_t i = 0, n = roomy.Release(nowUs, &out, SIZE_MAX); i < n; ++i) roomyAt[out[i].size].push_back(nowUs);
      for (size_t i = 0, n = cramped.Release(nowUs, &out, SIZE_MAX); i < n; ++i) crampedAt.emplace_back(out[i].size, nowUs);
    };
    uint16_t firstOverflow = 0;
    for (uint16_t id = 1; id <= 400; ++id) {
      // A step every 250 µs up to the datagram's time, one every 1 ms: a copy leaves within 250 µs of its time, in both.
      for (int step = 1; step <= 4; ++step) releaseBoth((uint64_t{id} - 1) * 1000 + step * 250);
      roomy.Submit(Datagram(id), uint64_t{id} * 1000);
      cramped.Submit(Datagram(id), uint64_t{id} * 1000);
      if (firstOverflow == 0 && cramped.counters().overflowed > 0) firstOverflow = id;
    }
    for (uint64_t nowUs = 401000; roomy.NextReleaseUs() != UINT64_MAX || cramped.NextReleaseUs() != UINT64_MAX; nowUs += 250) {
      releaseBoth(nowUs);
    }
    overflowDropped = cramped.counters().overflowed;
    // (Not `duplicated`: it counts only datagrams whose two copies both went out.)
    if (roomy.counters().lost != cramped.counters().lost) overflowKeepsChoices = false;
    for (const auto& [id, at] : crampedAt) {
      const std::vector<uint64_t>& times = roomyAt[id];
      if (std::find(times.begin(), times.end(), at) == times.end()) overflowKeepsChoices = false;
      if (firstOverflow != 0 && id > firstOverflow) ++keptAfterOverflow;
    }
  }
  // 7. Release gives back at most what it is asked for, in due order, and keeps the rest for the next call:
  // the engine sends an outbox at a time (a latency step could make 65,536 due at once).
  uint64_t firstPart = 0, secondPart = 0, leftAfter = 0;
  bool partsInOrder = true;
  {
    NetworkConditions conditions;
    conditions.latencyUs = 1000;
    conditions.seed = 3;
    NetworkSimulator simulator(conditions);
    for (uint16_t id = 1; id <= 600; ++id) simulator.Submit(Datagram(id), id);  // due at 1,001 .. 1,600 µs
    std::vector<ProtocolOutput::Datagram> out;
    firstPart = simulator.Release(5000, &out, 256);
    for (size_t i = 0; i < firstPart; ++i) partsInOrder = partsInOrder && out[i].size == i + 1;
    secondPart = simulator.Release(5000, &out, 256);
    for (size_t i = 0; i < secondPart; ++i) partsInOrder = partsInOrder && out[i].size == 256 + i + 1;
    leftAfter = simulator.Release(5000, &out, 256);
  }
  std::printf(
      "{\"firstPart\":%llu,\"secondPart\":%llu,\"leftAfter\":%llu,\"partsInOrder\":%s,"
      "\"overflowed\":%llu,\"afterOverflowUs\":%llu,\"fastLinkLastUs\":%llu,\"seedZeroRepeats\":%s,\"seedZeroLost\":%llu,"
      "\"queueHeld\":%llu,\"queueDropped\":%llu,\"defaultQueueDropped\":%llu,\"duplicatesLastUs\":%llu,"
      "\"overflowKeepsChoices\":%s,\"overflowDropped\":%llu,\"keptAfterOverflow\":%llu}\n",
      static_cast<unsigned long long>(firstPart), static_cast<unsigned long long>(secondPart),
      static_cast<unsigned long long>(leftAfter), partsInOrder ? "true" : "false",
      static_cast<unsigned long long>(overflowed), static_cast<unsigned long long>(afterOverflowUs),
      static_cast<unsigned long long>(fastLinkLastUs), seedZeroRepeats ? "true" : "false",
      static_cast<unsigned long long>(seedZeroLost), static_cast<unsigned long long>(queueHeld),
      static_cast<unsigned long long>(queueDropped), static_cast<unsigned long long>(defaultQueueDropped),
      static_cast<unsigned long long>(duplicatesLastUs), overflowKeepsChoices ? "true" : "false",
      static_cast<unsigned long long>(overflowDropped), static_cast<unsigned long long>(keptAfterOverflow));
  return 0;
}
