// A client connected to a Server.
import { BandwidthWindow, type LinkStats, type RemoteChannels, type SendOptions, readLinkStats } from './channels.ts'
import { DrainWaiters, FlushWaiters } from '../util/drain-waiters.ts'
import { VolleyError, VolleyTypeError } from '../util/errors.ts'
import { sizes } from '../protocol/netcode/constants.ts'
import type { PeerDrops } from '../engine/peer-records.ts'

export interface PeerHost {
  sendToPeer(peer: Peer, data: Uint8Array, options: SendOptions | undefined): boolean
  disconnectPeer(peer: Peer): void
  /** Asks for notifyFlushed() once the peer's queue is empty. */
  watchFlush(peer: Peer): void
  /** null when the peer's slot already has a later client, whose counters these would be. */
  peerStats(peer: Peer): PeerStats | null
  /** What the client announced of its channels; null until then, and without channels. */
  remoteChannels(peer: Peer): RemoteChannels | null
  /** The synchronised clock: the server's own, ms. */
  timeMs(): number
  bufferedAmount(peer: Peer): number
}

/** Packets, bytes and drops of the netcode connection; with channels, the delivery layer's link statistics too. */
export interface PeerStats extends LinkStats {
  drops: PeerDrops
}

/** The statistics of a peer never read before its slot went to a later client: nothing known. */
function vacantStats(): PeerStats {
  const drops = { malformed: 0, replayed: 0, tooOld: 0, decryptionFailed: 0 }
  return Object.assign(readLinkStats(null, 0, { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 }, new BandwidthWindow()), { drops })
}

/**
 * The first argument of Peer's constructor: a server makes its peers, and the package does not export the
 * symbol (it exports Peer for its type and instanceof), so that no one makes a peer that belongs to no
 * server.
 */
export const peerConstruction: unique symbol = Symbol('volley.Peer')

/**
 * A client connected to a Server: the server's 'connect' event gives each. Send to it, read its statistics,
 * or disconnect it; it stays readable after the client leaves.
 */
export class Peer {
  readonly #host: PeerHost
  /** Why the peer is not connected (for the error of a later send()); null while it is. */
  #endedBecause: string | null = null
  // Also the base of the first bandwidth reading.
  /** When the connection began, ms on performance.now()'s clock. */
  readonly connectedAtMs = performance.now()
  /** The last reading, kept once the client has left. */
  #last: PeerStats | null = null
  /** Its readings as its connection ended, made into statistics when first read. */
  #final: (() => PeerStats) | null = null
  /** drained(): whether a send was refused since the last drain, and who waits for the next (made on first use). */
  #drain: DrainWaiters | null = null
  /** flushed(): who waits for the queue to empty (made on first use). */
  #flush: FlushWaiters | null = null
  readonly #userDataPool: Uint8Array
  readonly #userDataAt: number
  /** The copy userData hands out (made on first read: most servers read few peers' user data). */
  #userData: Uint8Array | undefined

  /** Peers have no public constructor: a Server makes them (its 'connect' event gives each). @hidden */
  constructor(
    construction: typeof peerConstruction,
    host: PeerHost,
    /** The server's slot for this client: reused by later clients once this one leaves. */
    readonly index: number,
    /** The client id from its connect token. */
    readonly clientId: bigint,
    /** The client's IP address. */
    readonly address: string,
    /** The client's UDP port. */
    readonly port: number,
    // The 256 bytes of user data from its connect token: at userDataAt in a buffer that holds other peers' too.
    userDataPool: Uint8Array,
    userDataAt: number,
    // How the engine knows this connection in sends and controls: the slot and how many clients it had
    // before (layout.peerSlotBits), so that nothing meant for this client reaches a later one in its slot.
    /** @internal */
    readonly tag: number = index,
  ) {
    if (construction !== peerConstruction) {
      throw new VolleyTypeError('ERR_ILLEGAL_CONSTRUCTOR', 'Peer has no public constructor: a Server makes its peers (its \'connect\' event gives each)')
    }
    this.#host = host
    this.#userDataPool = userDataPool
    this.#userDataAt = userDataAt
  }

