// SessionTransport over a byte stream (node:net, node:tls, any stream.Duplex): each message a 4-byte
// big-endian length and its bytes, the framing MASH devices use over TLS.
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { VolleyError, VolleyTypeError, describe, surfaceLater } from '../util/errors.ts'
import { checkOptions, integerOption } from '../util/options.ts'
import { type SessionTransport, type SessionTransportEvents, type TransportBaseOptions, checkOutgoing, maxHeldBytesOption } from './transport.ts'

/** A StreamTransport's options. */
export interface StreamTransportOptions extends TransportBaseOptions {
  /**
   * The largest message, bytes, sent or received (default 8192, the MASH limit; 1 to 2^31 - 1). A frame
   * that announces more (or 0) ends the connection at once: its payload is not read.
   */
  maxMessageBytes?: number | undefined
  /**
   * The most bytes the stream's write buffer may hold (stream.writableLength, frames included; default 1 MiB,
   * 1 to 2^53 - 1): a send() that leaves more there ends the connection with ERR_SEND_BACKLOG_FULL (the
   * other side is not reading). At least the largest frame sent (maxMessageBytes + 4).
   */
  maxHeldBytes?: number | undefined
}

const streamTransportOptionNames: ReadonlySet<string> = new Set(['maxMessageBytes', 'maxHeldBytes'])

/** The bytes of a frame's length prefix. */
const prefixBytes = 4

// It implements SessionTransport itself rather than extending TransportBase: a stream takes every write and
// holds what it cannot pass on yet in its own buffer, so a second held queue here would only copy the
// messages again, and would report back-pressure one message late (TransportBase says false only for a
// message it held, while the stream says it of the write that filled its buffer).
/**
 * A SessionTransport over a byte stream (node:net, node:tls, any stream.Duplex): each message is a 4-byte
 * big-endian length and its bytes, the framing MASH devices use over TLS.
 *
 * send() writes each frame at once, as one write of its own bytes (the caller may reuse its view), and
 * returns what the stream's write() returned: false once the stream's buffer is past its high-water mark,
 * and 'drain' follows the stream's. The stream's buffer is bounded here, not by the stream (which takes every
 * write): past maxHeldBytes the stream is destroyed and 'close' says ERR_SEND_BACKLOG_FULL. The stream ending
 * (its end, close or error) is the transport's 'close', once. close() ends the stream: gracefully (end(), what
 * was written still goes) without an error, destroyed with one (what it holds is dropped). Nagle's algorithm is
 * the caller's to turn off (socket.setNoDelay()) for request/response traffic.
 */
export class StreamTransport extends EventEmitter<SessionTransportEvents> implements SessionTransport {
  /** The largest message, bytes, sent or received (the maxMessageBytes option). */
  readonly maxMessageBytes: number
  /** The most bytes the stream's write buffer may hold (the maxHeldBytes option). */
  readonly maxHeldBytes: number
  readonly #stream: Duplex
  #closed = false
  /** A write returned false, and the stream has not drained since. */
  #needDrain = false
  /** A length prefix split across chunks: its bytes taken so far (0 to 3 between chunks) and their value. */
  #prefixTaken = 0
  #prefixValue = 0
  /** A frame that spans chunks: the pieces so far (views of the chunks), their bytes, its length; null between frames. */
  #parts: Uint8Array[] | null = null
  #partsBytes = 0
  #frameLength = 0

