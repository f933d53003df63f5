// A delivery core's state and its sending side, as native/protocol/delivery/delivery_send.cc (which says why each
// rule is what it is): queues, packet assembly, acknowledgements, loss detection (RFC 9002's packet and
// time thresholds, adapted by spurious losses), probe timeouts, congestion control and pacing. The
// receiving side (delivery-core.ts) extends it. Decision for decision the native core's, so that the two
// send the same bytes for the same calls (test/delivery/delivery-core-differential.test.ts).
import { BinaryHeap } from '../../util/binary-heap.ts'
import { ClockSync } from './clock-sync.ts'
import { type DeliveryConfig, type DeliverySink, DeliveryStats, Mismatch, type PeerSettings, type SendResult, queuedMessageOverheadBytes } from './config.ts'
import { CongestionControl } from './congestion-control.ts'
import { type PacketRange, ReceivedPackets } from './received-packets.ts'
import { Ring } from './ring.ts'
import { RttEstimator, maxRttSampleUs } from './rtt-estimator.ts'
import { ChannelModeCode, Frame, FrameWriter, fragmentBytes, fragmentCount, maxAckRanges, maxPacketBytes, packetMarker, varintSize } from './wire-format.ts'
import { copyBytes } from '../../util/bytes.ts'
import { loadedSodium } from '../netcode/sodium.ts'

const packetThreshold = 3 // RFC 9002: lost when 3 later packets are acknowledged
const maxPacketThreshold = 256 // as far as reordering proven by spurious losses raises it
const timeThresholdEighths = 9 // RFC 9002: lost 9/8 of an RTT after it was sent...
const maxTimeThresholdEighths = 16 // ...or up to 2 RTTs once reordering was seen
const recentlyLostKept = 128 // declared losses remembered, to see one proved wrong...
const lostMemoryRtts = 8 // ...for 8 smoothed RTTs
const lostMemoryMinUs = 50_000 // ...and at least 50 ms
const granularityUs = 1000 // the smallest loss delay and RTT variation term
const pacingGain = 1.25
const pacingBurst = 10 * maxPacketBytes
const pingsRemembered = 16 // pings whose send times a pong may echo (the native core's kPingsRemembered)
const pacingQuantumUs = 2000
const drainHoldUs = 200_000 // a drain's round trips of the path alone last this at least...
const maxDrainUs = 2_000_000 // ...and the whole drain this at most
const ackSpaceWithData = 64 // an ACK beside data takes at most this much of a packet
const initialSentRecords = 4
const keptSentRecords = 256
/** Reliable fragments listed in the records of sent packets past which, all settled, the records start over (native: 64 KiB of them). */
const keptChunks = (64 * 1024) / 24
/** Records of sent packets past which the oldest is declared lost. */
const maxSentRecords = 2 ** 15
const maxFlushPackets = 4096
// Packet numbers skipped now and then (RFC 9000 §21.4), so that a peer that acknowledges packets it has not
// received (an optimistic ACK, to make this side send faster than the path carries) is caught: it cannot
// tell a number never sent from one in flight. Every 256 to 1,279 packets, by a keyed SipHash of the skip's
// count (libsodium's crypto_shorthash) under a key of the connection's own, which the peer never sees.
export const packetSkipKeyBytes = 16
const packetSkipGapMin = 256
const packetSkipGapSpan = 1024
const skippedNumbersRemembered = 8 // skipped numbers an ACK is checked against (the native core's kSkippedRemembered)

/** lastSent of a fragment never sent, or acknowledged. */
export const notSent = -2
export const acked = -1

export interface OutMessage {
  channel: number
  sequence: number
  queuedUs: number
  data: Uint8Array
  /** 1: sent whole. */
  fragments: number
  /** Fragments acknowledged. */
  acked: number
  /** Fragments never sent yet (unreliable/sequenced: sent once). */
  unsent: number
  /** Per fragment: the packet number it was last sent in, notSent or acked. */
  lastSent: Float64Array
}

/** A reliable fragment a packet carried, or one queued for a resend. */
interface Chunk {
  channel: number
  /** Part of a message the receiver had acknowledged fragments of, when its loss was found. */
  started: boolean
  sequence: number
  fragment: number
}

interface SendChannel {
  mode: ChannelModeCode
  nextSequence: number
  /** Reliable: every message not fully acknowledged, in sequence order; others: messages not fully sent. */
  messages: Ring<OutMessage>
  /** Reliable: index of the first message with fragments never sent. */
  firstUnsent: number
  /** A message was acknowledged whole since the last release. */
  completed: boolean
}

interface SentPacket {
  number: number
  sentUs: number
  bytes: number
  ackEliciting: boolean
  inFlight: boolean
  settled: boolean
  acked: boolean
  deliveredAtSend: number
  deliveredUsAtSend: number
  firstSentUsAtSend: number
  chunks: Chunk[]
}

const sentPacket = (): SentPacket => ({ number: 0, sentUs: 0, bytes: 0, ackEliciting: false, inFlight: false, settled: true, acked: false, deliveredAtSend: 0, deliveredUsAtSend: 0, firstSentUsAtSend: 0, chunks: [] })

interface LostRecord {
  number: number
  sentUs: number
  /** The window reduction its loss belongs to, 0: none. */
  reduction: number
  /** The reliable fragments it carried, credited if it proves only late (its record may have gone since). */
  chunks: Chunk[]
}

/** Whether `a` is resent before `b`: fragments of messages the receiver has started first, then lowest message. */
function resendFirst(a: Chunk, b: Chunk): boolean {
  if (a.started !== b.started) return a.started
  if (a.sequence !== b.sequence) return a.sequence < b.sequence
  if (a.channel !== b.channel) return a.channel < b.channel
  return a.fragment < b.fragment
}

/** Packets are built here and handed to the sink at once: one buffer (and its writer) for every core. */
const packetBuffer = new Uint8Array(maxPacketBytes)
const packetWriter = new FrameWriter(packetBuffer)

export abstract class DeliverySending {
  protected readonly config: DeliveryConfig
  protected readonly sink: DeliverySink
  readonly stats = new DeliveryStats()
  protected readonly reassemblyLimit: number

