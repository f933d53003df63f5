// The netcode 1.02 server as a state machine (sans-IO), in TypeScript: fed datagrams and the time, it
// answers through its sink with datagrams to send and connection events. It is the fallback engine's
// server and follows native/protocol/netcode/server.cc decision for decision (every check of the standard in its
// order, nothing held for a request before they pass, the same counters); test/netcode/server-core.test.ts
// runs one suite against both.
import { PacketType, PeerCounterField, maxPrivateKeys, peerCounterFields, sizes } from './constants.ts'
import { openChallengeToken, sealChallengeToken } from './challenge-token.ts'
import { type ConnectionRequest, type DropReason, encryptPacket, encryptedPacketShape, readConnectionRequest, readEncryptedPacket } from './packets.ts'
import { type PreviousPrivateKey, PrivateKeys } from './private-keys.ts'
import { ReplayProtection } from './replay-protection.ts'
import { type ServerAddress, sameServerAddress } from './server-address.ts'
import type { Sodium } from './sodium.ts'
import { Reader, Writer } from './wire.ts'
import { copyBytes } from '../../util/bytes.ts'
import { Ring } from '../delivery/ring.ts'

export interface ServerClock {
  /** Microseconds of a monotonic clock: timers. */
  monotonicUs: number
  /** Seconds since the epoch: token expiry. */
  unixSeconds: bigint
}

export interface ServerCoreConfig {
  protocolId: bigint
  /** The current one. */
  privateKey: Uint8Array
  /**
   * Keys it replaced that are still accepted, newest first, each until its untilUs on the clock the core is
   * fed (Server.rotatePrivateKey() before listen()): at most maxPrivateKeys - 1 are kept.
   */
  previousKeys?: readonly PreviousPrivateKey[] | undefined
  /** Must be listed in a token for the server to take it. */
  publicAddress: ServerAddress
  maxClients: number
  /** Keep-alive when nothing else was sent for this long (default 100 ms: 10 Hz). */
  keepAliveIntervalUs?: number | undefined
  /** Between redundant disconnect packets (default 100 ms). */
  disconnectIntervalUs?: number | undefined
  /** Redundant disconnect packets sent when the server ends a connection (default 10). */
  disconnectPackets?: number | undefined
  /**
   * Where the per-client sequences of tokens the server has no record of start (default 0), and the global
   * one of challenge and denied packets (default 2^63; at least 2^63): random at each start in the engine
   * (sequence-starts.ts), so that two processes serving one token never encrypt under one key and nonce.
   */
  sequenceBase?: bigint | undefined
  globalSequenceStart?: bigint | undefined
  /**
   * Where the challenge sequence starts (default 0): the wall clock in µs at each start in the engine
   * (sequence-starts.ts), so that challenges count up across restarts.
   */
  challengeSequenceStart?: bigint | undefined
}

export type ServerCoreDisconnectReason = 'timeout' | 'disconnected' | 'server-disconnect' | 'server-closed'

/**
 * What the server asks of its surroundings. Addresses are datagram sources as text, 'a.b.c.d:port' or
 * '[v6]:port': the server keys its tables by them and gives them back to send to.
 */
export interface ServerCoreSink {
  sendPacket(to: string, data: Uint8Array): void
  connected(index: number, clientId: bigint, from: string, userData: Uint8Array): void
  disconnected(index: number, reason: ServerCoreDisconnectReason): void
  /** data is the decrypted body, the sink's to keep. */
  payload(index: number, data: Uint8Array): void
  /** The layer above a connected client (delivery): when its timer is next due (Infinity: never), and the timer. */
  peerDeadlineUs?(index: number, now: ServerClock): number
  peerTimer?(index: number, now: ServerClock): void
}

export interface ServerCoreCounters {
  packetsIn: number
  bytesIn: number
  packetsOut: number
  bytesOut: number
  malformed: number
  replayed: number
  /** Older than the replay window: delayed or reordered that far, or replayed. */
  tooOld: number
  decryptionFailed: number
  unknownAddress: number
  tokenRefused: number
  denied: number
  /** Requests ignored unopened: their address was sent a challenge less than challengeIntervalUs before. */
  requestsThrottled: number
  /** Pending handshakes given up for a newer request of the same client id from another address. */
  handshakesReplaced: number
  /** The oldest pending handshake, given up to make room when as many were pending as the server holds. */
  handshakesEvicted: number
  wrongProtocol: number
  tokenExpired: number
  /** Requests whose token opened under a private key in its grace, not the current one. */
  previousKeyRequests: number
}

// Per-client counters (PeerCounterField): the native table's layout, which the fallback engine hands on as is.

/** Where a connected client's refused packet counts among its counters (as the native core's CountPeerDrop). */
function peerDropField(reason: DropReason): number {
  if (reason === 'replayed') return PeerCounterField.replayed
  if (reason === 'too-old') return PeerCounterField.tooOld
  if (reason === 'decryption-failed') return PeerCounterField.decryptionFailed
  return PeerCounterField.malformed
}

const serverAccepts = new Set<number>([PacketType.connectionResponse, PacketType.keepAlive, PacketType.payload, PacketType.disconnect])
const responseOnly = new Set<number>([PacketType.connectionResponse])
/** What a client that just left may still send: its redundant disconnects, a late keep-alive or payload. */
const lateFromLeaver = new Set<number>([PacketType.disconnect, PacketType.keepAlive, PacketType.payload])
const disconnectOnly = new Set<number>([PacketType.disconnect])

