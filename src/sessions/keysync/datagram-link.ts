// The key sync as the reference sends it: one signed JSON datagram a message (envelope.ts), over node:dgram.
// Every message goes to the configured peer address, never to where a datagram came from, so a forged
// source gets nothing back; what fails the envelope (oversized, malformed, unpinned, a bad signature, a
// replay) is dropped and counted, never answered.
import { createSocket, type Socket } from 'node:dgram'
import { once } from 'node:events'
import { isIP } from 'node:net'
import { EventEmitter } from 'node:events'
import type { KeyObject } from 'node:crypto'
import { VolleyTypeError, describe } from '../../util/errors.ts'
import { integerOption } from '../../util/options.ts'
import { EnvelopeVerifier, envelopeTypeFor, signEnvelope, type EnvelopeDropReason, type EnvelopeSigner } from './envelope.ts'
import type { KeySyncLink, KeySyncLinkEvents } from './link.ts'
import { encodeKeySyncMessage, type KeySyncMessage } from './messages.ts'
import { KEYSYNC_TIMESTAMP_WINDOW_MS } from './settings.ts'

/** The UDP port of the key sync by default: 5000, the reference's. */
export const KEYSYNC_PORT = 5000

export interface DatagramLinkOptions {
  /** This SAE: its id and RSA key pair (generateSaeKeyPair(), or loadPrivateKey() of the reference's key). */
  signer: EnvelopeSigner
  /** The one peer: its SAE id, its pinned RSA public key (a KeyObject, an SPKI PEM or a certificate PEM), and its address. */
  peer: { saeId: string; publicKey: KeyObject | string; address: string; port?: number | undefined }
  /** Where to listen (default 0.0.0.0, port 5000, the reference's). */
  address?: string | undefined
  port?: number | undefined
  /** The timestamp window the roles enforce, ms: replays are remembered that long (default 3,600,000). */
  timestampWindowMs?: number | undefined
  /** How many message ids are remembered (default 4096). */
  replayCapacity?: number | undefined
}

export interface DatagramLinkStats {
  sent: number
  /** Messages not sent: their datagram would exceed 8,192 bytes. */
  unsendable: number
  received: number
  /** Datagrams dropped, by reason: never answered. */
  drops: Record<EnvelopeDropReason, number>
}

/**
 * The key sync over UDP as the reference sends it: one signed JSON datagram per message. Messages go to the
 * configured peer address only; datagrams that fail the checks (size, shape, pinned key, signature, replay)
 * are dropped and counted, never answered.
 */
export class DatagramLink extends EventEmitter<KeySyncLinkEvents> implements KeySyncLink {
  readonly #socket: Socket
  readonly #signer: EnvelopeSigner
  readonly #verifier: EnvelopeVerifier
  readonly #peer: { saeId: string; address: string; port: number }
  /** How long message ids are remembered (the roles' timestampWindowMs may not exceed it). */
  readonly timestampWindowMs: number
  #sent = 0
  #unsendable = 0
  #received = 0
  #closed = false

  private constructor(socket: Socket, signer: EnvelopeSigner, verifier: EnvelopeVerifier, peer: { saeId: string; address: string; port: number }, timestampWindowMs: number) {
    super()
    this.timestampWindowMs = timestampWindowMs
    this.#socket = socket
    this.#signer = signer
    this.#verifier = verifier
    this.#peer = peer
    socket.on('message', (datagram) => this.#receive(datagram))
    socket.on('error', () => {}) // an ICMP unreachable for a send: the roles retry what they wait for
  }

  /** Binds the socket and resolves once it listens. Throws for options that cannot work. */
  static async open(options: DatagramLinkOptions): Promise<DatagramLink> {
    const peer = options.peer as Partial<DatagramLinkOptions['peer']> | undefined
    if (typeof peer !== 'object' || peer === null || typeof peer.saeId !== 'string' || typeof peer.address !== 'string' || isIP(peer.address) === 0 || peer.publicKey === undefined) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "peer" option must be { saeId, publicKey, address (an IP address), port? }. Received ${describe(peer)}`)
    }
    const port = integerOption('port', options.port, KEYSYNC_PORT, 0, 65535)
    const peerPort = integerOption('peer.port', peer.port, KEYSYNC_PORT, 1, 65535)
    const windowMs = integerOption('timestampWindowMs', options.timestampWindowMs, KEYSYNC_TIMESTAMP_WINDOW_MS, 1000, 2 ** 31 - 1)
    const verifier = new EnvelopeVerifier({
      pinnedPeers: new Map([[peer.saeId, peer.publicKey]]),
      replayWindowMs: windowMs,
      ...(options.replayCapacity === undefined ? {} : { replayCapacity: options.replayCapacity }),
    })
    const address = options.address ?? (isIP(peer.address) === 6 ? '::' : '0.0.0.0')
    const socket = createSocket(isIP(address) === 6 ? 'udp6' : 'udp4')
    socket.bind(port, address)
    await Promise.race([once(socket, 'listening'), once(socket, 'error').then(([error]) => Promise.reject(error as Error))])
    return new DatagramLink(socket, options.signer, verifier, { saeId: peer.saeId, address: peer.address, port: peerPort }, windowMs)
  }

  /** Where the socket listens. */
  address(): { address: string; port: number } {
    const { address, port } = this.#socket.address()
    return { address, port }
  }

  /** Where messages go from now on (a peer that moved, or one whose port was known only after this one bound). */
  setPeerAddress(address: string, port: number): void {
    if (typeof address !== 'string' || isIP(address) === 0) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The peer's address must be an IP address. Received ${describe(address)}`)
    this.#peer.port = integerOption('port', port, KEYSYNC_PORT, 1, 65535)
    this.#peer.address = address
  }

  send(message: KeySyncMessage): void {
    if (this.#closed) return
    let datagram: Uint8Array
    try {
      datagram = signEnvelope(encodeKeySyncMessage(message), this.#signer, envelopeTypeFor(message.message_type))
    } catch {
      // Over the reference's 8,192 bytes (the roles bound what they write well under it): never sent.
      this.#unsendable++
      return
    }
    this.#sent++
    this.#socket.send(datagram, this.#peer.port, this.#peer.address)
  }

  stats(): DatagramLinkStats {
    return { sent: this.#sent, unsendable: this.#unsendable, received: this.#received, drops: this.#verifier.stats().drops }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#socket.close()
    this.emit('close')
  }

  #receive(datagram: Buffer): void {
    this.#received++
    const opened = this.#verifier.open(datagram, Date.now())
    if (!opened.ok) return
    this.emit('message', opened.message)
  }
}
