#include "sockets/network_simulator.h"

#include <cmath>

#include "util/free_list.h"

namespace volley {

NetworkSimulator::NetworkSimulator(const NetworkConditions& conditions) : conditions_(conditions) {
  random_ = conditions.seed;  // JavaScript draws one when none is given
}

double NetworkSimulator::Uniform() {
  // splitmix64: a reproducible sequence for a given seed.
  random_ += 0x9e3779b97f4a7c15ull;
  uint64_t z = random_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

void NetworkSimulator::Submit(const ProtocolOutput::Datagram& datagram, uint64_t nowUs) {
  ++counters_.submitted;
  // Every datagram draws the same six numbers, whatever becomes of it: a datagram dropped by a full queue
  // (which depends on when the engine ran) must not shift the choices made for the ones after it.
  const double lossDraw = Uniform();
  const double duplicateDraw = Uniform();
  double delayDraws[2], reorderDraws[2];
  for (int copy = 0; copy < 2; ++copy) {
    delayDraws[copy] = Uniform();
    reorderDraws[copy] = Uniform();
  }
  if (lossDraw < conditions_.loss) {
    ++counters_.lost;
    return;
  }
  const int copies = duplicateDraw < conditions_.duplicate ? 2 : 1;
  for (int copy = 0; copy < copies; ++copy) {
    // A full queue drops the copy before the link: it must not take link time, or every datagram after an
    // overflow would wait for ones that were never sent.
    uint64_t departUs = nowUs;
    if (held_.size() >= conditions_.maxHeld || !Depart(datagram.size, nowUs, &departUs)) {
      ++counters_.overflowed;
      continue;
    }
    if (copy == 1) ++counters_.duplicated;  // a copy the queue dropped was not sent twice
    double delay = std::max(0.0, static_cast<double>(conditions_.latencyUs) + (delayDraws[copy] * 2 - 1) * static_cast<double>(conditions_.jitterUs));
    // Added to the clamped delay, so that a held-back datagram leaves after any sent with it, even when the
    // jitter is larger than the latency.
    if (reorderDraws[copy] < conditions_.reorder) {
      ++counters_.reordered;
      delay += static_cast<double>(conditions_.latencyUs + conditions_.jitterUs) + 1000.0;
    }
    Hold(datagram, departUs + static_cast<uint64_t>(delay));
  }
}

bool NetworkSimulator::Depart(size_t size, uint64_t nowUs, uint64_t* departUs) {
  const uint64_t rate = conditions_.bandwidthBytesPerSec;
  if (rate == 0) return true;
  // The link sends one datagram after the other (each copy too), with 28 bytes of IP and UDP headers;
  // what waits for it is delayed. Kept in fractions of a µs: whole µs per datagram made a fast link faster
  // than asked, and above ~1.3 GB/s free.
  const double now = static_cast<double>(nowUs);
  if (linkFreeUs_ < now) linkFreeUs_ = now;
  const double bytes = static_cast<double>(uint64_t{size} + 28);
  const double queued = (linkFreeUs_ - now) * static_cast<double>(rate) / 1e6;
  const double limit = static_cast<double>(conditions_.queueBytes > 0 ? conditions_.queueBytes : rate);
  if (queued > 0 && queued + bytes > limit) return false;  // an empty queue takes any datagram
  linkFreeUs_ += bytes * 1e6 / static_cast<double>(rate);
  *departUs = static_cast<uint64_t>(std::ceil(linkFreeUs_));
  return true;
}

void NetworkSimulator::Hold(const ProtocolOutput::Datagram& datagram, uint64_t releaseUs) {
  const uint32_t slot = TakeFreeIndex(freeSlots_, datagrams_);
  datagrams_[slot] = datagram;
  held_.push(Held{releaseUs, order_++, slot});
}

size_t NetworkSimulator::Release(uint64_t nowUs, std::vector<ProtocolOutput::Datagram>* out, size_t limit) {
  size_t released = 0;
  while (released < limit && !held_.empty() && held_.top().releaseUs <= nowUs) {
    const uint32_t slot = held_.top().slot;
    held_.pop();
    if (released == out->size()) out->resize(out->empty() ? 4 : out->size() * 2);
    (*out)[released] = datagrams_[slot];
    freeSlots_.push_back(slot);
    ++released;
  }
  return released;
}

uint64_t NetworkSimulator::NextReleaseUs() const { return held_.empty() ? UINT64_MAX : held_.top().releaseUs; }

}  // namespace volley
