// A client connected to a Server.
import { VolleyError, VolleyRangeError } from './errors.ts'

export interface PeerHost {
  sendToPeer(peer: Peer, data: Uint8Array): boolean
  disconnectPeer(peer: Peer): void
  peerStats(peer: Peer): PeerStats
}

export interface PeerStats {
  packets: { in: number; out: number }
  bytes: { in: number; out: number }
}

export class Peer {
  readonly #host: PeerHost
  #connected = true
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

  /** Sends a payload of 1 to 1200 bytes. Returns false when the send queue is full (wait for the server's 'drain'). */
  send(data: Uint8Array): boolean {
    if (!this.#connected) throw new VolleyError('ERR_PEER_DISCONNECTED', `Peer ${this.clientId} is not connected`)
    if (data.byteLength < 1 || data.byteLength > 1200) {
      throw new VolleyRangeError('ERR_PAYLOAD_SIZE', `A payload is 1 to 1200 bytes. Received ${data.byteLength}`)
    }
    return this.#host.sendToPeer(this, data)
  }

  /** Packets and bytes exchanged with this client (the last reading once it has left). */
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
