// The delivery layer of one connection in TypeScript (sans-IO), for the fallback engine: the native core
// (native/protocol/delivery/) decision for decision, so that the two interoperate and, fed the same calls, send
// the same bytes and deliver the same messages (test/delivery/delivery-core-differential.test.ts). This
// file is its receiving side, as native/protocol/delivery/delivery_receive.cc: parsing (every length checked
// before use, the whole packet before any of it is acted on), acknowledgement bookkeeping, reliable
// reordering, sequenced and unreliable delivery, reassembly within the memory bound, settings, pongs and
// the clock. sending.ts holds the state and the sending side.
import { type DeliveryConfig, type DeliverySink, Mismatch, defaultDeliveryConfig } from './config.ts'
import { ReceivedPackets, type PacketRange } from './received-packets.ts'
import { Ring } from './ring.ts'
import { maxRttSampleUs } from './rtt-estimator.ts'
import { DeliverySending } from './sending.ts'
import { FragmentStore } from './fragment-store.ts'
import type { BudgetMember, ReassemblyBudget } from './reassembly-budget.ts'
import { ChannelModeCode, Frame, FrameReader, fragmentBytes, fragmentCount, maxChannels, maxMessageBytesLimit, packetMarker } from './wire-format.ts'

export { type DeliveryConfig, type DeliverySink, DeliveryStats, Mismatch, type PeerSettings, type SendResult, defaultDeliveryConfig } from './config.ts'

const maxAckRangesAccepted = 256
/** The clocks' rate difference bounds, before and after the clock sync has measured it. */
const maxDriftPpm = 200
const residualDriftPpm = 50
/** A pong held at most this long (or the ACK delay, if longer) was sent at once: the minimum RTT may take it early. */
const promptPongUs = 5000
/** Incomplete unreliable/sequenced messages per channel. */
const partialSlots = 8
/**
 * An incomplete unreliable/sequenced message with no fragment for this long (or 4 smoothed RTTs, if longer)
 * has lost one: a sender sends a message's fragments one after another.
 */
const idlePartialUs = 250_000
/**
 * One slot of a reliable receive queue as the bound counts it: at least what a slot costs either engine (the
 * native core's InMessage is 88 bytes, the fallback's object about 120).
 */
export const receiveSlotBytes = 128
/**
 * What a held message costs beyond its bytes and fragment flags, as the bound counts it: at least what its
 * buffer costs either engine (a native allocation's header, the fallback's typed array, about 200 bytes).
 */
export const heldMessageBytes = 256
/** What the bound counts for a message held: its bytes, its flags (one per fragment, 1 unfragmented), and heldMessageBytes. */
const heldCost = (length: number, flags: number): number => length + flags + heldMessageBytes
/** A queue's first slots, which every channel may always have: not counted against the bound. */
const freeQueueSlots = Ring.firstCapacity

interface InMessage {
  used: boolean
  /** Reliable, over the maximum: not delivered, its sequence passed over. */
  passedOver: boolean
  /** Unreliable or sequenced (counted in #partialsUsed). */
  partial: boolean
  sequence: number
  firstUs: number
  /** Its latest new fragment. */
  lastUs: number
  length: number
  /**
   * Its bytes, made as they come; null in a slot with no message started (an object of its own in every slot
   * would cost more than the bound counts a slot: receiveSlotBytes).
   */
  store: FragmentStore | null
  fragments: number
  received: number
}

const inMessage = (): InMessage => ({ used: false, passedOver: false, partial: false, sequence: 0, firstUs: 0, lastUs: 0, length: 0, store: null, fragments: 0, received: 0 })
/** Whether a started message's slot holds a fragment. */
const hasFragment = (slot: InMessage, fragment: number): boolean => slot.store !== null && slot.store.has(fragment)
/** A slot's share of the budget: its message's cost, or nothing. */
const budgetCost = (slot: InMessage): number => (slot.used && !slot.passedOver ? heldCost(slot.length, slot.fragments) : 0)
/** Whether the budget may evict a connection: no new fragment for this long (or 4 smoothed RTTs). */
const budgetIdleUs = 1_000_000

interface ReceiveChannel {
  mode: ChannelModeCode
  /** Reliable: the next sequence to deliver. */
  nextDeliver: number
  anyDelivered: boolean
  lastDelivered: number
  /** Reliable: messages from nextDeliver on that arrived out of order ([k] is nextDeliver + k). */
  pending: Ring<InMessage>
  /** Unreliable and sequenced: incomplete fragmented messages (made at the first). */
  partials: InMessage[]
  /** In #drainedChannels. */
  listedDrained: boolean
}

/** A queue's slots counted against the bound (those beyond its first ones). */
const countedSlots = (queue: Ring<InMessage>): number => (queue.capacity > freeQueueSlots ? queue.capacity - freeQueueSlots : 0)
/** Whether a queue holds counted slots empty: what fitsBound() can give back. */
const drained = (queue: Ring<InMessage>): boolean => queue.empty && countedSlots(queue) > 0

