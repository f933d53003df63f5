// Congestion control of one connection: a model of the path, as BBR builds one (Cardwell et al., ACM Queue
// 2016), with random loss kept out of it. See docs/channels.md, "Flow and congestion control".
// - The model: the bottleneck's bandwidth, the largest delivery-rate sample of the last ten round trips,
//   and the path's minimum RTT (RttEstimator::pathMinUs, rechecked by DeliveryCore::UpdateDrain).
// - Pacing at the bandwidth times a gain, and a window of twice the bandwidth-delay product in flight.
// - The gains follow the state:
//   - Startup doubles the rate each round trip until the bandwidth stops growing.
//   - Drain empties the queue Startup left.
//   - ProbeBandwidth cruises at the bandwidth. One round trip in eight it probes for more (5/4), then
//     drains what the probe queued (3/4).
//   - ProbeRtt is the drain that rechecks the minimum RTT.
// - A packet lost at random (no queue stood behind it) took the bottleneck's time as much as one that
//   arrived: the delivery-rate samples count it as carried. Else a 10 % loss would set the model 10 % low,
//   and pacing at it would leave that much of the link unused. 20 % loss would shrink the model every cycle.
//   Counted this way, a policer that drops without a queue looks like random loss, so the count is bounded:
//   a sample counts at most 1/(1 − kMaxCarriedLoss) times what arrived.
// - A loss behind a standing queue is congestion. The bytes in flight are bounded to 7/10 of the window,
//   one cut per round trip. Each round trip without such a loss lifts the bound by a packet, then two,
//   four and so on, until it is out of the way. Every flow lifts it by the same bytes and cuts it by the
//   same share: flows that share a full queue converge to equal shares (as AIMD does, Chiu and Jain 1989),
//   where the model alone holds any split (each flow's window follows its own bandwidth sample).
// - So is a cycle of ProbeBandwidth whose round trips never came near the minimum: a queue stands that
//   the flow's own drains did not empty. That is how flows that share a queue too deep to overflow cut.
#pragma once

#include <algorithm>
#include <cstdint>

#include "protocol/delivery/rtt_estimator.h"
#include "protocol/delivery/wire_format.h"

namespace volley::delivery {

// The controller's states (the testing binding reports them as numbers).
enum class CongestionState : uint8_t { kStartup = 0, kDrain = 1, kProbeBandwidth = 2, kProbeRtt = 3 };

// What an acknowledgement tells congestion control about one packet counted in flight.
struct AckedPacket {
  uint64_t bytes = 0;
  uint64_t deliveredAtSend = 0;  // the connection's delivered bytes when it was sent
  uint64_t delivered = 0;        // and now, this packet's included
  double rateBytesPerUs = 0;     // its delivery-rate sample (carried bytes over the interval); 0: none
  bool appLimited = false;       // sent while the application left the window unused
};

// A loss, as congestion control classed it.
struct LossVerdict {
  uint64_t reduction = 0;  // the window reduction it belongs to (0: none), for OnSpuriousLoss
  bool random = false;     // no queue stood behind it: it took the bottleneck's time like a delivered packet
};

class CongestionControl {
 public:
  static constexpr uint64_t kInitialWindow = 10 * kMaxPacketBytes;
  static constexpr uint64_t kMinimumWindow = 2 * kMaxPacketBytes;
  // 2/ln 2: the least gain that doubles the delivery rate each round trip.
  static constexpr double kStartupGain = 2.885;
  // Bounds the delivery-rate samples' count of random losses (see the top of the file).
  static constexpr double kMaxCarriedLoss = 0.25;
  // Pacing lets bursts of two of the engine's timer ticks go (it ticks every millisecond), so that it never
  // waits on a timer finer than the engine has: at least two packets, and the initial window in Startup
  // (a flow that sends little stays there, and its bursts go at once). Ten packets after Startup queued
  // 10 ms at a 10 Mbit/s bottleneck with each burst.
  static constexpr double kPacingQuantumUs = 2000;
  static constexpr double kPacingBurstBytes = 2 * kMaxPacketBytes;

  // cycleSeed: where ProbeBandwidth's cycle starts (random per connection, so that flows that share a
  // bottleneck do not probe in step).
  explicit CongestionControl(uint32_t cycleSeed = 0) : cycleSeed_(cycleSeed) {}

