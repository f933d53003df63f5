// The wire of resumable sessions (research §C.1): zio-raft's client-server codec, byte for byte. Each
// message is the signature "zraft", version 1, a type byte, then big-endian fields. An optional field is a
// 1-bit flag followed by its value, so the bytes after it are shifted by one bit and the message ends on
// zero padding. Decoding is strict: a message is refused unless every byte of it is accounted for.
import { isUtf8 } from 'node:buffer'
import { VolleyRangeError, VolleyTypeError, describe } from '../../util/errors.ts'

/** "zraft": the first five bytes of every message. */
export const RESUMABLE_SIGNATURE = Uint8Array.of(0x7a, 0x72, 0x61, 0x66, 0x74)
/** The one protocol version: a message of any other is refused. */
export const RESUMABLE_VERSION = 1
/** Signature, version and type byte. */
const HEADER_BYTES = 7

/** Why the server refuses a ContinueSession or CreateSession (SessionRejected). */
export type RejectionReason = 'not-leader' | 'session-not-found' | 'invalid-capabilities' | 'other'
/** Why the server ends a session's binding or the session (SessionClosed). */
export type SessionCloseReason = 'shutdown' | 'not-leader-anymore' | 'session-error' | 'connection-closed' | 'session-expired'

// The codes of the reference's reasons. 'session-not-found' is the codec's SessionExpired (2): the contract
// calls the same refusal SessionNotFound, and it covers a session that never existed as well.
const rejectionCodes: Readonly<Record<RejectionReason, number>> = { 'not-leader': 1, 'session-not-found': 2, 'invalid-capabilities': 3, other: 4 }
const closeCodes: Readonly<Record<SessionCloseReason, number>> = {
  shutdown: 1,
  'not-leader-anymore': 2,
  'session-error': 3,
  'connection-closed': 4,
  'session-expired': 5,
}
const rejectionByCode = invert(rejectionCodes)
const closeByCode = invert(closeCodes)
/** CloseSession's one reason (1, ClientShutdown) and RequestError's (1, ResponseEvicted). */
const CLIENT_SHUTDOWN = 1
const RESPONSE_EVICTED = 1

export type ClientMessage =
  | { type: 'create-session'; capabilities: ReadonlyMap<string, string>; nonce: bigint }
  | { type: 'continue-session'; sessionId: string; nonce: bigint }
  | { type: 'keep-alive'; timestamp: number }
  | { type: 'client-request'; requestId: number; lowestPendingRequestId: number; payload: Uint8Array; createdAt: number }
  | { type: 'server-request-ack'; requestId: number }
  | { type: 'close-session'; reason: 'client-shutdown' }
  | { type: 'connection-closed' }
  | { type: 'query'; correlationId: string; payload: Uint8Array; createdAt: number }

export type ServerMessage =
  | { type: 'session-created'; sessionId: string; nonce: bigint }
  | { type: 'session-continued'; nonce: bigint }
  | { type: 'session-rejected'; reason: RejectionReason; nonce: bigint; leaderId?: string | undefined }
  | { type: 'session-closed'; reason: SessionCloseReason; leaderId?: string | undefined }
  | { type: 'keep-alive-response'; timestamp: number }
  | { type: 'client-response'; requestId: number; result: Uint8Array }
  | { type: 'server-request'; requestId: number; payload: Uint8Array; createdAt: number }
  | { type: 'request-error'; requestId: number; reason: 'response-evicted' }
  | { type: 'query-response'; correlationId: string; result: Uint8Array }

const clientTypes = ['create-session', 'continue-session', 'keep-alive', 'client-request', 'server-request-ack', 'close-session', 'connection-closed', 'query'] as const
const serverTypes = [
  'session-created',
  'session-continued',
  'session-rejected',
  'session-closed',
  'keep-alive-response',
  'client-response',
  'server-request',
  'request-error',
  'query-response',
] as const

/** Why a message was refused; each is counted apart by the server. */
export type MalformedReason = 'truncated' | 'signature' | 'version' | 'unknown-type' | 'bad-value' | 'trailing-bytes'