/** A channel's slots for incomplete messages go when it has none left (else a peer could leave them on every channel with a frame each, outside the bound). */
function giveBackPartials(channel: ReceiveChannel): void {
  if (channel.partials.length === 0) return
  for (const slot of channel.partials) if (slot.used) return
  channel.partials = []
}

export class DeliveryCore extends DeliverySending implements BudgetMember {
  readonly #receiveChannels: ReceiveChannel[]
  /** Seen but not acknowledged: some of their reliable data did not fit. */
  readonly #refusedPackets = new ReceivedPackets()
  /** Bytes of messages being reassembled. */
  reassemblyUsed = 0
  /** The held messages' fragment flags and heldMessageBytes each: counted against the bound with their bytes. */
  #heldExtraBytes = 0
  /** What buffers may still be made ahead of their data (bytes); see the native core. */
  #bufferCredit: number
  #partialsUsed = 0
  /**
   * While #partialsUsed > 0: at most the earliest start, and the earliest latest fragment, of the incomplete
   * messages (exact after each walk over them): until one may have expired or gone idle, nothing is walked.
   */
  #partialsFirstUs = 0
  #partialsLastUs = 0
  #countedQueueSlots = 0
  #drainedQueues = 0
  /**
   * The channels whose queue drained since #fitsBound() last gave slots back (some may have refilled since):
   * it walks these, not every channel. Each entry was made by a frame that drained a queue.
   */
  readonly #drainedChannels: ReceiveChannel[] = []
  readonly #ackRanges: PacketRange[] = []
  /** The reassembly memory shared with the server's other connections; null: none beyond this one's bound. */
  readonly #budget: ReassemblyBudget | null
  /** What this connection holds of its budget (kept by the budget). */
  budgetHeld = 0
  /** The last new fragment stored, of any message (kept by the budget's progress()). */
  lastFragmentUs = 0
  /** Reliable messages started and not complete, and when the peer last sent a new fragment of one (the stall timer). */
  #incompleteReliable = 0
  #reliableActivityUs = 0
  #stalled = false
  /** Reused by every packet received (receive() is not reentered: a sink must not call back into its core). */
  readonly #reader = new FrameReader(new Uint8Array(0))
  readonly #outcome = { ackEliciting: false, refused: false, withSettings: false }

  /**
   * packetSkipKey: packetSkipKeyBytes random bytes of this connection's own (sending.ts); null skips no packet
   * number. budget: the reassembly memory shared with the server's other connections; null: none.
   */
  constructor(config: Partial<DeliveryConfig>, sink: DeliverySink, packetSkipKey: Uint8Array | null = null, budget: ReassemblyBudget | null = null) {
    super({ ...defaultDeliveryConfig, ...config }, sink, packetSkipKey)
    this.#budget = budget
    this.#bufferCredit = this.#bufferCreditLimit()
    this.#receiveChannels = this.config.channels.map((mode) => ({ mode, nextDeliver: 0, anyDelivered: false, lastDelivered: 0, pending: new Ring(inMessage), partials: [], listedDrained: false }))
  }

  /**
   * The packets sent before nowUs give no RTT sample: their acknowledgements and pongs waited while this
   * side's thread could not read (a JavaScript stall), and would measure that wait, not the path.
   */
  discardRttSamplesBefore(nowUs: number): void {
    this.rttSamplesFromUs = nowUs
  }

  /**
   * Set for good when a reliable message the peer started stopped coming (config reliableStallUs), or the
   * budget evicted this connection's messages while it sent none of them: what it held is freed, nothing
   * more is received, and the connection should end.
   */
  get stalled(): boolean {
    return this.#stalled
  }

