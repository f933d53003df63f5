// The peer's clock, estimated from ping/pong exchanges (NTP's four timestamps): each exchange gives an
// offset θ = ((t1 − t0) + (t2 − t3)) / 2 whose error is at most half its RTT minus the processing
// delay, so only the exchange with the smallest RTT of each period is kept (minimum-RTT filtering). A
// straight line fitted through the kept offsets over time follows a drifting clock. The same half RTTs
// bound the estimate's error, which link statistics report: however the delay splits between the two
// ways, the estimate is off by no more than that bound.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

namespace volley::delivery {

class ClockSync {
 public:
  static constexpr uint64_t kPeriodUs = 1000000;
  static constexpr size_t kPeriods = 16;
  // The largest drift the line may show (µs per µs): 2,500 ppm, past the worst two sockets of the network
  // simulator can have between them (each ±1,000 ppm: 1.001 / 0.999, 2,002 ppm). The peer's receive times
  // and echoes are its word: four exchanges whose middles a forged echo put 1 µs apart made a 1 ms error a
  // drift of −300, a clock that ran backwards.
  static constexpr double kMaxDrift = 2.5e-3;

  // t0: local clock when the ping left; t1: the peer's clock when it arrived; delayUs: how long the peer
  // held it before the pong left; t3: local clock when the pong arrived.
  void Sample(uint64_t t0, uint64_t t1, uint64_t delayUs, uint64_t t3) {
    if (t3 < t0) return;
    const uint64_t elapsed = t3 - t0;
    const double rtt = elapsed > delayUs ? static_cast<double>(elapsed - delayUs) : 0.0;
    // The exchange's offset is within half its RTT of the truth. The delay was timed on the peer's clock,
    // which runs by the drift apart from ours: that much of it may belong to the RTT too.
    // Without a line (one exchange alone), the drift may be anything up to the growth its bound takes.
    const double driftBound = std::abs(drift_) + (driftKnown_ ? 0.0 : errorGrowth_);
    const double halfSpan = (rtt + driftBound * static_cast<double>(delayUs)) / 2.0;
    // θ = ((t1 − t0) + (t1 + delay − t3)) / 2, in doubles: the difference may be negative.
    const double offset = (static_cast<double>(t1) - static_cast<double>(t0) + static_cast<double>(t1) +
                           static_cast<double>(delayUs) - static_cast<double>(t3)) / 2.0;
    const double at = (static_cast<double>(t0) + static_cast<double>(t3)) / 2.0;
    const uint64_t period = t3 / kPeriodUs;
    const uint32_t tag = static_cast<uint32_t>(period + 1);
    const float errorUs = static_cast<float>(halfSpan);
    Best& slot = periods_[period % kPeriods];
    if (slot.periodTag != tag || errorUs < slot.errorUs) slot = Best{tag, errorUs, offset, at};
    ++samples_;
    Fit(period);
  }

  bool synced() const { return samples_ > 0; }
  uint64_t samples() const { return samples_; }

  // The peer's clock minus ours at local time `now` (µs; 0 before any sample). The line is fitted when a
  // sample arrives, not here: link statistics read this after every batch of packets.
  double OffsetUs(uint64_t now) const { return offsetAtUs_ + drift_ * (static_cast<double>(now) - atUs_); }

  // The most the offset at local time `now` can be wrong by, µs (infinite before any sample): each kept
  // exchange's offset is within half its RTT of the truth, and the line through them is within the mean
  // of those halves at its centre, widening with the distance from it by how far the errors could tilt
  // it. Until the drift is known (four periods) it assumes the two clocks tick at the same rate.
  double ErrorBoundUs(uint64_t now) const {
    return errorAtCentreUs_ + errorGrowth_ * std::max(0.0, static_cast<double>(now) - atUs_);
  }
  // How fast that bound widens (µs per µs), for readers that extrapolate it as they do the offset.
  double ErrorGrowth() const { return errorGrowth_; }

  // The drift of the peer's clock against ours (µs per µs; 0 until four periods have samples).
  double Drift() const { return drift_; }
  bool DriftKnown() const { return driftKnown_; }