  uint64_t cuts() const { return reductions_; }  // made for losses behind a queue, undone ones included
  CongestionState state() const { return held_ != UINT64_MAX ? CongestionState::kProbeRtt : state_; }
  // The bytes that may be in flight.
  uint64_t window() const { return std::min({window_, inflightBound_, held_}); }
  // The bottleneck's bandwidth as the model has it (0 before the first sample).
  double bandwidthBytesPerUs() const { return bandwidth_; }
  // smoothedRttUs: for Startup's rate, which is never below the window over a round trip. Before the
  // first bandwidth sample that is all there is, and a flow that sends little (its samples show its own
  // rate, not the path's) must not have its bursts paced at that rate.
  double pacingRateBytesPerUs(uint64_t smoothedRttUs) const {
    const double gain = PacingGain();
    if (state_ != CongestionState::kStartup) return gain * bandwidth_;
    return gain * std::max(bandwidth_, static_cast<double>(window()) / static_cast<double>(std::max<uint64_t>(smoothedRttUs, 1)));
  }
  double pacingBurstBytes(uint64_t smoothedRttUs) const {
    const double startup = state_ == CongestionState::kStartup ? static_cast<double>(kInitialWindow) : 0;
    return std::max(startup, BurstBytesAt(pacingRateBytesPerUs(smoothedRttUs)));
  }
  // A pacing burst at a rate (bytes/µs): two ticks of it, at least two full packets.
  static double BurstBytesAt(double bytesPerUs) { return std::max(kPacingBurstBytes, bytesPerUs * kPacingQuantumUs); }

  // While the sender drains to recheck the path's RTT (DeliveryCore::UpdateDrain), the window is held to
  // capBytes (at least the minimum) and does not grow; Release gives back the window it had.
  void Hold(uint64_t capBytes) { held_ = std::max(capBytes, kMinimumWindow); }
  void Release() { held_ = UINT64_MAX; }

  // A packet counted in flight was acknowledged. pathMinUs: RttEstimator::pathMinUs (0: not yet measured);
  // inFlight: the bytes still in flight; windowInUse: much of the window is in flight (else the
  // acknowledgement shows nothing about a larger one, RFC 9002 §7.8).
  void OnAcked(const AckedPacket& packet, uint64_t nowUs, uint64_t pathMinUs, uint64_t inFlight, bool windowInUse) {
    const bool roundEnds = packet.deliveredAtSend >= roundEndDelivered_;
    if (roundEnds) {
      roundEndDelivered_ = packet.delivered;
      ++rounds_;
      roundMax_[rounds_ % kBandwidthRounds] = 0;
      roundAppLimited_ = packet.appLimited;
      if (!lossInRound_ && inflightBound_ != UINT64_MAX) {
        inflightBound_ += boundStep_;
        boundStep_ = std::min(2 * boundStep_, inflightBound_);
        if (inflightBound_ >= 2 * TargetWindow(pathMinUs)) inflightBound_ = UINT64_MAX;
      }
      lossInRound_ = false;
    }
    if (packet.rateBytesPerUs > 0 && (!packet.appLimited || packet.rateBytesPerUs >= bandwidth_)) {
      double& slot = roundMax_[rounds_ % kBandwidthRounds];
      slot = std::max(slot, packet.rateBytesPerUs);
      bandwidth_ = *std::max_element(roundMax_, roundMax_ + kBandwidthRounds);
    }
    if (roundEnds && state_ == CongestionState::kStartup && !roundAppLimited_) CheckFullBandwidth();
    if (state_ == CongestionState::kDrain && inFlight <= Bdp(pathMinUs)) EnterProbeBandwidth(nowUs);
    if (state_ == CongestionState::kProbeBandwidth) AdvanceCycle(nowUs, pathMinUs, inFlight);
    GrowWindow(packet, pathMinUs, windowInUse);
  }

  // A packet counted in flight, sent at sentUs, was declared lost. pathMinUs and recentRttUs: the path's
  // minimum RTT (RttEstimator::pathMinUs) and the smallest of its recent samples (0 when not yet measured),
  // which a queue behind the loss raises and jitter alone hardly does. One cut per round trip: losses of
  // packets sent before the last cut are part of the same event, whenever they are found (RFC 9002's
  // InCongestionRecovery, by send time alone).
  LossVerdict OnLost(uint64_t sentUs, uint64_t nowUs, uint64_t pathMinUs, uint64_t recentRttUs) {
    const bool queued = pathMinUs == 0 || recentRttUs > pathMinUs + QueueAllowanceUs(pathMinUs);
    if (!queued) return {0, true};
    lossInRound_ = true;
    if (InRecovery(sentUs)) {
      ++undo_.unproven;
      return {reductions_, false};
    }
    undo_ = Undo{true, 1, inflightBound_, reduced_, recoveryStartUs_};
    ++reductions_;
    reduced_ = true;
    recoveryStartUs_ = nowUs;
    Cut();
    // A probe that met a full queue has found the bandwidth: it ends now. (Startup goes on: a flow that
    // joins others met their queue, and ending its Startup there left it a fraction of its share.)
    if (state_ == CongestionState::kProbeBandwidth && ProbeGain(cyclePhase_) > 1) NextPhase(nowUs, pathMinUs);
    return {reductions_, false};
  }

