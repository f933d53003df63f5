// Round-trip time from acknowledgements (RFC 9002 §5) and from pongs: smoothed RTT and its variation, the
// minimum, the maximum, the variance, and jitter as the smoothed difference between consecutive samples of
// one kind (RFC 3550 §6.4.1's form), and the path's minimum for congestion control, which may rise.
#pragma once

#include <algorithm>
#include <cstdint>

namespace volley::delivery {

// How far above the path's minimum RTT a round trip may be and still show no standing queue: jitter alone
// keeps some samples within it.
inline uint64_t QueueSlackUs(uint64_t minRttUs) { return std::max<uint64_t>(minRttUs / 8, 250); }

// A longer round trip is no sample: a forged echo in a pong, or an acknowledgement the peer held back for
// minutes (which would set the timeouts and pacing to match). It also bounds the clocks' drift before and
// after the clock sync has measured it.
constexpr uint64_t kMaxRttSampleUs = 60000000;

class RttEstimator {
 public:
  explicit RttEstimator(uint64_t initialRttUs) : smoothedUs_(initialRttUs), variationUs_(initialRttUs / 2) {}

  // sampleUs: ack time − send time of the newest packet an ACK acknowledged; ackDelayUs: what the peer
  // says it held the ACK back (not subtracted below the minimum RTT, as RFC 9002 says); nowUs: when it came.
  // transmitUs: what sending the sampled packet took at the bottleneck's estimated rate (0: unknown).
  void Sample(uint64_t sampleUs, uint64_t ackDelayUs, uint64_t nowUs, uint64_t transmitUs = 0) {
    if (sampleUs == 0) sampleUs = 1;
    LowerMin(sampleUs);
    LowerPathMin(sampleUs, nowUs, transmitUs);
    latestAckSampleUs_ = sampleUs;
    uint64_t adjusted = sampleUs;
    if (adjusted >= minUs_ + ackDelayUs) adjusted -= ackDelayUs;
    if (adjusted > maxUs_) maxUs_ = adjusted;  // net of the ACK delay, as a pong's is of its hold
    Smooth(adjusted, kAckSample);
  }

  // A round trip measured net of the peer's delay (a pong): rttUs for the smoothed figures; minCandidateUs
  // an upper bound of it for the minimum (the delay was timed on the peer's clock), 0 to leave the
  // minimum alone.
  void SampleNet(uint64_t rttUs, uint64_t minCandidateUs) {
    if (rttUs == 0) rttUs = 1;
    if (minCandidateUs != 0) LowerMin(minCandidateUs);
    if (rttUs > maxUs_) maxUs_ = rttUs;
    Smooth(rttUs, kPongSample);
  }

  uint64_t smoothedUs() const { return smoothedUs_; }
  uint64_t variationUs() const { return variationUs_; }
  // The samples' variance, µs²: RFC 9002's variation is a mean deviation (its square reads about three
  // quarters of the variance of Gaussian jitter, and (RTT/2)² after one sample), so this is kept apart: the
  // smoothed square of each sample's distance from the smoothed RTT before it, at its gain (1/8), divided by
  // the weight the average has gathered (1 − (7/8)^n after n distances: it starts from 0), times
  // (2 − 1/8)/2, which takes out what the smoothed RTT's own spread adds to that distance.
  double varianceUs2() const {
    return squaredDeviationWeight_ < 1.0 ? squaredDeviationUs2_ / (1.0 - squaredDeviationWeight_) * (15.0 / 16.0) : 0.0;
  }
  uint64_t latestUs() const { return latestUs_; }
  // The smallest of the last kRecentSamples to 2 × kRecentSamples samples: a queue that stands behind the
  // path raises it, jitter alone hardly does (some packets still cross fast), where the latest sample
  // rises and falls with every packet. Over 32 to 64 samples, a few ms of jitter always let one packet
  // cross fast: drops at a full queue read as random, and congestion control's model rose a third above
  // the link.
  uint64_t recentMinUs() const { return std::min(recentMin_[0], recentMin_[1]); }
  uint64_t minUs() const { return minUs_; }  // 0 until a sample gave one
  // The path's own round trip as congestion control needs it (0 until a sample gave one): the smallest ACK
  // sample, held while samples keep coming within the queue slack of it. The lifetime minimum held a route
  // that got longer to its old RTT and took the new one for a standing queue, so that every later loss read
  // as congestion (1.5 of 9 Mbit/s after a 4 to 40 ms change at 2 % random loss). When no sample has come
  // that close for kPathMinHoldUs, the sender drains (DeliveryCore::UpdateDrain): a queue of its own empties
  // and the old minimum shows again, or the smallest sample of the drain becomes the path's. A minimum that
  // simply expired would take a standing queue of our own for path, and the queue would stay for good.
  // ACK samples only: a pong's echo and hold are the peer's word, and forged ones could set the minimum at
  // will, where an ACK cannot come before its packet has crossed.
  uint64_t pathMinUs() const { return pathMinUs_; }
  bool PathMinStale(uint64_t nowUs) const { return pathMinUs_ != 0 && !draining_ && nowUs >= pathMinHeldUs_ + kPathMinHoldUs; }
  bool draining() const { return draining_; }
  void StartDrain() {
    draining_ = true;
    drainMinUs_ = UINT64_MAX;
  }
  void EndDrain(uint64_t nowUs) {  // its time is up with no sample near the old minimum
    draining_ = false;
    if (drainMinUs_ != UINT64_MAX) pathMinUs_ = drainMinUs_;
    pathMinHeldUs_ = nowUs;
  }
  // The path may have changed (persistent congestion, RFC 9002 §5.2): the next sample starts it afresh,
  // and a drain under way has nothing left to compare.
  void ForgetPathMin() {
    pathMinUs_ = 0;
    draining_ = false;
  }
  uint64_t latestAckSampleUs() const { return latestAckSampleUs_; }
  uint64_t maxUs() const { return maxUs_; }
  double jitterUs() const { return jitterUs_; }
  uint64_t samples() const { return samples_; }