  /** The connection is over: what it holds of the budget goes back (the native core's destructor). */
  close(): void {
    if (this.#budget !== null && this.budgetHeld > 0) this.#budget.give(this, this.budgetHeld)
  }

  /** One delivery packet from the peer (the body of a netcode payload packet). */
  receive(data: Uint8Array, nowUs: number): void {
    const stats = this.stats
    stats.packetsIn++
    stats.bytesIn += data.byteLength
    if (this.#stalled) return // the connection is ending: what it held is gone, and nothing more is taken
    const reader = this.#reader.reset(data, 0)
    const marker = reader.u8()
    const number = reader.varint()
    if (reader.failed || marker !== packetMarker) {
      stats.malformed++
      // Every delivery packet starts with the marker: a payload without it comes from a peer without channels.
      if (data.byteLength > 0 && marker !== packetMarker && this.mismatchFound === Mismatch.none) this.mismatchFound = Mismatch.noDeliveryLayer
      return
    }
    const start = reader.offset
    const outcome = this.#outcome
    outcome.ackEliciting = false
    outcome.refused = false
    outcome.withSettings = false
    // The whole packet is checked before any of it is acted on: a malformed packet changes nothing.
    if (!this.#processFrames(data, start, nowUs, false, outcome)) {
      stats.malformed++
      return
    }
    // A peer that runs this layer puts its settings in every packet until this side has them.
    if (!this.peerSettings.known && !outcome.withSettings && this.mismatchFound === Mismatch.none) this.mismatchFound = Mismatch.noDeliveryLayer
    // Older than what either record remembers: a copy or a late packet, which cannot be told apart.
    if (!this.received.remembers(number) || !this.#refusedPackets.remembers(number)) {
      stats.forgottenPackets++
      return
    }
    if (this.received.contains(number) || this.#refusedPackets.contains(number)) {
      stats.duplicatePackets++
      return
    }
    this.#processFrames(data, start, nowUs, true, outcome)
    // Data that did not fit in memory: the packet is not acknowledged, so its reliable data comes again.
    if (outcome.refused) {
      this.#refusedPackets.add(number)
      return
    }
    const inOrder = this.received.empty || number === this.received.largest + 1
    this.received.add(number)
    if (number === this.received.largest) this.largestReceivedUs = nowUs
    if (outcome.ackEliciting) {
      if (!this.ackPending) this.ackDeadlineUs = nowUs + this.config.maxAckDelayUs
      this.ackPending = true
      this.elicitingSinceAck++
      if (!inOrder) this.ackImmediately = true // a gap: the sender should hear of it at once
    }
  }

  #processFrames(data: Uint8Array, start: number, nowUs: number, apply: boolean, outcome: { ackEliciting: boolean; refused: boolean; withSettings: boolean }): boolean {
    if (start === data.byteLength) return false
    const reader = this.#reader.reset(data, start)
    let withData = false
    // At most one ACK, PING, PONG and SETTINGS frame a packet: a second is malformed.
    let controlFrames = 0
    while (reader.remaining > 0) {
      const type = reader.u8()
      withData = withData || type === Frame.message || type === Frame.fragment
      if (type === Frame.ack || type === Frame.ping || type === Frame.pong || type === Frame.settings) {
        const bit = 1 << type
        if ((controlFrames & bit) !== 0) return false
        controlFrames |= bit
      }
      switch (type) {
        case Frame.ack: {
          const largest = reader.varint()
          const delay = reader.varint()
          const firstRange = reader.varint()
          const count = reader.varint()
          if (reader.failed || firstRange > largest || count > maxAckRangesAccepted || largest >= this.nextPacketNumber) return false
          const ranges = this.#ackRanges
          ranges.length = 0
          let low = largest - firstRange
          ranges.push({ low, high: largest })
          for (let i = 0; i < count; i++) {
            const gap = reader.varint()
            const length = reader.varint()
            if (reader.failed || low < 2 || gap > low - 2) return false
            const high = low - gap - 2
            if (length > high) return false
            low = high - length
            ranges.push({ low, high })
          }
          // A number this side skipped was never sent: an ACK of it acknowledges what the peer did not receive.
          if (this.acksSkippedNumber(ranges)) return false
          if (apply) this.onAck(largest, delay, ranges, nowUs)
          break
        }
        case Frame.ping: {
          const id = reader.varint()
          const senderClock = reader.varint() // echoed in the pong
          if (reader.failed) return false
          // Pongs are rate-limited: a ping sooner after the last one answered goes unanswered.
          if (apply && (!this.anyPingAnswered || nowUs - this.pongReceivedUs >= this.config.minPongIntervalUs)) {
            const first = !this.anyPingAnswered
            this.anyPingAnswered = true
            this.pongPending = true
            this.pongId = id
            this.pongEcho = senderClock
            this.pongReceivedUs = nowUs
            // The leader holds its pong to a following ping (one that came with the pong to its own) for its
            // next ping; a ping on its own, and the first, are answered at once.
            const withPong = (controlFrames & (1 << Frame.pong)) !== 0
            const following = !this.config.followsPings && withPong && !first
            this.pongDueUs = following ? Math.max(nowUs, this.nextPingUs) : nowUs
          }
          break
        }
        case Frame.probe:
          outcome.ackEliciting = true
          break
        case Frame.settings: {
          const role = reader.u8()
          const maxMessageBytes = reader.varint()
          const count = reader.varint()
          if (reader.failed || role > 1 || maxMessageBytes < 1 || maxMessageBytes > maxMessageBytesLimit || count < 1 || count > maxChannels || count > reader.remaining) return false
          const modes = reader.skip(count)
          for (let i = 0; i < count; i++) {
            const mode = data[modes + i]!
            if (mode < ChannelModeCode.reliable || mode > ChannelModeCode.sequenced) return false
          }
          // Ahead of the messages, as a sender puts them.
          if (!withData) outcome.withSettings = true
          if (apply) this.#onSettings(role === 1, maxMessageBytes, data.subarray(modes, modes + count) as Uint8Array)
          break
        }
        case Frame.pong: {
          const id = reader.varint()
          const echo = reader.varint()
          const remoteReceived = reader.varint()
          const delay = reader.varint()
          if (reader.failed) return false
          // Every ping carried the settings until now: the peer has them.
          if (apply) {
            this.settingsDelivered = true
            this.messagesWaitForSettings = false
          }
          // The echo is the time one of this side's last pings left (a forged one is no sample); the peer held
          // the ping for `delay` of it.
          if (apply && this.answersPing(id, echo) && echo <= nowUs && delay <= nowUs - echo && nowUs - echo <= maxRttSampleUs) {
            this.clock.sample(echo, remoteReceived, delay, nowUs)
            if (echo >= this.rttSamplesFromUs) this.#samplePongRtt(nowUs - echo, delay)
          }
          break
        }
        case Frame.message:
        case Frame.fragment: {
          const channel = reader.u8()
          const sequence = reader.varint()
          const length = reader.varint()
          const fragmented = type === Frame.fragment
          let fragment = 0
          let bytes = length
          // A message that fits one fragment travels whole, and only such a one does.
          if (!fragmented && length > fragmentBytes) return false
          if (fragmented) {
            fragment = reader.varint()
            if (reader.failed || length <= fragmentBytes || fragment > Math.floor((length - 1) / fragmentBytes)) return false
            bytes = Math.min(fragmentBytes, length - fragment * fragmentBytes)
          }
          if (reader.failed || bytes > reader.remaining) return false
          const at = reader.skip(bytes)
          outcome.ackEliciting = true
          if (!apply) break
          if (channel >= this.#receiveChannels.length) {
            this.stats.unknownChannel++
            break
          }
          this.#onMessageFrame(channel, sequence, length, fragment, fragmented, data, at, bytes, nowUs, outcome)
          break
        }
        default:
          return false
      }
      if (reader.failed) return false
    }
    return !reader.failed
  }

  #onSettings(followsPings: boolean, maxMessageBytes: number, modes: Uint8Array): void {
    const peer = this.peerSettings
    // The first counts: settings do not change during a connection (later copies are resends).
    if (peer.known) return
    // This side's own role coming back: its own packets echoed by a peer without channels.
    if (followsPings === this.config.followsPings) {
      if (this.mismatchFound === Mismatch.none) this.mismatchFound = Mismatch.noDeliveryLayer
      return
    }
    peer.known = true
    peer.maxMessageBytes = maxMessageBytes
    peer.channels = Array.from(modes) as ChannelModeCode[]
    // Channels only one side has are not a mismatch; one both have in two modes is.
    const shared = Math.min(modes.length, this.config.channels.length)
    for (let i = 0; i < shared; i++) {
      if (peer.channels[i] !== this.config.channels[i] && this.mismatchFound === Mismatch.none) this.mismatchFound = Mismatch.channelModes
    }
  }

