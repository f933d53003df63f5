// The delivery layer as the fallback engine runs it on each connection: the TypeScript core
// (src/protocol/delivery/) with what the native engine keeps beside it (native/engine/netcode_sockets.h's DeliveryLink,
// native/protocol/delivery/link_stats.h, native/protocol/delivery/delivery_clock.h): the records JavaScript waits for (drain, flushed,
// the peer's settings), the wait for those settings, link statistics in the native layout, and the clock
// the network simulator may set off.
import { DeliveryCore, type DeliveryConfig, type DeliverySink, Mismatch, defaultDeliveryConfig } from '../../protocol/delivery/delivery-core.ts'
import { ReassemblyBudget } from '../../protocol/delivery/reassembly-budget.ts'
import { packetSkipKeyBytes } from '../../protocol/delivery/sending.ts'
import { ChannelModeCode } from '../../protocol/delivery/wire-format.ts'
import { randomBytes } from '../../protocol/netcode/sodium.ts'
import type { NativeDeliveryFields } from '../native/addon.ts'
import { type DisconnectCode, LinkField, PeerRecordKind, linkFields } from '../layout.ts'
import type { RecordBatch } from '../record-batch.ts'

/** Packets of settings alone sent before a connection ends for a mismatch of channels. */
export const mismatchAnnouncements = 2

/** How long each side waits for the peer's settings once connected: a few pings' worth, at least 2 s. */
export const settingsWaitUs = (config: DeliveryConfig): number => Math.max(2_000_000, 4 * config.pingIntervalUs)

/**
 * The clock a socket's delivery layer reads: the monotonic clock, or one the network simulator's
 * clockOffsetMs and clockDriftPpm set ahead of it and running fast or slow. Deadlines in its time go back
 * to the monotonic clock through real().
 */
export class DeliveryClock {
  constructor(
    readonly offsetUs = 0,
    /** µs gained per µs; > -1. */
    readonly drift = 0,
    /** Monotonic time the drift counts from. */
    readonly startUs = 0,
  ) {}

  get skewed(): boolean {
    return this.offsetUs !== 0 || this.drift !== 0
  }

  local(realUs: number): number {
    if (!this.skewed) return realUs
    const since = realUs > this.startUs ? realUs - this.startUs : 0
    return Math.floor(realUs + this.offsetUs + this.drift * since)
  }

  /** The monotonic time at which this clock reads localUs. */
  real(localUs: number): number {
    if (!this.skewed || localUs === Number.POSITIVE_INFINITY) return localUs
    const since = (localUs - this.offsetUs - this.startUs) / (1 + this.drift)
    return since <= 0 ? this.startUs : this.startUs + Math.ceil(since)
  }

  /** This clock minus the monotonic one at realUs, µs. */
  aheadUs(realUs: number): number {
    return this.local(realUs) - realUs
  }
}

/** A socket's delivery settings, from the native protocol options (native/napi/binding.cc reads the same). */
export interface DeliverySetup {
  config: DeliveryConfig
  /** JavaScript's per-connection send limit: a drain record at half of it (the core's own limit is four times it). */
  queueLimitBytes: number
  clock: DeliveryClock
  /** A server's: the reassembly memory its connections share; null: none. */
  budget: ReassemblyBudget | null
}

export function deliverySetup(fields: NativeDeliveryFields, followsPings: boolean, nowUs: number): DeliverySetup | undefined {
  if (fields.channels === undefined) return undefined
  const queueLimitBytes = fields.sendQueueBytes ?? 8 << 20
  const config: DeliveryConfig = {
    ...defaultDeliveryConfig,
    channels: fields.channels.map((mode) => ChannelModeCode[mode]),
    maxMessageBytes: fields.maxMessageBytes ?? defaultDeliveryConfig.maxMessageBytes,
    sendQueueBytes: queueLimitBytes * 4,
    pingIntervalUs: fields.pingIntervalUs ?? defaultDeliveryConfig.pingIntervalUs,
    reliableStallUs: fields.reliableStallUs ?? 0,
    followsPings,
  }
  const simulator = fields.networkSimulator
  const clock = simulator === undefined ? new DeliveryClock() : new DeliveryClock(simulator.clockOffsetUs, simulator.clockDriftPpm * 1e-6, nowUs)
  const budgetBytes = fields.reassemblyBudgetBytes ?? 0
  return { config, queueLimitBytes, clock, budget: budgetBytes > 0 ? new ReassemblyBudget(budgetBytes) : null }
}

/** One connection's delivery core and what the engine keeps beside it. */
export class DeliveryLink {
  readonly core: DeliveryCore
  /** Sent to or received from since the last flush. */
  dirty = false
  /** JavaScript waits for room in the queue, */
  watched = false
  /** for a message of this charge (watchRoom). */
  watchedCharge = 0
  /** JavaScript waits for the queue to empty. */
  flushWatched = false
  /** The peer's settings went to JavaScript. */
  settingsReported = false
  /**
   * 0, or why the connection ends for its delivery layer (beginEnding): a mismatch of channels, the peer's
   * settings not come in time, or the core stalled.
   */
  ending: DisconnectCode | 0 = 0
  /** When the wait for the peer's settings ends (the core's clock). */
  settingsDeadlineUs: number

  constructor(
    readonly peer: number,
    config: DeliveryConfig,
    sink: DeliverySink,
    nowUs: number,
    budget: ReassemblyBudget | null = null,
  ) {
    // Each connection skips packet numbers by a key of its own (sending.ts).
    this.core = new DeliveryCore(config, sink, randomBytes(packetSkipKeyBytes), budget)
    this.settingsDeadlineUs = nowUs + settingsWaitUs(config)
  }

