// What the key sync runs on: a link to one pinned peer that sends a message and delivers the peer's, already
// authenticated. Two envelopes: the reference's signed JSON datagram (datagram-link.ts), and plain JSON over
// a session transport, whose connection (Volley's, or TLS) authenticates and encrypts already.
import { EventEmitter } from 'node:events'
import type { SessionTransport } from '../transport.ts'
import { MemoryTransport, type MemoryTransportOptions } from '../transport.ts'
import { encodeKeySyncMessage, type KeySyncMessage } from './messages.ts'

export interface KeySyncLinkEvents {
  /**
   * A message from the pinned peer: its JSON parsed (an object to check), or undefined when it was no JSON.
   * Whatever did not come from the peer has been dropped and counted below this.
   */
  message: [value: unknown]
  /** The link ended (a transport's connection closed). */
  close: [error?: Error]
}

export interface KeySyncLink extends EventEmitter<KeySyncLinkEvents> {
  /** Sends one message to the peer (best effort: the key sync retries what it waits for). */
  send(message: KeySyncMessage): void
  close(): void
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })

/** A message's JSON from bytes, or undefined (not UTF-8, not JSON). */
export function parseJsonBytes(data: Uint8Array): unknown {
  try {
    return JSON.parse(textDecoder.decode(data)) as unknown
  } catch {
    return undefined
  }
}

/** The key sync over a session transport: one message a JSON text, as UTF-8. */
export class TransportLink extends EventEmitter<KeySyncLinkEvents> implements KeySyncLink {
  readonly #transport: SessionTransport

  constructor(transport: SessionTransport) {
    super()
    this.#transport = transport
    transport.on('message', (data) => this.emit('message', parseJsonBytes(data)))
    transport.once('close', (error) => this.emit('close', error))
  }

  send(message: KeySyncMessage): void {
    this.#transport.send(textEncoder.encode(encodeKeySyncMessage(message)))
  }

  close(): void {
    this.#transport.close()
  }

  /** Two links joined in memory (tests, and two roles in one process). */
  static pair(options?: MemoryTransportOptions): [TransportLink, TransportLink] {
    const [a, b] = MemoryTransport.pair(options)
    return [new TransportLink(a), new TransportLink(b)]
  }
}
