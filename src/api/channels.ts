// The delivery layer as Server, Client and Peer see it: channel options, the checks before a send, the
// per-connection send queue (back-pressure against what the I/O thread has released), link statistics
// and the synchronised clock, all read from the memory the I/O thread writes (no native call).
import { isUint8Array } from 'node:util/types'
import { checkAttached } from '../util/bytes.ts'
import type { NativeDeliveryFields } from '../engine/native/addon.ts'
import { LinkField, layout, linkFields } from '../engine/layout.ts'
import { deliveryDefaults } from '../protocol/delivery/config.ts'
import { monotonicUs } from '../engine/engine.ts'
import type { PacketCounts } from '../engine/peer-records.ts'
import { VolleyRangeError, VolleyTypeError, describe } from '../util/errors.ts'
import { checkOptions, integerOption } from '../util/options.ts'

/** The options of send(). */
const sendOptionNames: ReadonlySet<string> = new Set(['channel'])

/** How a channel delivers: see ChannelOptions.mode. */
export type ChannelMode = 'reliable' | 'unreliable' | 'sequenced'

/** One channel of the channels option. */
export interface ChannelOptions {
  /**
   * reliable: every message arrives once, in order; unreliable: may arrive out of order or not at all;
   * sequenced: unreliable, and never older than the newest delivered.
   */
  mode: ChannelMode
}

/** The options of the delivery layer (channels), which a Server and a Client both take. */
export interface DeliveryOptions {
  /**
   * Channels for messages of any size (up to maxMessageBytes), e.g. [{ mode: 'reliable' }, { mode: 'unreliable' }].
   * Without them, messages are raw netcode payloads of 1 to 1200 bytes (what any netcode 1.02 peer speaks).
   * Both sides configure channels, in the same modes: each side announces its own, and a channel in another
   * mode on the other side (or a peer without channels sending) ends the connection ('channels-mismatch').
   * A channel only one side has is refused by send() once the peer's channels are known (remoteChannels).
   */
  channels?: readonly ChannelOptions[] | undefined
  /**
   * The largest message, bytes (default 1 MiB; at most 1 GiB), sent or received. Each side announces its
   * own, before either reports the connection: send() refuses a message over the peer's (remoteChannels). A
   * larger one that comes all the same is dropped and counted in stats().dropped; a reliable channel goes on
   * past it.
   */
  maxMessageBytes?: number | undefined
  /**
   * Bytes a connection may have queued (not yet acknowledged) before send() returns false (default 8 MiB);
   * each message counts 64 bytes more than its size (its bookkeeping).
   */
  sendQueueBytes?: number | undefined
  /**
   * How often a connection pings for the RTT and the clock, ms (default 100: 10 Hz; 50 to 3,600,000, as
   * pongs answer at most 20 a second). The client's sets the pace: the server pings with its pongs to the
   * client's pings, and on its own only after twice its own interval without them. A ping is a packet, so
   * it also stands in for the keep-alive: a gateway with many idle peers lengthens this interval and
   * keepAliveIntervalMs together, on both sides.
   */
  pingIntervalMs?: number | undefined
}

/** The options of send(). */
export interface SendOptions {
  /** The channel's index in the channels option (default 0). */
  channel?: number | undefined
}

