// The netcode 1.02 client as a state machine (sans-IO), in TypeScript: given a connect token and the time,
// it sends requests and responses at its rates, moves to the token's next server address on failure,
// keeps the connection alive and reports every state of the standard. It is the fallback engine's client
// and follows native/protocol/netcode/client.cc decision for decision; test/netcode/client-core.test.ts runs one
// suite against both, and each against the other's server.
import { PacketType, sizes } from './constants.ts'
import { type ConnectToken, readConnectToken } from './connect-token.ts'
import { type DropReason, encryptPacket, readEncryptedPacket, writeConnectionRequest } from './packets.ts'
import { ReplayProtection } from './replay-protection.ts'
import { type ServerAddress, formatServerAddress, readDatagramSource, sameServerAddress } from './server-address.ts'
import type { Sodium } from './sodium.ts'
import { Reader, Writer, equalBytes } from './wire.ts'

/** The states of the standard, as the native engine's records number them (native/protocol/netcode/client.h). */
export const clientStateCodes = {
  'connect-token-expired': -6,
  'invalid-connect-token': -5,
  'connection-timed-out': -4,
  'connection-response-timed-out': -3,
  'connection-request-timed-out': -2,
  'connection-denied': -1,
  disconnected: 0,
  'sending-connection-request': 1,
  'sending-connection-response': 2,
  connected: 3,
} as const

export type ClientCoreState = keyof typeof clientStateCodes

export interface ClientCoreConfig {
  /** Tokens of another protocol id are refused as invalid; undefined: take it from each token. */
  protocolId?: bigint | undefined
  /** Requests and responses (default 100 ms: 10 Hz). */
  requestIntervalUs?: number | undefined
  /** Keep-alive when nothing else was sent for this long (default 100 ms). */
  keepAliveIntervalUs?: number | undefined
  /** Between redundant disconnect packets (default 100 ms). */
  disconnectIntervalUs?: number | undefined
  /** Redundant disconnect packets sent when the client disconnects (default 10). */
  disconnectPackets?: number | undefined
  /**
   * Where the client's sequence starts (default 0): random per socket in the engine (sequence-starts.ts),
   * so that a token used again from another socket never encrypts under one key and nonce.
   */
  sequenceBase?: bigint | undefined
}

export interface ClientCoreSink {
  /** to: the server address as text, 'a.b.c.d:port' or '[v6]:port'. */
  sendPacket(to: string, data: Uint8Array): void
  /** Each change of state, and each server address the client starts on; server: the one it tries or is connected to. */
  stateChanged(state: ClientCoreState, server: ServerAddress | undefined): void
  /** data is the decrypted body, the sink's to keep. */
  payload(data: Uint8Array): void
}

export interface ClientCoreCounters {
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
}

const clientAccepts = new Set<number>([PacketType.connectionDenied, PacketType.connectionChallenge, PacketType.keepAlive, PacketType.payload, PacketType.disconnect])
const noBody = new Uint8Array(0)

function connecting(state: ClientCoreState): boolean {
  return state === 'sending-connection-request' || state === 'sending-connection-response'
}

/** The replay window of one of the token's servers: `held` names the server a connection under the held key got as far as connected with. */
interface ServerWindow {
  readonly replay: ReplayProtection
  held: ServerAddress | undefined
}

export class ClientCore {
  readonly #sodium: Sodium
  readonly #sink: ClientCoreSink
  readonly #protocolIdOption: bigint | undefined
  readonly #requestIntervalUs: number
  readonly #keepAliveIntervalUs: number
  readonly #disconnectIntervalUs: number
  readonly #disconnectPackets: number
  #token: ConnectToken | undefined
  /** Of the current token. */
  #protocolId = 0n
  #state: ClientCoreState = 'disconnected'
  #addressIndex = 0
  /** The token's address at #addressIndex, as text: where its packets go. */
  #serverText = ''
  #connectStartUs = 0
  /** In µs; Infinity for a token that outlives any clock. */
  #tokenLifetimeUs = 0
  #lastSendUs = 0
  #lastReceiveUs = 0
  /** Never reset: the key is the same for every server address. */
  #sequence = 0n
  // The replay window of each of the token's servers, its index's. A connection again with the same token
  // to a server it was connected to starts with that server's window (#windowCarried), whichever others it
  // tried in between: this library's server goes on past the sequences the earlier connection sent, and
  // those, captured and replayed, must not be taken for new packets. A server that starts again at 0, as
  // STANDARD.md has it, shows it with its first keep-alive, and the window then starts afresh (receive):
  // refused, it could never connect.
  #windows: ServerWindow[] = []
  /** A hash of the server-to-client key the held windows are under: a new key drops them. Not the key itself, which then outlived the connection. */
  #heldKeyHash: Uint8Array = new Uint8Array(0)
  #windowCarried = false
  #challengeBody: Uint8Array = new Uint8Array(sizes.challengeBody)
  #clientIndex = 0
  #maxClients = 0
  #farewellsLeft = 0
  #nextFarewellUs = 0
  #farewellAddress = ''
  /** The key of the connection they end: connect() replaces the token. */
  readonly #farewellKey = new Uint8Array(sizes.key)
  readonly #counters: ClientCoreCounters = { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0, malformed: 0, replayed: 0, tooOld: 0, decryptionFailed: 0, unknownAddress: 0 }

