// Two delivery cores joined by a simulated network (loss, latency, jitter, duplication, reordering)
// and driven by a fake clock: time jumps from event to event (a packet arriving, a core's deadline),
// so a 20-second exchange takes as long as its packets take to process.
import { loadTestingAddon } from '../testing-addon.ts'
import type { NetworkSimulatorOptions } from '../../src/api/network-simulator.ts'
import { seededRandom } from '../helpers.ts'

/**
 * The engine simulator's conditions (the clocks are SideClock here, the seed the pair's), with the
 * bandwidth as a bottleneck each way that packets wait for in a queue of queueBytes (tail drop).
 */
export interface LinkConditions extends Omit<NetworkSimulatorOptions, 'seed' | 'clockOffsetMs' | 'clockDriftPpm'> {
  queueBytes?: number
  /** Extra latency, ms, on the way to b only and on the way to a only: an asymmetric path. */
  extraLatencyToBMs?: number
  extraLatencyToAMs?: number
  /**
   * A path's one-off events, applied after the random ones: the extra delay (µs) of a packet sent at true
   * time `sentUs` on its way `to`, or null to lose it.
   */
  shape?: (packet: { to: 'a' | 'b'; sentUs: number; data: Uint8Array }) => number | null
}

export interface DeliveryOptions {
  channels?: ('reliable' | 'unreliable' | 'sequenced')[]
  maxMessageBytes?: number
  sendQueueBytes?: number
  reassemblyBytes?: number | undefined
  reliableWindow?: number
  fragmentTimeoutUs?: number
  pingIntervalUs?: number
  /** The server's side: pings with its pongs to the other side's pings (delivery.h). */
  followsPings?: boolean
  /** The key a core skips packet numbers by (16 bytes); null: none skipped. Unset, testPacketSkipKey: as an engine's cores, they skip. */
  packetSkipKey?: Uint8Array | null
  /** A reliable message the peer started and stopped sending stalls the core after this long (0 or unset: never). */
  reliableStallUs?: number
  /** A reassembly budget the core shares with others made with it (reassemblyBudget()). */
  budget?: TestBudget
}

/** A reassembly budget, for cores to share (the binding's interface). */
export interface TestBudget {
  used(): number
  evictions(): number
  refusals(): number
}

type StatName =
  | 'packetsIn' | 'packetsOut' | 'bytesIn' | 'bytesOut' | 'messagesIn' | 'messagesOut' | 'messageBytesIn' | 'messageBytesOut'
  | 'ackElicitingOut' | 'packetsAcked' | 'packetsLost' | 'resends' | 'probeTimeouts' | 'persistentCongestion' | 'rttDrains' | 'spuriousLosses' | 'malformed' | 'duplicatePackets'
  | 'duplicateMessages' | 'staleSequenced' | 'overBudget' | 'expiredFragments' | 'unknownChannel' | 'oversized' | 'mismatched' | 'forgottenPackets'
  | 'smoothedRttUs' | 'rttVariationUs' | 'rttVarianceUs2' | 'minRttUs' | 'pathMinRttUs' | 'maxRttUs' | 'rttSamples' | 'congestionWindow' | 'congestionState' | 'congestionCuts' | 'pacingRateBytesPerSec' | 'draining' | 'bytesInFlight'
  | 'queuedBytes' | 'queuedMessages' | 'reassemblyUsed' | 'reassemblyHeld' | 'clockSamples' | 'jitterUs' | 'clockOffsetUs' | 'clockErrorBoundUs'
  | 'bandwidthBytesPerSec' | 'sentRecords' | 'sentRecordsHeld' | 'queueSlots' | 'receiveSlotBytes' | 'heldMessageBytes' | 'lostRecords' | 'reassemblyMade' | 'spareBytes' | 'partialScans' | 'queueGiveBacks' | 'budgetHeld'

export interface NativeDeliveryCore {
  send(channel: number, data: Uint8Array, nowUs: number): 'queued' | 'queue-full' | 'too-large' | 'no-channel'
  receive(packet: Uint8Array, nowUs: number): void
  flush(nowUs: number): void
  update(nowUs: number): void
  take(): { packets: Uint8Array[]; messages: { channel: number; data: Uint8Array }[] }
  nextDeadlineUs(nowUs: number): number
  stats(nowUs?: number): Record<StatName, number> & { countsAgree: boolean }
  /** What the peer's SETTINGS frame announced; null before it arrives. */
  peerSettings(): { maxMessageBytes: number; channels: ('reliable' | 'unreliable' | 'sequenced')[] } | null
  mismatch(): 'none' | 'channel-modes' | 'no-delivery-layer'
  /** Sends `copies` packets of this side's settings alone. */
  announceSettings(nowUs: number, copies: number): void
  /** Whether a stalled reliable message or its budget's eviction ended what the core takes. */
  stalled(): boolean
}