// Pending handshakes and remembered tokens scale with maxClients (4× and 8×), never below the reference's
// fixed sizes: a small server still remembers enough tokens that a captured request cannot soon be
// replayed from another address.
const minPendingHandshakes = 1024
/**
 * At most one challenge per pending handshake this often: a client resends its request at 10 Hz, and a peer
 * that resends faster is answered no faster (native/protocol/netcode/server.h).
 */
export const challengeIntervalUs = 100_000
const minTokenHistory = 2048
const housekeepingEveryUs = 1_000_000
/** How long after its client left an address's late packets are expected, beyond its disconnects. */
const lateWindowUs = 10_000_000

interface Slot {
  connected: boolean
  confirmed: boolean
  address: string
  clientId: bigint
  /** Per-client send sequence: from config.sequenceBase, or where the token's last connection ended. */
  sequence: bigint
  /** Its token's MAC, where its last sequence is carried forward at the end. */
  token: string
  timeoutSeconds: number
  lastSendUs: number
  lastReceiveUs: number
  sendKey: Uint8Array
  receiveKey: Uint8Array
  replay: ReplayProtection
  /** When its timer is due (Infinity: not scheduled); heap entries for other times are stale. */
  dueUs: number
}

/** Keys for an address that has sent a valid request but is not connected yet. */
interface EncryptionMapping {
  sendKey: Uint8Array
  receiveKey: Uint8Array
  timeoutSeconds: number
  /** The token's expiry: the bound of a handshake with no timeout. */
  expireUnixSeconds: bigint
  /** The latest request: a handshake lives the token's timeout from it, however long the client resends. */
  requestedUs: number
  token: string
  /** The token's: a response must carry a challenge token for the same client. */
  clientId: bigint
  /** The first challenge sent in this handshake: a response must carry it or a later one. */
  firstChallenge: bigint
  /** When the last challenge went (challengeIntervalUs). */
  lastChallengeUs: number
}

interface TokenUse {
  mac: string
  /** The address that first used the token. */
  address: string
  /** Where a later connection with this token starts its send sequence (no nonce twice under its key). */
  nextSequence: bigint
  /** Where a later connection with this token starts receiving, if its client goes on with its sequence. */
  receivedEnd: bigint
}

/** Disconnect packets still owed to an address whose slot is already free. */
interface Farewell {
  address: string
  sendKey: Uint8Array
  sequence: bigint
  remaining: number
  nextUs: number
  releaseSerial: number
}

interface Released {
  untilUs: number
  address: string
  serial: number
}

/** The port of a datagram source written 'host:port'. */
function sourcePort(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1))
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/** Whether a timer due at dueA, scheduled as the orderA-th, fires before one due at dueB, the orderB-th. */
function earlier(dueA: number, orderA: number, dueB: number, orderB: number): boolean {
  return dueA < dueB || (dueA === dueB && orderA > orderB)
}

/**
 * A min-heap of (due, index) pairs; entries whose due is no longer their slot's are skipped when popped.
 * Entries due at the same time come out latest scheduled first, as from the native timer wheel's buckets,
 * so that both engines visit (and free) slots in the same order.
 */
class TimerHeap {
  readonly #due: number[] = []
  readonly #index: number[] = []
  readonly #order: number[] = []
  #scheduled = 0

  get size(): number {
    return this.#due.length
  }

  peekDue(): number {
    return this.#due.length === 0 ? Number.POSITIVE_INFINITY : this.#due[0]!
  }

  /** The index of the earliest entry (the heap must not be empty). */
  peekIndex(): number {
    return this.#index[0]!
  }

