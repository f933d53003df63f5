// The netcode server and client as the fallback engine runs them on a socket, as native/engine/netcode_sockets.cc
// does for the native engine: the TypeScript cores (src/protocol/netcode/) with their output turned into datagrams
// and records for JavaScript, and, with channels configured, the delivery layer (src/protocol/delivery/) on
// each connection, inside its payload packets. engine/fallback/engine.ts is the I/O around them.
import { ClientCore, clientStateCodes } from '../../protocol/netcode/client-core.ts'
import { ServerCore, type ServerClock } from '../../protocol/netcode/server-core.ts'
import { type ServerAddress, readDatagramSource } from '../../protocol/netcode/server-address.ts'
import { challengeSequenceStart, randomGlobalSequenceStart, randomSequenceBase } from '../../protocol/netcode/sequence-starts.ts'
import type { Sodium } from '../../protocol/netcode/sodium.ts'
import type { NativeClientProtocol, NativeServerProtocol } from '../native/addon.ts'
import { DeliveryLink, type DeliverySetup, deliverySetup, mismatchAnnouncements, settingsWaitUs, writeLinkStats } from './delivery.ts'
import { DisconnectCode, PeerRecordKind, ProtocolControl, layout, linkFields, peerSlotScale } from '../layout.ts'
import { finalReadingsBytes, writeFinalReadings } from '../peer-records.ts'
import type { RecordBatch } from '../record-batch.ts'
import { copyBytes } from '../../util/bytes.ts'
import { PeerCounterField, sizes } from '../../protocol/netcode/constants.ts'

const peerSlotMask = (1 << layout.peerSlotBits) - 1
/** Delivered messages above this size go to JavaScript whole (takeLarge), not copied into a record (native/engine/large_messages.h). */
const largeMessageBytes = 64 * 1024
/** Record codes of the native engine (native/engine/socket_protocol.h). */
/** The codes of the server core's reasons. */
const disconnectCodes = {
  timeout: DisconnectCode.timeout,
  disconnected: DisconnectCode.disconnected,
  'server-disconnect': DisconnectCode.serverDisconnect,
  'server-closed': DisconnectCode.serverClosed,
} as const
const clientStateChannelsMismatch = -7

/** What a protocol gives its socket: records for JavaScript, datagrams to send, large messages to hand over. */
export interface ProtocolOutput {
  readonly records: RecordBatch
  /** A datagram to send to `to` ('a.b.c.d:port' or '[v6]:port'); the protocol does not touch `data` again. */
  send(to: string, data: Uint8Array): void
  /** Parks a large message (its bytes the message's alone) for takeLarge(); its id. */
  park(bytes: Uint8Array): number
}

/** A protocol of a fallback socket, as the engine drives it (native/engine/socket_protocol.h's SocketProtocol). */
export interface FallbackProtocol {
  /** wireBytes: the datagram's length on the wire, where it was too large to be a packet and comes empty. */
  receive(from: string, data: Uint8Array, nowUs: number, wireBytes: number): void
  update(nowUs: number): void
  /** When update() is due next (monotonic µs; Infinity: never). */
  nextDeadlineUs(): number
  send(peer: number, channel: number, data: Uint8Array, nowUs: number): void
  /** Something to do at the end of this turn of the event loop: connections to flush. */
  readonly pending: boolean
  /** Flushes what this turn's receives and sends left: one flush (shared packets, the ACKs that are due) per connection. */
  endBatch(nowUs: number): void
  control(op: number, arg: number, data: Uint8Array | undefined, nowUs: number): void
  /**
   * The thread was busy for about `us` until nowUs (a timer fell due that long ago): the peers' packets waited
   * in the kernel meanwhile. That time does not count against a peer's wait for settings, which its packets
   * may well have kept; and the acknowledgements and pongs that waited measured the stall, not the path: the
   * packets sent before nowUs give no RTT sample (as the native engine's reading pause).
   */
  stalled(us: number, nowUs: number): void
  /** Stopped: the socket may close. */
  readonly finished: boolean
  /** The socket has closed: a server wipes its keys. */
  closed(): void
  /** The protocol's counters, in the native engine's order. */
  copyCounters(out: Float64Array): void
  readonly peerCounters: Float64Array | null
  /** Link statistics, linkFields doubles per peer (with channels). */
  readonly links: Float64Array | null
}

