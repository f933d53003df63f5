// The clock a socket's delivery layer reads: the engine's monotonic clock, or — for tests of clock
// synchronisation through real sockets (the networkSimulator's clockOffsetMs and clockDriftPpm) — one set
// ahead of it and running fast or slow, as a peer's badly set clock would. Deadlines the delivery layer
// gives in its own time go back to the engine's through Real().
#pragma once

#include <cmath>
#include <cstdint>

namespace volley {

struct DeliveryClock {
  uint64_t offsetUs = 0;  // ahead of the monotonic clock, from startUs on
  double drift = 0;       // µs gained per µs (80 ppm: 80e-6); > -1
  uint64_t startUs = 0;   // monotonic time the drift counts from

  bool skewed() const { return offsetUs != 0 || drift != 0; }

  uint64_t Local(uint64_t realUs) const {
    if (!skewed()) return realUs;
    const double since = realUs > startUs ? static_cast<double>(realUs - startUs) : 0.0;  // drift > -1: no underflow
    return static_cast<uint64_t>(static_cast<double>(realUs + offsetUs) + drift * since);
  }

  // The monotonic time at which this clock reads localUs (UINT64_MAX: never).
  uint64_t Real(uint64_t localUs) const {
    if (!skewed() || localUs == UINT64_MAX) return localUs;
    const double since = (static_cast<double>(localUs) - static_cast<double>(offsetUs) - static_cast<double>(startUs)) / (1.0 + drift);
    return since <= 0 ? startUs : startUs + static_cast<uint64_t>(std::ceil(since));
  }

  // This clock minus the monotonic one at realUs, µs.
  double AheadUs(uint64_t realUs) const { return static_cast<double>(Local(realUs)) - static_cast<double>(realUs); }
};

}  // namespace volley