  readonly #sendChannels: SendChannel[]
  /** Reliable fragments lost or probed, in the order resendFirst gives. */
  readonly #retransmits = new BinaryHeap<Chunk>(resendFirst)
  queuedBytes = 0
  queuedMessages = 0
  #unsentMessages = 0
  readonly #completedChannels: number[] = []
  /** What has left the queue, in all, counted as queuedCharge counts it. */
  releasedBytes = 0
  releasedMessages = 0

  /** Sent packets from #sentBase to #nextPacket − 1, in a ring (#sent.length a power of two). */
  #sent: SentPacket[] = Array.from({ length: initialSentRecords }, sentPacket)
  #sentChunks = 0
  #sentBase = 0
  #nextPacket = 0
  #largestAcked = 0
  #anyAcked = false
  bytesInFlight = 0
  #lastAckElicitingSentUs = 0
  #ackElicitingInFlight = 0
  #lastDataSentUs = 0
  #dataPacketsInFlight = 0
  #lossTimeUs = 0
  #probeCount = 0
  /** 0: no drain under way. */
  #drainEndUs = 0
  readonly #recentlyLost: LostRecord[] = []
  #packetThreshold = packetThreshold
  #timeThresholdEighths = timeThresholdEighths
  #lastProbeTimeoutUs = 0
  #probesToSend = 0
  #reliableFirst = false
  /** The reliable channel whose new messages the next packet takes first (they take turns). */
  #reliableTurn = 0

  protected readonly congestion = new CongestionControl()
  #delivered = 0
  #deliveredUs = 0
  #firstSentUs = 0
  #pacingCredit = 10 * maxPacketBytes
  #pacingUpdatedUs = 0

  readonly rtt: RttEstimator
  readonly clock = new ClockSync()
  /** Packets sent before this give no RTT sample (discardRttSamplesBefore). */
  protected rttSamplesFromUs = 0

  // Receiving state the packets this side sends carry (acknowledgements, settings, pongs).
  protected readonly received = new ReceivedPackets()
  protected ackPending = false
  protected ackImmediately = false
  protected elicitingSinceAck = 0
  protected ackDeadlineUs = 0
  /** When the largest packet number arrived (for the ACK's delay). */
  protected largestReceivedUs = 0

  readonly peerSettings: PeerSettings = { known: false, maxMessageBytes: 0, channels: [] }
  protected mismatchFound: Mismatch = Mismatch.none
  /** Until a pong shows the peer has them, every packet carries this side's settings. */
  protected settingsDelivered = false
  #announcing = false
  protected messagesWaitForSettings = false

  readonly #skipKey: Uint8Array | null
  #skipsMade = 0
  /** Packets to send before the next number is skipped; -1: never (no key). */
  #packetsUntilSkip = -1
  /** The last skippedNumbersRemembered numbers skipped (-1: none yet): an ACK of one is forged. */
  readonly #skippedNumbers = new Array<number>(skippedNumbersRemembered).fill(-1)

  protected nextPingUs = 0
  #nextPingId = 0
  // When the last pingsRemembered pings left, by id: a pong's echo must be one of them (answersPing), or the
  // peer could choose the round trip it makes this side measure.
  readonly #pingSentUs = new Float64Array(pingsRemembered)
  protected anyPingAnswered = false
  protected pongPending = false
  protected pongId = 0
  protected pongEcho = 0
  protected pongReceivedUs = 0
  protected pongDueUs = 0

