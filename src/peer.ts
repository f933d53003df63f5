// A client connected to a Server.
import type { LinkStats, SendOptions } from './delivery.ts'
import { VolleyError } from './errors.ts'

export interface PeerHost {
  sendToPeer(peer: Peer, data: Uint8Array, options: SendOptions | undefined): boolean
  disconnectPeer(peer: Peer): void
  peerStats(peer: Peer): PeerStats
  /** The synchronised clock: the server's own, ms. */
  timeMs(): number
  bufferedAmount(peer: Peer): number
}

/** Packets and bytes of the netcode connection; with channels, the delivery layer's link statistics too. */
export type PeerStats = LinkStats

export class Peer {
  readonly #host: PeerHost
  #connected = true
  /** When the connection began (performance.now()): the base of the first bandwidth reading. */
  readonly connectedAtMs = performance.now()
  /** The last reading, kept once the client has left (made then: most peers never need it). */
  #last: PeerStats | null = null

  constructor(
    host: PeerHost,
    /** The server's slot for this client: reused by later clients once this one leaves. */
    readonly index: number,
    /** The client id from its connect token. */
    readonly clientId: bigint,
    readonly address: string,
    readonly port: number,
    /** The 256 bytes of user data from its connect token. */
    readonly userData: Uint8Array,
  ) {
    this.#host = host
  }

  get connected(): boolean {
    return this.#connected
  }

  /**
   * Sends a message on a channel (options.channel, default 0): with channels configured, up to
   * maxMessageBytes; without, a raw payload of 1 to 1200 bytes. Returns false, queuing nothing, when this
   * peer's queue is full (the server emits 'drain' with this peer once it has room) or the engine's is
   * (the server emits 'drain' with no argument).
   */
  send(data: Uint8Array, options?: SendOptions): boolean {
    if (!this.#connected) throw new VolleyError('ERR_PEER_DISCONNECTED', `Peer ${this.clientId} is not connected`)
    return this.#host.sendToPeer(this, data, options)
  }

  /**
   * Bytes handed to send() that this connection has not yet released: not yet acknowledged on a reliable
   * channel, not yet sent on the others. 0 without channels.
   */
  get bufferedAmount(): number {
    return this.#connected ? this.#host.bufferedAmount(this) : 0
  }

  /** The synchronised clock (the server's), ms with sub-millisecond resolution; client.time() reads the same clock. */
  time(): number {
    return this.#host.timeMs()
  }

  /** Link statistics of this client's connection (the last reading once it has left). */
  stats(): PeerStats {
    if (this.#connected || this.#last === null) this.#last = this.#host.peerStats(this)
    return this.#last
  }

  /** Disconnects the client: it is sent redundant disconnect packets; 'disconnect' follows. */
  disconnect(): void {
    if (this.#connected) this.#host.disconnectPeer(this)
  }

  /** @internal */
  markDisconnected(): void {
    if (this.#connected) this.#last = this.#host.peerStats(this)
    this.#connected = false
  }
}