/** A message that could not be decoded: what decode returns instead of throwing (a flood costs no stack traces). */
export interface MalformedMessage {
  readonly type: 'malformed'
  readonly reason: MalformedReason
}

const malformed: Readonly<Record<MalformedReason, MalformedMessage>> = {
  truncated: Object.freeze({ type: 'malformed', reason: 'truncated' }),
  signature: Object.freeze({ type: 'malformed', reason: 'signature' }),
  version: Object.freeze({ type: 'malformed', reason: 'version' }),
  'unknown-type': Object.freeze({ type: 'malformed', reason: 'unknown-type' }),
  'bad-value': Object.freeze({ type: 'malformed', reason: 'bad-value' }),
  'trailing-bytes': Object.freeze({ type: 'malformed', reason: 'trailing-bytes' }),
}

/** What each reason means, for logs and errors. */
export const malformedReasons: Readonly<Record<MalformedReason, string>> = {
  truncated: 'the message ends inside a field',
  signature: 'the message does not start with the signature "zraft"',
  version: `the protocol version is not ${RESUMABLE_VERSION}`,
  'unknown-type': 'the type byte names no message of this direction',
  'bad-value': 'a field holds a value the protocol does not allow (a reason code, a zero nonce, an id past 2^53 - 1, bad UTF-8)',
  'trailing-bytes': 'bytes follow the last field (or the padding bits are not zero)',
}

// ---------------------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------------------

const utf8 = new TextEncoder()

/** Writes fields into an exactly sized buffer: the message's size is summed first, then written once. */
class Writer {
  readonly bytes: Uint8Array
  readonly #view: DataView
  at = HEADER_BYTES

  constructor(size: number, type: number) {
    this.bytes = new Uint8Array(HEADER_BYTES + size)
    this.#view = new DataView(this.bytes.buffer)
    this.bytes.set(RESUMABLE_SIGNATURE)
    this.bytes[5] = RESUMABLE_VERSION
    this.bytes[6] = type
  }

  u8(value: number): this {
    this.bytes[this.at++] = value
    return this
  }

  i64(value: bigint): this {
    this.#view.setBigInt64(this.at, value)
    this.at += 8
    return this
  }

  /** An int64 from a safe integer (request ids, epoch milliseconds). */
  long(value: number): this {
    // Two halves: BigInt(value) would allocate per field.
    const high = Math.floor(value / 2 ** 32)
    this.#view.setInt32(this.at, high)
    this.#view.setUint32(this.at + 4, value - high * 2 ** 32)
    this.at += 8
    return this
  }

  /** A string behind a length of `lengthBytes` (1 or 2), already encoded. */
  text(encoded: Uint8Array, lengthBytes: 1 | 2): this {
    if (lengthBytes === 1) this.bytes[this.at++] = encoded.length
    else {
      this.#view.setUint16(this.at, encoded.length)
      this.at += 2
    }
    this.bytes.set(encoded, this.at)
    this.at += encoded.length
    return this
  }

  /** Bytes behind an int32 length. */
  payload(data: Uint8Array): this {
    this.#view.setInt32(this.at, data.length)
    this.bytes.set(data, this.at + 4)
    this.at += 4 + data.length
    return this
  }

  /** The optional member id, the last field: a flag bit, then its uint16 length and UTF-8 one bit on. */
  optionalText(encoded: Uint8Array | undefined): this {
    if (encoded === undefined) {
      this.bytes[this.at++] = 0
      return this
    }
    const aligned = new Uint8Array(2 + encoded.length)
    aligned[0] = encoded.length >> 8
    aligned[1] = encoded.length & 0xff
    aligned.set(encoded, 2)
    let carry = 0x80 // the flag
    for (const byte of aligned) {
      this.bytes[this.at++] = carry | (byte >> 1)
      carry = (byte << 7) & 0xff
    }
    this.bytes[this.at++] = carry
    return this
  }
}