/** A connection's link statistics, as the delivery layer (channels) measures them. */
export interface LinkStats {
  // The server learns its clients' RTT from pongs they hold for their next ping, timed on their clocks; its
  // minimum comes from the first pong (not held), then from held ones once the clock sync knows the drift (4 s).
  /**
   * Round-trip times, ms; 0 until measured. varianceMs2: the variance of the round trips, ms² (smoothed over
   * the last few dozen; 0 after the first). It is not the square of RFC 9002's rttvar (a mean deviation,
   * about three quarters of it).
   */
  rtt: { smoothedMs: number; minMs: number; maxMs: number; varianceMs2: number }
  /**
   * The mean change, ms, from one round trip to the next of the same kind (acknowledgements, pongs), smoothed
   * as RFC 3550's interarrival jitter is (gain 1/16): a peer whose ACKs come later than its pongs shows none.
   */
  jitterMs: number
  /** Packets declared lost ÷ packets that needed an acknowledgement, since the connection began. */
  lossPercent: number
  packets: { in: number; out: number }
  bytes: { in: number; out: number }
  /**
   * Bits per second (not bytes). inBps, outBps: over the last one to two seconds (since the connection began, in its first second;
   * since the previous reading, read less often than every second), whoever else reads them. pathBps: the
   * congestion controller's estimate of the path's bottleneck: the largest delivery rate of the last ten
   * round trips, packets lost at random counted as carried (docs/channels.md, "Flow and congestion control").
   */
  bandwidth: { inBps: number; outBps: number; pathBps: number }
  /** The congestion window and the bytes in flight against it. */
  congestion: { windowBytes: number; inFlightBytes: number }
  /** Message fragments sent again after a loss or a probe timeout. */
  resends: number
  /**
   * Messages handed to send() and not yet acknowledged (reliable) or sent (others), those the I/O thread has
   * not taken yet included, and their bytes; how long the oldest the I/O thread holds has waited.
   */
  queue: { depth: number; bytes: number; delayMs: number }
  /**
   * The peer's clock minus this process's monotonic clock, ms (a clock skew this side's own network simulator
   * makes shows in the peer's figure, not here), and its drift: how fast that difference grows, parts per
   * million (0 until the drift is known, but for such a simulated skew of this side's own). errorBoundMs: the most the offset
   * can be wrong by now, however the network splits the delay between the two ways (half the round trips
   * it rests on; Infinity before the first ping/pong exchange). Until the drift is known (4 s) it assumes
   * the two clocks tick at the same rate. exchanges: the ping/pong exchanges taken so far.
   */
  clock: { offsetMs: number; driftPpm: number; errorBoundMs: number; exchanges: number }
  /**
   * Delivery packets or messages dropped on receive (malformed, over the memory bound, stale, expired, over
   * maxMessageBytes: a peer with a larger maximum).
   */
  dropped: number
}

/**
 * The delivery settings a peer announced (its first packets carry them): its channels and its largest
 * message. send() checks messages against them as well as against this side's own options.
 */
export interface RemoteChannels {
  readonly channels: readonly Readonly<ChannelOptions>[]
  readonly maxMessageBytes: number
}

/** Validated delivery settings; null when no channels are configured. */
export interface DeliverySettings {
  modes: ChannelMode[]
  maxMessageBytes: number
  sendQueueBytes: number
  pingIntervalMs: number
}

/** The modes by their wire codes (1, 2, 3) less one. */
export const MODES: readonly ChannelMode[] = ['reliable', 'unreliable', 'sequenced']

/** The names of the delivery options, which Server and Client both take. */
const channelOptionNames: ReadonlySet<string> = new Set(['mode'])

export const deliveryOptionNames = ['channels', 'maxMessageBytes', 'sendQueueBytes', 'pingIntervalMs'] as const