  // The round trip of the newest packet an acknowledgement acknowledged.
  void OnRttSample(uint64_t sampleUs) { cycleMinRttUs_ = std::min(cycleMinRttUs_, sampleUs); }

  // A packet declared lost was acknowledged after all (reordered); reduction: what OnLost gave for it. Once
  // every loss of the last cut has proved spurious, the cut is undone (as TCP's Eifel response does), its
  // recovery period with it; one real loss among them (a packet of the same flush, say) and it stands.
  void OnSpuriousLoss(uint64_t reduction) {
    if (!undo_.possible || reduction == 0 || reduction != reductions_ || --undo_.unproven > 0) return;
    inflightBound_ = std::max(inflightBound_, undo_.inflightBound);
    reduced_ = undo_.reduced;
    recoveryStartUs_ = undo_.recoveryStartUs;
    undo_.possible = false;
  }

  // Persistent congestion (every packet sent over three probe timeouts lost, RFC 9002 §7.6): the path may
  // have changed. The window goes to its minimum and the model is measured afresh from Startup; what the
  // losses that showed it would have set (an outage is no measure of the path) is not kept.
  void OnPersistentCongestion() {
    window_ = kMinimumWindow;
    inflightBound_ = UINT64_MAX;
    bandwidth_ = 0;
    std::fill(roundMax_, roundMax_ + kBandwidthRounds, 0.0);
    fullBandwidth_ = 0;
    fullBandwidthRounds_ = 0;
    state_ = CongestionState::kStartup;
    reduced_ = false;  // no recovery period (RFC 9002 §7.6.2): the window grows from the next acknowledgement
    undo_.possible = false;
  }

 private:
  static constexpr size_t kBandwidthRounds = 10;  // the bandwidth filter's length, in round trips
  static constexpr int kCyclePhases = 8;
  static double ProbeGain(int phase) { return phase == 0 ? 1.25 : phase == 1 ? 0.75 : 1.0; }

  double PacingGain() const {
    switch (state_) {
      case CongestionState::kStartup: return kStartupGain;
      case CongestionState::kDrain: return 1 / kStartupGain;
      default: return ProbeGain(cyclePhase_);
    }
  }
  double WindowGain() const { return state_ == CongestionState::kProbeBandwidth ? 2.0 : kStartupGain; }

  // How far above the path's minimum a round trip may be and show no standing queue: the slack jitter
  // needs, and the time a pacing burst takes at the bottleneck (two full packets at least: the minimum
  // may be a small packet's, and a packet may wait for the one ahead of it). Else the queue of each burst
  // read as standing (at 10 Mbit/s two packets take 2 ms, where the slack alone is 0.25 ms).
  uint64_t QueueAllowanceUs(uint64_t pathMinUs) const {
    const double burstUs = bandwidth_ > 0 ? BurstBytesAt(bandwidth_) / bandwidth_ : 0;
    return QueueSlackUs(pathMinUs) + static_cast<uint64_t>(burstUs);
  }

  uint64_t Bdp(uint64_t pathMinUs) const { return static_cast<uint64_t>(bandwidth_ * static_cast<double>(pathMinUs)); }
  // The window the model asks for: the gain's share of the bandwidth-delay product, and room for two
  // pacing bursts (a burst and the acknowledgements the receiver holds back).
  uint64_t TargetWindow(uint64_t pathMinUs) const {
    if (bandwidth_ <= 0 || pathMinUs == 0) return kInitialWindow;
    const double bdp = bandwidth_ * static_cast<double>(pathMinUs);
    return std::max(kMinimumWindow, static_cast<uint64_t>(WindowGain() * bdp + 2 * BurstBytesAt(bandwidth_)));
  }

  void GrowWindow(const AckedPacket& packet, uint64_t pathMinUs, bool windowInUse) {
    if (held_ != UINT64_MAX) return;
    const uint64_t target = TargetWindow(pathMinUs);
    if (state_ == CongestionState::kStartup) {
      // Slow start's doubling until the bandwidth is found; a window that is not used does not grow.
      if (windowInUse && window_ < target) window_ += packet.bytes;
      return;
    }
    window_ = std::min(window_ + packet.bytes, target);
  }