  /** packetSkipKey: packetSkipKeyBytes random bytes of this connection's own; null skips no packet number. */
  constructor(config: DeliveryConfig, sink: DeliverySink, packetSkipKey: Uint8Array | null) {
    this.config = { ...config, reliableWindow: Math.max(1, config.reliableWindow) }
    this.#skipKey = packetSkipKey === null ? null : packetSkipKey.slice()
    if (this.#skipKey !== null) this.#packetsUntilSkip = this.#skipGap()
    this.sink = sink
    this.reassemblyLimit = config.reassemblyBytes !== 0 ? config.reassemblyBytes : config.maxMessageBytes + (1 << 20)
    this.rtt = new RttEstimator(config.initialRttUs)
    this.#sendChannels = config.channels.map((mode) => ({ mode, nextSequence: 0, messages: new Ring<OutMessage>(() => undefined as never), firstUnsent: 0, completed: false }))
  }

  /** Set for good by the first packet that shows it; from then on no message is delivered. */
  get mismatch(): Mismatch {
    return this.mismatchFound
  }

  /** What the queued messages cost the send queue's budget: their bytes and the per-message charge. */
  get queuedCharge(): number {
    return this.queuedBytes + this.queuedMessages * queuedMessageOverheadBytes
  }

  get congestionWindow(): number {
    return this.congestion.window
  }

  get bandwidthBytesPerUs(): number {
    return this.congestion.bandwidthBytesPerUs
  }

  /** The number of the next packet this side sends: an ACK of it or a later one is forged. */
  protected get nextPacketNumber(): number {
    return this.#nextPacket
  }

  /** Whether the ranges of an ACK cover a number this side skipped (never sent): the ACK is forged. */
  protected acksSkippedNumber(ranges: readonly PacketRange[]): boolean {
    for (const skipped of this.#skippedNumbers) {
      if (skipped < 0) continue
      for (const range of ranges) {
        if (skipped > range.high) break // ranges descend
        if (skipped >= range.low) return true
      }
    }
    return false
  }

  /** How many packets go before the next skipped number: a keyed hash of the skip's count. */
  #skipGap(): number {
    const sodium = loadedSodium()
    if (sodium === undefined) throw new Error('A delivery core with a packet skip key needs libsodium-wrappers loaded (loadSodium())')
    const count = new Uint8Array(8)
    new DataView(count.buffer).setBigUint64(0, BigInt(this.#skipsMade), true)
    const hash = sodium.crypto_shorthash(count, this.#skipKey!)
    return packetSkipGapMin + (new DataView(hash.buffer, hash.byteOffset, 8).getUint32(0, true) % packetSkipGapSpan)
  }

  /** Takes the next packet number out of use: a settled record that was never sent. */
  #skipPacketNumber(nowUs: number): void {
    const number = this.#nextPacket
    const record = this.#record(number)
    this.#sentChunks -= record.chunks.length
    if (record.chunks.length !== 0) record.chunks.length = 0
    record.number = number
    record.sentUs = nowUs
    record.bytes = 0
    record.ackEliciting = false
    record.inFlight = false
    record.settled = true
    record.acked = false
    this.#skippedNumbers[this.#skipsMade % skippedNumbersRemembered] = number
    this.#skipsMade++
    this.#nextPacket++
    this.#settleFront()
    this.#packetsUntilSkip = this.#skipGap()
    this.#ensureSentCapacity(nowUs)
  }

  /** Records of sent packets kept (a ring that grows with a flight and starts over once all are settled). */
  get sentRecords(): number {
    return this.#sent.length
  }

  /** What the records of sent packets hold, counted in the native core's layout (80 bytes a record, 24 a fragment listed). */
  get sentRecordsHeld(): number {
    return this.#sent.length * 80 + this.#sentChunks * 24
  }

  /** Room kept for declared losses, to see one proved wrong (the native core's capacity; here the count). */
  get lostRecords(): number {
    return this.#recentlyLost.length
  }

  /** Slots of the channels' queues: sending, and reliable receiving out of order. */
  get queueSlots(): number {
    let slots = 0
    for (const channel of this.#sendChannels) slots += channel.messages.capacity
    return slots + this.receiveQueueSlots()
  }

  /** Queues a message; flush() sends it. The bytes are copied. */
  send(channel: number, data: Uint8Array, nowUs: number): SendResult {
    const admitted = this.#admit(channel, data.byteLength)
    if (admitted === 'queued') this.#enqueue(channel, copyBytes(data), nowUs)
    return admitted
  }

  /** The same, taking the bytes over: the caller no longer touches them. */
  sendOwned(channel: number, data: Uint8Array, nowUs: number): SendResult {
    const admitted = this.#admit(channel, data.byteLength)
    if (admitted === 'queued') this.#enqueue(channel, data, nowUs)
    return admitted
  }

  #admit(channel: number, size: number): SendResult {
    if (!Number.isInteger(channel) || channel < 0 || channel >= this.#sendChannels.length) return 'no-channel'
    if (size > this.config.maxMessageBytes) return 'too-large'
    // A message larger than the whole queue still goes when the queue is empty, else it never could.
    if (this.queuedMessages > 0 && this.queuedCharge + size + queuedMessageOverheadBytes > this.config.sendQueueBytes) return 'queue-full'
    return 'queued'
  }

  #enqueue(channel: number, data: Uint8Array, nowUs: number): void {
    const target = this.#sendChannels[channel]!
    const size = data.byteLength
    const fragments = size > fragmentBytes ? fragmentCount(size) : 1
    target.messages.pushBack({ channel, sequence: target.nextSequence++, queuedUs: nowUs, data, fragments, acked: 0, unsent: fragments, lastSent: new Float64Array(fragments).fill(notSent) })
    this.#unsentMessages++
    this.queuedBytes += size
    this.queuedMessages++
    this.stats.messagesOut++
    this.stats.messageBytesOut += size
  }

  #release(message: OutMessage): void {
    this.queuedBytes -= message.data.byteLength
    this.releasedBytes += message.data.byteLength + queuedMessageOverheadBytes
    this.releasedMessages++
    this.queuedMessages--
  }

  /** Time the oldest queued message has waited (µs; 0 when none). */
  queueDelayUs(nowUs: number): number {
    if (this.queuedMessages === 0) return 0
    let oldest = Number.POSITIVE_INFINITY
    for (const channel of this.#sendChannels) if (!channel.messages.empty) oldest = Math.min(oldest, channel.messages.front().queuedUs)
    return oldest === Number.POSITIVE_INFINITY || oldest > nowUs ? 0 : nowUs - oldest
  }

  #findReliable(channel: number, sequence: number): OutMessage | undefined {
    const messages = this.#sendChannels[channel]!.messages
    if (messages.empty) return undefined
    const first = messages.front().sequence
    if (sequence < first || sequence - first >= messages.size) return undefined
    return messages.at(sequence - first)
  }

  #releaseAcked(channel: SendChannel): void {
    while (!channel.messages.empty && channel.messages.front().acked === channel.messages.front().fragments) {
      this.#release(channel.messages.front())
      channel.messages.popFront()
      if (channel.firstUnsent > 0) channel.firstUnsent--
    }
  }

  /** Whether the running counts agree with what they count (for tests and the differential fuzz). */
  countsAgree(): boolean {
    let unsent = 0
    for (const channel of this.#sendChannels) {
      for (let i = 0; i < channel.messages.size; i++) unsent += channel.messages.at(i).unsent > 0 ? 1 : 0
      if (channel.completed) return false
    }
    return unsent === this.#unsentMessages && this.#completedChannels.length === 0 && this.receiveCountsAgree()
  }

  // --- sending ---

  #hasMessages(): boolean {
    if (this.#probesToSend > 0 || !this.#retransmits.empty) return true
    if (this.#unsentMessages === 0) return false
    for (const channel of this.#sendChannels) {
      if (channel.mode !== ChannelModeCode.reliable) {
        if (!channel.messages.empty) return true
      } else if (channel.firstUnsent < channel.messages.size && channel.messages.at(channel.firstUnsent).sequence < channel.messages.front().sequence + this.config.reliableWindow) {
        return true
      }
    }
    return false
  }

  /** What flush() may send now: probes, and messages unless they wait for this side's settings to be delivered. */
  #messagesReady(): boolean {
    return this.#probesToSend > 0 || (!this.messagesWaitForSettings && this.#hasMessages())
  }