  constructor(stream: Duplex, options: StreamTransportOptions = {}) {
    super()
    checkStream(stream)
    checkOptions('"options" argument', options, streamTransportOptionNames)
    this.maxMessageBytes = integerOption('maxMessageBytes', options.maxMessageBytes, 8192, 1, 2 ** 31 - 1)
    this.maxHeldBytes = maxHeldBytesOption(options.maxHeldBytes)
    if (stream.destroyed) throw new VolleyError('ERR_CONNECTION_CLOSED', 'The stream is destroyed: a StreamTransport needs an open stream')
    this.#stream = stream
    stream.on('data', this.#onData)
    stream.on('drain', this.#onDrain)
    stream.on('end', this.#onEnd)
    stream.on('close', this.#onClose)
    // Kept after the close: a stream may still report an error (a write that failed as it was torn down),
    // and an 'error' with no listener would be an uncaught exception.
    stream.on('error', this.#onError)
  }

  get writable(): boolean {
    return !this.#closed && !this.#needDrain
  }

  get closed(): boolean {
    return this.#closed
  }

  /**
   * Writes one message (1 to maxMessageBytes bytes) as a frame; false: the stream's buffer is past its
   * high-water mark, wait for 'drain'. After the close the message is dropped (false, no throw): the
   * SessionTransport contract.
   */
  send(data: Uint8Array): boolean {
    if (this.#closed) return false
    checkOutgoing(data, this.maxMessageBytes, 'the maxMessageBytes option')
    const size = data.byteLength
    // One buffer for prefix and payload: one write, and the stream holds its own bytes, not the caller's.
    const frame = Buffer.allocUnsafe(prefixBytes + size)
    frame.writeUInt32BE(size, 0)
    frame.set(data, prefixBytes)
    const stream = this.#stream
    const below = stream.write(frame)
    // What the stream could not pass on yet (the kernel took the rest at once): a peer that reads nothing
    // makes it grow with every send, and the stream never refuses a write.
    if (stream.writableLength > this.maxHeldBytes) {
      this.#backlogFull(stream.writableLength)
      return false
    }
    if (below) return !this.#needDrain
    this.#needDrain = true
    return false
  }

  /** The stream's buffer is past maxHeldBytes: the connection ends, what it holds dropped. */
  #backlogFull(waiting: number): void {
    this.#stream.destroy()
    const error = new VolleyError(
      'ERR_SEND_BACKLOG_FULL',
      `${waiting} bytes were waiting in the stream's write buffer, past the bound of ${this.maxHeldBytes} bytes (the maxHeldBytes option): ` +
        'the other side is not reading, and the connection was ended',
    )
    // The caller of send() is not the one the close is for: a 'close' handler that throws surfaces on its own.
    try {
      this.#ended(error)
    } catch (thrown) {
      surfaceLater(thrown)
    }
  }

  close(error?: Error): void {
    if (this.#closed) return
    if (error === undefined) this.#endStream()
    else this.#stream.destroy()
    this.#ended(error)
  }

  readonly #onData = (chunk: Uint8Array | string): void => {
    if (this.#closed) return
    // A stream set to decode text (setEncoding) breaks the framing: its bytes are gone.
    if (typeof chunk === 'string') {
      this.#stream.destroy()
      this.#ended(new VolleyTypeError('ERR_INVALID_ARG_VALUE', 'The stream delivers strings (setEncoding() was called on it): a StreamTransport needs its bytes'))
      return
    }
    const end = chunk.byteLength
    let at = 0
    while (at < end && !this.#closed) {
      const parts = this.#parts
      if (parts !== null) {
        // The rest of a frame that began in an earlier chunk.
        const take = Math.min(this.#frameLength - this.#partsBytes, end - at)
        parts.push(chunk.subarray(at, at + take))
        this.#partsBytes += take
        at += take
        if (this.#partsBytes === this.#frameLength) {
          this.#parts = null
          this.#deliver(joined(parts, this.#frameLength))
        }
        continue
      }
      let length: number
      if (this.#prefixTaken === 0 && end - at >= prefixBytes) {
        length = ((chunk[at]! << 24) | (chunk[at + 1]! << 16) | (chunk[at + 2]! << 8) | chunk[at + 3]!) >>> 0
        at += prefixBytes
      } else {
        // A prefix split across chunks: a byte at a time.
        while (this.#prefixTaken < prefixBytes && at < end) {
          this.#prefixValue = this.#prefixValue * 256 + chunk[at++]!
          this.#prefixTaken++
        }
        if (this.#prefixTaken < prefixBytes) return
        length = this.#prefixValue
        this.#prefixTaken = 0
        this.#prefixValue = 0
      }
      if (length === 0 || length > this.maxMessageBytes) {
        this.#refuseFrame(length)
        return
      }
      if (end - at >= length) {
        // Whole within this chunk: a view of it, no copy.
        const frame = chunk.subarray(at, at + length)
        at += length
        this.#deliver(frame)
      } else {
        this.#parts = [chunk.subarray(at, end)]
        this.#partsBytes = end - at
        this.#frameLength = length
        at = end
      }
    }
  }

  #deliver(frame: Uint8Array): void {
    try {
      // A plain Uint8Array, not a Buffer: a handler's slice() must copy (Buffer's makes a view).
      this.emit('message', frame instanceof Buffer ? new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength) : frame)
    } catch (error) {
      // Thrown out of here, it would leave the rest of the chunk unread and the framing lost with it.
      surfaceLater(error)
    }
  }

  /** A frame out of bounds: the connection ends here, nothing answered and nothing more read. */
  #refuseFrame(length: number): void {
    this.#stream.destroy()
    const why = length === 0 ? 'an empty frame' : `a frame of ${length} bytes`
    this.#ended(new VolleyError('ERR_FRAME_SIZE', `The stream sent ${why}; frames are 1 to ${this.maxMessageBytes} bytes (the maxMessageBytes option): the connection was ended`))
  }

  readonly #onDrain = (): void => {
    if (this.#closed || !this.#needDrain) return
    this.#needDrain = false
    this.emit('drain')
  }

  readonly #onEnd = (): void => {
    if (this.#closed) return
    // The other side will send no more: ours ends too (what was written still goes).
    this.#endStream()
    this.#ended(this.#truncation())
  }

  readonly #onClose = (): void => {
    this.#ended(this.#truncation())
  }

  readonly #onError = (error: Error): void => {
    this.#ended(error)
  }

  /** Ends the stream gracefully, then destroys it once what was written has gone to it. */
  #endStream(): void {
    const stream = this.#stream
    if (stream.destroyed) return
    // A peer that never ends its own side does not keep the stream open: it is destroyed once flushed.
    stream.end(() => stream.destroy())
  }

  /** The error for a stream that ended inside a frame; undefined when it ended between frames. */
  #truncation(): Error | undefined {
    if (this.#parts !== null) {
      return new VolleyError('ERR_CONNECTION_CLOSED', `The stream ended inside a frame: ${this.#partsBytes} of its ${this.#frameLength} bytes came`)
    }
    if (this.#prefixTaken > 0) return new VolleyError('ERR_CONNECTION_CLOSED', `The stream ended inside a frame's length prefix: ${this.#prefixTaken} of its 4 bytes came`)
    return undefined
  }

  #ended(error: Error | undefined): void {
    if (this.#closed) return
    this.#closed = true
    this.#needDrain = false
    this.#parts = null
    const stream = this.#stream
    stream.off('data', this.#onData)
    stream.off('drain', this.#onDrain)
    stream.off('end', this.#onEnd)
    stream.off('close', this.#onClose)
    if (error === undefined) this.emit('close')
    else this.emit('close', error)
  }
}

/** Throws unless the value looks like a duplex stream: by its shape, so that one of another copy of the stream module serves. */
function checkStream(stream: unknown): asserts stream is Duplex {
  const candidate = stream as Partial<Duplex> | null
  if (
    typeof stream !== 'object' ||
    candidate === null ||
    typeof candidate.on !== 'function' ||
    typeof candidate.write !== 'function' ||
    typeof candidate.end !== 'function' ||
    typeof candidate.destroy !== 'function'
  ) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "stream" argument must be a stream.Duplex (a net.Socket, a tls.TLSSocket). Received ${describe(stream)}`)
  }
}

/** The pieces of a frame that spanned chunks, as one array. */
function joined(parts: readonly Uint8Array[], length: number): Uint8Array {
  const frame = new Uint8Array(length)
  let at = 0
  for (const part of parts) {
    frame.set(part, at)
    at += part.byteLength
  }
  return frame
}