  // Startup ends when three round trips in a row raised the bandwidth by less than a quarter.
  void CheckFullBandwidth() {
    if (bandwidth_ >= fullBandwidth_ * 1.25) {
      fullBandwidth_ = bandwidth_;
      fullBandwidthRounds_ = 0;
      return;
    }
    if (++fullBandwidthRounds_ >= 3) state_ = CongestionState::kDrain;
  }

  void EnterProbeBandwidth(uint64_t nowUs) {
    state_ = CongestionState::kProbeBandwidth;
    // Any phase but the 3/4 one, which drains what a probe queued, where nothing was queued yet.
    cyclePhase_ = static_cast<int>(cycleSeed_ % (kCyclePhases - 1));
    if (cyclePhase_ == 1) cyclePhase_ = kCyclePhases - 1;
    phaseStartUs_ = nowUs;
  }

  // A phase lasts a round trip of the path at least. A probe goes on until it has put a quarter of the
  // bandwidth-delay product more in flight (or met a full queue: OnLost); the drain after it ends as soon
  // as no more than the bandwidth-delay product is in flight.
  void AdvanceCycle(uint64_t nowUs, uint64_t pathMinUs, uint64_t inFlight) {
    const bool phaseDone = nowUs - phaseStartUs_ > pathMinUs;
    const double gain = ProbeGain(cyclePhase_);
    const double bdp = static_cast<double>(Bdp(pathMinUs));
    bool next = phaseDone;
    if (gain > 1) next = phaseDone && (static_cast<double>(inFlight) >= gain * bdp || inFlight + kMaxPacketBytes > window());
    if (gain < 1) next = phaseDone || static_cast<double>(inFlight) <= bdp;
    if (next) NextPhase(nowUs, pathMinUs);
  }
  // Once a cycle, before the probe: if no round trip of the whole cycle (its drain phase included) came
  // near the path's minimum, a queue stands that this flow's drains did not empty: the flows that share
  // the bottleneck send more than it carries between them, and each cuts as for a loss. Without this,
  // where the queue is deep enough never to overflow, flows that share it keep whatever split they began
  // with: each one's window follows its own bandwidth samples.
  void NextPhase(uint64_t nowUs, uint64_t pathMinUs) {
    cyclePhase_ = (cyclePhase_ + 1) % kCyclePhases;
    phaseStartUs_ = nowUs;
    if (cyclePhase_ != 0) return;
    if (pathMinUs != 0 && cycleMinRttUs_ != UINT64_MAX && cycleMinRttUs_ > pathMinUs + QueueAllowanceUs(pathMinUs)) Cut();
    cycleMinRttUs_ = UINT64_MAX;
  }

  // Congestion: the bound on the bytes in flight falls to 7/10 of the window, and grows back from a packet.
  void Cut() {
    inflightBound_ = std::max(window() * 7 / 10, kMinimumWindow);
    boundStep_ = kMaxPacketBytes;
  }

  // Sent before the last cut: a loss of it is part of that event.
  bool InRecovery(uint64_t sentUs) const { return reduced_ && sentUs <= recoveryStartUs_; }

  uint32_t cycleSeed_;
  CongestionState state_ = CongestionState::kStartup;
  uint64_t window_ = kInitialWindow;
  uint64_t inflightBound_ = UINT64_MAX;  // set by congestion (OnLost); UINT64_MAX when none
  uint64_t boundStep_ = kMaxPacketBytes;  // what the bound grows by at the next round trip without congestion
  uint64_t held_ = UINT64_MAX;           // the cap of a drain, UINT64_MAX when none

  // The bandwidth filter: the largest sample of each of the last kBandwidthRounds round trips.
  double roundMax_[kBandwidthRounds] = {};
  double bandwidth_ = 0;
  uint64_t rounds_ = 0;
  uint64_t roundEndDelivered_ = 0;  // a packet sent once this much was delivered ends the round trip
  bool roundAppLimited_ = false;
  bool lossInRound_ = false;  // a congestive loss
  double fullBandwidth_ = 0;
  int fullBandwidthRounds_ = 0;
  int cyclePhase_ = 0;
  uint64_t phaseStartUs_ = 0;
  uint64_t cycleMinRttUs_ = UINT64_MAX;  // the smallest round trip since the cycle began

  uint64_t recoveryStartUs_ = 0;
  bool reduced_ = false;     // a cut was made: recoveryStartUs_ holds when
  uint64_t reductions_ = 0;  // made so far: the number of the last
  // The last cut: its losses not yet proved spurious, and what it changed.
  struct Undo {
    bool possible = false;
    uint64_t unproven = 0;
    uint64_t inflightBound = 0;
    bool reduced = false;
    uint64_t recoveryStartUs = 0;
  } undo_;
};

}  // namespace volley::delivery
