// What every session protocol runs on: whole messages in and out, back-pressure, and an end. The adapters
// (Volley's reliable channel, a length-framed byte stream, an in-memory pair) are thin shells around it.
import { EventEmitter } from 'node:events'

export interface SessionTransportEvents {
  /** One whole message: a view valid during the callback (copy it to keep it). */
  message: [data: Uint8Array]
  /** The transport takes messages again after send() returned false. */
  drain: []
  /** The connection ended, by either side (error: why, when it was not an orderly end). Emitted once. */
  close: [error?: Error]
}

/** A message connection as a session protocol sees it. */
export interface SessionTransport extends EventEmitter<SessionTransportEvents> {
  /**
   * Sends one message. It is always taken (held by the transport while the connection below is full); false
   * says the caller should wait for 'drain' before it sends more. After the close, messages are dropped.
   */
  send(data: Uint8Array): boolean
  /** false from a send() that returned false to the 'drain' after it. */
  readonly writable: boolean
  readonly closed: boolean
  /** Ends the connection below (idempotent); 'close' follows. */
  close(error?: Error): void
}

/**
 * The common part of the adapters: the held messages while the connection below is full, the drain and the
 * close. An adapter implements trySend (false when the connection below takes nothing now) and closeBelow.
 */
export abstract class TransportBase extends EventEmitter<SessionTransportEvents> implements SessionTransport {
  #held: Uint8Array[] = []
  #heldFrom = 0
  #closed = false

  protected abstract trySend(data: Uint8Array): boolean
  protected abstract closeBelow(error?: Error): void

  get writable(): boolean {
    return !this.#closed && this.#held.length === this.#heldFrom
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Messages held for the connection below: the back-pressure backlog. */
  get heldMessages(): number {
    return this.#held.length - this.#heldFrom
  }

  send(data: Uint8Array): boolean {
    if (this.#closed) return false
    if (this.#held.length === this.#heldFrom && this.trySend(data)) return true
    // The caller's bytes may be a view it reuses: the held copy is the transport's own.
    this.#held.push(data.slice())
    return false
  }

  /** The connection below has room again: sends what was held, then 'drain' once all of it went. */
  protected sendHeld(): void {
    const held = this.#held
    while (!this.#closed && this.#heldFrom < held.length) {
      if (!this.trySend(held[this.#heldFrom]!)) return
      held[this.#heldFrom++] = EMPTY
    }
    if (this.#closed) return
    const hadHeld = held.length > 0
    this.#held = []
    this.#heldFrom = 0
    if (hadHeld) this.emit('drain')
  }

  protected deliver(data: Uint8Array): void {
    if (!this.#closed) this.emit('message', data)
  }

  /** The connection below ended: 'close' once. */
  protected ended(error?: Error): void {
    if (this.#closed) return
    this.#closed = true
    this.#held = []
    this.#heldFrom = 0
    if (error === undefined) this.emit('close')
    else this.emit('close', error)
  }

  close(error?: Error): void {
    if (this.#closed) return
    this.closeBelow(error)
    this.ended(error)
  }
}

const EMPTY = new Uint8Array(0)

export interface MemoryTransportOptions {
  /**
   * Sees each message as it is sent (from: 'a' or 'b'); false drops it, as a lossy or hostile link would.
   * For tests of timeouts and keep-alive misses.
   */
  filter?: ((data: Uint8Array, from: 'a' | 'b') => boolean) | undefined
}

/**
 * Two connected in-memory transports, for tests. A message reaches the other side synchronously, after the
 * message being delivered there (if any) is done: no reentrancy, no event-loop turn, so fake-clock tests
 * run without awaiting I/O. pause() holds a side's incoming messages and makes its peer's sends report
 * back-pressure, until resume().
 */
export class MemoryTransport extends TransportBase {
  #other: MemoryTransport | undefined
  readonly #side: 'a' | 'b'
  readonly #filter: MemoryTransportOptions['filter']
  readonly #inbox: Uint8Array[] = []
  #delivering = false
  #paused = false

  private constructor(side: 'a' | 'b', filter: MemoryTransportOptions['filter']) {
    super()
    this.#side = side
    this.#filter = filter
  }

  static pair(options: MemoryTransportOptions = {}): [a: MemoryTransport, b: MemoryTransport] {
    const a = new MemoryTransport('a', options.filter)
    const b = new MemoryTransport('b', options.filter)
    a.#other = b
    b.#other = a
    return [a, b]
  }

  /** Holds incoming messages (the sender sees back-pressure) until resume(). */
  pause(): void {
    this.#paused = true
  }

  /** Delivers what was held, and lets the other side send again. */
  resume(): void {
    this.#paused = false
    this.#pump()
    this.#other?.sendHeld()
  }

  protected trySend(data: Uint8Array): boolean {
    const other = this.#other!
    if (other.closed) return true // lost with the connection, as on a real one
    if (other.#paused) return false
    if (this.#filter !== undefined && !this.#filter(data, this.#side)) return true
    other.#inbox.push(data.slice())
    other.#pump()
    return true
  }

  #pump(): void {
    if (this.#delivering) return
    this.#delivering = true
    try {
      while (!this.#paused && this.#inbox.length > 0) this.deliver(this.#inbox.shift()!)
    } finally {
      this.#delivering = false
    }
  }

  protected closeBelow(): void {
    const other = this.#other
    // The other side learns of the end after the messages already on their way.
    if (other !== undefined && !other.closed) queueMicrotask(() => other.ended())
  }
}
