// Generated from native/protocol/delivery/ (delivery.h, link_stats.h) by scripts/generate-constants.mjs: do not edit.

/** What a queued message costs the send queue beyond its bytes. */
export const queuedMessageOverheadBytes = 64

/** The channels' defaults: the delivery core's own. */
export const deliveryDefaults = {
  maxMessageBytes: 1048576,
  sendQueueBytes: 8388608,
  /** A connection's reassembly bound, unless set: the largest message and this much. */
  reassemblyHeadroomBytes: 1048576,
} as const

/** A connection's link statistics: their indices in its linkFields doubles (link_stats.h). */
export const LinkField = {
  rttSmoothedUs: 0,
  rttMinUs: 1,
  rttMaxUs: 2,
  rttVarianceUs2: 3,
  jitterUs: 4,
  packetsSent: 5,
  packetsLost: 6,
  resends: 7,
  queuedMessages: 8,
  queuedBytes: 9,
  oldestQueuedUs: 10,
  clockOffsetUs: 11,
  clockDrift: 12,
  clockReferenceUs: 13,
  releasedBytes: 14,
  dropped: 15,
  congestionWindow: 16,
  bytesInFlight: 17,
  pathBytesPerSec: 18,
  releasedMessages: 19,
  clockExchanges: 20,
  clockErrorUs: 21,
  clockErrorGrowth: 22,
} as const
/** Doubles of link statistics per peer (LinkField). */
export const linkFields = 23