  /**
   * The 256 bytes of user data from the client's connect token: this peer's own copy, the same array at
   * every read.
   */
  get userData(): Uint8Array {
    return (this.#userData ??= this.#userDataPool.slice(this.#userDataAt, this.#userDataAt + sizes.userData))
  }

  /**
   * With channels: the channels and largest message the client announced (the server reports a peer with
   * 'connect' once they are in); null without channels. send() checks messages against them. Kept after the
   * client leaves.
   */
  get remoteChannels(): RemoteChannels | null {
    return this.#host.remoteChannels(this)
  }

  /** True until the client leaves or disconnect() is called. */
  get connected(): boolean {
    return this.#endedBecause === null
  }

  /**
   * Sends a message on a channel (options.channel, default 0): with channels configured, up to
   * maxMessageBytes; without, a raw payload of 1 to 1200 bytes. Returns false, queuing nothing, when this
   * peer's queue is full (the server emits 'drain' with this peer once it has room) or the engine's is
   * (the server emits 'drain' with no argument): the message was not sent, so send it again then
   * (`while (!peer.send(data)) await peer.drained()`).
   */
  send(data: Uint8Array, options?: SendOptions): boolean {
    if (!this.connected) throw this.#disconnectedError()
    const sent = this.#host.sendToPeer(this, data, options)
    if (!sent) (this.#drain ??= new DrainWaiters()).block()
    return sent
  }

  /**
   * Resolves when this peer can take messages again: at once unless a send() was refused since the last
   * drain, else at the drain that follows (the server's 'drain' event with this peer, or with none when the
   * engine's queue was the full one). Rejects with ERR_PEER_DISCONNECTED when the client leaves first, and
   * with ABORT_ERR when options.signal aborts.
   */
  drained(options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    return (this.#drain ??= new DrainWaiters()).wait(options, this.connected ? null : this.#disconnectedError())
  }

  /** @internal The queue that refused this peer's send has room again. */
  notifyDrain(): void {
    this.#drain?.drain()
  }

  /**
   * Resolves once everything sent to this peer so far has left its queue (bufferedAmount 0): sent, and
   * acknowledged by the client on the reliable channels. At once with nothing queued, and without
   * channels. Before peer.disconnect() or server.close(), so that reliable messages in flight are not
   * lost with the connection. Rejects with ERR_PEER_DISCONNECTED when the client leaves first, and with
   * ABORT_ERR when options.signal aborts.
   */
  flushed(options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    this.#flush ??= new FlushWaiters(
      () => this.bufferedAmount, // 0 once disconnected
      () => this.#host.watchFlush(this),
    )
    return this.#flush.wait(options, this.connected ? null : this.#disconnectedError())
  }

  /** @internal The I/O thread found this peer's queue empty. */
  notifyFlushed(): void {
    this.#flush?.emptied()
  }

  #disconnectedError(): VolleyError {
    return new VolleyError('ERR_PEER_DISCONNECTED', `Peer ${this.clientId} is not connected: ${this.#endedBecause}`)
  }

  /**
   * Bytes handed to send() that this connection has not yet released: not yet acknowledged on a reliable
   * channel, not yet sent on the others; each message counts 64 bytes more than its size, as
   * sendQueueBytes counts it. 0 without channels.
   */
  get bufferedAmount(): number {
    return this.connected ? this.#host.bufferedAmount(this) : 0
  }

  /** The synchronised clock (the server's), ms with sub-millisecond resolution; client.time() reads the same clock. */
  time(): number {
    return this.#host.timeMs()
  }

  /** Link statistics of this client's connection (the last reading once it has left). */
  stats(): PeerStats {
    if (this.#final !== null) {
      this.#last = this.#final()
      this.#final = null
    } else if ((this.connected || this.#last === null) && this.#read()) {
      return this.#last!
    }
    // The same reading again (the peer has left): a copy for each caller, as each reading of a connected
    // peer is its own object, so that one caller's changes are not the next one's figures.
    return this.#last === null ? vacantStats() : structuredClone(this.#last)
  }

  /** Takes a fresh reading of its slot; false when there is none (a slot taken by a later client before JavaScript heard that this one left: the last reading stands). */
  #read(): boolean {
    const reading = this.#host.peerStats(this)
    if (reading === null) return false
    this.#last = reading
    return true
  }

  /**
   * Disconnects the client: it is sent redundant disconnect packets; 'disconnect' follows. From the call
   * on the peer is not connected (send() throws ERR_PEER_DISCONNECTED) and its messages are not emitted.
   */
  disconnect(): void {
    if (!this.connected) return
    this.#host.disconnectPeer(this)
    this.markDisconnected('peer.disconnect() ended its connection')
  }

  /**
   * @internal why: for the error of a later send(), as "Peer 7 is not connected: <why>"; final: its readings
   * as the connection ended (the engine's disconnect record), which stand from then on, also after an earlier
   * disconnect(); without them, the last reading of its slot.
   */
  markDisconnected(why: string, final?: () => PeerStats): void {
    if (final !== undefined) this.#final = final
    if (this.#endedBecause === null) {
      if (final === undefined) this.#read()
      this.#endedBecause = why
    }
    this.#drain?.fail(() => this.#disconnectedError())
    this.#flush?.fail(() => this.#disconnectedError())
  }
}
