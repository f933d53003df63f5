// Round-trip time from acknowledgements (RFC 9002 §5) and from pongs: smoothed RTT and its variation, the
// minimum, the maximum, the variance, and jitter as the smoothed difference between consecutive samples
// (RFC 3550 §6.4.1's form).
#pragma once

#include <algorithm>
#include <cstdint>

namespace volley::delivery {

class RttEstimator {
 public:
  explicit RttEstimator(uint64_t initialRttUs) : smoothedUs_(initialRttUs), variationUs_(initialRttUs / 2) {}

  // sampleUs: ack time − send time of the newest packet an ACK acknowledged; ackDelayUs: what the peer
  // says it held the ACK back (not subtracted below the minimum RTT, as RFC 9002 says).
  void Sample(uint64_t sampleUs, uint64_t ackDelayUs) {
    if (sampleUs == 0) sampleUs = 1;
    LowerMin(sampleUs);
    if (sampleUs > maxUs_) maxUs_ = sampleUs;
    uint64_t adjusted = sampleUs;
    if (adjusted >= minUs_ + ackDelayUs) adjusted -= ackDelayUs;
    Smooth(adjusted);
  }

  // A round trip measured net of the peer's delay (a pong): rttUs for the smoothed figures; minCandidateUs
  // an upper bound of it for the minimum (the delay was timed on the peer's clock), 0 to leave the
  // minimum alone.
  void SampleNet(uint64_t rttUs, uint64_t minCandidateUs) {
    if (rttUs == 0) rttUs = 1;
    if (minCandidateUs != 0) LowerMin(minCandidateUs);
    if (rttUs > maxUs_) maxUs_ = rttUs;
    Smooth(rttUs);
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
  // rises and falls with every packet.
  uint64_t recentMinUs() const { return std::min(recentMin_[0], recentMin_[1]); }
  uint64_t minUs() const { return minUs_; }  // 0 until a sample gave one
  uint64_t maxUs() const { return maxUs_; }
  double jitterUs() const { return jitterUs_; }
  uint64_t samples() const { return samples_; }

 private:
  void LowerMin(uint64_t candidateUs) {
    if (minUs_ == 0 || candidateUs < minUs_) minUs_ = candidateUs;
  }

  void Smooth(uint64_t adjusted) {
    if (samples_ > 0) {
      const uint64_t change = adjusted > latestUs_ ? adjusted - latestUs_ : latestUs_ - adjusted;
      jitterUs_ += (static_cast<double>(change) - jitterUs_) / 16.0;
    }
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
      squaredDeviationWeight_ *= 0.875;  // exact in binary: the TypeScript estimator's doubles are the same
      const uint64_t deviation = smoothedUs_ > adjusted ? smoothedUs_ - adjusted : adjusted - smoothedUs_;
      variationUs_ = (3 * variationUs_ + deviation) / 4;
      smoothedUs_ = (7 * smoothedUs_ + adjusted) / 8;
    }
    ++samples_;
  }

  uint64_t smoothedUs_;
  uint64_t variationUs_;
  uint64_t latestUs_ = 0;
  uint64_t minUs_ = 0;
  uint64_t maxUs_ = 0;
  double jitterUs_ = 0;
  double squaredDeviationUs2_ = 0;
  double squaredDeviationWeight_ = 1;  // (7/8)^n: what the average still owes its start at 0
  uint64_t samples_ = 0;
  static constexpr uint32_t kRecentSamples = 32;
  uint64_t recentMin_[2] = {UINT64_MAX, UINT64_MAX};
  uint32_t recentCount_ = 0;
};

}  // namespace volley::delivery