/** The key the suites' cores skip packet numbers by, unless a test gives its own or null. */
export const testPacketSkipKey = Uint8Array.from({ length: 16 }, (_, i) => 0x51 + i)

/** The options as the test binding takes them: the suites' skip key unless given (null: none). */
function withPacketSkipKey(options: DeliveryOptions): DeliveryOptions {
  return options.packetSkipKey === undefined ? { ...options, packetSkipKey: testPacketSkipKey } : options
}

/** A native delivery core (the addon's test binding, native/testing/delivery_binding.cc). */
export function deliveryCore(options: DeliveryOptions = {}): NativeDeliveryCore {
  const addon = loadTestingAddon() as unknown as { DeliveryCore: new (options: DeliveryOptions) => NativeDeliveryCore }
  return new addon.DeliveryCore(withPacketSkipKey(options))
}

/** A native reassembly budget of `limitBytes`, for cores to share. */
export function reassemblyBudget(limitBytes: number): TestBudget {
  const addon = loadTestingAddon() as unknown as { ReassemblyBudget: new (limitBytes: number) => TestBudget }
  return new addon.ReassemblyBudget(limitBytes)
}

/** A clock that runs at (1 + skew) × true time, plus an offset (µs). */
export interface SideClock {
  skew: number
  offsetUs: number
}

type Side = 'a' | 'b'
interface InFlight {
  at: number
  to: Side
  data: Uint8Array
}

export class SimulatedPair {
  readonly a: NativeDeliveryCore
  readonly b: NativeDeliveryCore
  /** True time, µs. */
  now = 0
  readonly received: Record<Side, { channel: number; data: Uint8Array; at: number }[]> = { a: [], b: [] }
  readonly onMessage: Partial<Record<Side, (channel: number, data: Uint8Array, at: number) => void>> = {}
  packetsCarried = 0
  packetsLost = 0
  /** Dropped by the bottleneck's full queue (not counted in packetsLost, the random loss). */
  packetsQueueDropped = 0
  /** The longest a packet waited in the bottleneck's queue, µs. */
  maxQueueDelayUs = 0
  /** Called with each packet's wait in the bottleneck's queue, µs, as it enters it. */
  onQueueDelay: ((delayUs: number) => void) | undefined
  readonly #bottleneckFreeAt: Record<Side, number> = { a: 0, b: 0 }
  #inFlight: InFlight[] = []
  readonly #random: () => number
  readonly #clocks: Record<Side, SideClock>

  constructor(
    options: DeliveryOptions,
    readonly link: LinkConditions = {},
    seed = 1,
    clocks: Partial<Record<Side, SideClock>> = {},
    optionsB: DeliveryOptions = options,
  ) {
    // As a client and its server: a leads the pings, b follows.
    this.a = deliveryCore(options)
    this.b = deliveryCore({ followsPings: true, ...optionsB })
    this.#random = seededRandom(seed)
    this.#clocks = { a: clocks.a ?? { skew: 0, offsetUs: 0 }, b: clocks.b ?? { skew: 0, offsetUs: 0 } }
  }

  core(side: Side): NativeDeliveryCore {
    return side === 'a' ? this.a : this.b
  }

  /** The side's own clock at the current true time. */
  clock(side: Side, at = this.now): number {
    const { skew, offsetUs } = this.#clocks[side]
    return Math.floor(at * (1 + skew) + offsetUs)
  }

  send(side: Side, channel: number, data: Uint8Array): string {
    const result = this.core(side).send(channel, data, this.clock(side))
    this.core(side).flush(this.clock(side))
    this.#collect(side)
    return result
  }