 private:
  // 24 bytes, as every connection keeps 16 of them.
  struct Best {
    uint32_t periodTag = 0;  // the period's number plus one (0: never used); seconds: 136 years fit
    float errorUs = 0;       // half the exchange's RTT: how far its offset can be off
    double offset = 0;
    double at = 0;  // local time of the exchange's middle
  };
  // Tags compare modulo 2^32, so that a clock past 136 years (any time a caller may pass) still works; the
  // one period whose tag wraps to 0 keeps no sample.
  static bool Live(const Best& slot, uint64_t currentPeriod) {
    return slot.periodTag != 0 && static_cast<uint32_t>(static_cast<uint32_t>(currentPeriod + 1) - slot.periodTag) < kPeriods;
  }
  // Over the last kPeriods periods: fewer than four, the offset of the one with the smallest RTT; else a line through their
  // best exchanges (offset = mean + drift × (t − mean t)), least squares weighted by 1 / (hᵢ + 1 µs)², hᵢ
  // half the exchange's RTT: a second whose best exchange waited in a bloated queue (100 ms against 1 ms)
  // tilted an unweighted line past the largest drift. With each offset oᵢ off by eᵢ, |eᵢ| ≤ hᵢ, the line at t
  // is off by Σwᵢeᵢ / Σwᵢ + (t − mean t) × Σwᵢ(tᵢ − mean t)eᵢ / Σwᵢ(tᵢ − mean t)²: at most
  // Σwᵢhᵢ / Σwᵢ + |t − mean t| × Σwᵢ|tᵢ − mean t|hᵢ / Σwᵢ(tᵢ − mean t)².
  void Fit(uint64_t currentPeriod) {
    double sumW = 0, sumT = 0, sumO = 0, latestAt = 0;
    size_t count = 0;
    for (const Best& slot : periods_) {
      if (!Live(slot, currentPeriod)) continue;
      const double w = Weight(slot);
      sumW += w;
      sumT += w * slot.at;
      sumO += w * slot.offset;
      latestAt = std::max(latestAt, slot.at);
      ++count;
    }
    if (count == 0) return;  // (the period whose tag wrapped to 0)
    if (count < 4) {
      UseAnchor(currentPeriod, latestAt, 0);
      return;
    }
    const double meanT = sumT / sumW, meanO = sumO / sumW;
    double covariance = 0, variance = 0, sumError = 0, tilt = 0;
    for (const Best& slot : periods_) {
      if (!Live(slot, currentPeriod)) continue;
      const double w = Weight(slot);
      covariance += w * (slot.at - meanT) * (slot.offset - meanO);
      variance += w * (slot.at - meanT) * (slot.at - meanT);
      sumError += w * slot.errorUs;
      tilt += w * std::abs(slot.at - meanT) * slot.errorUs;
    }
    const double fitted = variance > 0 ? covariance / variance : 0;
    if (fitted < -kMaxDrift || fitted > kMaxDrift) {
      // Past the limit: not a line the exchanges can give (forged, or a path that changed). Extrapolated,
      // the clamped line was off by its slope's error over the window; one exchange alone is off by its
      // half RTT, and by no more than the largest drift since.
      UseAnchor(currentPeriod, latestAt, kMaxDrift);
      return;
    }
    driftKnown_ = true;
    drift_ = fitted;
    offsetAtUs_ = meanO;
    atUs_ = meanT;
    errorAtCentreUs_ = sumError / sumW;
    errorGrowth_ = variance > 0 ? tilt / variance : 0;
  }

  // One exchange alone, the two clocks taken to tick at the same rate, its bound widening by `growth` (0
  // until the drift can be known at all): the exchange whose bound is smallest at the latest exchange, its
  // half RTT plus `growth` since (with growth 0, the smallest RTT; past the largest drift, a fast exchange
  // 15 s old may be further off than a slower new one).
  void UseAnchor(uint64_t currentPeriod, double latestAt, double growth) {
    const Best* anchor = nullptr;
    double anchorBound = 0;
    for (const Best& slot : periods_) {
      if (!Live(slot, currentPeriod)) continue;
      const double bound = static_cast<double>(slot.errorUs) + growth * (latestAt - slot.at);
      if (anchor == nullptr || bound < anchorBound) {
        anchor = &slot;
        anchorBound = bound;
      }
    }
    driftKnown_ = false;
    offsetAtUs_ = anchor->offset;
    atUs_ = anchor->at;
    drift_ = 0;
    errorAtCentreUs_ = anchor->errorUs;
    errorGrowth_ = growth;
  }

  static double Weight(const Best& slot) {
    const double h = static_cast<double>(slot.errorUs) + 1.0;
    return 1.0 / (h * h);
  }

  static constexpr double kUnbounded = std::numeric_limits<double>::infinity();

  std::array<Best, kPeriods> periods_{};
  uint64_t samples_ = 0;
  double offsetAtUs_ = 0;  // the fitted offset at local time atUs_
  double atUs_ = 0;
  double drift_ = 0;
  double errorAtCentreUs_ = kUnbounded;  // the error bound at atUs_
  double errorGrowth_ = 0;
  bool driftKnown_ = false;
};

}  // namespace volley::delivery