/** A delivered message as a record: copied into it, or, large, handed over whole. */
function payloadRecord(output: ProtocolOutput, channel: number, peer: number, data: Uint8Array, owned: boolean): void {
  if (data.byteLength <= largeMessageBytes) {
    output.records.add(PeerRecordKind.payload, channel, peer, null, data)
    return
  }
  const id = output.park(owned ? data : copyBytes(data))
  const at = output.records.add(PeerRecordKind.largePayload, channel, peer, null, null, 8)
  output.records.view.setUint32(at, id, true)
  output.records.view.setUint32(at + 4, data.byteLength, true)
}

/** The netcode server, with channels when configured (native: NetcodeServerProtocol). */
export class FallbackServerProtocol implements FallbackProtocol {
  readonly #core: ServerCore
  readonly #output: ProtocolOutput
  readonly #delivery: DeliverySetup | undefined
  /** By client slot, while connected (with channels). */
  readonly #links: (DeliveryLink | undefined)[] = []
  readonly links: Float64Array | null
  #dirty: number[] = []
  #mismatched: number[] = []
  #now: ServerClock = { monotonicUs: 0, unixSeconds: 0n }
  #unixSeconds = 0
  #unixSecondsBig = 0n

  /** links: maxClients rows of link statistics, with channels. */
  constructor(sodium: Sodium, protocol: NativeServerProtocol, publicAddress: ServerAddress, output: ProtocolOutput, links: Float64Array | null, nowUs: number) {
    this.#output = output
    // The clients lead the pings (delivery.h: followsPings).
    this.#delivery = deliverySetup(protocol, true, nowUs)
    this.links = links
    let keepAliveIntervalUs = protocol.keepAliveIntervalUs ?? 100_000
    // With channels the server's pings answer its clients', one ping interval apart: a keep-alive due one
    // interval after the last packet would race each of them. It waits half a period more.
    if (this.#delivery !== undefined) keepAliveIntervalUs += Math.floor(Math.min(keepAliveIntervalUs, this.#delivery.config.pingIntervalUs) / 2)
    const config = {
      protocolId: protocol.protocolId,
      privateKey: protocol.privateKey,
      previousKeys: protocol.previousKeys,
      publicAddress,
      maxClients: protocol.maxClients,
      keepAliveIntervalUs,
      disconnectIntervalUs: protocol.disconnectIntervalUs,
      disconnectPackets: protocol.disconnectPackets,
      sequenceBase: randomSequenceBase(sodium),
      globalSequenceStart: randomGlobalSequenceStart(sodium),
      challengeSequenceStart: challengeSequenceStart(),
    }
    this.#core = new ServerCore(sodium, config, sodium.randombytes_buf(32), {
      sendPacket: (to, data) => output.send(to, data),
      connected: (index, clientId, from, userData) => this.#connected(index, clientId, from, userData),
      disconnected: (index, reason) => {
        const link = this.#links[index]
        const code = link === undefined || link.ending === 0 ? disconnectCodes[reason] : link.ending
        const at = output.records.add(PeerRecordKind.disconnect, code, index, null, null, finalReadingsBytes(this.links))
        writeFinalReadings(output.records.view, at, this.#core.peerCounters, index, this.links)
        link?.core.close() // what it held of the budget goes back
        this.#links[index] = undefined // a #dirty entry for it is skipped
      },
      payload: (index, data) => this.#payload(index, data),
      peerDeadlineUs: (index) => {
        const link = this.#links[index]
        return link === undefined ? Number.POSITIVE_INFINITY : this.#delivery!.clock.real(link.nextDeadlineUs(this.#localUs()))
      },
      peerTimer: (index, now) => this.#peerTimer(index, now),
    })
  }