  /** Where the credit stops growing: the bound, never below the largest message (see the native core). */
  /**
   * The peer's data pays for buffers past the bound (#startInMessage), but not a copy of what is already
   * here: copies of one stored fragment, each in a new packet, bought a channel's next message (up to
   * maxMessageBytes) at twice their bytes, and held it for as long as the connection lasted. A method, not
   * a closure made for each frame.
   */
  #earnCredit(size: number): void {
    this.#bufferCredit = Math.min(this.#bufferCredit + 2 * size, this.#bufferCreditLimit())
  }

  #bufferCreditLimit(): number {
    return Math.max(this.reassemblyLimit, this.config.maxMessageBytes)
  }

  #startInMessage(slot: InMessage, sequence: number, length: number, fragmented: boolean, nowUs: number, headOfLine: boolean): boolean {
    // The message each reliable channel delivers next is taken past the bound if need be, as the peer's data
    // pays for it (see the native core).
    const fragments = fragmented ? fragmentCount(length) : 1
    const cost = heldCost(length, fragments)
    const onCredit = !this.#fitsBound(cost)
    if (onCredit && (!headOfLine || length > this.#bufferCredit)) {
      this.stats.overBudget++
      return false
    }
    // The server's budget, which every message takes from (the next one of a channel too).
    if (this.#budget !== null && !this.#budget.take(this, cost, nowUs)) {
      this.stats.overBudget++
      return false
    }
    // Only its table of blocks is made now, and a memory limit may refuse even that.
    const store = new FragmentStore()
    if (!store.start(length)) {
      this.#budget?.give(this, cost)
      this.stats.overBudget++
      return false
    }
    if (onCredit) this.#bufferCredit -= length
    slot.used = true
    slot.sequence = sequence
    slot.firstUs = nowUs
    slot.lastUs = nowUs
    slot.length = length
    slot.fragments = fragments
    slot.store = store
    slot.received = 0
    this.reassemblyUsed += length
    this.#heldExtraBytes += fragments + heldMessageBytes
    return true
  }

  #freeInMessage(slot: InMessage): void {
    const cost = budgetCost(slot)
    if (this.#budget !== null && cost > 0) this.#budget.give(this, cost)
    if (slot.used && !slot.partial && !slot.passedOver && slot.received < slot.fragments) this.#incompleteReliable--
    this.reassemblyUsed -= slot.length
    if (slot.used && !slot.passedOver) this.#heldExtraBytes -= slot.fragments + heldMessageBytes // started
    slot.length = 0
    if (slot.partial) this.#partialsUsed--
    slot.partial = false
    slot.used = false
    slot.passedOver = false
    // Given back with the message: kept in a slot, it would be memory outside the bound.
    slot.store = null
  }

  /** Stores a fragment of a started message (its block made if need be); false, counted, when memory refused it. */
  #storeFragment(slot: InMessage, fragment: number, data: Uint8Array, at: number, size: number, nowUs: number): boolean {
    const made = slot.store!.store(fragment, data, at, size)
    if (made < 0) {
      this.stats.overBudget++
      return false
    }
    this.stats.reassemblyMade += made
    this.#budget?.progress(this, nowUs)
    return true
  }

  /** Frees every message and queue slot held, sets stalled and tells the sink (once). */
  #stall(): void {
    if (this.#stalled) return
    this.#stalled = true
    for (const channel of this.#receiveChannels) {
      for (let i = 0; i < channel.pending.size; i++) this.#freeInMessage(channel.pending.at(i))
      this.#changeQueue(channel, () => channel.pending.clear())
      for (const slot of channel.partials) this.#freeInMessage(slot)
      giveBackPartials(channel)
    }
    this.sink.stalled?.()
  }

  idleForBudget(nowUs: number): boolean {
    return nowUs >= this.lastFragmentUs + Math.max(budgetIdleUs, 4 * this.rtt.smoothedUs)
  }

  evictForBudget(): void {
    // A reliable message given up on breaks the channel for good (its fragments were acknowledged): the
    // connection ends. Otherwise incomplete unreliable messages are lost (idle a second), and queue slots
    // that hold nothing are given back.
    for (const channel of this.#receiveChannels) {
      for (let i = 0; i < channel.pending.size; i++) if (channel.pending.at(i).used) return this.#stall()
    }
    for (const channel of this.#receiveChannels) {
      for (const slot of channel.partials) {
        if (!slot.used) continue
        this.stats.expiredFragments++
        this.#freeInMessage(slot)
      }
      giveBackPartials(channel)
      if (countedSlots(channel.pending) > 0) this.#changeQueue(channel, () => channel.pending.clear())
    }
  }

  #samplePongRtt(elapsedUs: number, delayUs: number): void {
    // The delay was timed on the peer's clock: corrected by the drift once the clock sync knows it; the
    // minimum takes a long hold only then, at an upper bound of the round trip.
    const heldUs = delayUs * (1 - this.clock.drift)
    const rttUs = Math.min(Math.max(elapsedUs - heldUs, 1), maxRttSampleUs)
    let minCandidateUs = 0
    if (delayUs <= Math.max(this.config.maxAckDelayUs, promptPongUs) || this.clock.driftKnown) {
      const boundPpm = this.clock.driftKnown ? residualDriftPpm : maxDriftPpm
      minCandidateUs = Math.trunc(rttUs + delayUs * boundPpm * 1e-6)
    }
    this.rtt.sampleNet(Math.trunc(rttUs), minCandidateUs)
  }

  #deliver(channel: number, data: Uint8Array, owned: boolean): void {
    if (this.mismatchFound !== Mismatch.none) {
      this.stats.mismatched++
      return
    }
    this.stats.messagesIn++
    this.stats.messageBytesIn += data.byteLength
    this.sink.message(channel, data, owned)
  }

  /** A reassembled message (one block's, or its blocks joined, which the sink may keep); its slot is freed after. */
  #deliverWhole(channel: number, slot: InMessage): void {
    const { data, owned } = slot.store!.whole()
    this.#deliver(channel, data, owned)
    this.#freeInMessage(slot)
  }

  #deliverReliable(channel: ReceiveChannel, index: number): void {
    while (!channel.pending.empty) {
      const slot = channel.pending.front()
      if (!slot.used || slot.received < slot.fragments) return
      if (slot.passedOver) this.#freeInMessage(slot)
      else this.#deliverWhole(index, slot)
      this.#changeQueue(channel, () => channel.pending.popFront())
      channel.nextDeliver++
    }
  }

  /** Bytes the receiving channels' message slots hold. */
  get reassemblyHeld(): number {
    let held = 0
    const add = (slot: InMessage): void => {
      held += slot.store?.held ?? 0
    }
    for (const channel of this.#receiveChannels) {
      for (let i = 0; i < channel.pending.size; i++) add(channel.pending.at(i))
      for (const slot of channel.partials) add(slot)
    }
    return held
  }

  protected receiveQueueSlots(): number {
    let slots = 0
    for (const channel of this.#receiveChannels) slots += channel.pending.capacity + channel.partials.length
    return slots
  }

  protected receiveCountsAgree(): boolean {
    let partials = 0
    let counted = 0
    let drainedCount = 0
    let heldExtra = 0
    let budgetHeld = 0
    let incompleteReliable = 0
    const held = (slot: InMessage): void => {
      if (slot.used && !slot.passedOver) heldExtra += slot.fragments + heldMessageBytes
      budgetHeld += budgetCost(slot)
    }
    for (const channel of this.#receiveChannels) {
      for (const slot of channel.partials) {
        partials += slot.used ? 1 : 0
        held(slot)
      }
      for (let i = 0; i < channel.pending.size; i++) {
        const slot = channel.pending.at(i)
        held(slot)
        if (slot.used && !slot.passedOver && slot.received < slot.fragments) incompleteReliable++
      }
      counted += countedSlots(channel.pending)
      drainedCount += drained(channel.pending) ? 1 : 0
      if (drained(channel.pending) && !channel.listedDrained) return false
    }
    return (
      partials === this.#partialsUsed &&
      counted === this.#countedQueueSlots &&
      drainedCount === this.#drainedQueues &&
      heldExtra === this.#heldExtraBytes &&
      incompleteReliable === this.#incompleteReliable &&
      (this.#budget === null || budgetHeld + counted * receiveSlotBytes === this.budgetHeld)
    )
  }

  /** Every change to a reliable channel's queue goes through here: it keeps the running counts. */
  #changeQueue(channel: ReceiveChannel, change: () => void): void {
    const before = countedSlots(channel.pending)
    this.#countedQueueSlots -= before
    this.#drainedQueues -= drained(channel.pending) ? 1 : 0
    change()
    const after = countedSlots(channel.pending)
    this.#countedQueueSlots += after
    // Slots given back leave the budget; the growth was taken from it before (#makeRoomInQueue).
    if (this.#budget !== null && after < before) this.#budget.give(this, (before - after) * receiveSlotBytes)
    if (drained(channel.pending)) {
      this.#drainedQueues++
      if (!channel.listedDrained) {
        channel.listedDrained = true
        this.#drainedChannels.push(channel)
      }
    }
  }

  /** Whether `extraBytes` more stay within the reassembly bound, once drained queues (but `growing`) gave their slots back if need be. */
  #fitsBound(extraBytes: number, growing?: ReceiveChannel): boolean {
    if (this.reassemblyUsed + this.#heldExtraBytes + this.#countedQueueSlots * receiveSlotBytes + extraBytes <= this.reassemblyLimit) return true
    if (this.#drainedQueues === (growing !== undefined && drained(growing.pending) ? 1 : 0)) return false // nothing to give back
    // The listed channels only: a peer could drain a queue every few frames, and each walk over 255 channels
    // cost it microseconds. Cleared, a queue is not drained and so not listed again here.
    const listed = this.#drainedChannels
    this.stats.queueGiveBacks += listed.length
    let kept = 0
    for (const channel of listed) {
      const isDrained = drained(channel.pending)
      if (channel === growing && isDrained) {
        listed[kept++] = channel
        continue
      }
      channel.listedDrained = false
      if (isDrained) this.#changeQueue(channel, () => channel.pending.clear())
    }
    listed.length = kept
    return this.reassemblyUsed + this.#heldExtraBytes + this.#countedQueueSlots * receiveSlotBytes + extraBytes <= this.reassemblyLimit
  }

  /** Slots in a reliable channel's queue up to [offset]: false, counted, when growing it would pass the bound. */
  #makeRoomInQueue(channel: ReceiveChannel, offset: number, nowUs: number): boolean {
    if (offset < channel.pending.size) return true
    const grown = channel.pending.capacityFor(offset + 1)
    const counted = Math.max(channel.pending.capacity, freeQueueSlots)
    if (grown > counted && (!this.#fitsBound((grown - counted) * receiveSlotBytes, channel) || (this.#budget !== null && !this.#budget.take(this, (grown - counted) * receiveSlotBytes, nowUs)))) {
      this.stats.overBudget++
      return false
    }
    this.#changeQueue(channel, () => channel.pending.resize(offset + 1))
    return true
  }

  /** An oversized reliable message: its sequence is passed over. */
  #passOver(channel: ReceiveChannel, index: number, sequence: number): void {
    const slot = channel.pending.at(sequence - channel.nextDeliver) // made by #makeRoomInQueue
    if (slot.used && slot.passedOver) {
      this.stats.duplicateMessages++ // another fragment of it
      return
    }
    if (slot.used) {
      this.stats.malformed++ // started with another length: the sender is broken
      return
    }
    this.stats.oversized++
    slot.used = true
    slot.passedOver = true
    slot.sequence = sequence
    slot.fragments = 0
    slot.received = 0
    this.#deliverReliable(channel, index)
  }

  #onMessageFrame(index: number, sequence: number, length: number, fragment: number, fragmented: boolean, data: Uint8Array, at: number, size: number, nowUs: number, outcome: { refused: boolean }): void {
    const channel = this.#receiveChannels[index]!
    const stats = this.stats
    // Over this side's maximum: dropped and counted; a reliable channel passes over its sequence.
    const oversized = length > this.config.maxMessageBytes
    if (channel.mode === ChannelModeCode.reliable) {
      if (sequence < channel.nextDeliver) {
        stats.duplicateMessages++
        return
      }
      const ahead = sequence - channel.nextDeliver
      if (ahead < channel.pending.size) {
        const held = channel.pending.at(ahead)
        if (held.used && (held.passedOver || (held.length === length && hasFragment(held, fragment)))) {
          stats.duplicateMessages++
          return
        }
      }
      this.#earnCredit(size)
      if (sequence - channel.nextDeliver >= this.config.reliableWindow) {
        stats.overBudget++ // beyond the window the sender must keep to
        outcome.refused = true
        return
      }
      if (oversized) {
        if (!this.#makeRoomInQueue(channel, sequence - channel.nextDeliver, nowUs)) {
          outcome.refused = true
          return
        }
        this.#passOver(channel, index, sequence)
        return
      }
      if (!fragmented && sequence === channel.nextDeliver) {
        // The common case: in order, whole, no copy (its slot unused, unless a broken sender also sent it in fragments).
        if (!channel.pending.empty && channel.pending.front().used) {
          stats.malformed++
          return
        }
        this.#deliver(index, data.subarray(at, at + size), false)
        channel.nextDeliver++
        if (!channel.pending.empty) this.#changeQueue(channel, () => channel.pending.popFront())
        this.#deliverReliable(channel, index)
        return
      }
      const offset = sequence - channel.nextDeliver
      if (!this.#makeRoomInQueue(channel, offset, nowUs)) {
        outcome.refused = true
        return
      }
      const slot = channel.pending.at(offset)
      if (slot.used && slot.passedOver) {
        stats.duplicateMessages++
        return
      }
      if (!slot.used) {
        if (!this.#startInMessage(slot, sequence, length, fragmented, nowUs, offset === 0)) {
          outcome.refused = true
          return
        }
        this.#incompleteReliable++
        this.#reliableActivityUs = nowUs
      } else if (slot.length !== length) {
        stats.malformed++ // the same message with another length: the sender is broken
        return
      }
      if (hasFragment(slot, fragment)) {
        stats.duplicateMessages++
        return
      }
      if (!this.#storeFragment(slot, fragment, data, at, size, nowUs)) {
        outcome.refused = true
        return
      }
      this.#reliableActivityUs = nowUs
      if (++slot.received === slot.fragments) this.#incompleteReliable--
      this.#deliverReliable(channel, index)
      return
    }

    // Sequenced and unreliable.
    if (oversized) {
      if (!fragmented || fragment === 0) stats.oversized++ // once per message, at its first fragment
      return
    }
    const sequenced = channel.mode === ChannelModeCode.sequenced
    if (sequenced && channel.anyDelivered && sequence <= channel.lastDelivered) {
      if (!fragmented || fragment === 0) stats.staleSequenced++
      return
    }
    const delivered = (done: number): void => {
      if (!sequenced) return
      channel.anyDelivered = true
      channel.lastDelivered = done
      for (const slot of channel.partials) {
        // Older incomplete messages can no longer be delivered.
        if (!slot.used || slot.sequence > done) continue
        if (hasFragment(slot, 0)) stats.staleSequenced++ // else counted if its first fragment comes, as stale
        this.#freeInMessage(slot)
      }
      giveBackPartials(channel)
    }
    if (!fragmented) {
      this.#earnCredit(size)
      this.#deliver(index, data.subarray(at, at + size), false)
      delivered(sequence)
      return
    }
    let slot: InMessage | undefined
    let free: InMessage | undefined
    let oldest: InMessage | undefined
    for (const candidate of channel.partials) {
      if (!candidate.used) {
        if (free === undefined) free = candidate
      } else if (candidate.sequence === sequence) {
        slot = candidate
      } else if (oldest === undefined || candidate.sequence < oldest.sequence) {
        oldest = candidate
      }
    }
    if (slot !== undefined && slot.length === length && hasFragment(slot, fragment)) {
      stats.duplicateMessages++
      giveBackPartials(channel)
      return
    }
    this.#earnCredit(size)
    if (slot === undefined) {
      // Messages started faster than their data comes: dropped, as unreliable data over the bound is.
      if (length > this.#bufferCredit) {
        stats.overBudget++
        giveBackPartials(channel)
        return
      }
      if (free === undefined && oldest !== undefined && oldest.sequence > sequence) {
        // Every partial slot holds a newer incomplete message: this older one gives way, not one of them
        // (counted at its first fragment: once per message).
        if (fragment === 0) stats.expiredFragments++
        giveBackPartials(channel)
        return
      }
      const cost = heldCost(length, fragmentCount(length))
      if (!this.#fitsBound(cost)) {
        // So do the channel's older incomplete messages when it would not fit beside them.
        for (const older of channel.partials) {
          if (older.used && older.sequence < sequence) {
            stats.expiredFragments++
            this.#freeInMessage(older)
          }
        }
        // And other channels' that have lost a fragment: else a large unreliable message that lost one kept
        // every fragmented message of the other channels out until it expired.
        this.#evictIdlePartials(cost, nowUs, channel)
      }
      // Unreliable data that does not fit is dropped, not refused: it would not come again.
      if (!this.#fitsBound(cost)) {
        stats.overBudget++
        giveBackPartials(channel)
        return
      }
      if (free === undefined && channel.partials.length === 0) {
        // The channel's first incomplete message: its slots are made now.
        channel.partials = Array.from({ length: partialSlots }, inMessage)
        free = channel.partials[0]!
      }
      if (free === undefined) {
        // Every partial slot was taken: one that the bound freed above, else the oldest incomplete message
        // gives way, now that this one is known to fit (see the native core).
        free = channel.partials.find((candidate) => !candidate.used)
        if (free === undefined) {
          stats.expiredFragments++
          this.#freeInMessage(oldest!)
          free = oldest!
        }
      }
      if (!this.#startInMessage(free, sequence, length, true, nowUs, false)) {
        // It fits: memory refused it.
        giveBackPartials(channel)
        return
      }
      this.#bufferCredit -= length
      slot = free
      slot.partial = true
      if (++this.#partialsUsed === 1) this.#partialsFirstUs = this.#partialsLastUs = nowUs // else they are earlier already
    } else if (slot.length !== length) {
      stats.malformed++
      return
    }
    if (hasFragment(slot, fragment)) {
      stats.duplicateMessages++
      return
    }
    if (!this.#storeFragment(slot, fragment, data, at, size, nowUs)) {
      giveBackPartials(channel) // dropped, as data over the bound
      return
    }
    slot.lastUs = nowUs
    if (++slot.received === slot.fragments) {
      this.#deliverWhole(index, slot)
      delivered(sequence)
    }
    giveBackPartials(channel)
  }

  /**
   * Frees idle incomplete messages of any channel (idlePartialUs), the longest idle first, until `cost`
   * more (heldCost) fit in the bound or none is left.
   */
  #evictIdlePartials(cost: number, nowUs: number, starting: ReceiveChannel): void {
    const idleUs = Math.max(idlePartialUs, 4 * this.rtt.smoothedUs)
    // Nothing is walked while none can be idle: a peer that keeps one message going would otherwise make each
    // of its packets walk every channel's slots.
    while (this.#partialsUsed > 0 && nowUs - this.#partialsLastUs >= idleUs && !this.#fitsBound(cost)) {
      this.stats.partialScans++
      let idlest: InMessage | undefined
      let of: ReceiveChannel | undefined
      for (const channel of this.#receiveChannels) {
        for (const slot of channel.partials) {
          if (slot.used && (idlest === undefined || slot.lastUs < idlest.lastUs)) {
            idlest = slot
            of = channel
          }
        }
      }
      this.#partialsLastUs = idlest!.lastUs
      if (nowUs - this.#partialsLastUs < idleUs) return
      this.stats.expiredFragments++
      this.#freeInMessage(idlest!)
      if (of !== starting) giveBackPartials(of!) // the starting channel's slots are about to take a message
    }
  }

  protected receiveTimers(nowUs: number): void {
    this.#expireFragments(nowUs)
    if (this.config.reliableStallUs > 0 && this.#incompleteReliable > 0 && nowUs >= this.#reliableActivityUs + this.config.reliableStallUs) this.#stall()
  }

  #expireFragments(nowUs: number): void {
    if (this.#partialsUsed === 0 || nowUs - this.#partialsFirstUs < this.config.fragmentTimeoutUs) return
    this.stats.partialScans++
    let firstUs = Number.POSITIVE_INFINITY
    for (const channel of this.#receiveChannels) {
      if (channel.partials.length === 0) continue
      for (const slot of channel.partials) {
        if (!slot.used) continue
        if (nowUs - slot.firstUs >= this.config.fragmentTimeoutUs) {
          this.stats.expiredFragments++
          this.#freeInMessage(slot)
        } else {
          firstUs = Math.min(firstUs, slot.firstUs)
        }
      }
      giveBackPartials(channel)
    }
    this.#partialsFirstUs = firstUs
  }

  /** Early at worst: the walk in #expireFragments() then updates it. */
  protected receiveDeadlineUs(): number {
    const fragments = this.#partialsUsed === 0 ? Number.POSITIVE_INFINITY : this.#partialsFirstUs + this.config.fragmentTimeoutUs
    const stall = this.config.reliableStallUs > 0 && this.#incompleteReliable > 0 ? this.#reliableActivityUs + this.config.reliableStallUs : Number.POSITIVE_INFINITY
    return Math.min(fragments, stall)
  }
}
