// Congestion control of one connection, in bytes: slow start and congestion avoidance as NewReno
// (RFC 9002 §7), with two changes to what a loss does.
// - A loss is congestion when a queue stood behind it (the smallest recent RTT above the path's minimum by
//   more than QueueSlackUs: jitter alone leaves it low) or when more than a tenth of the recent packets
//   were lost. Other losses (a lossy radio link, say) are resent but leave the window alone: NewReno
//   halved it on each of them and fell to two packets at 5 % random loss.
// - On congestion the window becomes the path's bandwidth-delay product — the best recent delivery rate
//   times the minimum RTT (TCP Westwood+'s idea) — so the queue drains, but never less than half of what
//   it was (NewReno's cut), nor more.
#pragma once

#include <algorithm>
#include <cstdint>

#include "protocol/delivery/rtt_estimator.h"
#include "protocol/delivery/wire_format.h"

namespace volley::delivery {

class CongestionControl {
 public:
  static constexpr uint64_t kInitialWindow = 10 * kMaxPacketBytes;
  static constexpr uint64_t kMinimumWindow = 2 * kMaxPacketBytes;

  uint64_t window() const { return std::min(window_, held_); }

  // While the sender drains to recheck the path's RTT (DeliveryCore::UpdateDrain), the window is held to
  // capBytes (at least the minimum) and does not grow; Release gives back the window it had.
  void Hold(uint64_t capBytes) { held_ = std::max(capBytes, kMinimumWindow); }
  void Release() { held_ = UINT64_MAX; }
  double bandwidthBytesPerUs() const { return std::max(currentMax_, previousMax_); }

  // A packet counted in flight, sent at sentUs, was acknowledged; windowInUse: much of the window is in
  // flight (else the acknowledgement shows nothing about a larger one, RFC 9002 §7.8).
  void OnAcked(uint64_t bytes, uint64_t sentUs, bool windowInUse) {
    ++acked_[0];
    if (InRecovery(sentUs)) return;  // sent before the reduction: no growth
    if (!windowInUse || held_ != UINT64_MAX) return;
    if (window_ < slowStartThreshold_) {
      window_ += bytes;
    } else {
      window_ += std::max<uint64_t>(1, uint64_t{kMaxPacketBytes} * bytes / window_);
    }
  }

  // A packet counted in flight, sent at sentUs, was declared lost; minRttUs and recentRttUs: the path's
  // minimum RTT (RttEstimator::pathMinUs) and the smallest of its recent samples (0 when not yet measured).
  // One reduction per round trip: losses of packets sent before the last reduction are part of the same
  // event, whenever they are found (RFC 9002's InCongestionRecovery, by send time alone). Returns the
  // reduction the loss belongs to (0: none), for OnSpuriousLoss.
  uint64_t OnLost(uint64_t sentUs, uint64_t nowUs, uint64_t minRttUs, uint64_t recentRttUs) {
    ++lost_[0];
    if (InRecovery(sentUs)) {
      ++undo_.unproven;
      return reductions_;
    }
    const bool queued = minRttUs == 0 || recentRttUs > minRttUs + QueueSlackUs(minRttUs);
    const uint64_t lost = lost_[0] + lost_[1], acked = acked_[0] + acked_[1];
    if (!queued && lost * 10 <= lost + acked) return 0;  // not congestion
    undo_ = Undo{true, 1, window_, slowStartThreshold_, reduced_, recoveryStartUs_};
    ++reductions_;
    reduced_ = true;
    recoveryStartUs_ = nowUs;
    const double pathBytes = bandwidthBytesPerUs() * static_cast<double>(minRttUs);
    const uint64_t half = window_ / 2;
    const uint64_t target = pathBytes >= static_cast<double>(window_) ? window_ : std::max(half, static_cast<uint64_t>(pathBytes));
    window_ = std::max(target, kMinimumWindow);
    slowStartThreshold_ = window_;
    return reductions_;
  }

  // A packet declared lost was acknowledged after all (reordered); reduction: what OnLost returned for it.
  // It is not counted as lost. Once every loss of the last reduction's event has proved spurious, the
  // reduction is undone (as TCP's Eifel response does), its recovery period with it; one real loss among
  // them (a packet of the same flush, say) and it stands.
  void OnSpuriousLoss(uint64_t reduction) {
    if (lost_[0] > 0) --lost_[0];
    if (!undo_.possible || reduction == 0 || reduction != reductions_ || --undo_.unproven > 0) return;
    window_ = std::max(window_, undo_.window);
    slowStartThreshold_ = undo_.slowStartThreshold;
    reduced_ = undo_.reduced;
    recoveryStartUs_ = undo_.recoveryStartUs;
    undo_.possible = false;
  }

  uint64_t slowStartThreshold() const { return slowStartThreshold_; }

  // Persistent congestion (every packet sent over three probe timeouts lost, RFC 9002 §7.6): back to the
  // minimum window, as the path may have changed. thresholdBefore: the slow-start threshold before the
  // losses that showed it. Those losses are an outage, not a measure of the path: the threshold they set
  // (half a window in flight when the path went, and the minimum at the next outage) is not kept, else a
  // link that goes down and up came back a little slower each time, one packet per round trip at last.
  void OnPersistentCongestion(uint64_t thresholdBefore) {
    window_ = kMinimumWindow;
    slowStartThreshold_ = std::max(slowStartThreshold_, thresholdBefore);
    reduced_ = false;  // no recovery period (RFC 9002 §7.6.2): the window grows from the next acknowledgement
    undo_.possible = false;
  }

  // A delivery-rate sample (bytes acknowledged over the interval they took). The estimate is the largest
  // sample of the last two periods of periodUs, so that it follows the path down within a few round trips;
  // the loss fraction is counted over the same periods.
  void OnRateSample(double bytesPerUs, uint64_t nowUs, uint64_t periodUs) {
    if (nowUs >= periodStartUs_ + periodUs) {
      const bool skipped = nowUs >= periodStartUs_ + 2 * periodUs;
      previousMax_ = skipped ? 0 : currentMax_;
      lost_[1] = skipped ? 0 : lost_[0];
      acked_[1] = skipped ? 0 : acked_[0];
      currentMax_ = 0;
      lost_[0] = acked_[0] = 0;
      periodStartUs_ = nowUs;
    }
    currentMax_ = std::max(currentMax_, bytesPerUs);
  }

 private:
  // Sent before the last reduction: a loss of it is part of that event, its acknowledgement grows nothing.
  bool InRecovery(uint64_t sentUs) const { return reduced_ && sentUs <= recoveryStartUs_; }

  uint64_t window_ = kInitialWindow;
  uint64_t held_ = UINT64_MAX;  // the cap of a drain, UINT64_MAX when none
  uint64_t slowStartThreshold_ = UINT64_MAX;
  uint64_t recoveryStartUs_ = 0;
  bool reduced_ = false;  // a reduction was made: recoveryStartUs_ holds when
  double currentMax_ = 0, previousMax_ = 0;
  uint64_t periodStartUs_ = 0;
  uint64_t lost_[2] = {0, 0}, acked_[2] = {0, 0};  // packets, this period and the one before
  uint64_t reductions_ = 0;  // made so far: the number of the last
  // The last reduction: its losses not yet proved spurious, and what it changed.
  struct Undo {
    bool possible = false;
    uint64_t unproven = 0;
    uint64_t window = 0;
    uint64_t slowStartThreshold = 0;
    bool reduced = false;
    uint64_t recoveryStartUs = 0;
  } undo_;
};

}  // namespace volley::delivery
