#include "network_simulator.h"

#include <cmath>

#include "free_list.h"

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
  if (Uniform() < conditions_.loss) {
    ++counters_.lost;
    return;
  }
  // A full queue drops the datagram before the link: it must not take link time, or every datagram after
  // an overflow would wait for ones that were never sent (and the delay would grow without bound).
  if (held_.size() >= conditions_.maxHeld) {
    ++counters_.overflowed;
    return;
  }
  // Bandwidth: the link sends one datagram after the other; what waits for it is delayed. Kept in
  // fractions of a µs: whole µs per datagram made a fast link faster than asked, and above ~1.3 GB/s free.
  uint64_t departUs = nowUs;
  if (conditions_.bandwidthBytesPerSec > 0) {
    if (linkFreeUs_ < static_cast<double>(nowUs)) linkFreeUs_ = static_cast<double>(nowUs);
    linkFreeUs_ += static_cast<double>(uint64_t{datagram.size} + 28) * 1e6 / static_cast<double>(conditions_.bandwidthBytesPerSec);
    departUs = static_cast<uint64_t>(std::ceil(linkFreeUs_));
  }
  const int copies = Uniform() < conditions_.duplicate ? 2 : 1;
  if (copies == 2) ++counters_.duplicated;
  for (int copy = 0; copy < copies; ++copy) {
    double delay = static_cast<double>(conditions_.latencyUs) + (Uniform() * 2 - 1) * static_cast<double>(conditions_.jitterUs);
    if (Uniform() < conditions_.reorder) {
      ++counters_.reordered;
      delay += static_cast<double>(conditions_.latencyUs + conditions_.jitterUs) + 1000.0;
    }
    Hold(datagram, departUs + static_cast<uint64_t>(std::max(0.0, delay)));
  }
}

void NetworkSimulator::Hold(const ProtocolOutput::Datagram& datagram, uint64_t releaseUs) {
  if (held_.size() >= conditions_.maxHeld) {
    ++counters_.overflowed;
    return;
  }
  const uint32_t slot = TakeFreeIndex(freeSlots_, datagrams_);
  datagrams_[slot] = datagram;
  held_.push(Held{releaseUs, order_++, slot});
}

size_t NetworkSimulator::Release(uint64_t nowUs, std::vector<ProtocolOutput::Datagram>* out, size_t count) {
  size_t released = 0;
  while (!held_.empty() && held_.top().releaseUs <= nowUs) {
    const uint32_t slot = held_.top().slot;
    held_.pop();
    if (count + released == out->size()) out->resize(out->empty() ? 4 : out->size() * 2);
    (*out)[count + released] = datagrams_[slot];
    freeSlots_.push_back(slot);
    ++released;
  }
  return released;
}

uint64_t NetworkSimulator::NextReleaseUs() const { return held_.empty() ? UINT64_MAX : held_.top().releaseUs; }

}  // namespace volley