  #pacingRate(): number {
    return (pacingGain * this.congestion.window) / Math.max(this.rtt.smoothedUs, 1)
  }

  #refillPacing(nowUs: number): void {
    if (nowUs <= this.#pacingUpdatedUs) return
    const rate = this.#pacingRate()
    const burst = Math.max(pacingBurst, rate * pacingQuantumUs)
    this.#pacingCredit = Math.min(burst, this.#pacingCredit + rate * (nowUs - this.#pacingUpdatedUs))
    this.#pacingUpdatedUs = nowUs
  }

  #canSend(): boolean {
    return this.bytesInFlight + maxPacketBytes <= this.congestion.window && this.#pacingCredit >= maxPacketBytes
  }

  #pruneRetransmits(): void {
    while (!this.#retransmits.empty) {
      const chunk = this.#retransmits.top()!
      const message = this.#findReliable(chunk.channel, chunk.sequence)
      if (message !== undefined && message.lastSent[chunk.fragment] !== acked) return
      this.#retransmits.pop() // acknowledged since it was queued again
    }
  }

  /** Sends what congestion control and pacing allow: queued messages, acknowledgements, pings, pongs. */
  flush(nowUs: number): void {
    this.#refillPacing(nowUs)
    this.#pruneRetransmits()
    for (let packets = 0; packets < maxFlushPackets; packets++) {
      // Messages wait for the congestion window and pacing; pings, pongs and acknowledgements do not.
      const messages = this.#messagesReady() && (this.#probesToSend > 0 || this.#canSend())
      const control = (this.pongPending && nowUs >= this.pongDueUs) || nowUs >= this.nextPingUs
      const ack = this.ackPending && (this.ackImmediately || this.elicitingSinceAck >= 2 || nowUs >= this.ackDeadlineUs)
      if (!messages && !control && !ack) break
      if (!this.#sendPacket(nowUs, messages)) break
    }
  }

  /** Sends this side's settings in `copies` packets of their own, whether or not the peer has them (before a mismatch ends the connection). */
  announceSettings(nowUs: number, copies: number): void {
    this.#announcing = true
    for (let i = 0; i < copies; i++) this.#sendPacket(nowUs, false)
    this.#announcing = false
  }

  #ensureSentCapacity(nowUs: number): void {
    // Nothing outstanding: no record to keep.
    if (this.#sentBase === this.#nextPacket && (this.#sent.length > keptSentRecords || this.#sentChunks > keptChunks)) {
      this.#sent = Array.from({ length: initialSentRecords }, sentPacket)
      this.#sentChunks = 0
      return
    }
    // The oldest outstanding packet is not settled: lost, its reliable data goes again.
    while (this.#nextPacket - this.#sentBase >= maxSentRecords) {
      const oldest = this.#record(this.#sentBase)
      if (!oldest.settled) this.#onPacketLost(oldest, nowUs)
      this.#settleFront()
    }
    if (this.#nextPacket - this.#sentBase < this.#sent.length) return
    const grown = Array.from({ length: this.#sent.length * 2 }, sentPacket)
    for (let number = this.#sentBase; number < this.#nextPacket; number++) grown[number % grown.length] = this.#record(number)
    this.#sent = grown
    this.#sentChunks = 0 // the records left behind took their lists with them
    for (const record of grown) this.#sentChunks += record.chunks.length
  }

  #record(number: number): SentPacket {
    return this.#sent[number % this.#sent.length]!
  }

  #findSent(number: number): SentPacket | undefined {
    if (number < this.#sentBase || number >= this.#nextPacket) return undefined
    return this.#record(number)
  }

  /** Writes fragment `fragment` of `message` at `size` if it fits below `capacity`; returns the new size, or -1. */
  static #writeChunk(writer: FrameWriter, message: OutMessage, fragment: number, capacity: number): number {
    const length = message.data.byteLength
    const whole = message.fragments === 1
    const offset = fragment * fragmentBytes
    const bytes = whole ? length : Math.min(fragmentBytes, length - offset)
    const needed = 2 + varintSize(message.sequence) + varintSize(length) + (whole ? 0 : varintSize(fragment)) + bytes
    if (needed > capacity - writer.offset) return -1
    writer.u8(whole ? Frame.message : Frame.fragment)
    writer.u8(message.channel)
    writer.varint(message.sequence)
    writer.varint(length)
    if (!whole) writer.varint(fragment)
    writer.copy(message.data, offset, offset + bytes)
    return writer.offset
  }

  #writeAck(writer: FrameWriter, capacity: number, nowUs: number): boolean {
    const ranges = this.received.ranges
    if (ranges.length === 0) return false
    const first = ranges[0]!
    const largest = first.high
    const delay = nowUs > this.largestReceivedUs ? nowUs - this.largestReceivedUs : 0
    const firstRange = first.high - first.low
    let needed = 1 + varintSize(largest) + varintSize(delay) + varintSize(firstRange) + 1
    if (needed > capacity - writer.offset) return false
    // As many further ranges as fit, newest first.
    let count = 0
    for (let i = 1; i < ranges.length && count < maxAckRanges; i++) {
      const more = varintSize(ranges[i - 1]!.low - ranges[i]!.high - 2) + varintSize(ranges[i]!.high - ranges[i]!.low)
      if (needed + more > capacity - writer.offset) break
      needed += more
      count++
    }
    writer.u8(Frame.ack)
    writer.varint(largest)
    writer.varint(delay)
    writer.varint(firstRange)
    writer.varint(count)
    for (let i = 1; i <= count; i++) {
      writer.varint(ranges[i - 1]!.low - ranges[i]!.high - 2)
      writer.varint(ranges[i]!.high - ranges[i]!.low)
    }
    return true
  }

  /** Builds and sends one packet; false when it had nothing to put in one. */
  #sendPacket(nowUs: number, withMessages: boolean): boolean {
    this.#ensureSentCapacity(nowUs)
    if (this.#packetsUntilSkip === 0) this.#skipPacketNumber(nowUs)
    const number = this.#nextPacket
    const record = this.#record(number)
    this.#sentChunks -= record.chunks.length
    if (record.chunks.length !== 0) record.chunks.length = 0
    const writer = packetWriter
    writer.offset = 0
    writer.u8(packetMarker)
    writer.varint(number)
    let wroteAck = false
    const ackDue = this.ackPending // else an ACK beside messages is worth no packet of its own
    if (this.ackPending || (withMessages && !this.received.empty)) {
      // Beside messages an ACK gets a small share of the packet; alone it may fill it.
      const capacity = withMessages ? Math.min(maxPacketBytes, writer.offset + ackSpaceWithData) : maxPacketBytes
      wroteAck = this.#writeAck(writer, capacity, nowUs)
      if (wroteAck) {
        this.ackPending = false
        this.ackImmediately = false
        this.elicitingSinceAck = 0
      }
    }
    let eliciting = false
    let wrotePong = false
    let wrotePing = false
    let wroteSettings = false
    const capacity = maxPacketBytes
    // Settings the peer may not have yet, ahead of any message; unwritten, no ping goes in the packet
    // either (its pong would say the peer has them).
    if (!this.settingsDelivered || this.#announcing) {
      const channels = this.config.channels
      if (2 + varintSize(this.config.maxMessageBytes) + varintSize(channels.length) + channels.length <= capacity - writer.offset) {
        writer.u8(Frame.settings)
        writer.u8(this.config.followsPings ? 1 : 0)
        writer.varint(this.config.maxMessageBytes)
        writer.varint(channels.length)
        for (const mode of channels) writer.u8(mode)
        wroteSettings = true
      }
    }
    const mayPing = this.settingsDelivered || wroteSettings
    if (this.pongPending) {
      // Due or not: it rides along.
      // 0 for a clock read before the ping came (a caller's): negative, it corrupted the frame.
      const delay = Math.max(0, nowUs - this.pongReceivedUs)
      if (1 + varintSize(this.pongId) + varintSize(this.pongEcho) + varintSize(this.pongReceivedUs) + varintSize(delay) <= capacity - writer.offset) {
        writer.u8(Frame.pong)
        writer.varint(this.pongId)
        writer.varint(this.pongEcho)
        writer.varint(this.pongReceivedUs)
        writer.varint(delay)
        this.pongPending = false
        wrotePong = true
      }
    }
    // A ping goes with a pong when half an interval has passed since the last one; the follower pings on
    // its own timer (two intervals) only when the leader's pings stop coming.
    const spanUs = this.#pingSpanUs()
    if (mayPing && (nowUs >= this.nextPingUs || (wrotePong && this.nextPingUs - nowUs <= spanUs - Math.floor(this.config.pingIntervalUs / 2)))) {
      // With reliable data unacknowledged it probes too: a link back from an outage is found within a ping interval.
      const probe = this.#dataPacketsInFlight > 0
      if (1 + varintSize(this.#nextPingId) + varintSize(nowUs) + (probe ? 1 : 0) <= capacity - writer.offset) {
        writer.u8(Frame.ping)
        writer.varint(this.#nextPingId)
        writer.varint(nowUs)
        if (probe) writer.u8(Frame.probe)
        this.#pingSentUs[this.#nextPingId % pingsRemembered] = nowUs
        this.#nextPingId++
        this.nextPingUs = nowUs + spanUs
        wrotePing = true
        eliciting = eliciting || probe
      }
    }
    const beforeMessages = writer.offset
    if (withMessages) {
      const packet = this.#packet
      packet.record = record
      packet.number = number
      packet.full = false
      packet.eliciting = eliciting
      // A probe carries the data it probes before anything else.
      if (this.#probesToSend > 0) this.#writeRetransmits(false)
      // Each kind goes first in every other packet: neither waits more than a packet behind the other.
      this.#reliableFirst = !this.#reliableFirst
      if (this.#reliableFirst) {
        this.#writeReliable()
        this.#writeUnreliable()
      } else {
        this.#writeUnreliable()
        this.#writeReliable()
      }
      eliciting = packet.eliciting
      if (this.#probesToSend > 0) {
        if (!eliciting && writer.offset < capacity) {
          // Nothing to resend.
          writer.u8(Frame.probe)
          eliciting = true
        }
        this.#probesToSend--
      }
    }
    this.#sentChunks += record.chunks.length
    // (A pong or ping took room too: the next packet, without them, may have it.)
    if (withMessages && writer.offset === beforeMessages && !this.settingsDelivered && !wrotePong && !wrotePing) this.messagesWaitForSettings = true
    // Settings alone make a packet only when announced.
    if (!eliciting && !(wroteAck && ackDue) && !wrotePong && !wrotePing && !(wroteSettings && this.#announcing)) return false
    const size = writer.offset
    record.number = number
    record.sentUs = nowUs
    record.bytes = size
    record.ackEliciting = eliciting
    record.inFlight = eliciting
    record.settled = !eliciting // ACKs, pings and pongs alone are not acknowledged
    record.acked = false
    this.#nextPacket++
    if (this.#packetsUntilSkip > 0) this.#packetsUntilSkip--
    if (eliciting) {
      if (this.bytesInFlight === 0) {
        // A new flight: its rate is measured from now, not from the idle time before.
        this.#deliveredUs = nowUs
        this.#firstSentUs = nowUs
      }
      record.deliveredAtSend = this.#delivered
      record.deliveredUsAtSend = this.#deliveredUs
      record.firstSentUsAtSend = this.#firstSentUs
      this.bytesInFlight += size
      this.#ackElicitingInFlight++
      this.#lastAckElicitingSentUs = nowUs
      if (record.chunks.length > 0) {
        this.#dataPacketsInFlight++
        this.#lastDataSentUs = nowUs
      }
      this.#pacingCredit -= size
      this.stats.ackElicitingOut++
    }
    this.#settleFront()
    this.stats.packetsOut++
    this.stats.bytesOut += size
    this.sink.sendPacket(packetBuffer.subarray(0, size))
    return true
  }

  /** The packet #sendPacket is filling with messages. */
  #packet: { writer: FrameWriter; record: SentPacket; number: number; full: boolean; eliciting: boolean } = { writer: packetWriter, record: sentPacket(), number: 0, full: false, eliciting: false }

  /** Reliable fragments that were lost or are probed (startedOnly: those of messages the receiver has started, which come first). */
  #writeRetransmits(startedOnly: boolean): void {
    const packet = this.#packet
    while (!packet.full && !this.#retransmits.empty) {
      const chunk = this.#retransmits.top()!
      if (startedOnly && !chunk.started) break
      const message = this.#findReliable(chunk.channel, chunk.sequence)
      // Gone, acknowledged, or queued before its message was started: that entry has a started copy.
      if (message === undefined || message.lastSent[chunk.fragment] === acked || (!chunk.started && message.acked > 0)) {
        this.#retransmits.pop()
        continue
      }
      if (DeliverySending.#writeChunk(packet.writer, message, chunk.fragment, maxPacketBytes) < 0) {
        packet.full = true
        break
      }
      message.lastSent[chunk.fragment] = packet.number
      packet.record.chunks.push(chunk)
      this.stats.resends++
      this.#retransmits.pop()
      packet.eliciting = true
    }
  }

  /** Unreliable and sequenced messages, each sent once, whole or in all its fragments. */
  #writeUnreliable(): void {
    const packet = this.#packet
    for (const channel of this.#sendChannels) {
      if (channel.mode === ChannelModeCode.reliable) continue
      while (!packet.full && !channel.messages.empty) {
        const message = channel.messages.front()
        while (message.unsent > 0) {
          if (DeliverySending.#writeChunk(packet.writer, message, message.fragments - message.unsent, maxPacketBytes) < 0) {
            packet.full = true
            break
          }
          message.unsent--
          packet.eliciting = true
        }
        if (message.unsent > 0) break
        this.#unsentMessages--
        this.#release(message)
        channel.messages.popFront()
      }
    }
  }

  /** A reliable channel's fragments never sent (startedOnly: of the message the receiver has started, if that is the next). */
  #writeNew(channel: SendChannel, startedOnly: boolean): void {
    const packet = this.#packet
    while (!packet.full && channel.firstUnsent < channel.messages.size) {
      const message = channel.messages.at(channel.firstUnsent)
      if (startedOnly && message.acked === 0) break
      if (message.sequence >= channel.messages.front().sequence + this.config.reliableWindow) break
      const fragment = message.fragments - message.unsent
      if (DeliverySending.#writeChunk(packet.writer, message, fragment, maxPacketBytes) < 0) {
        packet.full = true
        break
      }
      message.lastSent[fragment] = packet.number
      packet.record.chunks.push({ channel: message.channel, started: false, sequence: message.sequence, fragment })
      packet.eliciting = true
      if (--message.unsent === 0) {
        channel.firstUnsent++
        this.#unsentMessages--
        if (startedOnly) break // the next message is not started: it has never been sent
      }
    }
  }

  /**
   * Reliable fragments: resends of messages the receiver has started, the unsent fragments of those (it always
   * takes them), the other resends, then new messages.
   */
  #writeReliable(): void {
    this.#writeRetransmits(true)
    for (const channel of this.#sendChannels) if (channel.mode === ChannelModeCode.reliable) this.#writeNew(channel, true)
    this.#writeRetransmits(false)
    // New messages: the reliable channels take turns to go first, so that a backlog on one (a bulk transfer)
    // does not hold back the others (a chat) until it has all been sent. Only a packet with room for them is
    // a turn: counting those that resends or unreliable messages filled, the turns would keep in step with
    // the packets' alternation of kinds, and one channel would go first in every packet that has room.
    if (this.#packet.full) return
    const channels = this.#sendChannels
    const count = channels.length
    for (let i = 0; i < count; i++) {
      const channel = channels[(this.#reliableTurn + i) % count]!
      if (channel.mode === ChannelModeCode.reliable) this.#writeNew(channel, false)
    }
    for (let i = 1; i <= count; i++) {
      if (channels[(this.#reliableTurn + i) % count]!.mode === ChannelModeCode.reliable) {
        this.#reliableTurn = (this.#reliableTurn + i) % count
        break
      }
    }
  }

  #pingSpanUs(): number {
    return this.config.followsPings ? 2 * this.config.pingIntervalUs : this.config.pingIntervalUs
  }

  // --- acknowledgements and loss ---

  /** An ACK frame's ranges, descending and disjoint (the parser makes them so). */
  protected onAck(largest: number, ackDelayUs: number, ranges: readonly PacketRange[], nowUs: number): void {
    let newlyAcked = false
    let newlyAckedEliciting = false
    const largestPacket = this.#findSent(largest)
    const sampleRtt = largestPacket !== undefined && !largestPacket.settled && largestPacket.ackEliciting
    const largestSentUs = largestPacket?.sentUs ?? 0
    const largestBytes = largestPacket?.bytes ?? 0
    for (const range of ranges) {
      const low = Math.max(range.low, this.#sentBase)
      for (let number = low; number <= range.high && number < this.#nextPacket; number++) {
        const packet = this.#record(number)
        if (packet.settled || packet.number !== number) continue
        newlyAcked = true
        newlyAckedEliciting = newlyAckedEliciting || packet.ackEliciting
        this.#onPacketAcked(packet, nowUs)
      }
    }
    const largestRaised = !this.#anyAcked || largest > this.#largestAcked
    if (largestRaised) this.#largestAcked = largest
    this.#anyAcked = true
    if (this.#recentlyLost.length > 0) this.#onSpuriousLosses(ranges, nowUs)
    if (sampleRtt && largestSentUs >= this.rttSamplesFromUs && nowUs - largestSentUs <= maxRttSampleUs) {
      const bandwidth = this.congestion.bandwidthBytesPerUs
      const transmitUs = bandwidth > 0 ? Math.floor(largestBytes / bandwidth) : 0
      this.rtt.sample(nowUs - largestSentUs, Math.min(ackDelayUs, this.config.maxAckDelayUs), nowUs, transmitUs)
    }
    if (newlyAckedEliciting) this.#probeCount = 0
    // An ACK that tells nothing new finds no new loss (the loss timer covers time passing).
    if (newlyAcked || largestRaised) this.#detectLosses(nowUs)
    this.#updateDrain(nowUs)
    // Only the channels where a message was acknowledged whole have any to release.
    for (const index of this.#completedChannels) {
      const channel = this.#sendChannels[index]!
      channel.completed = false
      this.#releaseAcked(channel)
    }
    this.#completedChannels.length = 0
  }

  /** Marks a packet acknowledged or lost; true when it was counted in flight (and no longer is). */
  #settle(packet: SentPacket): boolean {
    packet.settled = true
    if (!packet.inFlight) return false
    packet.inFlight = false
    this.bytesInFlight -= packet.bytes
    this.#ackElicitingInFlight--
    if (packet.chunks.length > 0) this.#dataPacketsInFlight--
    return true
  }

  #onPacketAcked(packet: SentPacket, nowUs: number): void {
    this.stats.packetsAcked++
    packet.acked = true
    // Only a window in use (this packet still counted in flight) grows on an acknowledgement.
    const windowInUse = this.#windowInUse()
    if (this.#settle(packet)) {
      this.#delivered += packet.bytes
      this.#deliveredUs = nowUs
      this.#firstSentUs = packet.sentUs
      // The rate over the longer of the send and the acknowledgement intervals.
      const interval = Math.max(packet.sentUs - packet.firstSentUsAtSend, nowUs - packet.deliveredUsAtSend)
      if (interval > 0) this.congestion.onRateSample((this.#delivered - packet.deliveredAtSend) / interval, nowUs, Math.max(4 * this.rtt.smoothedUs, granularityUs))
      this.congestion.onAcked(packet.bytes, packet.sentUs, windowInUse)
    }
    for (const chunk of packet.chunks) this.#creditFragment(chunk)
  }

  /** A reliable fragment the receiver has. */
  #creditFragment(chunk: Chunk): void {
    const message = this.#findReliable(chunk.channel, chunk.sequence)
    if (message === undefined || message.lastSent[chunk.fragment] === acked) return
    message.lastSent[chunk.fragment] = acked
    const first = message.acked++ === 0
    const channel = this.#sendChannels[chunk.channel]!
    if (message.acked === message.fragments && !channel.completed) {
      channel.completed = true
      this.#completedChannels.push(chunk.channel)
    }
    if (!first) return
    // The receiver has started this message, so it takes the rest whatever its bound: its fragments already
    // queued for a resend go again, ahead; the entries queued before are skipped.
    const everSent = message.fragments - message.unsent // fragments go out in order
    for (let fragment = 0; fragment < everSent; fragment++) {
      if (message.lastSent[fragment] === notSent) this.#retransmits.push({ channel: message.channel, started: true, sequence: message.sequence, fragment })
    }
  }

  #onPacketLost(packet: SentPacket, nowUs: number): void {
    this.stats.packetsLost++
    const reduction = this.#settle(packet) ? this.congestion.onLost(packet.sentUs, nowUs, this.rtt.pathMinUs, this.rtt.samples > 0 ? this.rtt.recentMinUs : 0) : 0
    if (packet.ackEliciting) {
      if (this.#recentlyLost.length === recentlyLostKept) this.#recentlyLost.shift()
      this.#recentlyLost.push({ number: packet.number, sentUs: packet.sentUs, reduction, chunks: packet.chunks.slice() }) // (the record's list is reused)
    }
    for (const chunk of packet.chunks) {
      const message = this.#findReliable(chunk.channel, chunk.sequence)
      // Only the latest copy of a fragment counts: an older copy's loss says nothing new.
      if (message === undefined || message.lastSent[chunk.fragment] !== packet.number) continue
      message.lastSent[chunk.fragment] = notSent
      this.#retransmits.push({ ...chunk, started: message.acked > 0 })
    }
  }

  /**
   * Packets this ACK acknowledges that were declared lost: reordered, not lost. Each raises the thresholds,
   * leaves the loss count, and undoes the window reduction it caused. A binary search of the ranges each.
   */
  #onSpuriousLosses(ranges: readonly PacketRange[], nowUs: number): void {
    let kept = 0
    for (const lost of this.#recentlyLost) {
      // The first range whose low is not above the lost number.
      let lo = 0
      let hi = ranges.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (ranges[mid]!.low > lost.number) lo = mid + 1
        else hi = mid
      }
      const range = ranges[lo]
      if (range === undefined || lost.number > range.high) {
        this.#recentlyLost[kept++] = lost
        continue
      }
      this.stats.spuriousLosses++
      if (this.stats.packetsLost > 0) this.stats.packetsLost--
      // What it carried arrived: no resend is owed for it.
      for (const chunk of lost.chunks) this.#creditFragment(chunk)
      // Its record, if the ring still has it (one before the oldest outstanding is never read again).
      const packet = this.#record(lost.number)
      if (packet.number === lost.number) packet.acked = true
      this.#packetThreshold = Math.min(maxPacketThreshold, Math.max(this.#packetThreshold, this.#largestAcked - lost.number + 1))
      this.#timeThresholdEighths = Math.min(maxTimeThresholdEighths, this.#timeThresholdEighths + 1)
      this.congestion.onSpuriousLoss(lost.reduction)
    }
    this.#recentlyLost.length = kept
    this.#forgetOldLosses(nowUs)
  }

  #forgetOldLosses(nowUs: number): void {
    const memoryUs = Math.max(lostMemoryRtts * this.rtt.smoothedUs, lostMemoryMinUs)
    const lost = this.#recentlyLost
    let kept = 0
    for (const record of lost) if (nowUs - record.sentUs < memoryUs) lost[kept++] = record
    lost.length = kept
  }

  #detectLosses(nowUs: number): void {
    this.#lossTimeUs = 0
    if (!this.#anyAcked) return
    const lossDelay = Math.max(Math.floor((Math.max(this.rtt.latestUs, this.rtt.smoothedUs) * this.#timeThresholdEighths) / 8), granularityUs)
    const end = Math.min(this.#largestAcked, this.#nextPacket === 0 ? 0 : this.#nextPacket - 1)
    // Persistent congestion (RFC 9002 §7.6): every ack-eliciting packet over three probe timeouts lost.
    const persistentUs = 3 * this.#probeTimeoutBaseUs()
    const thresholdBefore = this.congestion.slowStartThreshold
    let lostRun = false
    let persistent = false
    let lostRunStartUs = 0
    for (let number = this.#sentBase; number <= end && number < this.#nextPacket; number++) {
      const packet = this.#record(number)
      if (!packet.ackEliciting || number >= this.#largestAcked) continue
      if (packet.settled) {
        if (packet.acked) lostRun = false
        continue
      }
      if (this.#largestAcked - number >= this.#packetThreshold || packet.sentUs + lossDelay <= nowUs) {
        this.#onPacketLost(packet, nowUs)
        if (!lostRun) {
          lostRun = true
          lostRunStartUs = packet.sentUs
        }
        persistent = persistent || (this.rtt.samples > 0 && packet.sentUs - lostRunStartUs > persistentUs)
      } else {
        lostRun = false
        if (this.#lossTimeUs === 0 || packet.sentUs + lossDelay < this.#lossTimeUs) this.#lossTimeUs = packet.sentUs + lossDelay
      }
    }
    if (persistent) {
      this.congestion.onPersistentCongestion(thresholdBefore)
      this.rtt.forgetPathMin()
      this.stats.persistentCongestion++
    }
    this.#settleFront()
  }

  /**
   * Starts a drain when the path's minimum RTT is stale and ends it when its time is up (at each ACK): the
   * window of a flow that fills it held to half the path's bandwidth-delay product at its old minimum, as
   * native/protocol/delivery/delivery_send.cc's UpdateDrain does (which says why); a sample near the old minimum ends it at once.
   */
  #updateDrain(nowUs: number): void {
    if (this.#drainEndUs !== 0) {
      if (nowUs < this.#drainEndUs && this.rtt.draining) return
      this.#drainEndUs = 0
      if (this.rtt.draining) this.rtt.endDrain(nowUs)
      this.congestion.release()
      return
    }
    if (!this.rtt.pathMinStale(nowUs)) return
    this.stats.rttDrains++
    this.rtt.startDrain()
    if (this.#windowInUse()) this.congestion.hold(Math.trunc((this.congestion.bandwidthBytesPerUs * this.rtt.pathMinUs) / 2))
    const roundTripUs = this.rtt.latestAckSampleUs
    this.#drainEndUs = nowUs + Math.min(roundTripUs + Math.max(drainHoldUs, roundTripUs), maxDrainUs)
  }

  /** A drain of the path's minimum RTT is under way. */
  get draining(): boolean {
    return this.#drainEndUs !== 0
  }

  /** At least half the window is in flight: the flow is limited by it, not by what the application sends. */
  #windowInUse(): boolean {
    return this.bytesInFlight * 2 >= this.congestion.window
  }

  /** RFC 9002's PTO before backoff. */
  #probeTimeoutBaseUs(): number {
    return this.rtt.smoothedUs + Math.max(4 * this.rtt.variationUs, granularityUs) + this.config.maxAckDelayUs
  }

  /** From the last packet with reliable data while any is in flight (the pings' probes must not postpone it), or the last probe timeout. */
  #probeTimeoutStartUs(): number {
    return Math.max(this.#dataPacketsInFlight > 0 ? this.#lastDataSentUs : this.#lastAckElicitingSentUs, this.#lastProbeTimeoutUs)
  }

  #probeTimeoutUs(): number {
    return this.#probeTimeoutBaseUs() * 2 ** Math.min(this.#probeCount, 10)
  }

  #onProbeTimeout(nowUs: number): void {
    this.#lastProbeTimeoutUs = nowUs
    this.#probeCount++
    this.stats.probeTimeouts++
    this.#probesToSend = 2
    // Resend the oldest unacknowledged packet's reliable fragments.
    for (let number = this.#sentBase; number < this.#nextPacket; number++) {
      const packet = this.#record(number)
      if (packet.settled || packet.chunks.length === 0) continue
      for (const chunk of packet.chunks) {
        const message = this.#findReliable(chunk.channel, chunk.sequence)
        if (message === undefined) continue // acknowledged whole since
        this.#retransmits.push({ ...chunk, started: message.acked > 0 })
      }
      break
    }
  }

  #settleFront(): void {
    while (this.#sentBase < this.#nextPacket && this.#record(this.#sentBase).settled) this.#sentBase++
  }

  // --- timers ---

  /** Timers: loss detection, probe timeouts, delayed acknowledgements, pings, fragment expiry, stalls; then flush(). */
  update(nowUs: number): void {
    if (this.#recentlyLost.length > 0) this.#forgetOldLosses(nowUs) // idle: no ACK comes to do it
    if (this.#lossTimeUs !== 0 && nowUs >= this.#lossTimeUs) this.#detectLosses(nowUs)
    else if (this.#ackElicitingInFlight > 0 && nowUs >= this.#probeTimeoutStartUs() + this.#probeTimeoutUs()) this.#onProbeTimeout(nowUs)
    this.receiveTimers(nowUs)
    this.flush(nowUs)
  }

  nextDeadlineUs(nowUs: number): number {
    let next = this.nextPingUs
    if (this.#lossTimeUs !== 0) next = Math.min(next, this.#lossTimeUs)
    else if (this.#ackElicitingInFlight > 0) next = Math.min(next, this.#probeTimeoutStartUs() + this.#probeTimeoutUs())
    if (this.ackPending) next = Math.min(next, this.ackImmediately || this.elicitingSinceAck >= 2 ? nowUs : this.ackDeadlineUs)
    if (this.pongPending) next = Math.min(next, Math.max(nowUs, this.pongDueUs))
    if (this.#messagesReady() && this.bytesInFlight + maxPacketBytes <= this.congestion.window) {
      // Waiting for pacing credit only.
      const missing = maxPacketBytes - this.#pacingCredit
      next = Math.min(next, missing <= 0 ? nowUs : nowUs + Math.floor(missing / this.#pacingRate()) + 1)
    }
    return Math.min(next, this.receiveDeadlineUs())
  }

  /** The receiving side's timers: incomplete unreliable and sequenced messages past their time, a stalled reliable one. */
  protected abstract receiveTimers(nowUs: number): void
  /** When receiveTimers() next has work (Infinity: never). */
  protected abstract receiveDeadlineUs(): number
  protected abstract receiveQueueSlots(): number
  /** Whether a pong's (id, echo) is one of the last pings this side sent, as it sent it. */
  protected answersPing(id: number, echo: number): boolean {
    return id < this.#nextPingId && this.#nextPingId - id <= pingsRemembered && this.#pingSentUs[id % pingsRemembered] === echo
  }

  protected abstract receiveCountsAgree(): boolean
}