  /** Runs until true time `until` (µs) or until `done()` holds after an event. */
  run(until: number, done: () => boolean = () => false): void {
    while (this.now < until) {
      let next = until
      for (const packet of this.#inFlight) next = Math.min(next, packet.at)
      for (const side of ['a', 'b'] as const) next = Math.min(next, this.#trueTime(side, this.core(side).nextDeadlineUs(this.clock(side))))
      this.now = Math.max(this.now, Math.min(next, until))
      const arriving = this.#inFlight.filter((packet) => packet.at <= this.now)
      this.#inFlight = this.#inFlight.filter((packet) => packet.at > this.now)
      arriving.sort((x, y) => x.at - y.at)
      for (const packet of arriving) this.core(packet.to).receive(packet.data, this.clock(packet.to))
      for (const side of ['a', 'b'] as const) {
        this.core(side).update(this.clock(side))
        this.#collect(side)
      }
      if (done()) break
    }
    // The cores' running counts (native/protocol/delivery/delivery.h, CountsAgree), checked after every run.
    for (const side of ['a', 'b'] as const) {
      if (!this.core(side).stats().countsAgree) throw new Error(`side ${side}: a running count disagrees with what it counts`)
    }
  }

  #trueTime(side: Side, clockUs: number): number {
    const { skew, offsetUs } = this.#clocks[side]
    return Math.ceil((clockUs - offsetUs) / (1 + skew))
  }

  #collect(side: Side): void {
    const { packets, messages } = this.core(side).take()
    for (const message of messages) {
      this.received[side].push({ ...message, at: this.now })
      this.onMessage[side]?.(message.channel, message.data, this.now)
    }
    const to: Side = side === 'a' ? 'b' : 'a'
    const { loss = 0, jitterMs = 0, duplicate = 0, reorder = 0, bandwidthBytesPerSec, queueBytes = Infinity } = this.link
    const latencyMs = (this.link.latencyMs ?? 0) + ((to === 'b' ? this.link.extraLatencyToBMs : this.link.extraLatencyToAMs) ?? 0)
    for (const data of packets) {
      this.packetsCarried++
      let leavesAt = this.now
      if (bandwidthBytesPerSec !== undefined) {
        const start = Math.max(this.now, this.#bottleneckFreeAt[to])
        const waitingBytes = ((start - this.now) * bandwidthBytesPerSec) / 1e6
        if (waitingBytes + data.byteLength > queueBytes) {
          this.packetsQueueDropped++
          continue
        }
        this.maxQueueDelayUs = Math.max(this.maxQueueDelayUs, start - this.now)
        this.onQueueDelay?.(start - this.now)
        this.#bottleneckFreeAt[to] = start + (data.byteLength * 1e6) / bandwidthBytesPerSec
        leavesAt = this.#bottleneckFreeAt[to]
      }
      if (this.#random() < loss) {
        this.packetsLost++
        continue
      }
      const copies = this.#random() < duplicate ? 2 : 1
      const shaped = this.link.shape === undefined ? 0 : this.link.shape({ to, sentUs: this.now, data })
      if (shaped === null) {
        this.packetsLost++
        continue
      }
      for (let copy = 0; copy < copies; copy++) {
        let delay = shaped + latencyMs * 1000 + (this.#random() * 2 - 1) * jitterMs * 1000
        if (this.#random() < reorder) delay += latencyMs * 1000 + 2000 // held back: later packets overtake it
        this.#inFlight.push({ at: Math.max(this.now + 1, Math.round(leavesAt + delay)), to, data })
      }
    }
  }
}

/** A message whose bytes say which one it is: u32 index, u32 length, then a pattern. */
export function numberedMessage(index: number, size: number): Uint8Array {
  const bytes = new Uint8Array(Math.max(8, size))
  const view = new DataView(bytes.buffer)
  view.setUint32(0, index, true)
  view.setUint32(4, bytes.byteLength, true)
  for (let i = 8; i < bytes.byteLength; i++) bytes[i] = (index * 31 + i) & 0xff
  return bytes
}

/** The index of a numberedMessage, after checking every byte of it (-1 when it is damaged). */
export function readNumberedMessage(bytes: Uint8Array): number {
  if (bytes.byteLength < 8) return -1
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const index = view.getUint32(0, true)
  if (view.getUint32(4, true) !== bytes.byteLength) return -1
  for (let i = 8; i < bytes.byteLength; i++) if (bytes[i] !== ((index * 31 + i) & 0xff)) return -1
  return index
}

/** The size of every fragment but a message's last (native/protocol/delivery/wire_format.h, kFragmentBytes). */
export const fragmentBytes = 1100

/** The bytes of a block of a message in reassembly, made at its first fragment (native/protocol/delivery/fragment_store.h, kBlockBytes). */
export const blockBytes = 16 * fragmentBytes

/** A message or fragment frame of a delivery packet: which part of which message it carries. */
export interface DataFrame {
  channel: number
  sequence: number
  /** 0 for a message sent whole. */
  fragment: number
}

/** The message and fragment frames of a delivery packet (native/protocol/delivery/wire_format.h), in order. */
export function dataFrames(packet: Uint8Array): DataFrame[] {
  return parseFrames(packet).data
}

/** The types of a delivery packet's frames, in order. */
export function frameTypes(packet: Uint8Array): number[] {
  return parseFrames(packet).types
}

/** The PING frames of a delivery packet: what a pong to each must echo. */
export function pingFrames(packet: Uint8Array): { id: number; clockUs: number }[] {
  return parseFrames(packet).pings
}

function parseFrames(packet: Uint8Array): { types: number[]; data: DataFrame[]; pings: { id: number; clockUs: number }[] } {
  let at = 1 // the marker
  const next = (): number => {
    let value = 0
    for (let scale = 1; ; scale *= 128) {
      const byte = packet[at++]!
      value += (byte & 0x7f) * scale
      if (byte < 0x80) return value
    }
  }
  const skip = (count: number): void => {
    for (let i = 0; i < count; i++) next()
  }
  next() // packet number
  const frames: DataFrame[] = []
  const types: number[] = []
  const pings: { id: number; clockUs: number }[] = []
  while (at < packet.byteLength) {
    const type = packet[at++]!
    types.push(type)
    if (type === 0x01) {
      skip(3)
      skip(2 * next())
    } else if (type === 0x02) {
      const id = next()
      pings.push({ id, clockUs: next() })
    } else if (type === 0x03) {
      skip(4)
    } else if (type === 0x05) {
      at++ // the role
      next() // the largest message
      const channels = next()
      at += channels // a mode per channel
    } else if (type === 0x10 || type === 0x11) {
      const channel = packet[at++]!
      const sequence = next()
      const length = next()
      const fragment = type === 0x11 ? next() : 0
      frames.push({ channel, sequence, fragment })
      at += type === 0x10 ? length : Math.min(fragmentBytes, length - fragment * fragmentBytes)
    } else if (type !== 0x04) {
      throw new Error(`frame type ${type} at ${at - 1}`)
    }
  }
  return { types, data: frames, pings }
}

const modeCodes = { reliable: 1, unreliable: 2, sequenced: 3 } as const

/**
 * The SETTINGS frame of the peer of a core made with `options`: the other role, the same channels, the
 * largest maximum. A peer puts it first in each packet until it has a pong; hand-built packets without it
 * come, to the core, from a peer without channels, and deliver nothing.
 */
export function peerSettingsFrame(options: DeliveryOptions): number[] {
  const modes = (options.channels ?? ['reliable']).map((mode) => modeCodes[mode])
  return [0x05, options.followsPings === true ? 0 : 1, ...varint(2 ** 30), ...varint(modes.length), ...modes]
}

/** A varint of the delivery layer's frames (native/protocol/delivery/wire_format.h), for packets built by hand. */
export function varint(value: number | bigint): number[] {
  let v = BigInt(value)
  const out: number[] = []
  do {
    out.push(Number(v & 0x7fn) | (v >= 0x80n ? 0x80 : 0))
    v >>= 7n
  } while (v > 0n)
  return out
}

/** The packet number of a delivery packet (after its marker byte). */
export function packetNumber(packet: Uint8Array): number {
  let value = 0
  for (let at = 1, scale = 1; ; scale *= 128) {
    const byte = packet[at++]!
    value += (byte & 0x7f) * scale
    if (byte < 0x80) return value
  }
}

/** A delivery packet numbered `number` that holds one ACK frame for the packet numbers `acked`. */
export function ackPacket(number: number, acked: Iterable<number>): Uint8Array {
  const descending = [...new Set(acked)].sort((a, b) => b - a)
  const ranges: { low: number; high: number }[] = []
  for (const n of descending) {
    const last = ranges.at(-1)
    if (last !== undefined && last.low - 1 === n) last.low = n
    else ranges.push({ low: n, high: n })
  }
  const [first] = ranges as [{ low: number; high: number }]
  const bytes = [0xd1, ...varint(number), 0x01, ...varint(first.high), ...varint(0), ...varint(first.high - first.low), ...varint(ranges.length - 1)]
  for (let i = 1; i < ranges.length; i++) bytes.push(...varint(ranges[i - 1]!.low - ranges[i]!.high - 2), ...varint(ranges[i]!.high - ranges[i]!.low))
  return Uint8Array.from(bytes)
}
