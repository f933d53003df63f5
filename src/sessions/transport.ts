// What every session protocol runs on: whole messages in and out, back-pressure, and an end. The adapters
// (Volley's reliable channel, a length-framed byte stream, an in-memory pair) are thin shells around it.
import { EventEmitter } from 'node:events'
import { isUint8Array } from 'node:util/types'
import { checkAttached, copyBytes } from '../util/bytes.ts'
import { VolleyError, VolleyRangeError, VolleyTypeError, describe, surfaceLater } from '../util/errors.ts'
import { checkOptions, integerOption } from '../util/options.ts'

export interface SessionTransportEvents {
  /** One whole message: a view valid during the callback (copy it to keep it). */
  message: [data: Uint8Array]
  /** The transport takes messages again after send() returned false. */
  drain: []
  /** The connection ended, by either side (error: why, when it was not an orderly end). Emitted once. */
  close: [error?: Error]
}

/**
 * A message connection as a session protocol sees it.
 *
 * The send contract, the same on every adapter:
 * - After the close, send() returns false and throws nothing, whatever it is given: the message is dropped.
 * - While open, send() throws for a message it cannot take: ERR_INVALID_ARG_TYPE (a TypeError) for one that
 *   is not a Uint8Array; ERR_INVALID_ARG_VALUE for a view whose bytes are gone (its buffer detached);
 *   ERR_PAYLOAD_SIZE (a RangeError) for an empty one; ERR_MESSAGE_TOO_LARGE (a RangeError) for one over the
 *   adapter's maxMessageBytes. Nothing is sent then, and the transport stays open. (A Volley adapter also
 *   throws its connection's own refusal of a message it sends at once: over this side's maxMessageBytes.)
 * - Otherwise the message is taken, a copy of its bytes (the caller may reuse its view at once): true, or
 *   false when the connection below is full, the message waiting in the transport (back-pressure): the caller
 *   should wait for 'drain' before it sends more, as with a Node stream's write().
 * - What waits is bounded (each adapter's maxHeldBytes option, 1 MiB by default): a send() that takes it past
 *   the bound ends the connection instead (the other side is not reading), and 'close' says
 *   ERR_SEND_BACKLOG_FULL; that send() returns false and throws nothing.
 */
export interface SessionTransport extends EventEmitter<SessionTransportEvents> {
  /**
   * Sends one message (1 to maxMessageBytes bytes): true, or false to wait for 'drain'; after the close,
   * false (dropped). See {@link SessionTransport} for the send contract.
   */
  send(data: Uint8Array): boolean
  /** false from a send() that returned false to the 'drain' after it, and after the close. */
  readonly writable: boolean
  readonly closed: boolean
  /**
   * Ends the connection below (idempotent); 'close' follows, with `error` when one is given. Without an error
   * the end is orderly: what waits is handed to the connection below first, as far as it takes it, and goes
   * before the end. With one (and at any end the transport did not start), what still waits is dropped.
   */
  close(error?: Error): void
}

/** The default bound of the bytes a transport holds for a connection below that takes nothing: 1 MiB. */
export const defaultMaxHeldBytes = 1 << 20

/** The maxHeldBytes option: an integer from 1 to 2^53 - 1, 1 MiB when absent. */
export function maxHeldBytesOption(value: unknown): number {
  return integerOption('maxHeldBytes', value, defaultMaxHeldBytes, 1, Number.MAX_SAFE_INTEGER)
}

/**
 * The send contract's checks of a message for an open transport (SessionTransport's comment). `bound` names
 * whose maxMessageBytes it is, for the error's message ("the maxMessageBytes option").
 */