  push(due: number, index: number): void {
    const order = this.#scheduled++
    let at = this.#due.length
    this.#due.push(due)
    this.#index.push(index)
    this.#order.push(order)
    while (at > 0) {
      const parent = (at - 1) >> 1
      if (!earlier(due, order, this.#due[parent]!, this.#order[parent]!)) break
      this.#move(parent, at)
      at = parent
    }
    this.#place(at, due, index, order)
  }

  /** Removes the earliest entry; returns its index. */
  pop(): number {
    const top = this.#index[0]!
    const due = this.#due.pop()!
    const index = this.#index.pop()!
    const order = this.#order.pop()!
    const size = this.#due.length
    if (size === 0) return top
    let at = 0
    for (;;) {
      let child = 2 * at + 1
      if (child >= size) break
      if (child + 1 < size && earlier(this.#due[child + 1]!, this.#order[child + 1]!, this.#due[child]!, this.#order[child]!)) child++
      if (!earlier(this.#due[child]!, this.#order[child]!, due, order)) break
      this.#move(child, at)
      at = child
    }
    this.#place(at, due, index, order)
    return top
  }

  #move(from: number, to: number): void {
    this.#due[to] = this.#due[from]!
    this.#index[to] = this.#index[from]!
    this.#order[to] = this.#order[from]!
  }

  #place(at: number, due: number, index: number, order: number): void {
    this.#due[at] = due
    this.#index[at] = index
    this.#order[at] = order
  }
}

export class ServerCore {
  readonly #sodium: Sodium
  readonly #sink: ServerCoreSink
  readonly #protocolId: bigint
  readonly #privateKeys: PrivateKeys
  readonly #publicAddress: ServerAddress
  readonly #maxClients: number
  readonly #keepAliveIntervalUs: number
  readonly #disconnectIntervalUs: number
  readonly #disconnectPackets: number
  readonly #challengeKey: Uint8Array

  readonly #slots: (Slot | undefined)[]
  #connected = 0
  /** Slots given back, a stack (the latest first); then those never taken, lowest first (as the native free list). */
  readonly #freedSlots: number[] = []
  #neverTaken = 0
  readonly #timers = new TimerHeap()
  #nextHousekeepingUs = 0
  readonly #slotByAddress = new Map<string, number>()
  readonly #slotByClientId = new Map<bigint, number>()
  /** Pending handshakes by address, in the order they were made (a Map keeps it): the oldest is evicted first. */
  readonly #mappings = new Map<string, EncryptionMapping>()
  /**
   * At most one pending handshake per client id (-> its address): the newest request wins, so that one
   * account's tokens cannot fill the table, and a client that tries again from another address is not held
   * off by its own stale handshake.
   */
  readonly #mappingByClientId = new Map<bigint, string>()
  readonly #maxMappings: number
  // Token history: each private token seen, with the address that first used it; the oldest goes first once
  // maxTokenHistory are held (a ring once full).
  readonly #tokenHistory = new Map<string, TokenUse>()
  readonly #tokenUses: TokenUse[] = []
  #oldestTokenUse = 0
  readonly #maxTokenHistory: number
  /** At least the nextSequence of every token the history forgot: a token cannot be told from a forgotten one. */
  #forgottenSequenceFloor = 0n
  /** In the order they are due: every entry waits the same interval after its last packet. */
  readonly #farewells = new Ring<Farewell>(() => undefined as never) // shift() copied a large array whole, per packet
  // Addresses of clients that just left, until their redundant disconnects have stopped coming: those are
  // expected, not drops. The map holds the serial of each address's latest release; the queue is in the order
  // of expiry, and an entry whose address was released again since leaves the map to the later one.
  readonly #recentlyReleased = new Map<string, number>()
  readonly #releaseOrder: Released[] = []
  #releaseSerial = 0
  #challengeSequence = 0n
  // Packets sent before a slot exists (challenge, denied) use this sequence under the client's key: it
  // starts at or above 2^63 (config.globalSequenceStart) so that it never meets the per-client sequences,
  // which start below 2^48 (IMPLEMENTERS.md: at 2^63, and per client at 0).
  #globalSequence = 1n << 63n
  #stopping = false
  readonly #counters: ServerCoreCounters = {
    packetsIn: 0,
    bytesIn: 0,
    packetsOut: 0,
    bytesOut: 0,
    malformed: 0,
    replayed: 0,
    tooOld: 0,
    decryptionFailed: 0,
    unknownAddress: 0,
    tokenRefused: 0,
    denied: 0,
    requestsThrottled: 0,
    handshakesReplaced: 0,
    handshakesEvicted: 0,
    wrongProtocol: 0,
    tokenExpired: 0,
    previousKeyRequests: 0,
  }
  /** Per-client counters, peerCounterFields per client (PeerCounterField's order). */
  readonly peerCounters: Float64Array

  /** challengeKey: random, made at each start, never leaves the server. */
  constructor(sodium: Sodium, config: ServerCoreConfig, challengeKey: Uint8Array, sink: ServerCoreSink) {
    this.#sodium = sodium
    this.#sink = sink
    this.#protocolId = config.protocolId
    // Copies: the core owns its keys. The previous keys' grace is on the clock the core will be fed: expire()
    // drops any that ended by the first call.
    this.#privateKeys = new PrivateKeys(config.privateKey, (config.previousKeys ?? []).slice(0, maxPrivateKeys - 1))
    this.#publicAddress = config.publicAddress
    this.#maxClients = config.maxClients
    this.#keepAliveIntervalUs = config.keepAliveIntervalUs ?? 100_000
    this.#disconnectIntervalUs = config.disconnectIntervalUs ?? 100_000
    this.#disconnectPackets = config.disconnectPackets ?? 10
    this.#challengeKey = copyBytes(challengeKey)
    this.#forgottenSequenceFloor = config.sequenceBase ?? 0n
    this.#globalSequence = (config.globalSequenceStart ?? 0n) | (1n << 63n) // never among the per-client ones
    this.#challengeSequence = config.challengeSequenceStart ?? 0n
    // Made as clients first take them: a server for a million clients holds only what it has had.
    this.#slots = new Array<Slot | undefined>(config.maxClients)
    this.#maxMappings = Math.max(config.maxClients * 4, minPendingHandshakes)
    this.#maxTokenHistory = Math.max(config.maxClients * 8, minTokenHistory)
    this.peerCounters = new Float64Array(config.maxClients * peerCounterFields)
  }

  get connectedClients(): number {
    return this.#connected
  }

  get pendingHandshakes(): number {
    return this.#mappings.size
  }

  get counters(): Readonly<ServerCoreCounters> {
    return this.#counters
  }

  get nextGlobalSequence(): bigint {
    return this.#globalSequence
  }

  /** The private keys whose tokens are accepted: the current one and those in their grace (dropped once it ends: at the next request or update()). */
  get privateKeyCount(): number {
    return this.#privateKeys.count
  }

  /**
   * Tokens are opened under `key` from now on, first; the key it replaces is accepted graceUs more (0: no
   * longer), and earlier ones until their own grace ends (PrivateKeys says the rest). The key is copied.
   */
  rotatePrivateKey(key: Uint8Array, graceUs: number, now: ServerClock): void {
    this.#privateKeys.rotate(key, now.monotonicUs + Math.max(0, graceUs), now.monotonicUs)
  }

  /** STOPPING is over: every redundant disconnect packet has gone. */
  get stopped(): boolean {
    return this.#stopping && this.#farewells.empty
  }

  /**
   * Its socket has closed: nothing more is sent or opened. Wipes every key the core holds (the private key,
   * the challenge key, each connection's and pending handshake's), as the native core's destructor does;
   * a closed server's memory no longer gives them away.
   */
  wipeKeys(): void {
    this.#privateKeys.wipe()
    this.#challengeKey.fill(0)
    for (const slot of this.#slots) {
      slot?.sendKey.fill(0)
      slot?.receiveKey.fill(0)
    }
    for (const mapping of this.#mappings.values()) {
      mapping.sendKey.fill(0)
      mapping.receiveKey.fill(0)
    }
    for (let i = 0; i < this.#farewells.size; i++) this.#farewells.at(i).sendKey.fill(0)
  }

  /** The address of a connected client, or undefined. */
  clientAddress(index: number): string | undefined {
    const slot = this.#slots[index]
    return slot?.connected === true ? slot.address : undefined
  }

  /** wireBytes: the datagram's length on the wire, where it was too large to be a packet and comes empty (malformed). */
  receive(from: string, data: Uint8Array, now: ServerClock, wireBytes = data.byteLength): void {
    this.#counters.packetsIn++
    this.#counters.bytesIn += wireBytes
    if (this.#stopping) return // clients' own redundant disconnects and late keep-alives: expected, not drops
    // Port 0: nothing can be sent back there (the kernel refuses it), so nothing from it is answered.
    if (data.byteLength === 0 || sourcePort(from) === 0) {
      this.#counters.malformed++
      return
    }
    if (data[0] === PacketType.connectionRequest) {
      this.#processRequest(from, data, now)
      return
    }
    const connected = this.#slotByAddress.get(from)
    if (connected !== undefined) this.#processConnected(connected, data, now)
    else this.#processResponse(from, data, now)
  }

  /** Timers: keep-alives, timeouts, redundant disconnects, expiry of pending handshakes. */
  update(now: ServerClock): void {
    this.#privateKeys.expire(now.monotonicUs)
    while (this.#timers.size > 0 && this.#timers.peekDue() <= now.monotonicUs) {
      const due = this.#timers.peekDue()
      const index = this.#timers.pop()
      const slot = this.#slots[index]!
      if (slot.connected && slot.dueUs === due) {
        slot.dueUs = Number.POSITIVE_INFINITY
        this.#slotTimer(index, now)
      }
    }
    this.#sendFarewells(now)
    if (now.monotonicUs >= this.#nextHousekeepingUs) this.#housekeeping(now)
  }

  /** When update() next has work to do (monotonic µs; it may be called earlier or later); Infinity if never. */
  nextDeadlineUs(): number {
    // Entries for a time that is no longer their slot's (rescheduled, or the slot freed) go first.
    while (this.#timers.size > 0 && this.#slots[this.#timers.peekIndex()]!.dueUs !== this.#timers.peekDue()) this.#timers.pop()
    let next = this.#timers.peekDue()
    if (!this.#farewells.empty && this.#farewells.front().nextUs < next) next = this.#farewells.front().nextUs
    if ((this.#mappings.size > 0 || this.#releaseOrder.length > 0) && this.#nextHousekeepingUs < next) next = this.#nextHousekeepingUs
    // A key whose grace ends is wiped then, not at the next request, however late that comes.
    return Math.min(next, this.#privateKeys.nextExpiryUs())
  }

  /** False when the client index is not connected or the payload is not 1..1200 bytes. */
  sendPayload(index: number, data: Uint8Array, now: ServerClock): boolean {
    const slot = this.#slots[index]
    if (slot?.connected !== true || data.byteLength < 1 || data.byteLength > sizes.maxPayload) return false
    // Until the client confirms, each payload is preceded by a keep-alive: it carries the client index the
    // client needs to count itself connected.
    if (!slot.confirmed) this.#sendKeepAlive(index, now)
    this.#sendToSlot(index, PacketType.payload, data, now)
    return true
  }

  disconnect(index: number, now: ServerClock): void {
    if (this.#slots[index]?.connected === true) this.#release(index, 'server-disconnect', true, now)
  }

  /** The layer above has work for this client by dueUs: its timer is brought forward if need be. */
  wakePeer(index: number, dueUs: number): void {
    const slot = this.#slots[index]
    if (slot?.connected === true && dueUs < slot.dueUs) this.#schedule(index, dueUs)
  }

  /** STOPPING: every client is disconnected (server-closed); the redundant disconnects go out through update(). */
  stop(now: ServerClock): void {
    this.#stopping = true
    for (let index = 0; index < this.#slots.length && this.#connected > 0; index++) {
      if (this.#slots[index]?.connected === true) this.#release(index, 'server-closed', true, now)
    }
    for (const mapping of this.#mappings.values()) this.#wipeMapping(mapping)
    this.#mappings.clear()
    this.#mappingByClientId.clear()
  }

  #full(): boolean {
    return this.#freedSlots.length === 0 && this.#neverTaken >= this.#maxClients
  }

  #countDrop(reason: DropReason): void {
    switch (reason) {
      case 'replayed':
        this.#counters.replayed++
        return
      case 'too-old':
        this.#counters.tooOld++
        return
      case 'decryption-failed':
        this.#counters.decryptionFailed++
        return
      case 'wrong-protocol':
        this.#counters.wrongProtocol++
        return
      case 'expired':
        this.#counters.tokenExpired++
        return
      case 'token-refused':
        this.#counters.tokenRefused++
        return
      default:
        this.#counters.malformed++
    }
  }

  #timedOut(timeoutSeconds: number, sinceUs: number, now: ServerClock): boolean {
    return timeoutSeconds > 0 && now.monotonicUs - sinceUs >= timeoutSeconds * 1_000_000
  }

  #processRequest(from: string, data: Uint8Array, now: ServerClock): void {
    // An address sent a challenge less than challengeIntervalUs ago gets no other before then: ignored before
    // its token is opened. Only a challenge sent resets the interval (forged requests cannot hold it off).
    const mapping = this.#mappings.get(from) // (nothing adds or removes one before #takeRequest uses it)
    if (mapping !== undefined && now.monotonicUs - mapping.lastChallengeUs < challengeIntervalUs) {
      this.#counters.requestsThrottled++
      return
    }
    // Size, version, protocol id, expiry, decryption, parse: no state is touched before these pass.
    this.#privateKeys.expire(now.monotonicUs) // a key whose grace has ended opens nothing more
    const read = readConnectionRequest(this.#sodium, data, { protocolId: this.#protocolId, privateKey: this.#privateKeys, nowSeconds: now.unixSeconds })
    if (!read.ok) {
      this.#countDrop(read.reason)
      return
    }
    if (read.value.keyIndex !== 0) this.#counters.previousKeyRequests++
    const { token } = read.value
    try {
      this.#takeRequest(from, read.value, now, mapping)
    } finally {
      // Whether the request was taken (its mapping holds copies), refused or denied: as the native core's token.
      token.clientToServerKey.fill(0)
      token.serverToClientKey.fill(0)
    }
  }

  /** mapping: the sender's pending handshake, if it has one. */
  #takeRequest(from: string, request: ConnectionRequest, now: ServerClock, mapping: EncryptionMapping | undefined): void {
    const { token, sealedToken, expireTimestamp } = request
    if (!token.serverAddresses.some((address) => sameServerAddress(address, this.#publicAddress))) {
      this.#counters.tokenRefused++
      return
    }
    if (this.#slotByAddress.has(from) || this.#slotByClientId.has(token.clientId)) {
      this.#counters.tokenRefused++ // already connected: from this address, or as this client id
      return
    }
    // A token may be used from one address only (else a captured request could be replayed from elsewhere).
    const mac = hex(sealedToken.subarray(sizes.privateConnectToken - sizes.mac))
    const used = this.#tokenHistory.get(mac)
    if (used !== undefined) {
      if (used.address !== from) {
        this.#counters.tokenRefused++
        return
      }
    } else {
      this.#rememberToken(mac, from)
    }
    // Its client is back: the disconnect packets still owed to this address stop (see Farewell).
    this.#recentlyReleased.delete(from)
    if (this.#full()) {
      this.#counters.denied++
      this.#sendWithGlobalSequence(from, token.serverToClientKey, PacketType.connectionDenied, new Uint8Array(0))
      return
    }
    // The same client id's handshake from another address gives way.
    const sameClient = this.#mappingByClientId.get(token.clientId)
    if (sameClient !== undefined && sameClient !== from) {
      this.#counters.handshakesReplaced++
      this.#removeMapping(sameClient, this.#mappings.get(sameClient)!)
    }
    const newHandshake = mapping === undefined || mapping.token !== mac
    if (mapping === undefined) {
      if (this.#mappings.size >= this.#maxMappings) {
        // Full: the oldest handshake goes (an honest one completes within a round trip or so).
        this.#counters.handshakesEvicted++
        const [oldest, entry] = this.#mappings.entries().next().value!
        this.#removeMapping(oldest, entry)
      }
      mapping = {
        sendKey: new Uint8Array(sizes.key),
        receiveKey: new Uint8Array(sizes.key),
        timeoutSeconds: 0,
        expireUnixSeconds: 0n,
        requestedUs: 0,
        token: '',
        clientId: 0n,
        firstChallenge: 0n,
        lastChallengeUs: 0,
      }
      this.#mappings.set(from, mapping)
      this.#mappingByClientId.set(token.clientId, from)
    } else if (mapping.clientId !== token.clientId) {
      this.#mappingByClientId.delete(mapping.clientId) // a token of another client from this address
      this.#mappingByClientId.set(token.clientId, from)
    }
    if (newHandshake) mapping.firstChallenge = this.#challengeSequence
    mapping.token = mac
    mapping.clientId = token.clientId
    mapping.sendKey.set(token.serverToClientKey)
    mapping.receiveKey.set(token.clientToServerKey)
    mapping.timeoutSeconds = token.timeoutSeconds
    mapping.expireUnixSeconds = expireTimestamp
    mapping.requestedUs = now.monotonicUs

    const body = new Uint8Array(sizes.challengeBody)
    const sealed = sealChallengeToken(this.#sodium, { clientId: token.clientId, userData: token.userData }, this.#challengeSequence, this.#challengeKey)
    new Writer(body).u64(this.#challengeSequence).raw(sealed)
    this.#challengeSequence++
    mapping.lastChallengeUs = now.monotonicUs
    this.#sendWithGlobalSequence(from, mapping.sendKey, PacketType.connectionChallenge, body)
  }

  #processResponse(from: string, data: Uint8Array, now: ServerClock): void {
    const mapping = this.#mappings.get(from)
    if (mapping === undefined) {
      // From a client that just left, what it may still send is expected; anything else from there is counted.
      if (!this.#recentlyReleased.has(from)) this.#counters.unknownAddress++
      else if (encryptedPacketShape(data, lateFromLeaver) !== undefined) this.#counters.malformed++
      return
    }
    // Housekeeping removes expired mappings only once a second: one past its timeout (or, with none, its
    // token's expiry) must not be used in between.
    if (this.#mappingExpired(mapping, now)) {
      this.#removeMapping(from, mapping)
      this.#counters.unknownAddress++
      return
    }
    // A client that gives up while its response is on its way sends its redundant disconnects (this server
    // may have given it a slot already): expected, not counted as malformed.
    if (encryptedPacketShape(data, disconnectOnly) === undefined) return
    const read = readEncryptedPacket(this.#sodium, data, { protocolId: this.#protocolId, key: mapping.receiveKey, accept: responseOnly })
    if (!read.ok) {
      this.#countDrop(read.reason)
      return
    }
    const packet = read.value
    const reader = new Reader(packet.body)
    const challengeSequence = reader.u64()
    // The challenge token must be one this address was sent for its connect token in this handshake: one
    // sent for another token would connect this token's keys as another client, and an earlier handshake's
    // response, captured and replayed, would pass for a client that started its sequence again.
    const challenge = challengeSequence < mapping.firstChallenge ? null : openChallengeToken(this.#sodium, reader.raw(sizes.challengeToken), challengeSequence, this.#challengeKey)
    if (challenge === null || challenge.clientId !== mapping.clientId) {
      this.#counters.tokenRefused++
      return
    }
    if (this.#slotByClientId.has(challenge.clientId)) {
      this.#counters.tokenRefused++
      return
    }
    if (this.#full()) {
      this.#counters.denied++
      this.#sendWithGlobalSequence(from, mapping.sendKey, PacketType.connectionDenied, new Uint8Array(0))
      return
    }
    const index = this.#freedSlots.pop() ?? this.#neverTaken++
    const slot = (this.#slots[index] ??= {
      connected: false,
      confirmed: false,
      address: '',
      clientId: 0n,
      sequence: 0n,
      token: '',
      timeoutSeconds: 0,
      lastSendUs: 0,
      lastReceiveUs: 0,
      sendKey: new Uint8Array(sizes.key),
      receiveKey: new Uint8Array(sizes.key),
      replay: new ReplayProtection(),
      dueUs: Number.POSITIVE_INFINITY,
    })
    const resumed = this.#resume(mapping.token)
    slot.connected = true
    slot.confirmed = false
    slot.address = from
    slot.clientId = challenge.clientId
    slot.sequence = resumed.nextSequence
    slot.token = mapping.token
    slot.timeoutSeconds = mapping.timeoutSeconds
    slot.lastSendUs = 0
    slot.lastReceiveUs = now.monotonicUs
    slot.replay.reset()
    // The response is the connection's first packet from the client: at or past where an earlier connection
    // with this token ended, the client went on with its sequence, and every sequence below it counts as
    // received (what the earlier connection sent, replayed, must not pass for new); below, it started again.
    if (packet.sequence >= resumed.receivedEnd) slot.replay.resetBelow(packet.sequence)
    slot.sendKey.set(mapping.sendKey)
    slot.receiveKey.set(mapping.receiveKey)
    this.#removeMapping(from, mapping)
    this.#slotByAddress.set(from, index)
    this.#slotByClientId.set(challenge.clientId, index)
    this.#connected++
    const counters = this.peerCounters
    const at = index * peerCounterFields
    counters[at + PeerCounterField.clients]!++
    counters[at + PeerCounterField.packetsIn] = 1
    counters[at + PeerCounterField.bytesIn] = data.byteLength
    counters[at + PeerCounterField.packetsOut] = 0
    counters[at + PeerCounterField.bytesOut] = 0
    counters.fill(0, at + PeerCounterField.malformed, at + peerCounterFields) // its drops
    this.#sink.connected(index, challenge.clientId, from, challenge.userData)
    this.#sendKeepAlive(index, now)
    this.#scheduleSlot(index, now)
  }

  #processConnected(index: number, data: Uint8Array, now: ServerClock): void {
    const slot = this.#slots[index]!
    const read = readEncryptedPacket(this.#sodium, data, { protocolId: this.#protocolId, key: slot.receiveKey, accept: serverAccepts, replay: slot.replay })
    const at = index * peerCounterFields
    if (!read.ok) {
      this.#countDrop(read.reason)
      this.peerCounters[at + peerDropField(read.reason)]!++
      return
    }
    this.peerCounters[at + PeerCounterField.packetsIn]!++
    this.peerCounters[at + PeerCounterField.bytesIn]! += data.byteLength
    switch (read.value.type) {
      case PacketType.keepAlive:
        slot.lastReceiveUs = now.monotonicUs
        slot.confirmed = true
        return
      case PacketType.payload:
        slot.lastReceiveUs = now.monotonicUs
        slot.confirmed = true
        this.#sink.payload(index, read.value.body)
        return
      case PacketType.disconnect:
        this.#release(index, 'disconnected', false, now)
        return
      default:
        // A response from a connected address: ignored (STANDARD.md, as the reference); the 10 Hz keep-alives
        // reach a client whose first one was lost.
        return
    }
  }

  #emit(to: string, data: Uint8Array): void {
    this.#counters.packetsOut++
    this.#counters.bytesOut += data.byteLength
    this.#sink.sendPacket(to, data)
  }

  #sendWithGlobalSequence(to: string, sendKey: Uint8Array, type: PacketType, body: Uint8Array): void {
    this.#emit(to, encryptPacket(this.#sodium, { type, sequence: this.#globalSequence++, body }, this.#protocolId, sendKey))
  }

  #sendToSlot(index: number, type: PacketType, body: Uint8Array, now: ServerClock): void {
    const slot = this.#slots[index]!
    const packet = encryptPacket(this.#sodium, { type, sequence: slot.sequence++, body }, this.#protocolId, slot.sendKey)
    slot.lastSendUs = now.monotonicUs
    const at = index * peerCounterFields
    this.peerCounters[at + PeerCounterField.packetsOut]!++
    this.peerCounters[at + PeerCounterField.bytesOut]! += packet.byteLength
    this.#emit(slot.address, packet)
  }

  #sendKeepAlive(index: number, now: ServerClock): void {
    const body = new Uint8Array(sizes.keepAliveBody)
    new Writer(body).u32(index).u32(this.#maxClients)
    this.#sendToSlot(index, PacketType.keepAlive, body, now)
  }

  #release(index: number, reason: ServerCoreDisconnectReason, farewell: boolean, now: ServerClock): void {
    const slot = this.#slots[index]!
    const sendFarewell = farewell && this.#disconnectPackets > 0
    // A later connection with the same token starts past every packet of this one, its disconnects included,
    // and takes none this one received.
    this.#carryForward(slot.token, slot.sequence + BigInt(sendFarewell ? this.#disconnectPackets : 0), slot.replay.receivedEnd())
    this.#slotByAddress.delete(slot.address)
    let serial = 0
    if (reason !== 'timeout' || sendFarewell) {
      // Long enough for a busy client's redundant disconnects to trickle in.
      const until = now.monotonicUs + (this.#disconnectPackets + 1) * this.#disconnectIntervalUs + lateWindowUs
      serial = this.#releaseSerial
      this.#releaseSerial = (this.#releaseSerial + 1) >>> 0
      this.#recentlyReleased.set(slot.address, serial)
      this.#releaseOrder.push({ untilUs: until, address: slot.address, serial })
    }
    const entry: Farewell | undefined = sendFarewell
      ? { address: slot.address, sendKey: slot.sendKey.slice(), sequence: slot.sequence, remaining: this.#disconnectPackets, nextUs: 0, releaseSerial: serial }
      : undefined
    this.#slotByClientId.delete(slot.clientId)
    slot.sendKey.fill(0)
    slot.receiveKey.fill(0)
    slot.connected = false
    slot.confirmed = false
    slot.dueUs = Number.POSITIVE_INFINITY
    this.#freedSlots.push(index)
    this.#connected--
    this.#sink.disconnected(index, reason)
    if (entry !== undefined) this.#sendFarewell(entry, now) // the first disconnect packet goes out at once
  }

  #schedule(index: number, dueUs: number): void {
    const slot = this.#slots[index]!
    if (slot.dueUs === dueUs) return
    slot.dueUs = dueUs
    this.#timers.push(dueUs, index)
  }

  #scheduleSlot(index: number, now: ServerClock): void {
    // Sends and receives move lastSendUs and lastReceiveUs without touching the timer: it fires at the time
    // the last schedule computed, and #slotTimer works out what is really due then.
    const slot = this.#slots[index]!
    let due = slot.lastSendUs + this.#keepAliveIntervalUs
    if (slot.timeoutSeconds > 0) due = Math.min(due, slot.lastReceiveUs + slot.timeoutSeconds * 1_000_000)
    const above = this.#sink.peerDeadlineUs?.(index, now) ?? Number.POSITIVE_INFINITY
    // Never at or before now: update() would run this timer again in the same call, for ever if the layer
    // above keeps saying it is due.
    this.#schedule(index, Math.max(Math.min(due, above), now.monotonicUs + 1))
  }

  /** A client's timer: its timeout, the layer above's work, or a keep-alive when nothing was sent for the interval. */
  #slotTimer(index: number, now: ServerClock): void {
    const slot = this.#slots[index]!
    if (this.#timedOut(slot.timeoutSeconds, slot.lastReceiveUs, now)) {
      this.#release(index, 'timeout', false, now)
      return
    }
    this.#sink.peerTimer?.(index, now)
    if (!slot.connected) return // the layer above may have disconnected it
    if (now.monotonicUs - slot.lastSendUs >= this.#keepAliveIntervalUs) this.#sendKeepAlive(index, now)
    this.#scheduleSlot(index, now)
  }

  #housekeeping(now: ServerClock): void {
    // Once a second: handshakes live for seconds (the token's timeout), released addresses for 10 s or more.
    this.#nextHousekeepingUs = now.monotonicUs + housekeepingEveryUs
    let expired = 0
    while (expired < this.#releaseOrder.length && this.#releaseOrder[expired]!.untilUs <= now.monotonicUs) {
      const oldest = this.#releaseOrder[expired++]!
      // Released again since: a later entry in the queue holds its new time.
      if (this.#recentlyReleased.get(oldest.address) === oldest.serial) this.#recentlyReleased.delete(oldest.address)
    }
    if (expired > 0) this.#releaseOrder.splice(0, expired)
    for (const [address, mapping] of this.#mappings) {
      if (this.#mappingExpired(mapping, now)) this.#removeMapping(address, mapping)
    }
  }

  #mappingExpired(mapping: EncryptionMapping, now: ServerClock): boolean {
    // The token's expiry was checked on the request: as in the reference, it does not end a handshake that has
    // a timeout. Only one with none (0 or negative) is bounded by it, so that it cannot hold a place for ever.
    if (mapping.timeoutSeconds > 0) return this.#timedOut(mapping.timeoutSeconds, mapping.requestedUs, now)
    return mapping.expireUnixSeconds <= now.unixSeconds
  }

  #wipeMapping(mapping: EncryptionMapping): void {
    mapping.sendKey.fill(0)
    mapping.receiveKey.fill(0)
  }

  #removeMapping(address: string, mapping: EncryptionMapping): void {
    this.#wipeMapping(mapping)
    this.#mappings.delete(address)
    if (this.#mappingByClientId.get(mapping.clientId) === address) this.#mappingByClientId.delete(mapping.clientId)
  }

  #rememberToken(mac: string, address: string): void {
    if (this.#tokenUses.length < this.#maxTokenHistory) {
      const use = { mac, address, nextSequence: this.#forgottenSequenceFloor, receivedEnd: 0n }
      this.#tokenUses.push(use)
      this.#tokenHistory.set(mac, use)
      return
    }
    // Full: the oldest makes room.
    const index = this.#oldestTokenUse
    this.#oldestTokenUse = (this.#oldestTokenUse + 1) % this.#maxTokenHistory
    const oldest = this.#tokenUses[index]!
    this.#tokenHistory.delete(oldest.mac)
    if (oldest.nextSequence > this.#forgottenSequenceFloor) this.#forgottenSequenceFloor = oldest.nextSequence
    const use = { mac, address, nextSequence: this.#forgottenSequenceFloor, receivedEnd: 0n }
    this.#tokenUses[index] = use
    this.#tokenHistory.set(mac, use)
  }

  /**
   * Where a connection with this token starts: its send sequence, and its receive window. A token the history
   * does not hold starts sending past every forgotten token's packets, and receiving at 0.
   */
  #resume(mac: string): { nextSequence: bigint; receivedEnd: bigint } {
    const use = this.#tokenHistory.get(mac)
    return use === undefined ? { nextSequence: this.#forgottenSequenceFloor, receivedEnd: 0n } : { nextSequence: use.nextSequence, receivedEnd: use.receivedEnd }
  }

  /** Where the next connection with this token will start. */
  #carryForward(mac: string, nextSequence: bigint, receivedEnd: bigint): void {
    const use = this.#tokenHistory.get(mac)
    if (use === undefined) {
      if (nextSequence > this.#forgottenSequenceFloor) this.#forgottenSequenceFloor = nextSequence
      return
    }
    if (nextSequence > use.nextSequence) use.nextSequence = nextSequence
    if (receivedEnd > use.receivedEnd) use.receivedEnd = receivedEnd
  }

  #sendFarewells(now: ServerClock): void {
    while (!this.#farewells.empty && this.#farewells.front().nextUs <= now.monotonicUs) {
      const entry = this.#farewells.front()
      this.#farewells.popFront()
      if (this.#recentlyReleased.get(entry.address) === entry.releaseSerial) this.#sendFarewell(entry, now)
      else entry.sendKey.fill(0) // its client is back (or the address was released again)
    }
  }

  /** One disconnect packet; the entry is queued again while some are left. */
  #sendFarewell(entry: Farewell, now: ServerClock): void {
    this.#emit(entry.address, encryptPacket(this.#sodium, { type: PacketType.disconnect, sequence: entry.sequence++, body: new Uint8Array(0) }, this.#protocolId, entry.sendKey))
    if (--entry.remaining > 0) {
      entry.nextUs = now.monotonicUs + this.#disconnectIntervalUs
      this.#farewells.pushBack(entry)
    } else {
      entry.sendKey.fill(0)
    }
  }
}