/** Encodes a string field, refusing one its length prefix cannot carry. */
function encodeText(value: string, field: string, maxBytes: number): Uint8Array {
  if (typeof value !== 'string') throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${field}" field must be a string. Received ${describe(value)}`)
  const encoded = utf8.encode(value)
  if (encoded.length > maxBytes) throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "${field}" field is at most ${maxBytes} bytes of UTF-8. Received ${encoded.length}`)
  return encoded
}

function checkLong(value: number, field: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "${field}" field must be an integer from ${min} to 2^53 - 1. Received ${describe(value)}`)
  }
}

function checkNonce(nonce: bigint): void {
  if (typeof nonce !== 'bigint' || nonce === 0n || BigInt.asIntN(64, nonce) !== nonce) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "nonce" field must be a non-zero 64-bit signed bigint. Received ${describe(nonce)}`)
  }
}

function checkPayload(data: Uint8Array, field: string): void {
  if (!(data instanceof Uint8Array)) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${field}" field must be a Uint8Array. Received ${describe(data)}`)
}

function optionalMemberBytes(leaderId: string | undefined): { encoded: Uint8Array | undefined; size: number } {
  if (leaderId === undefined) return { encoded: undefined, size: 1 }
  const encoded = encodeText(leaderId, 'leaderId', 0xffff)
  // The flag bit and 16 + 8n bits, padded to whole bytes.
  return { encoded, size: 3 + encoded.length }
}

