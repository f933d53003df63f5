// A connection's link statistics as plain doubles in shared memory: the I/O thread writes them after
// each delivery step, JavaScript reads them at any time through a Float64Array over the same memory
// (aligned 8-byte stores: never torn). Its TypeScript names are generated
// from this enum (scripts/emit-constants.cc).
#pragma once

#include <atomic>
#include <cstdint>

#include "protocol/delivery/delivery_clock.h"
#include "protocol/delivery/delivery.h"

namespace volley::delivery {

enum LinkField : uint32_t {
  kLinkRttSmoothedUs = 0,
  kLinkRttMinUs,
  kLinkRttMaxUs,
  kLinkRttVarianceUs2,
  kLinkJitterUs,
  kLinkPacketsSent,       // ack-eliciting packets sent: the base of the loss ratio
  kLinkPacketsLost,
  kLinkResends,
  kLinkQueuedMessages,
  kLinkQueuedBytes,
  kLinkOldestQueuedUs,    // monotonic µs when the oldest queued message was queued; 0 when none
  kLinkClockOffsetUs,     // the peer's clock minus our monotonic clock at kLinkClockReferenceUs
  kLinkClockDrift,        // µs per µs
  kLinkClockReferenceUs,
  kLinkReleasedBytes,     // bytes that have left the send queue since the connection began (back-pressure)
  kLinkDropped,           // received delivery packets or messages dropped (malformed, over budget, ...)
  kLinkCongestionWindow,  // bytes
  kLinkBytesInFlight,
  kLinkPathBytesPerSec,   // the delivery rate the congestion controller estimates for the path
  kLinkReleasedMessages,  // messages that have left the send queue since the connection began
  kLinkClockExchanges,    // ping/pong exchanges the clock has taken (0: the offset means nothing yet)
  kLinkClockErrorUs,      // the most the clock offset can be off at kLinkClockReferenceUs (infinite: unbounded)
  kLinkClockErrorGrowth,  // how fast that bound widens after it, µs per µs
  kLinkFieldCount
};

// clock: the one the delivery layer reads (the engine's monotonic clock, but under the network simulator's
// clock skew); realUs: the monotonic time now. Times, the clock offset and its drift are written against the
// monotonic clock, the one JavaScript reads.
inline void WriteLinkStats(const DeliveryCore& core, const DeliveryClock& clock, uint64_t realUs, std::atomic<double>* out) {
  const auto put = [out](LinkField field, double value) { out[field].store(value, std::memory_order_relaxed); };
  const uint64_t nowUs = clock.Local(realUs);
  const double aheadUs = clock.AheadUs(realUs);
  const RttEstimator& rtt = core.rtt();
  const DeliveryStats& stats = core.stats();
  put(kLinkRttSmoothedUs, rtt.samples() > 0 ? static_cast<double>(rtt.smoothedUs()) : 0);
  put(kLinkRttMinUs, static_cast<double>(rtt.minUs()));
  put(kLinkRttMaxUs, static_cast<double>(rtt.maxUs()));
  put(kLinkRttVarianceUs2, rtt.varianceUs2());
  put(kLinkJitterUs, rtt.jitterUs());
  put(kLinkPacketsSent, static_cast<double>(stats.ackElicitingOut));
  put(kLinkPacketsLost, static_cast<double>(stats.packetsLost));
  put(kLinkResends, static_cast<double>(stats.resends));
  put(kLinkQueuedMessages, static_cast<double>(core.queuedMessages()));
  put(kLinkQueuedBytes, static_cast<double>(core.queuedBytes()));
  const uint64_t delay = core.QueueDelayUs(nowUs);
  const double monotonicNowUs = static_cast<double>(nowUs) - aheadUs;
  put(kLinkOldestQueuedUs, core.queuedMessages() > 0 ? monotonicNowUs - static_cast<double>(delay) : 0);
  put(kLinkClockOffsetUs, core.clock().OffsetUs(nowUs) + aheadUs);
  // The offset moves by Drift() per µs of the delivery clock, which runs 1 + clock.drift µs per monotonic µs,
  // and aheadUs itself grows by clock.drift: what was measured against a skewed clock is not the peer's drift.
  put(kLinkClockDrift, core.clock().Drift() * (1 + clock.drift) + clock.drift);
  put(kLinkClockReferenceUs, monotonicNowUs);
  put(kLinkReleasedBytes, static_cast<double>(core.releasedBytes()));
  put(kLinkDropped, static_cast<double>(stats.malformed + stats.overBudget + stats.unknownChannel + stats.expiredFragments +
                                         stats.staleSequenced + stats.oversized + stats.forgottenPackets + stats.mismatched));
  put(kLinkCongestionWindow, static_cast<double>(core.congestionWindow()));
  put(kLinkBytesInFlight, static_cast<double>(core.bytesInFlight()));
  put(kLinkPathBytesPerSec, core.bandwidthBytesPerUs() * 1e6);
  put(kLinkReleasedMessages, static_cast<double>(core.releasedMessages()));
  put(kLinkClockExchanges, static_cast<double>(core.clock().samples()));
  put(kLinkClockErrorUs, core.clock().ErrorBoundUs(nowUs));
  put(kLinkClockErrorGrowth, core.clock().ErrorGrowth());
}

}  // namespace volley::delivery