  /**
   * A send was refused: a drain record once the queue has room for it. data: the refused message's charge
   * (u32, little-endian: its bytes and its record's overhead), the largest since the last drain counting.
   */
  watchRoom(data: Uint8Array | undefined): void {
    this.watched = true
    const charge = data?.byteLength === 4 ? new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true) : 0
    this.watchedCharge = Math.max(this.watchedCharge, charge)
  }

  /**
   * The drain and flushed records JavaScript waits for, once their moment has come: a drain at half the
   * limit (not at every message acknowledged), or lower where the refused message would not fit then (a
   * drain it cannot use would have JavaScript try again, and again, until the queue emptied); one larger
   * than the limit waits for an empty queue, which takes any message.
   */
  reportQueue(records: RecordBatch, queueLimitBytes: number): void {
    const room = Math.max(0, queueLimitBytes - this.watchedCharge)
    if (this.watched && this.core.queuedCharge <= Math.min(queueLimitBytes / 2, room)) {
      this.watched = false
      this.watchedCharge = 0
      records.add(PeerRecordKind.drain, 0, this.peer, null, null)
    }
    if (this.flushWatched && this.core.queuedCharge === 0) {
      this.flushWatched = false
      records.add(PeerRecordKind.flushed, 0, this.peer, null, null)
    }
  }

  /** The settings record once the peer's settings are known; true when the two sides' channels do not work together. */
  reportSettings(records: RecordBatch): boolean {
    const settings = this.core.peerSettings
    const mismatch = this.core.mismatch !== Mismatch.none
    if (!this.settingsReported && settings.known) {
      this.settingsReported = true
      // The peer's largest message (u32), then its channels' modes.
      const data = new Uint8Array(4 + settings.channels.length)
      new DataView(data.buffer).setUint32(0, settings.maxMessageBytes, true)
      data.set(settings.channels, 4)
      records.add(PeerRecordKind.settings, mismatch ? 1 : 0, this.peer, null, data)
    }
    return mismatch
  }

  /** Whether the peer's settings are still to come: neither known nor found wanting. */
  get awaitsSettings(): boolean {
    return !this.core.peerSettings.known && this.core.mismatch === Mismatch.none
  }

  /** Their wait is over: the connection ends as for a mismatch. */
  settingsOverdue(nowUs: number): boolean {
    return this.ending === 0 && this.awaitsSettings && nowUs >= this.settingsDeadlineUs
  }

  /** Marks the connection as ending for its delivery layer, with the disconnect record's code that says why; true the first time. */
  beginEnding(code: DisconnectCode): boolean {
    if (this.ending !== 0) return false
    this.ending = code
    return true
  }

  /** The core's next deadline, or the end of the wait for the peer's settings. */
  nextDeadlineUs(nowUs: number): number {
    const next = this.core.nextDeadlineUs(nowUs)
    return this.ending === 0 && this.awaitsSettings && this.settingsDeadlineUs < next ? this.settingsDeadlineUs : next
  }
}

/**
 * A connection's link statistics into its row of `out` (linkFields doubles), as the native engine writes
 * them: clock the one the delivery layer reads, realUs the monotonic time now.
 */
export function writeLinkStats(core: DeliveryCore, clock: DeliveryClock, realUs: number, out: Float64Array, row: number): void {
  const nowUs = clock.local(realUs)
  const aheadUs = clock.aheadUs(realUs)
  const at = row * linkFields
  const rtt = core.rtt
  const stats = core.stats
  out[at + LinkField.rttSmoothedUs] = rtt.samples > 0 ? rtt.smoothedUs : 0
  out[at + LinkField.rttMinUs] = rtt.minUs
  out[at + LinkField.rttMaxUs] = rtt.maxUs
  out[at + LinkField.rttVarianceUs2] = rtt.varianceUs2
  out[at + LinkField.jitterUs] = rtt.jitterUs
  out[at + LinkField.packetsSent] = stats.ackElicitingOut
  out[at + LinkField.packetsLost] = stats.packetsLost
  out[at + LinkField.resends] = stats.resends
  out[at + LinkField.queuedMessages] = core.queuedMessages
  out[at + LinkField.queuedBytes] = core.queuedBytes
  const monotonicNowUs = nowUs - aheadUs
  out[at + LinkField.oldestQueuedUs] = core.queuedMessages > 0 ? monotonicNowUs - core.queueDelayUs(nowUs) : 0
  out[at + LinkField.clockOffsetUs] = core.clock.offsetUs(nowUs) + aheadUs
  // Against the monotonic clock, as the offset: measured against a skewed clock, it is not the peer's drift.
  out[at + LinkField.clockDrift] = core.clock.drift * (1 + clock.drift) + clock.drift
  out[at + LinkField.clockReferenceUs] = monotonicNowUs
  out[at + LinkField.releasedBytes] = core.releasedBytes
  out[at + LinkField.dropped] = stats.malformed + stats.overBudget + stats.unknownChannel + stats.expiredFragments + stats.staleSequenced + stats.oversized + stats.forgottenPackets + stats.mismatched
  out[at + LinkField.congestionWindow] = core.congestionWindow
  out[at + LinkField.bytesInFlight] = core.bytesInFlight
  out[at + LinkField.pathBytesPerSec] = core.bandwidthBytesPerUs * 1e6
  out[at + LinkField.releasedMessages] = core.releasedMessages
  out[at + LinkField.clockExchanges] = core.clock.samples
  out[at + LinkField.clockErrorUs] = core.clock.errorBoundUs(nowUs)
  out[at + LinkField.clockErrorGrowth] = core.clock.errorGrowth
}