/** Encodes a client-to-server message; throws a typed error for a field out of its range. */
export function encodeClientMessage(message: ClientMessage): Uint8Array {
  switch (message.type) {
    case 'create-session': {
      checkNonce(message.nonce)
      const pairs: Uint8Array[] = []
      for (const [key, value] of message.capabilities) pairs.push(encodeText(key, 'capabilities key', 0xffff), encodeText(value, 'capabilities value', 0xffff))
      if (pairs.length === 0) throw new VolleyRangeError('ERR_OUT_OF_RANGE', 'The "capabilities" field must hold at least one entry')
      if (pairs.length / 2 > 0xffff) throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "capabilities" field holds at most 65535 entries. Received ${pairs.length / 2}`)
      const size = 2 + pairs.reduce((sum, pair) => sum + 2 + pair.length, 0) + 8
      const writer = new Writer(size, 1)
      writer.bytes[writer.at++] = (pairs.length / 2) >> 8
      writer.bytes[writer.at++] = (pairs.length / 2) & 0xff
      for (const pair of pairs) writer.text(pair, 2)
      return writer.i64(message.nonce).bytes
    }
    case 'continue-session': {
      checkNonce(message.nonce)
      const id = encodeText(message.sessionId, 'sessionId', 0xff)
      return new Writer(1 + id.length + 8, 2).text(id, 1).i64(message.nonce).bytes
    }
    case 'keep-alive':
      checkLong(message.timestamp, 'timestamp', -(2 ** 53 - 1))
      return new Writer(8, 3).long(message.timestamp).bytes
    case 'client-request':
      checkLong(message.requestId, 'requestId', 0)
      checkLong(message.lowestPendingRequestId, 'lowestPendingRequestId', 0)
      checkPayload(message.payload, 'payload')
      checkLong(message.createdAt, 'createdAt', -(2 ** 53 - 1))
      return new Writer(8 + 8 + 4 + message.payload.length + 8, 4)
        .long(message.requestId)
        .long(message.lowestPendingRequestId)
        .payload(message.payload)
        .long(message.createdAt).bytes
    case 'server-request-ack':
      checkLong(message.requestId, 'requestId', 0)
      return new Writer(8, 5).long(message.requestId).bytes
    case 'close-session':
      return new Writer(1, 6).u8(CLIENT_SHUTDOWN).bytes
    case 'connection-closed':
      return new Writer(0, 7).bytes
    case 'query': {
      const id = encodeText(message.correlationId, 'correlationId', 0xffff)
      checkPayload(message.payload, 'payload')
      checkLong(message.createdAt, 'createdAt', -(2 ** 53 - 1))
      return new Writer(2 + id.length + 4 + message.payload.length + 8, 8).text(id, 2).payload(message.payload).long(message.createdAt).bytes
    }
  }
  throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `Not a client message type: ${describe((message as { type: unknown }).type)}`)
}

/** Encodes a server-to-client message; throws a typed error for a field out of its range. */
export function encodeServerMessage(message: ServerMessage): Uint8Array {
  switch (message.type) {
    case 'session-created': {
      checkNonce(message.nonce)
      const id = encodeText(message.sessionId, 'sessionId', 0xff)
      return new Writer(1 + id.length + 8, 1).text(id, 1).i64(message.nonce).bytes
    }
    case 'session-continued':
      checkNonce(message.nonce)
      return new Writer(8, 2).i64(message.nonce).bytes
    case 'session-rejected': {
      checkNonce(message.nonce)
      const code = reasonCode(rejectionCodes, message.reason)
      const member = optionalMemberBytes(message.leaderId)
      return new Writer(1 + 8 + member.size, 3).u8(code).i64(message.nonce).optionalText(member.encoded).bytes
    }
    case 'session-closed': {
      const code = reasonCode(closeCodes, message.reason)
      const member = optionalMemberBytes(message.leaderId)
      return new Writer(1 + member.size, 4).u8(code).optionalText(member.encoded).bytes
    }
    case 'keep-alive-response':
      checkLong(message.timestamp, 'timestamp', -(2 ** 53 - 1))
      return new Writer(8, 5).long(message.timestamp).bytes
    case 'client-response':
      checkLong(message.requestId, 'requestId', 0)
      checkPayload(message.result, 'result')
      return new Writer(8 + 4 + message.result.length, 6).long(message.requestId).payload(message.result).bytes
    case 'server-request':
      checkLong(message.requestId, 'requestId', 0)
      checkPayload(message.payload, 'payload')
      checkLong(message.createdAt, 'createdAt', -(2 ** 53 - 1))
      return new Writer(8 + 4 + message.payload.length + 8, 7).long(message.requestId).payload(message.payload).long(message.createdAt).bytes
    case 'request-error':
      checkLong(message.requestId, 'requestId', 0)
      return new Writer(9, 8).long(message.requestId).u8(RESPONSE_EVICTED).bytes
    case 'query-response': {
      const id = encodeText(message.correlationId, 'correlationId', 0xffff)
      checkPayload(message.result, 'result')
      return new Writer(2 + id.length + 4 + message.result.length, 9).text(id, 2).payload(message.result).bytes
    }
  }
  throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `Not a server message type: ${describe((message as { type: unknown }).type)}`)
}

function reasonCode<R extends string>(codes: Readonly<Record<R, number>>, reason: R): number {
  const code = Object.hasOwn(codes, reason) ? codes[reason] : undefined
  if (code === undefined) throw new VolleyRangeError('ERR_OUT_OF_RANGE', `Not a reason of this message: ${describe(reason)}. Expected one of ${Object.keys(codes).join(', ')}`)
  return code
}

// ---------------------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------------------

/** Thrown inside the decoder only, caught at its top: a field that cannot be read. */
class Refusal {
  constructor(readonly reason: MalformedReason) {}
}
const TRUNCATED = new Refusal('truncated')
const BAD_VALUE = new Refusal('bad-value')

class Reader {
  readonly #bytes: Uint8Array
  readonly #view: DataView
  at = HEADER_BYTES

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  get left(): number {
    return this.#bytes.length - this.at
  }

  #need(count: number): void {
    if (this.left < count) throw TRUNCATED
  }

  u8(): number {
    this.#need(1)
    return this.#bytes[this.at++]!
  }

  i64(): bigint {
    this.#need(8)
    const value = this.#view.getBigInt64(this.at)
    this.at += 8
    return value
  }

  /** An int64 that must be a safe integer at least `min` (ids and timestamps are numbers in the API). */
  long(min: number): number {
    this.#need(8)
    const high = this.#view.getInt32(this.at)
    const low = this.#view.getUint32(this.at + 4)
    this.at += 8
    if (high > 0x1fffff || high < -0x200000) throw BAD_VALUE
    const value = high * 2 ** 32 + low
    if (value < min || !Number.isSafeInteger(value)) throw BAD_VALUE
    return value
  }

  nonce(): bigint {
    const nonce = this.i64()
    if (nonce === 0n) throw BAD_VALUE
    return nonce
  }

  text(lengthBytes: 1 | 2): string {
    this.#need(lengthBytes)
    const length = lengthBytes === 1 ? this.#bytes[this.at]! : this.#view.getUint16(this.at)
    this.at += lengthBytes
    return this.utf8(length)
  }

  utf8(length: number): string {
    this.#need(length)
    const slice = this.#bytes.subarray(this.at, this.at + length)
    if (!isUtf8(slice)) throw BAD_VALUE
    this.at += length
    return decoder.decode(slice)
  }

  /** Bytes behind an int32 length: a view into the message (copy it to keep it past the callback). */
  payload(): Uint8Array {
    this.#need(4)
    const length = this.#view.getInt32(this.at)
    this.at += 4
    if (length < 0) throw BAD_VALUE
    this.#need(length)
    const data = this.#bytes.subarray(this.at, this.at + length)
    this.at += length
    return data
  }

  /** The optional member id that ends SessionRejected and SessionClosed: see optionalText(). */
  optionalText(): string | undefined {
    this.#need(1)
    const bytes = this.#bytes
    const first = bytes[this.at]!
    if ((first & 0x80) === 0) {
      if (first !== 0 || this.left !== 1) throw new Refusal('trailing-bytes')
      this.at += 1
      return undefined
    }
    // Flag, 16 bits of length and 8n bits of text, and 7 bits of zero padding: 3 + n bytes.
    const shifted = (index: number): number => ((bytes[this.at + index]! << 1) | (bytes[this.at + index + 1]! >> 7)) & 0xff
    if (this.left < 3) throw TRUNCATED
    const length = (shifted(0) << 8) | shifted(1)
    if (this.left < 3 + length) throw TRUNCATED
    if (this.left > 3 + length || (bytes[this.at + 2 + length]! & 0x7f) !== 0) throw new Refusal('trailing-bytes')
    const text = new Uint8Array(length)
    for (let index = 0; index < length; index++) text[index] = shifted(2 + index)
    if (!isUtf8(text)) throw BAD_VALUE
    this.at += 3 + length
    return decoder.decode(text)
  }
}

const decoder = new TextDecoder('utf-8', { fatal: true })

/** Checks the header; the type byte, or a refusal. */
function readHeader(data: Uint8Array): number | MalformedMessage {
  if (!(data instanceof Uint8Array)) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "data" argument must be a Uint8Array. Received ${describe(data)}`)
  if (data.length < HEADER_BYTES) {
    // A prefix of the signature is a truncated message; anything else is not this protocol.
    for (let index = 0; index < Math.min(data.length, 5); index++) if (data[index] !== RESUMABLE_SIGNATURE[index]) return malformed.signature
    return data.length > 5 && data[5] !== RESUMABLE_VERSION ? malformed.version : malformed.truncated
  }
  for (let index = 0; index < 5; index++) if (data[index] !== RESUMABLE_SIGNATURE[index]) return malformed.signature
  if (data[5] !== RESUMABLE_VERSION) return malformed.version
  return data[6]!
}

function finish<T>(reader: Reader, message: T): T | MalformedMessage {
  return reader.left === 0 ? message : malformed['trailing-bytes']
}

function refused(thrown: unknown): MalformedMessage {
  if (thrown instanceof Refusal) return malformed[thrown.reason]
  throw thrown
}

/**
 * Decodes a client-to-server message, or says why it cannot be one (a MalformedMessage: no exception, so a
 * flood of junk costs no stack traces). Payloads are views into `data`.
 */
export function decodeClientMessage(data: Uint8Array): ClientMessage | MalformedMessage {
  const type = readHeader(data)
  if (typeof type !== 'number') return type
  const reader = new Reader(data)
  try {
    switch (type) {
      case 1: {
        const count = (reader.u8() << 8) | reader.u8()
        if (count === 0) throw BAD_VALUE
        const capabilities = new Map<string, string>()
        for (let index = 0; index < count; index++) {
          const key = reader.text(2)
          // A repeated key would make the map smaller than the count: two meanings for one name.
          if (capabilities.has(key)) throw BAD_VALUE
          capabilities.set(key, reader.text(2))
        }
        return finish(reader, { type: 'create-session', capabilities, nonce: reader.nonce() })
      }
      case 2:
        return finish(reader, { type: 'continue-session', sessionId: reader.text(1), nonce: reader.nonce() })
      case 3:
        return finish(reader, { type: 'keep-alive', timestamp: reader.long(-(2 ** 53 - 1)) })
      case 4:
        return finish(reader, {
          type: 'client-request',
          requestId: reader.long(0),
          lowestPendingRequestId: reader.long(0),
          payload: reader.payload(),
          createdAt: reader.long(-(2 ** 53 - 1)),
        })
      case 5:
        return finish(reader, { type: 'server-request-ack', requestId: reader.long(0) })
      case 6:
        if (reader.u8() !== CLIENT_SHUTDOWN) throw BAD_VALUE
        return finish(reader, { type: 'close-session', reason: 'client-shutdown' })
      case 7:
        return finish(reader, { type: 'connection-closed' })
      case 8:
        return finish(reader, { type: 'query', correlationId: reader.text(2), payload: reader.payload(), createdAt: reader.long(-(2 ** 53 - 1)) })
      default:
        return malformed['unknown-type']
    }
  } catch (thrown) {
    return refused(thrown)
  }
}

/** Decodes a server-to-client message, or says why it cannot be one. Payloads are views into `data`. */
export function decodeServerMessage(data: Uint8Array): ServerMessage | MalformedMessage {
  const type = readHeader(data)
  if (typeof type !== 'number') return type
  const reader = new Reader(data)
  try {
    switch (type) {
      case 1:
        return finish(reader, { type: 'session-created', sessionId: reader.text(1), nonce: reader.nonce() })
      case 2:
        return finish(reader, { type: 'session-continued', nonce: reader.nonce() })
      case 3: {
        const reason = rejectionByCode.get(reader.u8())
        if (reason === undefined) throw BAD_VALUE
        const nonce = reader.nonce()
        const leaderId = reader.optionalText()
        return { type: 'session-rejected', reason, nonce, ...(leaderId === undefined ? {} : { leaderId }) }
      }
      case 4: {
        const reason = closeByCode.get(reader.u8())
        if (reason === undefined) throw BAD_VALUE
        const leaderId = reader.optionalText()
        return { type: 'session-closed', reason, ...(leaderId === undefined ? {} : { leaderId }) }
      }
      case 5:
        return finish(reader, { type: 'keep-alive-response', timestamp: reader.long(-(2 ** 53 - 1)) })
      case 6:
        return finish(reader, { type: 'client-response', requestId: reader.long(0), result: reader.payload() })
      case 7:
        return finish(reader, { type: 'server-request', requestId: reader.long(0), payload: reader.payload(), createdAt: reader.long(-(2 ** 53 - 1)) })
      case 8: {
        const requestId = reader.long(0)
        if (reader.u8() !== RESPONSE_EVICTED) throw BAD_VALUE
        return finish(reader, { type: 'request-error', requestId, reason: 'response-evicted' })
      }
      case 9:
        return finish(reader, { type: 'query-response', correlationId: reader.text(2), result: reader.payload() })
      default:
        return malformed['unknown-type']
    }
  } catch (thrown) {
    return refused(thrown)
  }
}

/** The message type names of each direction, in code order (type byte 1 first). */
export const resumableMessageTypes = { client: clientTypes, server: serverTypes } as const

function invert<R extends string>(codes: Readonly<Record<R, number>>): ReadonlyMap<number, R> {
  return new Map(Object.entries(codes).map(([name, code]) => [code as number, name as R]))
}