  constructor(sodium: Sodium, config: ClientCoreConfig, sink: ClientCoreSink) {
    this.#sodium = sodium
    this.#sink = sink
    this.#protocolIdOption = config.protocolId
    this.#requestIntervalUs = config.requestIntervalUs ?? 100_000
    this.#keepAliveIntervalUs = config.keepAliveIntervalUs ?? 100_000
    this.#disconnectIntervalUs = config.disconnectIntervalUs ?? 100_000
    this.#disconnectPackets = config.disconnectPackets ?? 10
    this.#sequence = config.sequenceBase ?? 0n
  }

  get state(): ClientCoreState {
    return this.#state
  }

  get clientIndex(): number {
    return this.#clientIndex
  }

  get maxClients(): number {
    return this.#maxClients
  }

  get hasPendingDisconnects(): boolean {
    return this.#farewellsLeft > 0
  }

  get counters(): Readonly<ClientCoreCounters> {
    return this.#counters
  }

  /** The token's address the client tries or is connected to; undefined when no attempt or connection is under way. */
  get serverAddress(): ServerAddress | undefined {
    return connecting(this.#state) || this.#state === 'connected' ? this.#token?.serverAddresses[this.#addressIndex] : undefined
  }

  /** Starts connecting with the first server address of the token (or fails as an invalid token). */
  connect(token: Uint8Array, now: number): void {
    // Disconnect packets still owed to the previous connection go now, under its key, before the new
    // handshake: sent later, with the same key (the same token again) they would end the new connection.
    while (this.#farewellsLeft > 0) {
      this.#nextFarewellUs = now
      this.#sendFarewells(now)
    }
    let read: ConnectToken | undefined
    try {
      read = readConnectToken(token)
    } catch {
      read = undefined
    }
    if (read === undefined || (this.#protocolIdOption !== undefined && read.protocolId !== this.#protocolIdOption)) {
      // Reported even when the state already says so (an invalid token again): the caller waits for an answer.
      this.#state = 'invalid-connect-token'
      this.#announce()
      return
    }
    this.#token = read
    this.#clientIndex = 0 // the previous connection's, until this one's first keep-alive
    this.#maxClients = 0
    const keyHash = this.#sodium.crypto_generichash(this.#sodium.crypto_generichash_BYTES, read.serverToClientKey, null)
    if (!equalBytes(keyHash, this.#heldKeyHash)) {
      for (const window of this.#windows) window.held = undefined
      this.#heldKeyHash = keyHash
    }
    while (this.#windows.length < read.serverAddresses.length) this.#windows.push({ replay: new ReplayProtection(), held: undefined })
    this.#windows.length = read.serverAddresses.length
    this.#protocolId = read.protocolId
    // The token's lifetime counts over the whole attempt, across its addresses, as STANDARD.md says (the
    // reference code restarts it at each address).
    this.#connectStartUs = now
    this.#tokenLifetimeUs = Number(read.expireTimestamp - read.createTimestamp) * 1_000_000
    this.#startAddress(0, now)
  }

  receive(from: string, data: Uint8Array, now: number): void {
    this.#counters.packetsIn++
    this.#counters.bytesIn += data.byteLength
    if (!connecting(this.#state) && this.#state !== 'connected') return
    // A token that ran out takes the handshake no further, whatever comes before the next update() would see
    // it (a fast server's challenge and keep-alive did: a token of no lifetime connected).
    if (connecting(this.#state) && now - this.#connectStartUs >= this.#tokenLifetimeUs) {
      this.#setState('connect-token-expired')
      return
    }
    const token = this.#token as ConnectToken
    // Most often the very text the packets went to; else maybe the same address in another form (IPv4-mapped).
    if (from !== this.#serverText) {
      const source = readDatagramSource(from)
      if (source === null || !sameServerAddress(source, token.serverAddresses[this.#addressIndex]!)) {
        this.#counters.unknownAddress++
        return
      }
    }
    // Whether a carried window still applies is known only at this connection's first keep-alive (below);
    // until then nothing replay-protected is taken (payloads and disconnects are ignored while connecting).
    const deciding = this.#windowCarried && this.#state === 'sending-connection-response'
    const read = readEncryptedPacket(this.#sodium, data, {
      protocolId: this.#protocolId,
      key: token.serverToClientKey,
      accept: clientAccepts,
      ...(!deciding && { replay: this.#windows[this.#addressIndex]!.replay }),
    })
    if (!read.ok) {
      this.#countDrop(read.reason)
      return
    }
    const packet = read.value
    switch (packet.type) {
      case PacketType.connectionDenied:
        if (connecting(this.#state)) this.#fail('connection-denied', now)
        return
      case PacketType.connectionChallenge:
        if (this.#state === 'sending-connection-response') {
          // Challenges are not replay-protected: one captured from an earlier handshake with this token (which
          // the server no longer takes) may come first. The server's challenges count up, so a later one wins.
          if (new Reader(packet.body).u64() <= new Reader(this.#challengeBody).u64()) return
          this.#challengeBody = packet.body
          this.#lastReceiveUs = now
          this.#sendHandshake(now)
          return
        }
        if (this.#state !== 'sending-connection-request') return
        this.#challengeBody = packet.body
        this.#lastReceiveUs = now
        this.#setState('sending-connection-response')
        this.#sendHandshake(now)
        return
      case PacketType.keepAlive:
        if (this.#state === 'sending-connection-response') {
          if (deciding) {
            // Below where the earlier connection ended: the server started its sequence again. At or past
            // it, it went on, and every sequence below its first keep-alive counts as received: the earlier
            // connection's packets that never arrived (its last redundant disconnects) would otherwise pass
            // for new if replayed. The server sends this connection's payloads after that keep-alive.
            const replay = this.#windows[this.#addressIndex]!.replay
            if (packet.sequence < replay.receivedEnd()) replay.reset()
            else replay.resetBelow(packet.sequence)
            replay.advance(packet.sequence)
            this.#windowCarried = false
          }
          const reader = new Reader(packet.body)
          this.#clientIndex = reader.u32()
          this.#maxClients = reader.u32()
          this.#lastReceiveUs = now
          this.#windows[this.#addressIndex]!.held = token.serverAddresses[this.#addressIndex]
          this.#setState('connected')
        } else if (this.#state === 'connected') {
          this.#lastReceiveUs = now
        }
        return
      case PacketType.payload:
        if (this.#state !== 'connected') return // payloads before connected are discarded
        this.#lastReceiveUs = now
        this.#sink.payload(packet.body)
        return
      case PacketType.disconnect:
        // The server ended the connection: disconnected, as STANDARD.md says (the reference code tries the
        // token's next address).
        if (this.#state === 'connected') this.#setState('disconnected')
        return
      default:
        return
    }
  }

  update(now: number): void {
    this.#sendFarewells(now)
    const token = this.#token
    if (token === undefined) return
    const timeoutUs = token.timeoutSeconds > 0 ? token.timeoutSeconds * 1_000_000 : Number.POSITIVE_INFINITY
    if (connecting(this.#state)) {
      if (now - this.#connectStartUs >= this.#tokenLifetimeUs) {
        this.#setState('connect-token-expired')
        return
      }
      if (now - this.#lastReceiveUs >= timeoutUs) {
        this.#fail(this.#state === 'sending-connection-request' ? 'connection-request-timed-out' : 'connection-response-timed-out', now)
        return
      }
      if (now - this.#lastSendUs >= this.#requestIntervalUs) this.#sendHandshake(now)
    } else if (this.#state === 'connected') {
      if (now - this.#lastReceiveUs >= timeoutUs) {
        this.#setState('connection-timed-out')
        return
      }
      if (now - this.#lastSendUs >= this.#keepAliveIntervalUs) {
        const body = new Uint8Array(sizes.keepAliveBody)
        new Writer(body).u32(this.#clientIndex).u32(this.#maxClients)
        this.#send(PacketType.keepAlive, body, now)
      }
    }
  }

  /** When update() next has work to do (monotonic µs), Infinity if never. Sends only move it later. */
  nextDeadlineUs(): number {
    let next = this.#farewellsLeft > 0 ? this.#nextFarewellUs : Number.POSITIVE_INFINITY
    const token = this.#token
    if (token === undefined) return next
    const timeoutUs = token.timeoutSeconds > 0 ? token.timeoutSeconds * 1_000_000 : Number.POSITIVE_INFINITY
    if (connecting(this.#state)) {
      next = Math.min(next, this.#connectStartUs + this.#tokenLifetimeUs, this.#lastReceiveUs + timeoutUs, this.#lastSendUs + this.#requestIntervalUs)
    } else if (this.#state === 'connected') {
      next = Math.min(next, this.#lastReceiveUs + timeoutUs, this.#lastSendUs + this.#keepAliveIntervalUs)
    }
    return next
  }

  /** False unless connected with a payload of 1..1200 bytes. */
  sendPayload(data: Uint8Array, now: number): boolean {
    if (this.#state !== 'connected' || data.byteLength < 1 || data.byteLength > sizes.maxPayload) return false
    this.#send(PacketType.payload, data, now)
    return true
  }

  /** Sends the redundant disconnect packets (through update()) and goes to disconnected at once. */
  disconnect(now: number): void {
    // While sending its response too, as the reference does: the server may have given it a slot already
    // (the keep-alive that says so lost), which would otherwise last until it times out.
    const mayHaveSlot = this.#state === 'connected' || this.#state === 'sending-connection-response'
    const token = this.#token
    if (mayHaveSlot && token !== undefined && this.#disconnectPackets > 0) {
      this.#farewellsLeft = this.#disconnectPackets
      this.#farewellAddress = this.#serverText
      this.#farewellKey.set(token.clientToServerKey)
      this.#nextFarewellUs = now
      this.#sendFarewells(now) // the first goes out at once
    }
    this.#setState('disconnected')
  }

  #setState(state: ClientCoreState): void {
    if (state === this.#state) return
    this.#state = state
    if (!connecting(state) && state !== 'connected' && this.#token !== undefined) {
      // The attempt or the connection ended: nothing is sent under its keys again (the disconnects that may
      // follow have a copy), so they need not outlive it until the next connect().
      this.#token.clientToServerKey.fill(0)
      this.#token.serverToClientKey.fill(0)
    }
    this.#announce()
  }

  #announce(): void {
    this.#sink.stateChanged(this.#state, this.serverAddress)
  }

  #startAddress(index: number, now: number): void {
    const token = this.#token as ConnectToken
    this.#addressIndex = index
    this.#lastReceiveUs = now
    const server = token.serverAddresses[index]!
    this.#serverText = formatServerAddress(server)
    const window = this.#windows[index]!
    if (window.held === undefined || !sameServerAddress(window.held, server)) {
      window.replay.reset()
      window.held = undefined
    }
    this.#windowCarried = window.held !== undefined
    // Reported at each address, even when the state stays "sending connection request" (a request that timed
    // out moves on to the next one): the sink learns which server the client now tries.
    this.#state = 'sending-connection-request'
    this.#announce()
    this.#sendHandshake(now)
  }

  /** A failure while connecting: the next server address, or the error state when none is left. */
  #fail(error: ClientCoreState, now: number): void {
    if (this.#addressIndex + 1 < (this.#token as ConnectToken).serverAddresses.length) this.#startAddress(this.#addressIndex + 1, now)
    else this.#setState(error)
  }

  #sendHandshake(now: number): void {
    if (this.#state === 'sending-connection-request') {
      const token = this.#token as ConnectToken
      const request = writeConnectionRequest(token)
      this.#lastSendUs = now
      this.#emit(this.#serverText, request)
    } else {
      this.#send(PacketType.connectionResponse, this.#challengeBody, now)
    }
  }

  #send(type: PacketType, body: Uint8Array, now: number): void {
    const token = this.#token as ConnectToken
    const packet = encryptPacket(this.#sodium, { type, sequence: this.#nextSequence(), body }, this.#protocolId, token.clientToServerKey)
    this.#lastSendUs = now
    this.#emit(this.#serverText, packet)
  }

  #nextSequence(): bigint {
    const sequence = this.#sequence
    this.#sequence = BigInt.asUintN(64, sequence + 1n) // wraps as the native uint64_t does
    return sequence
  }

  #emit(to: string, data: Uint8Array): void {
    this.#counters.packetsOut++
    this.#counters.bytesOut += data.byteLength
    this.#sink.sendPacket(to, data)
  }

  #sendFarewells(now: number): void {
    if (this.#farewellsLeft === 0 || now < this.#nextFarewellUs) return
    const packet = encryptPacket(this.#sodium, { type: PacketType.disconnect, sequence: this.#nextSequence(), body: noBody }, this.#protocolId, this.#farewellKey)
    this.#emit(this.#farewellAddress, packet)
    this.#farewellsLeft--
    this.#nextFarewellUs = now + this.#disconnectIntervalUs
    if (this.#farewellsLeft === 0) this.#farewellKey.fill(0)
  }

  #countDrop(reason: DropReason): void {
    if (reason === 'replayed') this.#counters.replayed++
    else if (reason === 'too-old') this.#counters.tooOld++
    else if (reason === 'decryption-failed') this.#counters.decryptionFailed++
    else this.#counters.malformed++
  }
}