 private:
  void LowerMin(uint64_t candidateUs) {
    if (minUs_ == 0 || candidateUs < minUs_) minUs_ = candidateUs;
  }

  void LowerPathMin(uint64_t candidateUs, uint64_t nowUs, uint64_t transmitUs) {
    if (draining_) drainMinUs_ = std::min(drainMinUs_, candidateUs);
    // A large packet's round trip includes sending it at the bottleneck's rate, which a small one's (the
    // minimum may be a probe's) does not: that much is no queue (up to half the minimum).
    const uint64_t allowanceUs = QueueSlackUs(pathMinUs_) + std::min(transmitUs, pathMinUs_ / 2);
    if (pathMinUs_ == 0 || candidateUs <= pathMinUs_ + allowanceUs) {
      if (pathMinUs_ == 0 || candidateUs < pathMinUs_) pathMinUs_ = candidateUs;
      pathMinHeldUs_ = nowUs;
      draining_ = false;  // the queue was ours and is gone: the minimum holds, the drain can end
    }
  }

  enum SampleKind { kAckSample = 0, kPongSample = 1 };

  void Smooth(uint64_t adjusted, SampleKind kind) {
    // Jitter compares a sample with the previous one of its kind: an ACK's hold and a pong's are timed at
    // different moments of the peer's turn, and that difference is no jitter of the path.
    uint64_t& previous = latestOfKindUs_[kind];
    if (previous != 0) {
      const uint64_t change = adjusted > previous ? adjusted - previous : previous - adjusted;
      jitterUs_ += (static_cast<double>(change) - jitterUs_) / 16.0;
    }
    previous = adjusted;
    latestUs_ = adjusted;
    if (recentCount_ == kRecentSamples) {
      recentMin_[1] = recentMin_[0];
      recentMin_[0] = UINT64_MAX;
      recentCount_ = 0;
    }
    recentMin_[0] = std::min(recentMin_[0], adjusted);
    ++recentCount_;
    if (samples_ == 0) {
      smoothedUs_ = adjusted;
      variationUs_ = adjusted / 2;
    } else {
      const double distance = static_cast<double>(adjusted) - static_cast<double>(smoothedUs_);
      squaredDeviationUs2_ += (distance * distance - squaredDeviationUs2_) / 8.0;
      squaredDeviationWeight_ *= 0.875;  // exact in binary: the WebAssembly build's doubles are the same
      const uint64_t deviation = smoothedUs_ > adjusted ? smoothedUs_ - adjusted : adjusted - smoothedUs_;
      variationUs_ = (3 * variationUs_ + deviation) / 4;
      smoothedUs_ = (7 * smoothedUs_ + adjusted) / 8;
    }
    ++samples_;
  }

  uint64_t smoothedUs_;
  uint64_t variationUs_;
  uint64_t latestUs_ = 0;
  uint64_t latestOfKindUs_[2] = {0, 0};  // by SampleKind, 0 before its first (a sample is at least 1 µs)
  uint64_t minUs_ = 0;
  uint64_t maxUs_ = 0;
  double jitterUs_ = 0;
  double squaredDeviationUs2_ = 0;
  double squaredDeviationWeight_ = 1;  // (7/8)^n: what the average still owes its start at 0
  uint64_t samples_ = 0;
  static constexpr uint32_t kRecentSamples = 8;
  uint64_t recentMin_[2] = {UINT64_MAX, UINT64_MAX};
  uint32_t recentCount_ = 0;
  static constexpr uint64_t kPathMinHoldUs = 10'000'000;
  uint64_t pathMinUs_ = 0;
  uint64_t pathMinHeldUs_ = 0;  // when a sample last came within the queue slack of it
  bool draining_ = false;
  uint64_t drainMinUs_ = UINT64_MAX;  // the smallest sample of the drain under way
  uint64_t latestAckSampleUs_ = 0;
};

}  // namespace volley::delivery