export function deliverySettings(options: DeliveryOptions): DeliverySettings | null {
  const { channels } = options
  if (channels === undefined) {
    for (const name of ['maxMessageBytes', 'sendQueueBytes', 'pingIntervalMs'] as const) {
      if (options[name] !== undefined) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "${name}" option needs the "channels" option`)
    }
    return null
  }
  if (!Array.isArray(channels) || channels.length < 1 || channels.length > 255) {
    throw new VolleyTypeError(
      Array.isArray(channels) ? 'ERR_INVALID_ARG_VALUE' : 'ERR_INVALID_ARG_TYPE',
      `The "channels" option must be an array of 1 to 255 { mode } objects. Received ${describe(channels)}`,
    )
  }
  const modes: ChannelMode[] = []
  // An indexed loop: map() would skip the holes of a sparse array.
  for (let index = 0; index < channels.length; index++) {
    const channel: unknown = channels[index]
    if (typeof channel !== 'object' || channel === null) {
      const hint = MODES.includes(channel as ChannelMode) ? ` (write { mode: '${String(channel)}' })` : ''
      throw new VolleyTypeError(
        'ERR_INVALID_ARG_TYPE',
        `channels[${index}] must be an object { mode: 'reliable' | 'unreliable' | 'sequenced' }${hint}. Received ${describe(channel)}`,
      )
    }
    checkOptions(`channels[${index}] entry`, channel, channelOptionNames)
    const mode = (channel as { mode?: unknown }).mode
    if (!MODES.includes(mode as ChannelMode)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `channels[${index}].mode must be 'reliable', 'unreliable' or 'sequenced'. Received ${describe(mode)}`)
    }
    modes.push(mode as ChannelMode)
  }
  return {
    modes,
    maxMessageBytes: integerOption('maxMessageBytes', options.maxMessageBytes, deliveryDefaults.maxMessageBytes, 1, 1 << 30),
    sendQueueBytes: integerOption('sendQueueBytes', options.sendQueueBytes, deliveryDefaults.sendQueueBytes, 1, 1 << 30),
    pingIntervalMs: integerOption('pingIntervalMs', options.pingIntervalMs, 100, 50, 3_600_000),
  }
}

/**
 * A server's: a peer with a reliable message started and incomplete that sends no new fragment of any for this
 * long is disconnected ('reassembly-stalled'). Twice the usual connection timeout (10 s), so that a path that
 * went dead times out first (an honest sender whose acknowledgements are lost sends fragments again, and moves
 * on once one gets through).
 */
export const reliableStallMs = 20_000

/**
 * The reassembly budget a server's connections share unless its reassemblyBudgetBytes option says otherwise:
 * 64 KiB per client slot, from 64 MiB to 512 MiB, and never below what one message of the largest size takes
 * (a connection's own bound, maxMessageBytes + 1 MiB).
 */
export function defaultReassemblyBudget(maxClients: number, maxMessageBytes: number): number {
  return Math.max(reassemblyBudgetFloor(maxMessageBytes), Math.min(512 << 20, Math.max(64 << 20, maxClients * (64 << 10))))
}

/** The least reassembly budget a server takes: a connection's own bound, so that the largest message fits. */
export const reassemblyBudgetFloor = (maxMessageBytes: number): number => maxMessageBytes + deliveryDefaults.reassemblyHeadroomBytes

/** The fields of the native protocol options for these settings. */
export function deliveryFields(settings: DeliverySettings | null): NativeDeliveryFields {
  if (settings === null) return {}
  return { channels: settings.modes, maxMessageBytes: settings.maxMessageBytes, sendQueueBytes: settings.sendQueueBytes, pingIntervalUs: settings.pingIntervalMs * 1000 }
}

/** A settings record's data (native/sockets/socket_protocol.h): u32 the peer's largest message, a u8 mode per channel. */
export function readRemoteChannels(bytes: Uint8Array, at: number, length: number): RemoteChannels {
  const maxMessageBytes = (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16)) + bytes[at + 3]! * 2 ** 24
  const channels: Readonly<ChannelOptions>[] = []
  // The engine sends only modes 1 to 3 (it checked the frame).
  for (let i = at + 4; i < at + length; i++) channels.push(Object.freeze({ mode: MODES[bytes[i]! - 1]! }))
  // Frozen: send() checks against this object, which peer.remoteChannels hands out.
  return Object.freeze({ channels: Object.freeze(channels), maxMessageBytes })
}

/** The first channel both sides have in two modes; -1 when none (a channel only one side has is no clash). */
function firstClash(own: DeliverySettings, remote: RemoteChannels): number {
  const shared = Math.min(own.modes.length, remote.channels.length)
  for (let channel = 0; channel < shared; channel++) if (remote.channels[channel]!.mode !== own.modes[channel]) return channel
  return -1
}

/**
 * Why the two sides' channels do not work together, for a 'channels-mismatch' error's message: `remote` is
 * null when the peer does not run the delivery layer (it has no channels).
 */
export function describeChannelsMismatch(own: DeliverySettings | null, remote: RemoteChannels | null, peer: string): string {
  const channel = own !== null && remote !== null ? firstClash(own, remote) : -1
  if (channel >= 0) return `channel ${channel} is '${own?.modes[channel]}' on this side and '${remote?.channels[channel]?.mode}' on ${peer}`
  return `${peer} does not run the delivery layer: it has no channels configured, or runs an older volley (its payloads are not delivery packets that announce their channels, or are this side's own sent back)`
}

/**
 * One connection's sending side: checks a message and its options, and keeps the connection's queue
 * within sendQueueBytes by counting what it submitted against what the I/O thread has released.
 */
export class SendQueue {
  #submitted = 0
  #submittedMessages = 0
  /** What the peer announced of its channels: messages are checked against it too once it is known. */
  remote: RemoteChannels | null = null

  constructor(
    readonly settings: DeliverySettings | null,
    readonly links: () => Float64Array | null,
    readonly row: number,
    /** Who the peer is, in error messages: 'the server', 'the client'. */
    readonly peerName = 'the peer',
  ) {}

  /** The channel to send on, after checking data and options (typed errors). */
  check(data: unknown, options: SendOptions | undefined): number {
    // instanceof first: the common case, checked per message (isView: a Proxy of one passes instanceof);
    // isUint8Array takes one from another realm.
    if (!(data instanceof Uint8Array && ArrayBuffer.isView(data)) && !isUint8Array(data)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "data" argument must be a Uint8Array. Received ${describe(data)}`)
    }
    // Else it would pass as empty here and throw in the engine's copy, after admit() counted it.
    checkAttached(data)
    // A misspelt option would otherwise send on channel 0 without a word.
    if (options !== undefined) checkOptions('"options" argument', options, sendOptionNames)
    const channel = options?.channel === undefined ? 0 : options.channel // (null is no channel: refused below)
    if (typeof channel !== 'number') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "channel" option must be of type number. Received ${describe(channel)}`)
    }
    const count = this.settings?.modes.length ?? 1
    if (!Number.isInteger(channel) || channel < 0 || channel >= count) {
      throw new VolleyRangeError(
        'ERR_NO_SUCH_CHANNEL',
        this.settings === null
          ? `No channels are configured: messages go on channel 0. Received ${describe(channel)}`
          : `The "channel" option must be an integer from 0 to ${count - 1} (channels configured: ${count}). Received ${describe(channel)}`,
      )
    }
    if (this.settings === null) {
      if (data.byteLength < 1 || data.byteLength > 1200) {
        throw new VolleyRangeError('ERR_PAYLOAD_SIZE', `A payload is 1 to 1200 bytes without channels (configure channels for larger messages). Received ${data.byteLength}`)
      }
    } else if (data.byteLength > this.settings.maxMessageBytes) {
      throw new VolleyRangeError('ERR_MESSAGE_TOO_LARGE', `A message is at most ${this.settings.maxMessageBytes} bytes (the maxMessageBytes option). Received ${data.byteLength}`)
    }
    const remote = this.remote
    if (remote !== null) {
      // It would be dropped there (after being acknowledged, on a reliable channel): refused here instead.
      if (channel >= remote.channels.length) {
        throw new VolleyRangeError(
          'ERR_NO_SUCH_CHANNEL',
          `${capitalized(this.peerName)} has ${remote.channels.length} channel${remote.channels.length === 1 ? '' : 's'} (channels 0 to ${remote.channels.length - 1}): ` +
            `it would drop a message on channel ${channel}`,
        )
      }
      if (data.byteLength > remote.maxMessageBytes) {
        throw new VolleyRangeError(
          'ERR_MESSAGE_TOO_LARGE',
          `${capitalized(this.peerName)} takes messages of at most ${remote.maxMessageBytes} bytes (its maxMessageBytes option). Received ${data.byteLength}`,
        )
      }
    }
    return channel
  }

  /**
   * Bytes queued and not yet released by the I/O thread (sent, or acknowledged when reliable), each message
   * counted layout.queuedMessageOverheadBytes more than its size, as the engine counts it.
   */
  get queued(): number {
    const links = this.links()
    return links === null ? 0 : this.#submitted - (links[this.row * linkFields + LinkField.releasedBytes] ?? 0)
  }

  /** Whether `size` more bytes fit; when they do, they count as submitted. A lone message always fits. */
  admit(size: number): boolean {
    if (this.settings === null) return true
    const queued = this.queued
    const cost = chargeOf(size)
    if (queued > 0 && queued + cost > this.settings.sendQueueBytes) return false
    this.#submitted += cost
    this.#submittedMessages++
    return true
  }

  /**
   * What a watchPeer control carries for a message admit() refused: its charge (u32 LE), so that the engine's
   * 'drain' waits until the queue has room for it. The same bytes each call: the engine copies them at once.
   */
  refused(size: number): Uint8Array {
    refusedCharge.setUint32(0, Math.min(chargeOf(size), 0xffff_ffff), true)
    return refusedChargeBytes
  }

  /** Takes back an admitted message that could not be handed to the engine after all. */
  cancel(size: number): void {
    if (this.settings === null) return
    this.#submitted -= chargeOf(size)
    this.#submittedMessages--
  }

  /**
   * The messages not yet released and their bytes, those the I/O thread has not taken yet included (the
   * engine's own queue figures miss them): what stats().queue shows. Null without channels.
   */
  outstanding(): { depth: number; bytes: number } | null {
    const links = this.links()
    if (links === null || this.settings === null) return null
    const base = this.row * linkFields
    // The I/O thread writes the two fields one after the other: a reading between them is off by one
    // message for an instant, never below zero here.
    const depth = Math.max(0, this.#submittedMessages - (links[base + LinkField.releasedMessages] ?? 0))
    const charge = this.#submitted - (links[base + LinkField.releasedBytes] ?? 0)
    return { depth, bytes: Math.max(0, charge - depth * layout.queuedMessageOverheadBytes) }
  }
}

/** What a message of `size` bytes counts against its queue: its bytes and its record's, as the engine counts it. */
function chargeOf(size: number): number {
  return size + layout.queuedMessageOverheadBytes
}

const refusedChargeBytes = new Uint8Array(4)
const refusedCharge = new DataView(refusedChargeBytes.buffer)

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1)
}

/**
 * What a connection's bandwidth is measured from: readings of its byte counts kept half a second apart or
 * more, the window starting at the newest that is a second old. Whoever reads, the window is 1 to 1.5 s
 * when it is read every half second or more often, and under 2 s when read at least every second; read less
 * often, it runs from the last reading. (A reading that restarted at every stats() call gave each reader the
 * rate since anyone's last call, and a monitor polling the pool read 0; a window that moved on only once
 * its next start was a second old let a reader every 990 ms average over 4 s, and see traffic stop 3 s late.)
 */
export class BandwidthWindow {
  static readonly spanMs = 1000
  static readonly #kept = 4 // the window's start, up to two readings younger, and the one being added
  /** (atMs, bytesIn, bytesOut) of each reading kept, in a ring from #first, oldest first: no allocation per read. */
  readonly #readings = new Float64Array(BandwidthWindow.#kept * 3)
  #first = 0
  #count = 1
  /** The previous reading, kept or not. */
  #lastAtMs: number
  #lastIn = 0
  #lastOut = 0

  constructor(atMs = performance.now()) {
    this.#readings[0] = atMs
    this.#lastAtMs = atMs
  }

  /** Where the window starts (performance.now()). */
  get fromMs(): number {
    return this.#readings[this.#slot(0)]!
  }

  /** The rates, in bits per second, up to these counts, and the window moved on if it is time. */
  read(nowMs: number, bytesIn: number, bytesOut: number): { inBps: number; outBps: number } {
    const readings = this.#readings
    const span = BandwidthWindow.spanMs
    // Read less often than every second, the rate is measured from the previous reading: not from the one
    // before it (a monitor reading every 5 s got the average of the last 10), nor from an older one (a
    // reading after a pause counted traffic the previous one had already shown).
    if (nowMs - this.#lastAtMs > span) {
      this.#first = 0
      this.#count = 1
      this.#keep(0, this.#lastAtMs, this.#lastIn, this.#lastOut)
    }
    while (this.#count > 1 && nowMs - readings[this.#slot(1)]! >= span) {
      this.#first = (this.#first + 1) % BandwidthWindow.#kept
      this.#count--
    }
    const from = this.#slot(0)
    const elapsedS = Math.max((nowMs - readings[from]!) / 1000, 1e-3)
    const rates = { inBps: ((bytesIn - readings[from + 1]!) * 8) / elapsedS, outBps: ((bytesOut - readings[from + 2]!) * 8) / elapsedS }
    if (nowMs - readings[this.#slot(this.#count - 1)]! >= span / 2) {
      if (this.#count === BandwidthWindow.#kept) {
        this.#first = (this.#first + 1) % BandwidthWindow.#kept
        this.#count--
      }
      this.#keep(this.#count, nowMs, bytesIn, bytesOut)
      this.#count++
    }
    this.#lastAtMs = nowMs
    this.#lastIn = bytesIn
    this.#lastOut = bytesOut
    return rates
  }

  #slot(index: number): number {
    return ((this.#first + index) % BandwidthWindow.#kept) * 3
  }

  #keep(index: number, atMs: number, bytesIn: number, bytesOut: number): void {
    const at = this.#slot(index)
    this.#readings[at] = atMs
    this.#readings[at + 1] = bytesIn
    this.#readings[at + 2] = bytesOut
  }
}

/** A moment, as performance.now() and as monotonicUs() read it. */
export interface Moment {
  ms: number
  us: number
}

/**
 * Reads a connection's link statistics; `window` measures its bandwidth; `outstanding`, from its
 * SendQueue, counts the queue (the engine's figures when null); `at`: as of when (now when undefined).
 */
export function readLinkStats(
  links: Float64Array | null,
  row: number,
  counters: PacketCounts,
  window: BandwidthWindow,
  outstanding: { depth: number; bytes: number } | null = null,
  at?: Moment,
): LinkStats {
  // No closure or spread here: peer.stats() of every peer, every second, is what a gateway's monitor does.
  const row0 = links === null ? 0 : row * linkFields
  const f = links ?? noLinkStats
  const rates = window.read(at?.ms ?? performance.now(), counters.bytesIn, counters.bytesOut)
  const sent = f[row0 + LinkField.packetsSent]!
  const oldest = f[row0 + LinkField.oldestQueuedUs]!
  const depth = outstanding?.depth ?? f[row0 + LinkField.queuedMessages]!
  const exchanges = f[row0 + LinkField.clockExchanges]!
  return {
    rtt: {
      smoothedMs: f[row0 + LinkField.rttSmoothedUs]! / 1000,
      minMs: f[row0 + LinkField.rttMinUs]! / 1000,
      maxMs: f[row0 + LinkField.rttMaxUs]! / 1000,
      varianceMs2: f[row0 + LinkField.rttVarianceUs2]! / 1e6,
    },
    jitterMs: f[row0 + LinkField.jitterUs]! / 1000,
    lossPercent: sent > 0 ? (f[row0 + LinkField.packetsLost]! / sent) * 100 : 0,
    packets: { in: counters.packetsIn, out: counters.packetsOut },
    bytes: { in: counters.bytesIn, out: counters.bytesOut },
    bandwidth: { inBps: rates.inBps, outBps: rates.outBps, pathBps: f[row0 + LinkField.pathBytesPerSec]! * 8 },
    congestion: { windowBytes: f[row0 + LinkField.congestionWindow]!, inFlightBytes: f[row0 + LinkField.bytesInFlight]! },
    resends: f[row0 + LinkField.resends]!,
    queue: {
      depth,
      bytes: outstanding?.bytes ?? f[row0 + LinkField.queuedBytes]!,
      delayMs: depth > 0 && oldest > 0 ? Math.max(0, (at?.us ?? monotonicUs()) - oldest) / 1000 : 0,
    },
    clock: {
      offsetMs: f[row0 + LinkField.clockOffsetUs]! / 1000,
      driftPpm: f[row0 + LinkField.clockDrift]! * 1e6,
      errorBoundMs: exchanges > 0 ? clockErrorBoundUs(f, row0, at?.us) / 1000 : Infinity,
      exchanges,
    },
    dropped: f[row0 + LinkField.dropped]!,
  }
}

/** The link statistics of a connection without channels: all zero. */
const noLinkStats = new Float64Array(linkFields)

/** The clock's error bound, µs, widened from when the I/O thread wrote it to nowUs (now when undefined). */
function clockErrorBoundUs(f: Float64Array, row0: number, nowUs?: number): number {
  const bound = f[row0 + LinkField.clockErrorUs]!
  const growth = f[row0 + LinkField.clockErrorGrowth]!
  return growth > 0 ? bound + growth * Math.max(0, (nowUs ?? monotonicUs()) - f[row0 + LinkField.clockReferenceUs]!) : bound
}

/** The peer's clock now, ms, as estimated from the ping/pong exchanges (our clock until the first one). */
export function peerClockMs(links: Float64Array | null, row: number): number {
  const now = monotonicUs()
  if (links === null) return now / 1000
  const base = row * linkFields
  const reference = links[base + LinkField.clockReferenceUs] ?? 0
  const offset = (links[base + LinkField.clockOffsetUs] ?? 0) + (links[base + LinkField.clockDrift] ?? 0) * (now - reference)
  return (now + offset) / 1000
}