export function checkOutgoing(data: unknown, maxMessageBytes: number, bound: string): asserts data is Uint8Array {
  if (!isUint8Array(data)) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "data" argument must be a Uint8Array. Received ${describe(data)}`)
  const size = data.byteLength
  if (size === 0) {
    checkAttached(data)
    // An empty message has no meaning to the protocols, and a length-framed stream would take it for a broken one.
    throw new VolleyRangeError('ERR_PAYLOAD_SIZE', `A message is 1 to ${maxMessageBytes} bytes (${bound}). Received an empty one`)
  }
  if (size > maxMessageBytes) {
    throw new VolleyRangeError('ERR_MESSAGE_TOO_LARGE', `A message is at most ${maxMessageBytes} bytes (${bound}). Received ${size} bytes`)
  }
}

/** What every adapter built on TransportBase takes. */
export interface TransportBaseOptions {
  /**
   * The most bytes held while the connection below takes nothing (default 1 MiB, 1 to 2^53 - 1): a message
   * that would take the held bytes past it ends the connection with ERR_SEND_BACKLOG_FULL. At least the
   * largest message sent, for one message alone to wait.
   */
  maxHeldBytes?: number | undefined
}

/**
 * The common part of the adapters: the messages held while the connection below is full (bounded by
 * maxHeldBytes), the drain, the send contract's checks and the close. An adapter says its maxMessageBytes
 * and implements trySend (false when the connection below takes nothing now) and closeBelow, and calls
 * deliver(), sendHeld() (the connection below has room again) and ended() (it ended).
 */
export abstract class TransportBase extends EventEmitter<SessionTransportEvents> implements SessionTransport {
  /** The largest message sent, bytes: a larger one is refused at send(). */
  abstract readonly maxMessageBytes: number
  /** The most bytes held for the connection below (the maxHeldBytes option). */
  readonly maxHeldBytes: number
  #held: Uint8Array[] = []
  #heldFrom = 0
  #heldBytes = 0
  /** Inside the sending of held messages: a drain or close reentered from it sends nothing twice. */
  #sendingHeld = false
  #closed = false

  constructor(options: TransportBaseOptions = {}) {
    super()
    this.maxHeldBytes = maxHeldBytesOption(options.maxHeldBytes)
  }

  protected abstract trySend(data: Uint8Array): boolean
  protected abstract closeBelow(error?: Error): void

  /** Whose bound maxMessageBytes is, for the error that refuses a larger message. */
  protected get messageBound(): string {
    return 'the maxMessageBytes option'
  }

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

  /** The bytes of the messages held (at most maxHeldBytes). */
  get heldBytes(): number {
    return this.#heldBytes
  }

  send(data: Uint8Array): boolean {
    if (this.#closed) return false
    checkOutgoing(data, this.maxMessageBytes, this.messageBound)
    if (this.#held.length === this.#heldFrom && this.trySend(data)) return true
    if (this.#closed) return false // ended from inside trySend
    const size = data.byteLength
    if (this.#heldBytes + size > this.maxHeldBytes) {
      const messages = this.heldMessages + 1
      const error = new VolleyError(
        'ERR_SEND_BACKLOG_FULL',
        `${this.#heldBytes + size} bytes (${messages} ${messages === 1 ? 'message' : 'messages'}) were waiting for the connection below to take them, ` +
          `past the bound of ${this.maxHeldBytes} bytes (the maxHeldBytes option): the other side is not reading, and the connection was ended`,
      )
      // The caller of send() is not the one the close is for: a 'close' handler that throws surfaces on its own.
      try {
        this.close(error)
      } catch (thrown) {
        surfaceLater(thrown)
      }
      return false
    }
    // The caller's bytes may be a view it reuses (a Buffer's slice() would be one too): the held copy is the transport's own.
    this.#held.push(copyBytes(data))
    this.#heldBytes += size
    return false
  }

  /** The connection below has room again: sends what was held, then 'drain' once all of it went. */
  protected sendHeld(): void {
    const hadHeld = this.#held.length > 0
    if (!this.#sendHeldMessages() || !hadHeld) return
    this.emit('drain')
  }

  /**
   * Hands the held messages to the connection below in order, until it refuses one; true when all went
   * (false too when the transport ended meanwhile, or when this is a reentered call).
   */
  #sendHeldMessages(): boolean {
    if (this.#sendingHeld) return false
    this.#sendingHeld = true
    try {
      const held = this.#held
      while (!this.#closed && this.#heldFrom < held.length) {
        const message = held[this.#heldFrom]!
        if (!this.trySend(message)) return false
        if (this.#closed) return false // ended inside trySend: ended() emptied the backlog
        held[this.#heldFrom++] = EMPTY
        this.#heldBytes -= message.byteLength
      }
      if (this.#closed) return false
      this.#held = []
      this.#heldFrom = 0
      this.#heldBytes = 0
      return true
    } finally {
      this.#sendingHeld = false
    }
  }

  protected deliver(data: Uint8Array): void {
    if (!this.#closed) this.emit('message', data)
  }

  /** The connection below ended: 'close' once. What is still held is dropped. */
  protected ended(error?: Error): void {
    if (this.#closed) return
    this.#closed = true
    this.#held = []
    this.#heldFrom = 0
    this.#heldBytes = 0
    if (error === undefined) this.emit('close')
    else this.emit('close', error)
  }

  close(error?: Error): void {
    if (this.#closed) return
    // An orderly close hands on what it can first; trySend may end the transport (an adapter's error).
    if (error === undefined) this.#sendHeldMessages()
    if (this.#closed) return
    this.closeBelow(error)
    this.ended(error)
  }
}

const EMPTY = new Uint8Array(0)

/** MemoryTransport.pair()'s options. */
export interface MemoryTransportOptions extends TransportBaseOptions {
  /**
   * Sees each message as it is sent (from: 'a' or 'b'); false drops it, as a lossy or hostile link would.
   * For tests of timeouts and keep-alive misses.
   */
  filter?: ((data: Uint8Array, from: 'a' | 'b') => boolean) | undefined
  /** The largest message either side sends, bytes (1 to 2^31 - 1, the default: no bound of its own). */
  maxMessageBytes?: number | undefined
}

const memoryTransportOptionNames: ReadonlySet<string> = new Set(['filter', 'maxMessageBytes', 'maxHeldBytes'])

/**
 * Two connected in-memory transports, for tests. A message reaches the other side synchronously, after the
 * message being delivered there (if any) is done: no reentrancy, no event-loop turn, so fake-clock tests
 * run without awaiting I/O. pause() holds a side's incoming messages and makes its peer's sends report
 * back-pressure (its messages held, up to maxHeldBytes), until resume(). A 'message' handler that throws
 * does not throw into the sender's send(): its error surfaces as an uncaught exception, as on the other
 * adapters, and the messages after it are still delivered.
 */
export class MemoryTransport extends TransportBase {
  readonly maxMessageBytes: number
  #other: MemoryTransport | undefined
  readonly #side: 'a' | 'b'
  readonly #filter: MemoryTransportOptions['filter']
  /** Messages that reached this side and wait for the one being delivered (or for resume()), from #inboxFrom on. */
  #inbox: Uint8Array[] = []
  #inboxFrom = 0
  #delivering = false
  #paused = false

  private constructor(side: 'a' | 'b', filter: MemoryTransportOptions['filter'], maxMessageBytes: number, maxHeldBytes: number) {
    super({ maxHeldBytes })
    this.#side = side
    this.#filter = filter
    this.maxMessageBytes = maxMessageBytes
  }

  static pair(options: MemoryTransportOptions = {}): [a: MemoryTransport, b: MemoryTransport] {
    checkOptions('"options" argument', options, memoryTransportOptionNames)
    const { filter } = options
    if (filter !== undefined && typeof filter !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "filter" option must be a function. Received ${describe(filter)}`)
    }
    const maxMessageBytes = integerOption('maxMessageBytes', options.maxMessageBytes, 2 ** 31 - 1, 1, 2 ** 31 - 1)
    const maxHeldBytes = maxHeldBytesOption(options.maxHeldBytes)
    const a = new MemoryTransport('a', filter, maxMessageBytes, maxHeldBytes)
    const b = new MemoryTransport('b', filter, maxMessageBytes, maxHeldBytes)
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
    // The other side's own bytes, a plain Uint8Array, as the real adapters deliver (a Buffer's slice() is a view).
    other.#inbox.push(copyBytes(data))
    other.#pump()
    return true
  }

  #pump(): void {
    if (this.#delivering) return
    this.#delivering = true
    try {
      while (!this.#paused && this.#inboxFrom < this.#inbox.length) {
        const data = this.#inbox[this.#inboxFrom]!
        this.#inbox[this.#inboxFrom++] = EMPTY
        try {
          this.deliver(data)
        } catch (error) {
          // Thrown out of here it would reach the sender's send(), which is no place for the receiver's crash.
          surfaceLater(error)
        }
      }
      if (this.#inboxFrom === this.#inbox.length) {
        this.#inbox = []
        this.#inboxFrom = 0
      }
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