  get peerCounters(): Float64Array {
    return this.#core.peerCounters
  }

  get finished(): boolean {
    return this.#core.stopped
  }

  closed(): void {
    this.#core.wipeKeys()
  }

  get pending(): boolean {
    return this.#dirty.length > 0 || this.#mismatched.length > 0
  }

  #clock(nowUs: number): ServerClock {
    const seconds = Math.floor(Date.now() / 1000)
    if (seconds !== this.#unixSeconds) {
      this.#unixSeconds = seconds
      this.#unixSecondsBig = BigInt(seconds) // a BigInt a second, not one per datagram
    }
    this.#now = { monotonicUs: nowUs, unixSeconds: this.#unixSecondsBig }
    return this.#now
  }

  /** Now on the delivery layer's clock. */
  #localUs(): number {
    return this.#delivery!.clock.local(this.#now.monotonicUs)
  }

  receive(from: string, data: Uint8Array, nowUs: number, wireBytes: number): void {
    this.#core.receive(from, data, this.#clock(nowUs), wireBytes)
  }

  update(nowUs: number): void {
    this.#core.update(this.#clock(nowUs))
    this.#endMismatched()
  }

  nextDeadlineUs(): number {
    return this.#core.nextDeadlineUs()
  }

  /** The slot JavaScript's name for a peer stands for, if that client still has it (native: Current). */
  #currentSlot(tagged: number): number | undefined {
    const slot = tagged & peerSlotMask
    const clients = this.#core.peerCounters[slot * layout.peerCounterFields + PeerCounterField.clients]
    if (clients === undefined || Math.floor(tagged / peerSlotScale) !== ((clients - 1) & 0xfff)) return undefined
    return slot
  }

  send(peer: number, channel: number, data: Uint8Array, nowUs: number): void {
    const now = this.#clock(nowUs)
    const slot = this.#currentSlot(peer)
    if (slot === undefined) return // for a client that has left, whoever has its slot now
    if (this.#delivery === undefined) {
      this.#core.sendPayload(slot, data, now)
      return
    }
    const link = this.#links[slot]
    if (link === undefined) return // left meanwhile
    link.core.send(channel, data, this.#localUs()) // JavaScript checked channel, size and queue room
    this.#markDirty(link)
  }

  #markDirty(link: DeliveryLink): void {
    if (link.dirty) return
    link.dirty = true
    this.#dirty.push(link.peer)
  }

  endBatch(nowUs: number): void {
    this.#clock(nowUs)
    const dirty = this.#dirty
    this.#dirty = []
    for (const slot of dirty) {
      const link = this.#links[slot]
      if (link === undefined) continue
      link.dirty = false
      link.core.flush(this.#localUs())
      this.#afterDelivery(link)
    }
    this.#endMismatched()
  }

  /** Disconnects the peers whose channels do not work with this server's, or whose reassembly stalled (outside the cores' callbacks). */
  #endMismatched(): void {
    if (this.#mismatched.length === 0) return
    const mismatched = this.#mismatched
    this.#mismatched = []
    for (const slot of mismatched) {
      const link = this.#links[slot]
      // Not a client that took the slot since (its link is another).
      if (link === undefined || link.ending === 0) continue
      // The client may not have found the mismatch yet: it learns why from these.
      if (link.ending !== DisconnectCode.reassemblyStalled) link.core.announceSettings(this.#localUs(), mismatchAnnouncements)
      this.#core.disconnect(slot, this.#now)
    }
  }

  control(op: number, arg: number, data: Uint8Array | undefined, nowUs: number): void {
    const now = this.#clock(nowUs)
    const watch = op === ProtocolControl.watchPeer || op === ProtocolControl.watchFlush
    const slot = op === ProtocolControl.disconnectPeer || watch ? this.#currentSlot(arg) : undefined // else: a client that left
    if (op === ProtocolControl.disconnectPeer && slot !== undefined) this.#core.disconnect(slot, now)
    if (op === ProtocolControl.stop) this.#core.stop(now)
    if (op === ProtocolControl.rotatePrivateKey && data !== undefined) {
      // The 32-byte key, then the replaced key's grace in µs (u64 LE), as the native engine takes them; any
      // other length is ignored. The bytes are wiped once applied (the core keeps a copy).
      if (data.byteLength === sizes.key + 8) {
        const graceUs = Number(new DataView(data.buffer, data.byteOffset + sizes.key, 8).getBigUint64(0, true))
        this.#core.rotatePrivateKey(data.subarray(0, sizes.key), graceUs, now)
      }
      data.fill(0)
    }
    const link = watch && slot !== undefined ? this.#links[slot] : undefined
    if (link !== undefined) {
      if (op === ProtocolControl.watchPeer) link.watchRoom(data)
      else link.flushWatched = true
      this.#afterDelivery(link)
    }
    this.#endMismatched()
  }

  stalled(us: number, nowUs: number): void {
    if (this.#delivery === undefined) return
    this.#clock(nowUs)
    const localUs = this.#localUs()
    for (const link of this.#links) {
      if (link === undefined) continue
      if (link.awaitsSettings) link.settingsDeadlineUs += us
      link.core.discardRttSamplesBefore(localUs)
    }
  }

  copyCounters(out: Float64Array): void {
    const c = this.#core.counters
    // native/engine/netcode_sockets.cc (CopyCounters): sends the kernel would not take are send errors here.
    const budget = this.#delivery?.budget ?? null
    out.set([
      c.packetsIn, c.bytesIn, c.packetsOut, c.bytesOut, c.malformed, c.replayed, c.decryptionFailed, c.unknownAddress, c.tokenRefused, c.denied,
      this.#core.connectedClients, 0, c.requestsThrottled, c.wrongProtocol, c.tokenExpired, c.tooOld, this.#core.pendingHandshakes, c.handshakesReplaced,
      c.handshakesEvicted, budget?.limit ?? 0, budget?.used ?? 0, budget?.evictions ?? 0, budget?.refusals ?? 0, c.previousKeyRequests,
    ])
  }

  #connected(index: number, clientId: bigint, from: string, userData: Uint8Array): void {
    const records = this.#output.records
    const at = records.add(PeerRecordKind.connect, 0, index, readDatagramSource(withoutZone(from)), null, 8 + userData.byteLength)
    records.view.setBigUint64(at, clientId, true)
    new Uint8Array(records.view.buffer).set(userData, at + 8)
    const delivery = this.#delivery
    if (delivery === undefined) return
    const link: DeliveryLink = new DeliveryLink(
      index,
      delivery.config,
      {
        sendPacket: (data) => this.#core.sendPayload(index, data, this.#now),
        message: (channel, data, owned) => {
          // The peer's settings reach JavaScript before its first message, which came in the same packet.
          if (!link.settingsReported) link.reportSettings(this.#output.records)
          payloadRecord(this.#output, channel, index, data, owned)
        },
        // Possibly from within another peer's core (the budget evicted this one): #endMismatched disconnects it.
        stalled: () => {
          if (link.beginEnding(DisconnectCode.reassemblyStalled)) this.#mismatched.push(index)
        },
      },
      this.#localUs(),
      delivery.budget,
    )
    this.#links[index] = link
    this.links!.fill(0, index * linkFields, (index + 1) * linkFields)
  }

  #payload(index: number, data: Uint8Array): void {
    if (this.#delivery === undefined) {
      this.#output.records.add(PeerRecordKind.payload, 0, index, null, data)
      return
    }
    const link = this.#links[index]
    if (link === undefined) return // (every connected client has one)
    link.core.receive(data, this.#localUs())
    // Marked at once, so that whatever ends the connection names the mismatch; #endMismatched disconnects it.
    if (link.reportSettings(this.#output.records) && link.beginEnding(DisconnectCode.channelsMismatch)) this.#mismatched.push(index)
    this.#markDirty(link) // flushed once the whole turn's datagrams are in (endBatch)
  }

  #peerTimer(index: number, now: ServerClock): void {
    const link = this.#links[index]
    if (link === undefined) return
    this.#now = now
    link.core.update(this.#localUs())
    // #endMismatched disconnects it, after the core's timers.
    if (link.settingsOverdue(this.#localUs()) && link.beginEnding(DisconnectCode.settingsLate)) this.#mismatched.push(index)
    this.#afterDelivery(link)
  }

  /** After a connection's delivery core did something: its link statistics, drain and flushed records, its timer. */
  #afterDelivery(link: DeliveryLink): void {
    const delivery = this.#delivery!
    writeLinkStats(link.core, delivery.clock, this.#now.monotonicUs, this.links!, link.peer)
    link.reportQueue(this.#output.records, delivery.queueLimitBytes)
    this.#core.wakePeer(link.peer, delivery.clock.real(link.nextDeadlineUs(this.#localUs())))
  }
}

/** The netcode client, with channels when configured (native: NetcodeClientProtocol). */
export class FallbackClientProtocol implements FallbackProtocol {
  readonly #core: ClientCore
  readonly #output: ProtocolOutput
  readonly #delivery: DeliverySetup | undefined
  #link: DeliveryLink | undefined
  /** One row: the connection's link statistics (with channels). */
  readonly links: Float64Array | null
  #nowUs = 0
  /** The connect() a client's state records belong to (JavaScript numbers them). */
  #attempt = 0
  #stopping = false

  /** links: one row of link statistics, with channels. */
  constructor(sodium: Sodium, protocol: NativeClientProtocol, output: ProtocolOutput, links: Float64Array | null, nowUs: number) {
    this.#output = output
    this.#delivery = deliverySetup(protocol, false, nowUs)
    this.links = links
    const config = {
      requestIntervalUs: protocol.requestIntervalUs,
      keepAliveIntervalUs: protocol.keepAliveIntervalUs,
      disconnectIntervalUs: protocol.disconnectIntervalUs,
      disconnectPackets: protocol.disconnectPackets,
      sequenceBase: randomSequenceBase(sodium),
    }
    this.#core = new ClientCore(sodium, config, {
      sendPacket: (to, data) => output.send(to, data),
      stateChanged: (state, server) => this.#stateChanged(state, server),
      payload: (data) => this.#payload(data),
    })
  }

  readonly peerCounters = null

  get finished(): boolean {
    return this.#stopping && !this.#core.hasPendingDisconnects
  }

  closed(): void {}

  get pending(): boolean {
    return this.#link?.dirty === true
  }

  #localUs(): number {
    return this.#delivery!.clock.local(this.#nowUs)
  }

  receive(from: string, data: Uint8Array, nowUs: number): void {
    this.#nowUs = nowUs
    this.#core.receive(withoutZone(from), data, nowUs)
  }

  update(nowUs: number): void {
    this.#nowUs = nowUs
    // The delivery layer first: a ping due with the keep-alive goes instead of it.
    const link = this.#link
    if (link !== undefined) {
      link.core.update(this.#localUs())
      if (link.settingsOverdue(this.#localUs())) link.beginEnding(DisconnectCode.settingsLate)
      this.#afterDelivery(link)
    }
    this.#core.update(nowUs)
  }

  nextDeadlineUs(): number {
    const netcode = this.#core.nextDeadlineUs()
    const link = this.#link
    if (link === undefined) return netcode
    return Math.min(netcode, this.#delivery!.clock.real(link.nextDeadlineUs(this.#localUs())))
  }

  send(_peer: number, channel: number, data: Uint8Array, nowUs: number): void {
    this.#nowUs = nowUs
    if (this.#delivery === undefined) {
      this.#core.sendPayload(data, nowUs)
      return
    }
    const link = this.#link
    if (link === undefined) return // not connected (any more)
    link.core.send(channel, data, this.#localUs())
    link.dirty = true
  }

  endBatch(nowUs: number): void {
    this.#nowUs = nowUs
    const link = this.#link
    if (link === undefined || !link.dirty) return
    link.dirty = false
    link.core.flush(this.#localUs())
    this.#afterDelivery(link)
  }

  control(op: number, arg: number, data: Uint8Array | undefined, nowUs: number): void {
    this.#nowUs = nowUs
    if (op === ProtocolControl.connect && data !== undefined) {
      this.#attempt = arg
      this.#core.connect(data, nowUs)
    }
    if (op === ProtocolControl.disconnect || op === ProtocolControl.stop) {
      this.#core.disconnect(nowUs)
      if (op === ProtocolControl.stop) this.#stopping = true
    }
    const link = this.#link
    if ((op === ProtocolControl.watchPeer || op === ProtocolControl.watchFlush) && link !== undefined) {
      if (op === ProtocolControl.watchPeer) link.watchRoom(data)
      else link.flushWatched = true
      this.#afterDelivery(link)
    }
  }

  stalled(us: number, nowUs: number): void {
    const link = this.#link
    if (link === undefined) return
    this.#nowUs = nowUs
    if (link.awaitsSettings) link.settingsDeadlineUs += us
    link.core.discardRttSamplesBefore(this.#localUs())
  }

  copyCounters(out: Float64Array): void {
    const core = this.#core
    const c = core.counters
    out.set([c.packetsIn, c.bytesIn, c.packetsOut, c.bytesOut, c.malformed, c.replayed, c.decryptionFailed, c.unknownAddress, core.clientIndex, core.maxClients, 0, 0, 0, 0, 0, c.tooOld])
  }

  #stateChanged(state: keyof typeof clientStateCodes, server: ServerAddress | undefined): void {
    // A connection that ends for its channels still has its link here (it goes below).
    const link = this.#link
    const mismatch = state === 'disconnected' && link !== undefined && link.ending !== 0
    const late = mismatch && link.ending === DisconnectCode.settingsLate
    const code = mismatch ? clientStateChannelsMismatch : clientStateCodes[state]
    const at = this.#output.records.add(PeerRecordKind.clientState, code, this.#attempt, server ?? null, null, late ? 4 : 0)
    if (late) this.#output.records.view.setUint32(at, Math.floor(settingsWaitUs(this.#delivery!.config) / 1000), true)
    const delivery = this.#delivery
    if (delivery === undefined) return
    if (state === 'connected') {
      const created: DeliveryLink = new DeliveryLink(
        0,
        delivery.config,
        {
          sendPacket: (data) => this.#core.sendPayload(data, this.#nowUs),
          message: (channel, data, owned) => {
            if (!created.settingsReported) created.reportSettings(this.#output.records) // ahead of the first message
            payloadRecord(this.#output, channel, 0, data, owned)
          },
        },
        this.#localUs(),
      )
      this.#link = created
      this.links!.fill(0)
      created.core.flush(this.#localUs()) // the first ping
    } else {
      this.#link = undefined
    }
  }

  #payload(data: Uint8Array): void {
    if (this.#delivery === undefined) {
      this.#output.records.add(PeerRecordKind.payload, 0, 0, null, data)
      return
    }
    const link = this.#link
    if (link === undefined) return
    link.core.receive(data, this.#localUs())
    if (link.reportSettings(this.#output.records)) link.beginEnding(DisconnectCode.channelsMismatch) // marked at once (#afterDelivery ends it)
    link.dirty = true // flushed once the whole turn's datagrams are in (endBatch)
  }

  /** Link statistics, drain and flushed records; a mismatch of channels ends the connection. */
  #afterDelivery(link: DeliveryLink): void {
    const delivery = this.#delivery!
    writeLinkStats(link.core, delivery.clock, this.#nowUs, this.links!, 0)
    link.reportQueue(this.#output.records, delivery.queueLimitBytes)
    if (link.ending === 0) return
    link.core.announceSettings(this.#localUs(), mismatchAnnouncements) // as the server does
    this.#core.disconnect(this.#nowUs) // the redundant disconnects go out; the link goes with the state change
  }
}

/** A source text without its zone: for records, which carry none, and the client, whose server a token names without one. */
export function withoutZone(from: string): string {
  return from.replace(/%[^\]]*\]/, ']')
}
