// What a delivery core is configured with, what it reports and whom it reports to (native/protocol/delivery/delivery.h
// says the same of the native core, with the reasons for each default).
import type { ChannelModeCode } from './wire-format.ts'

export interface DeliveryConfig {
  channels: readonly ChannelModeCode[]
  maxMessageBytes: number
  /** Bytes the application may queue (each message counting queuedMessageOverheadBytes more) before send() refuses. */
  sendQueueBytes: number
  /** Bytes the receiver holds for messages not yet delivered; 0: the largest message plus 1 MiB. */
  reassemblyBytes: number
  /** A reliable channel sends no message more than this many sequence numbers past its oldest unacknowledged one. */
  reliableWindow: number
  /** Incomplete unreliable or sequenced messages are dropped after this long. */
  fragmentTimeoutUs: number
  /** A reliable message started and no new fragment of any for this long stalls the connection; 0: never (delivery.h). */
  reliableStallUs: number
  maxAckDelayUs: number
  pingIntervalUs: number
  /** Pongs at most this often. */
  minPongIntervalUs: number
  /** The server's side: it pings with its pongs to the client's pings (delivery.h). */
  followsPings: boolean
  initialRttUs: number
}

export const defaultDeliveryConfig: Readonly<DeliveryConfig> = Object.freeze({
  channels: Object.freeze([1 as ChannelModeCode]),
  maxMessageBytes: 1 << 20,
  sendQueueBytes: 8 << 20,
  reassemblyBytes: 0,
  reliableWindow: 1024,
  fragmentTimeoutUs: 5_000_000,
  reliableStallUs: 0,
  maxAckDelayUs: 1000,
  pingIntervalUs: 100_000,
  minPongIntervalUs: 50_000,
  followsPings: false,
  initialRttUs: 100_000,
})

/** What a queued message costs the send queue beyond its bytes (native/protocol/delivery/delivery.h). */
export const queuedMessageOverheadBytes = 64

/** Called from within the core's own methods; a sink must not call back into the same core. */
export interface DeliverySink {
  /** One netcode payload: its bytes are the core's, valid during the call. */
  sendPacket(data: Uint8Array): void
  /** owned: the bytes are the message's alone and the sink may keep them; else valid during the call. */
  message(channel: number, data: Uint8Array, owned: boolean): void
  /**
   * The connection stalled (DeliveryCore.stalled): called once, possibly from within another core's call (its
   * budget evicted this one). The sink ends the connection later, not from here.
   */
  stalled?(): void
}

export type SendResult = 'queued' | 'queue-full' | 'too-large' | 'no-channel'

/** Why the two sides' delivery layers cannot work together; the connection should end. */
export const Mismatch = { none: 0, channelModes: 1, noDeliveryLayer: 2 } as const
export type Mismatch = (typeof Mismatch)[keyof typeof Mismatch]

/** What the peer's SETTINGS frame said (the first one). */
export interface PeerSettings {
  known: boolean
  maxMessageBytes: number
  channels: ChannelModeCode[]
}

/** The native core's DeliveryStats, field for field. */
export class DeliveryStats {
  packetsIn = 0
  packetsOut = 0
  bytesIn = 0
  bytesOut = 0
  messagesIn = 0
  messagesOut = 0
  messageBytesIn = 0
  messageBytesOut = 0
  ackElicitingOut = 0
  packetsAcked = 0
  packetsLost = 0
  /** Message frames sent again after a loss or a probe timeout. */
  resends = 0
  probeTimeouts = 0
  persistentCongestion = 0
  /** Times the window was held low to recheck the path's minimum RTT. */
  rttDrains = 0
  /** Packets declared lost, then acknowledged (reordered, not lost): not in packetsLost. */
  spuriousLosses = 0
  // Dropped on receive, by cause.
  malformed = 0
  duplicatePackets = 0
  duplicateMessages = 0
  staleSequenced = 0
  overBudget = 0
  expiredFragments = 0
  unknownChannel = 0
  /** Older than the record of packets seen: a copy or not, cannot be told. */
  forgottenPackets = 0
  /** Messages over maxMessageBytes (the peer's maximum is larger), not delivered. */
  oversized = 0
  /** Messages not delivered once the channels were found not to match. */
  mismatched = 0
  /** Bytes of buffers made for reassembly, in all. */
  reassemblyMade = 0
  /**
   * Walks over every channel's incomplete unreliable messages (to evict or expire them): each frees one or
   * waits until one may be due, so a peer cannot make them happen per packet.
   */
  partialScans = 0
  /**
   * Channels looked at to give back the slots of drained queues: at most one per queue that drained, so a
   * peer that drains a queue every few frames cannot make each give-back walk every channel.
   */
  queueGiveBacks = 0
}
