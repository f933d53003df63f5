// The MASH wire codec (research §A.1, §A.2): messages are integer-keyed CBOR maps, encoded in the reference's
// canonical form (fxamacker's SortCanonical: definite lengths, shortest integers, keys ordered length-first
// then bytewise) and decoded strictly. Which kind a message is follows the reference's PeekMessageType rule
// for rule, quirks included, so that both ends agree on every message. The payload helpers build and read
// the payloads of the four operations with the statuses a device answers with.
import { isUtf8 } from 'node:buffer'
import { Tokenizer, Type, encode, tokensToObject, type DecodeOptions, type EncodeOptions, type TagDecoder, type Token } from 'cborg'
import type { DecodeTokenizer, MapSorter } from 'cborg/interface'
import { VolleyRangeError, VolleyTypeError, describe } from '../../util/errors.ts'

// ---------------------------------------------------------------------------------------------------------
// Numbers of the protocol
// ---------------------------------------------------------------------------------------------------------

// As the reference's wire/status.go numbers them.
/** Response status codes, by name. */
export const MashStatus = {
  SUCCESS: 0,
  INVALID_ENDPOINT: 1,
  INVALID_FEATURE: 2,
  INVALID_ATTRIBUTE: 3,
  INVALID_COMMAND: 4,
  INVALID_PARAMETER: 5,
  READ_ONLY: 6,
  WRITE_ONLY: 7,
  NOT_AUTHORIZED: 8,
  BUSY: 9,
  UNSUPPORTED: 10,
  CONSTRAINT_ERROR: 11,
  TIMEOUT: 12,
  RESOURCE_EXHAUSTED: 13,
} as const

export type MashStatusName = keyof typeof MashStatus

const statusNames = new Map<number, MashStatusName>(Object.entries(MashStatus).map(([name, code]) => [code, name as MashStatusName]))

// TC-COMPAT-3: a newer peer may send a code this version does not know.
/** A status code's name: 'INVALID_PARAMETER' for 5; 'status 42' for a code MASH does not define. */
export function mashStatusName(status: number): string {
  return statusNames.get(status) ?? `status ${status}`
}

/** Request operations (key 2 of a request). */
export const MashOperation = { read: 1, write: 2, subscribe: 3, invoke: 4 } as const

/** Control message types (key 1 of a control message). */
export const MashControlType = { ping: 1, pong: 2, close: 3 } as const

// DEC-069.
/** The largest message, in bytes of CBOR (what a frame's length field counts): 8192. */
export const MASH_MAX_MESSAGE_BYTES = 8192

// message-framing.md §6.3.
/** What a sender may put in one message: array elements, map keys, string bytes. encodeMessage() refuses more. */
export const MASH_SENDER_LIMITS = { arrayElements: 1000, mapKeys: 500, stringBytes: 4000 } as const

/**
 * How deeply arrays, maps and tags may nest, the message's own map being level 1: the reference decoder's
 * limit (fxamacker's MaxNestedLevels default). Deeper messages are refused both ways; it also keeps the
 * recursive decoder off the end of the stack (8 KB of 0x81 bytes nest 8,000 levels deep).
 */
export const MASH_MAX_NESTING_LEVELS = 32

// ---------------------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------------------

/**
 * A CBOR value as MASH carries it: decoded maps are Maps (integer keys survive); integers beyond 2^53 are
 * bigints (below it, numbers); map keys are integers or text.
 */
export type MashValue = null | boolean | number | bigint | string | Uint8Array | readonly MashValue[] | ReadonlyMap<number | string, MashValue>

export interface MashRequest {
  kind: 'request'
  /** 1 to 0xFFFFFFFF (0 is the notifications'). */
  messageId: number
  /** 1 read, 2 write, 3 subscribe, 4 invoke (MashOperation). */
  operation: number
  endpointId: number
  featureId: number
  payload?: MashValue
}

export interface MashResponse {
  kind: 'response'
  /** The request's. */
  messageId: number
  status: number
  payload?: MashValue
}

export interface MashNotification {
  kind: 'notification'
  subscriptionId: number
  endpointId: number
  featureId: number
  /** Attribute id → value; empty for a heartbeat with no values. */
  changes: ReadonlyMap<number, MashValue>
}

export interface MashControl {
  kind: 'control'
  /** 1 ping, 2 pong, 3 close (MashControlType). */
  type: number
  /** 0 means absent on the wire (a close has none). */
  seq: number
}

export type MashMessage = MashRequest | MashResponse | MashNotification | MashControl

/** Why decodeMessage() refused a message. @inline */
export type MashDecodeFailure = 'too-large' | 'malformed-cbor' | 'duplicate-key' | 'not-a-map' | 'non-integer-key' | 'not-finite' | 'invalid-field'

/**
 * What decodeMessage() found. A failure says why, and what could still be learned: the kind the message
 * would have been and its messageId (0 when unknown), so that a device can answer a bad request
 * INVALID_PARAMETER under the right id.
 */
export type MashDecoded =
  | { ok: true; message: MashMessage }
  | { ok: false; reason: MashDecodeFailure; detail: string; kind: MashMessage['kind'] | null; messageId: number }

const maxUint8 = 0xff
const maxUint16 = 0xffff
const maxUint32 = 0xffff_ffff
const minCborInteger = -(2n ** 64n)
const maxCborInteger = 2n ** 64n - 1n

// ---------------------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------------------

// Map keys go in RFC 7049 canonical order (fxamacker's SortCanonical): shorter encodings first, then
// bytewise. Among keys of one major type that is cborg's own order (integers numerically, negative ones
// from -1 down, text by UTF-8 length then bytes), and cborg encodes a Map directly, without building a
// token per value, only with its own sorter: a message whose every map has keys of one type goes that way.
// cborg orders keys of different types by major type instead (24 before -1, 256 before 'a'), so a message
// with such a map goes through cborg's tokens, sorted by canonicalKeyOrder.
const majorUint = Type.uint.major
const majorNegint = Type.negint.major
const majorText = Type.string.major

const textEncoder = new TextEncoder()

function keyToken(key: Token | Token[]): Token {
  // Keys are integers or text (checkValue() saw to it): one token each.
  return Array.isArray(key) ? key[0]! : key
}

/** The UTF-8 of a text key, kept on its token, which is where cborg's encoder looks for it too. */
function textBytes(token: Token): Uint8Array {
  if (token.type.major !== majorText) throw new Error(`a MASH map key is an integer or text, not ${token.type.name}`)
  return (token.encodedBytes ??= textEncoder.encode(token.value as string))
}

/** Bytes of a CBOR head whose argument is `argument`. */
function headLength(argument: number | bigint): number {
  return argument < 24 ? 1 : argument < 0x100 ? 2 : argument < 0x1_0000 ? 3 : argument < 0x1_0000_0000 ? 5 : 9
}

/** The argument of a negative integer's head: n for -1 - n. */
function negintArgument(value: number | bigint): number | bigint {
  return typeof value === 'bigint' ? -1n - value : -1 - value
}

function keyLength(token: Token): number {
  switch (token.type.major) {
    case majorUint:
      return headLength(token.value as number | bigint)
    case majorNegint:
      return headLength(negintArgument(token.value as number | bigint))
    default: {
      const bytes = textBytes(token)
      return headLength(bytes.length) + bytes.length
    }
  }
}

function compareIntegers(a: number | bigint, b: number | bigint): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Shorter first, then bytewise: two text keys of one length have heads of one size, and equal heads. */
function compareText(token1: Token, token2: Token): number {
  const bytes1 = textBytes(token1)
  const bytes2 = textBytes(token2)
  if (bytes1.length !== bytes2.length) return bytes1.length - bytes2.length
  for (let at = 0; at < bytes1.length; at++) {
    if (bytes1[at] !== bytes2[at]) return bytes1[at]! - bytes2[at]!
  }
  return 0
}

// Decided on the tokens, nothing encoded: of one type, integers in the order their encodings sort in (the
// head grows with the number), negative ones from -1 down (-1 is 0x20, -24 0x37, -25 0x38 0x18), text by
// length then bytes; of different types, the shorter encoding first, and of equal lengths the one whose
// first byte is lower, which is the one of the lower major type.
const canonicalKeyOrder: MapSorter = (entry1, entry2) => {
  const key1 = keyToken(entry1[0]!)
  const key2 = keyToken(entry2[0]!)
  const major1 = key1.type.major
  const major2 = key2.type.major
  if (major1 === major2) {
    if (major1 === majorUint) return compareIntegers(key1.value as number | bigint, key2.value as number | bigint)
    if (major1 === majorNegint) return compareIntegers(key2.value as number | bigint, key1.value as number | bigint)
    return compareText(key1, key2)
  }
  const length1 = keyLength(key1)
  const length2 = keyLength(key2)
  return length1 !== length2 ? length1 - length2 : major1 - major2
}

// Floats go out as float64, as the reference's Go float64 values do (message-framing.md §3.7: float64 only).
// Without a mapSorter cborg uses its own, and its direct encoder.
const directEncodeOptions: EncodeOptions = { float64: true }
const canonicalEncodeOptions: EncodeOptions = { float64: true, mapSorter: canonicalKeyOrder }

/** A value refused, with where it was (filled in as the check unwinds, only for a refusal). */
class ValueProblem {
  readonly path: string[] = []
  constructor(
    readonly range: boolean,
    readonly text: string,
  ) {}

  where(): string {
    return this.path.reverse().join('')
  }
}

/** What checkValue() found besides problems: whether some map mixes keys of different types. */
let mixedKeyTypes = false

const keyClassNone = -1
const keyClassText = -2

function overStringLimit(text: string): boolean {
  // At most 3 bytes of UTF-8 per UTF-16 unit: a short string cannot pass the limit, and is not measured.
  return text.length * 3 > MASH_SENDER_LIMITS.stringBytes && Buffer.byteLength(text, 'utf8') > MASH_SENDER_LIMITS.stringBytes
}

/**
 * A value MASH cannot carry or a sender must not send; undefined when the value can go. Sets
 * mixedKeyTypes when a map has keys of different major types. No allocation unless it refuses.
 */
function checkValue(value: unknown, level: number): ValueProblem | undefined {
  switch (typeof value) {
    case 'boolean':
      return undefined
    case 'number':
      return Number.isFinite(value) ? undefined : new ValueProblem(false, `${value} is not a MASH value (NaN and ±Infinity are refused on the wire)`)
    case 'bigint':
      return value < minCborInteger || value > maxCborInteger ? new ValueProblem(true, `${value} does not fit in a CBOR integer (-2^64 to 2^64 - 1)`) : undefined
    case 'string':
      return overStringLimit(value)
        ? new ValueProblem(true, `a string of ${Buffer.byteLength(value, 'utf8')} UTF-8 bytes is over the sender limit of ${MASH_SENDER_LIMITS.stringBytes} bytes`)
        : undefined
    case 'undefined':
      return new ValueProblem(false, 'undefined is not a MASH value (null is; an absent attribute is left out of its map)')
    case 'object':
      break
    default:
      return new ValueProblem(false, `${describe(value)} is not a MASH value`)
  }
  if (value === null) return undefined
  if (value instanceof Uint8Array) {
    return value.byteLength > MASH_SENDER_LIMITS.stringBytes
      ? new ValueProblem(true, `a byte string of ${value.byteLength} bytes is over the sender limit of ${MASH_SENDER_LIMITS.stringBytes} bytes`)
      : undefined
  }
  if (Array.isArray(value)) {
    if (level > MASH_MAX_NESTING_LEVELS) return new ValueProblem(true, `arrays and maps nest deeper than ${MASH_MAX_NESTING_LEVELS} levels`)
    const items = value as readonly unknown[]
    if (items.length > MASH_SENDER_LIMITS.arrayElements) {
      return new ValueProblem(true, `an array of ${items.length} elements is over the sender limit of ${MASH_SENDER_LIMITS.arrayElements}`)
    }
    for (let index = 0; index < items.length; index++) {
      const problem = checkValue(items[index], level + 1)
      if (problem !== undefined) {
        problem.path.push(`[${index}]`)
        return problem
      }
    }
    return undefined
  }
  if (!(value instanceof Map)) {
    const hint = Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null ? ' (use a Map: a plain object would send its keys as text, "1" for 1)' : ''
    return new ValueProblem(false, `${describe(value)} is not a MASH value${hint}`)
  }
  if (level > MASH_MAX_NESTING_LEVELS) return new ValueProblem(true, `arrays and maps nest deeper than ${MASH_MAX_NESTING_LEVELS} levels`)
  const map = value as ReadonlyMap<unknown, unknown>
  if (map.size > MASH_SENDER_LIMITS.mapKeys) return new ValueProblem(true, `a map of ${map.size} keys is over the sender limit of ${MASH_SENDER_LIMITS.mapKeys}`)
  // The major type of the keys so far: 0 or 1 for integers (their CBOR major type), keyClassText for text.
  let keyClass = keyClassNone
  for (const [key, item] of map) {
    let itsClass: number
    if (typeof key === 'string') {
      if (overStringLimit(key)) {
        return new ValueProblem(true, `a map key of ${Buffer.byteLength(key, 'utf8')} UTF-8 bytes is over the sender limit of ${MASH_SENDER_LIMITS.stringBytes} bytes`)
      }
      itsClass = keyClassText
    } else if (typeof key === 'number' && Number.isSafeInteger(key)) {
      itsClass = key >= 0 ? majorUint : majorNegint
    } else {
      return new ValueProblem(false, `a map key must be an integer (a safe one) or a string; ${describe(key)} is neither`)
    }
    if (itsClass !== keyClass) {
      if (keyClass === keyClassNone) keyClass = itsClass
      else mixedKeyTypes = true
    }
    const problem = checkValue(item, level + 1)
    if (problem !== undefined) {
      problem.path.push(`.get(${typeof key === 'string' ? JSON.stringify(key) : key})`)
      return problem
    }
  }
  return undefined
}

/** Checks a value about to be sent as `name` of a MASH `kind` (level: the nesting level it sits at). */
function checkSentValue(value: unknown, kind: string, name: string, level: number): void {
  const problem = checkValue(value, level)
  if (problem === undefined) return
  const text = `The "${name}"${problem.where()} of a MASH ${kind} cannot be sent: ${problem.text}`
  if (problem.range) throw new VolleyRangeError('ERR_OUT_OF_RANGE', text)
  throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', text)
}

// Where an attribute value sits deepest in what a device sends: in the current values of a subscribe
// response, {3: {2: {id: value}}}, level 4 of its message.
const attributeValueLevel = 4
/** Bytes around an attribute value in the largest subscribe response (ids at their largest); measured. */
let attributeValueEnvelope: number | undefined

/**
 * Why `value` could not be sent as an attribute value, in a read response, a notification or the current
 * values of a subscribe response; undefined when it can. Says which rule it breaks (the sender limits:
 * 1,000 array elements, 500 map keys, 4,000-byte strings; nesting within 32 levels; finite numbers; integers
 * within CBOR's; Maps, not plain objects; an encoding that fits in a message) and where in the value, e.g.
 * 'an array of 1001 elements is over the sender limit of 1000 (at .get(3)[0])'. Never throws; a device
 * refuses a write of a value it could never send back with it.
 */
export function sendableProblem(value: unknown): string | undefined {
  const problem = checkValue(value, attributeValueLevel)
  if (problem !== undefined) {
    const where = problem.where()
    return where === '' ? problem.text : `${problem.text} (at ${where})`
  }
  // Only arrays and maps can be too large for a message: a string or byte string is at most 4,005 bytes.
  if (!Array.isArray(value) && !(value instanceof Map)) return undefined
  attributeValueEnvelope ??=
    encodeMessage({ kind: 'response', messageId: maxUint32, status: 0, payload: subscribeResponsePayload(maxUint32, new Map([[maxUint16, null]])) }).byteLength - 1
  // Its length is the same in any key order: cborg's own will do.
  const length = encode(value, directEncodeOptions).byteLength
  const room = MASH_MAX_MESSAGE_BYTES - attributeValueEnvelope
  return length > room ? `it encodes to ${length} bytes; a MASH message has room for ${room} bytes of an attribute value` : undefined
}

function checkAttributeIdKey(name: string, of: string, key: unknown): void {
  if (typeof key === 'number' && Number.isInteger(key) && key >= 0 && key <= maxUint16) return
  const text = `The keys of the "${name}" ${of} are attribute ids, integers from 0 to ${maxUint16}. Received ${describe(key)}`
  if (typeof key !== 'number') throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', text)
  throw new VolleyRangeError('ERR_OUT_OF_RANGE', text)
}

function integerField(kind: string, name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" of a MASH ${kind} must be of type number. Received ${describe(value)}`)
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "${name}" of a MASH ${kind} must be an integer from ${min} to ${max}. Received ${value}`)
  }
  return value
}

/**
 * The CBOR bytes of a message, canonical. Throws for a field out of its range (ERR_OUT_OF_RANGE), a value
 * MASH cannot carry (NaN, ±Infinity, undefined, a plain object: ERR_INVALID_ARG_VALUE), a value past the
 * sender limits (ERR_OUT_OF_RANGE), or a message over 8192 bytes (ERR_MESSAGE_TOO_LARGE).
 *
 * A response to message 1, 2 or 3 given no payload is sent with an empty map as its payload: without one,
 * {1: id, 2: status} reads as a control message (type = id) to the MASH reference implementation, and
 * would be taken for a ping, a pong or a close. A response to message 0 (the reference implementation sends
 * one when it cannot learn a bad request's id) goes out as asked; it reads as a notification, and fails as
 * one, at the peer.
 */
export function encodeMessage(message: MashMessage): Uint8Array {
  if (typeof message !== 'object' || message === null) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "message" argument must be a MASH message object. Received ${describe(message)}`)
  }
  const fields = new Map<number, MashValue>()
  const kind = String(message.kind)
  mixedKeyTypes = false
  switch (message.kind) {
    case 'request':
      fields.set(1, integerField(kind, 'messageId', message.messageId, 1, maxUint32))
      fields.set(2, integerField(kind, 'operation', message.operation, MashOperation.read, MashOperation.invoke))
      fields.set(3, integerField(kind, 'endpointId', message.endpointId, 0, maxUint8))
      fields.set(4, integerField(kind, 'featureId', message.featureId, 0, maxUint8))
      // Key 5 only when there is a payload (the reference's omitempty); null is a payload.
      if (message.payload !== undefined) {
        checkSentValue(message.payload, kind, 'payload', 2)
        fields.set(5, message.payload)
      }
      break
    case 'response': {
      const messageId = integerField(kind, 'messageId', message.messageId, 0, maxUint32)
      fields.set(1, messageId)
      fields.set(2, integerField(kind, 'status', message.status, 0, maxUint8))
      if (message.payload !== undefined) {
        checkSentValue(message.payload, kind, 'payload', 2)
        fields.set(3, message.payload)
      } else if (messageId >= 1 && messageId <= 3) {
        fields.set(3, new Map())
      }
      break
    }
    case 'notification': {
      fields.set(1, 0)
      fields.set(2, integerField(kind, 'subscriptionId', message.subscriptionId, 0, maxUint32))
      fields.set(3, integerField(kind, 'endpointId', message.endpointId, 0, maxUint8))
      fields.set(4, integerField(kind, 'featureId', message.featureId, 0, maxUint8))
      const changes: unknown = message.changes
      if (!(changes instanceof Map)) {
        throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "changes" of a MASH notification must be a Map of attribute id to value. Received ${describe(changes)}`)
      }
      for (const attributeId of changes.keys()) checkAttributeIdKey('changes', 'of a MASH notification', attributeId)
      checkSentValue(changes, kind, 'changes', 2)
      fields.set(5, changes as ReadonlyMap<number, MashValue>)
      break
    }
    case 'control': {
      fields.set(1, integerField(kind, 'type', message.type, MashControlType.ping, MashControlType.close))
      // Sequence 0 is left out (the reference's omitempty): a close has none.
      const seq = integerField(kind, 'seq', message.seq, 0, maxUint32)
      if (seq !== 0) fields.set(2, seq)
      break
    }
    default:
      throw new VolleyTypeError(
        'ERR_INVALID_ARG_VALUE',
        `The "kind" of a MASH message must be 'request', 'response', 'notification' or 'control'. Received ${describe((message as { kind: unknown }).kind)}`,
      )
  }
  const bytes = encode(fields, mixedKeyTypes ? canonicalEncodeOptions : directEncodeOptions)
  if (bytes.byteLength > MASH_MAX_MESSAGE_BYTES) {
    throw new VolleyRangeError('ERR_MESSAGE_TOO_LARGE', `The MASH ${kind} encodes to ${bytes.byteLength} bytes; a MASH message is at most ${MASH_MAX_MESSAGE_BYTES} bytes`)
  }
  return bytes
}

// ---------------------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------------------

/**
 * Bytes that cannot be decoded (thrown by the tokenizer and the bignum decoder, caught by decodeMessage).
 * No Error: nothing looks at its stack, and capturing one costs more than decoding a whole message.
 */
class Undecodable {
  constructor(readonly message: string) {}
}

/** A bignum beyond 64 bits, in place of its value: the message is refused once decoded. */
class OversizedBignum {
  constructor(readonly bytes: number) {}
}

// cborg reads tokens leniently (the tokenizer notes what the strict rules refuse) and keeps a map's last
// value for a repeated key (found by the map's size); integers beyond 2^53 as bigints; indefinite-length
// arrays and maps, which the reference decoder takes (strings cborg cannot decode: refused).
const tokenOptions: DecodeOptions = { allowNaN: true, allowInfinity: true, allowUndefined: true, strict: false, allowBigInt: true, allowIndefinite: true }
const noBytes = new Uint8Array(0)
const noTokens = new Tokenizer(noBytes, tokenOptions)

/**
 * Initial bytes cborg reads no item from, whatever follows: reserved additional information, an indefinite
 * length where there is none, and what cborg does not decode (simple values, indefinite-length strings).
 * Asked of cborg's own tokenizer, once.
 */
const unreadableInitialBytes: readonly boolean[] = (() => {
  const stackTraceLimit = Error.stackTraceLimit
  // 512 tries, a third of them refused: no stack is looked at.
  Error.stackTraceLimit = 0
  try {
    const refuses = (data: Uint8Array): boolean => {
      try {
        new Tokenizer(data, tokenOptions).next()
        return false
      } catch {
        return true
      }
    }
    const startingWith = (initial: number, padding: number): Uint8Array => {
      const data = new Uint8Array(40).fill(padding)
      data[0] = initial
      return data
    }
    // Refused both before zeros and before ones: for the byte, not for what a head or a length said.
    return Array.from({ length: 256 }, (_, initial) => refuses(startingWith(initial, 0)) && refuses(startingWith(initial, 1)))
  } finally {
    Error.stackTraceLimit = stackTraceLimit
  }
})()

/**
 * Why the item starting at `at` cannot be read, or undefined. What cborg would refuse with an Error, whose
 * stack (never looked at) costs more than decoding a whole message, so that a flood of bad bytes would cost
 * us more than the peer: an initial byte it reads nothing from, and an item longer than the bytes left (a
 * head, a string's bytes, or more items than there are bytes left).
 */
function unreadableAt(data: Uint8Array, at: number): string | undefined {
  const initial = data[at]!
  if (unreadableInitialBytes[initial]) return `0x${initial.toString(16).padStart(2, '0')} at byte ${at} starts no CBOR item that can be read`
  const additional = initial & 0x1f
  if (additional === 31) return undefined
  let headEnd = at + 1
  let argument = additional
  if (additional >= 24) {
    headEnd += 2 ** (additional - 24)
    if (headEnd > data.length) return `the message ends inside the head at byte ${at}`
    argument = 0
    for (let next = at + 1; next < headEnd; next++) argument = argument * 0x100 + data[next]!
  }
  const major = initial >> 5
  if (major < 2 || major > 5) return undefined
  // A string's bytes, an array's items or a map's keys and values: each at least a byte.
  const needs = major === 5 ? argument * 2 : argument
  return headEnd + needs > data.length ? `the item at byte ${at} is longer than the ${data.length - headEnd} bytes left` : undefined
}

const levelArray = 0
const levelMap = 1
const levelTag = 2
/** The smallest argument of a head of 2, 3, 5 and 9 bytes (additional information 24 to 27). */
const shortestFrom = [24, 0x100, 0x1_0000, 0x1_0000_0000] as const

/**
 * cborg's tokenizer, watched, for one decode at a time (reset() before each). It refuses (throws) what no
 * decoding can read: what cborg would refuse with an Error (unreadableAt()); the end of the bytes where
 * cborg wants another item; nesting deeper than MASH_MAX_NESTING_LEVELS, before cborg's recursive decoder
 * goes there; text that is not UTF-8 (cborg would decode it with U+FFFD in place, where the reference refuses
 * it); a break where no indefinite-length array or map ends (cborg would take one for a map's value).
 *
 * What the strict rules refuse it notes and lets through, so that one decode both finds a problem and
 * learns the kind and id of the message it is in: NaN and ±Infinity, undefined, an integer, length or tag
 * number not in its shortest form; and the items each map was sent with, to find duplicate keys (a
 * decoded Map smaller than that), and how often the top-level map has key 1.
 */
class MashTokenizer implements DecodeTokenizer {
  #data: Uint8Array = noBytes
  #tokens: Tokenizer = noTokens
  /** Where the next token starts. */
  #at = 0
  // The open arrays, maps and tags, #depth of them, innermost last: what each is, items still to come
  // (Infinity: until its break), items read so far, and for a map its index in mapItems.
  #depth = 0
  readonly #kinds = new Uint8Array(MASH_MAX_NESTING_LEVELS)
  readonly #remaining = new Float64Array(MASH_MAX_NESTING_LEVELS)
  readonly #read = new Uint32Array(MASH_MAX_NESTING_LEVELS)
  readonly #mapIndex = new Uint32Array(MASH_MAX_NESTING_LEVELS)
  /** The first strict rule broken, in words. */
  strictProblem: string | undefined
  /** The first NaN or ±Infinity read. */
  nonFinite: number | undefined
  /** A tag 2 or 3 over 64 bits was read (the bytes of its magnitude). */
  oversizedBignum = 0
  /** The items (keys and values) each map was sent with, in the order the maps start; mapCount of them. */
  readonly mapItems: number[] = []
  mapCount = 0
  /** How many top-level keys are 1, and whether one is tagged (its value then unknown here). */
  topKeyOnes = 0
  topKeyTagged = false

  reset(data: Uint8Array): void {
    this.#data = data
    this.#tokens = new Tokenizer(data, tokenOptions)
    this.#at = 0
    this.#depth = 0
    this.strictProblem = undefined
    this.nonFinite = undefined
    this.oversizedBignum = 0
    this.mapCount = 0
    this.topKeyOnes = 0
    this.topKeyTagged = false
  }

  /** Lets go of the bytes of the last decode (what it learned stays). */
  release(): void {
    this.#data = noBytes
    this.#tokens = noTokens
  }

  done(): boolean {
    // cborg asks only where it wants another item: running out there is a message cut short, which it would
    // refuse with an Error (and its stack) once this answered true.
    if (this.#at >= this.#data.length) throw new Undecodable(this.#at === 0 ? 'no CBOR item' : `the message ends inside an item, at byte ${this.#at}`)
    return false
  }

  pos(): number {
    return this.#at
  }

  next(): Token {
    const at = this.#at
    const problem = unreadableAt(this.#data, at)
    if (problem !== undefined) throw new Undecodable(problem)
    const token = this.#tokens.next()
    this.#at = at + token.encodedLength!
    const type = token.type
    const depth = this.#depth
    const innermost = depth - 1
    if (type === Type.break) {
      // cborg's tokenizer makes a break of 0xff only.
      if (depth === 0 || this.#remaining[innermost] !== Infinity || (this.#kinds[innermost] === levelMap && this.#read[innermost]! % 2 === 1)) {
        throw new Undecodable('a break where no indefinite-length array or map ends')
      }
      if (this.#kinds[innermost] === levelMap) this.mapItems[this.#mapIndex[innermost]!] = this.#read[innermost]!
      this.#depth = innermost
      this.#closeFinished()
      return token
    }
    if (depth > 0) {
      if (depth === 1 && this.#kinds[0] === levelMap && this.#read[0]! % 2 === 0) this.#noteTopKey(token)
      this.#remaining[innermost]! -= 1
      this.#read[innermost]! += 1
    }
    const major = type.major
    if (major === 7) {
      if (type === Type.float && !Number.isFinite(token.value)) {
        this.nonFinite ??= token.value as number
        this.strictProblem ??= `${token.value} is refused (NaN and ±Infinity are)`
      } else if (type === Type.undefined) {
        this.strictProblem ??= 'undefined is refused'
      }
      this.#closeFinished()
      return token
    }
    // Additional information 24 to 27: an argument in the next 1, 2, 4 or 8 bytes (31, indefinite, has none).
    const additional = this.#data[at]! & 0x1f
    if (additional >= 24 && additional <= 27 && this.strictProblem === undefined) {
      const argument = this.#argument(token, additional)
      if (argument < shortestFrom[additional - 24]!) {
        this.strictProblem = `${argument} in a head of ${1 + 2 ** (additional - 24)} bytes: integers, lengths and tag numbers go in their shortest form (strict decode)`
      }
    }
    if (major === majorText && (token.value as string).includes('\ufffd')) {
      // cborg decodes text with U+FFFD for what is not UTF-8; one in its output may also have been sent.
      const head = additional < 24 ? 1 : 1 + 2 ** (additional - 24)
      if (!isUtf8(this.#data.subarray(at + head, at + token.encodedLength!))) throw new Undecodable('a text string is not valid UTF-8')
    }
    let kind: number
    let items: number
    if (major === Type.array.major) {
      kind = levelArray
      items = token.value as number
    } else if (major === Type.map.major) {
      kind = levelMap
      items = (token.value as number) * 2
    } else if (major === Type.tag.major) {
      kind = levelTag
      items = 1
    } else {
      this.#closeFinished()
      return token
    }
    if (depth + 1 > MASH_MAX_NESTING_LEVELS) throw new Undecodable(`arrays, maps and tags nest deeper than ${MASH_MAX_NESTING_LEVELS} levels`)
    let mapIndex = 0
    if (kind === levelMap) {
      mapIndex = this.mapCount++
      this.mapItems[mapIndex] = items === Infinity ? 0 : items
    }
    if (items === 0) {
      this.#closeFinished()
      return token
    }
    this.#kinds[depth] = kind
    this.#remaining[depth] = items
    this.#read[depth] = 0
    this.#mapIndex[depth] = mapIndex
    this.#depth = depth + 1
    return token
  }

  /** The argument of a head with one: the integer, length or tag number it carries. */
  #argument(token: Token, additional: number): number | bigint {
    switch (token.type.major) {
      case majorNegint:
        return negintArgument(token.value as number | bigint)
      case Type.bytes.major:
        return (token.value as Uint8Array).byteLength
      case majorText:
        return token.encodedLength! - 1 - 2 ** (additional - 24)
      default:
        return token.value as number | bigint
    }
  }

  #noteTopKey(token: Token): void {
    if (token.type === Type.tag) this.topKeyTagged = true
    else if ((token.type === Type.uint || token.type === Type.float) && token.value === 1) this.topKeyOnes++
  }

  /** Closes the items the last one completed. */
  #closeFinished(): void {
    let depth = this.#depth
    while (depth > 0 && this.#remaining[depth - 1] === 0) depth--
    this.#depth = depth
  }
}

function toSafeInteger(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value
}

// Tags (message-framing.md §3.6): the wrapper is dropped and the inner value used, timestamps (0, 1) too;
// bignums (2, 3) become integers. cborg looks a tag's decoder up by number, so every number answers.
const stripTag: TagDecoder = (content) => content()

/** The largest bignum magnitude taken: a MASH value is at most 64 bits. */
const maxBignumBytes = 8

function bignum(negative: boolean): TagDecoder {
  return (content) => {
    const magnitude: unknown = content()
    if (!(magnitude instanceof Uint8Array)) {
      throw new Undecodable(`a bignum (tag ${negative ? 3 : 2}) wraps a byte string; this one wraps ${describeCbor(magnitude)}`)
    }
    let start = 0
    while (start < magnitude.length && magnitude[start] === 0) start++
    if (magnitude.length - start > maxBignumBytes) {
      // The reference decodes one into a Go big.Int, which its typed fields refuse and its conversions of
      // attribute values (ToInt64 and kin) do not take: refused once the message is read, as a field of the
      // wrong type is.
      tokenizer.oversizedBignum ||= magnitude.length - start
      return new OversizedBignum(magnitude.length - start)
    }
    // The bytes below the last 4, then the last 4: two numbers, each exact.
    let high = 0
    let low = 0
    for (let at = start; at < magnitude.length; at++) {
      if (magnitude.length - at > 4) high = high * 0x100 + magnitude[at]!
      else low = low * 0x100 + magnitude[at]!
    }
    if (high < 2 ** 21) {
      // At most 2^53 - 1.
      const value = high * 0x1_0000_0000 + low
      if (!negative) return value
      if (value < Number.MAX_SAFE_INTEGER) return -1 - value
    }
    const value = (BigInt(high) << 32n) | BigInt(low)
    return toSafeInteger(negative ? -1n - value : value)
  }
}
const bignumDecoders: Record<string, TagDecoder> = { 2: bignum(false), 3: bignum(true) }
const tagDecoders = new Proxy<Record<number, TagDecoder>>(
  {},
  { get: (_target, tag) => (typeof tag === 'string' ? (bignumDecoders[tag] ?? stripTag) : undefined) },
)

const tokenizer = new MashTokenizer()

const decodeOptions: DecodeOptions = { useMaps: true, rejectDuplicateMapKeys: false, tags: tagDecoders, tokenizer }

function isInteger(value: unknown): value is number | bigint {
  return typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value))
}

/** Go's uint32(n) of an integer (two's complement, wrapping); 0 for anything else, as its toUint32 gives. */
function wrappedUint32(value: unknown): number {
  if (typeof value === 'bigint') return Number(BigInt.asUintN(32, value))
  return typeof value === 'number' && Number.isInteger(value) ? value >>> 0 : 0
}

/** Go's uint8(n) of an integer; 0 for anything else. */
function wrappedUint8(value: unknown): number {
  if (typeof value === 'bigint') return Number(BigInt.asUintN(8, value))
  return typeof value === 'number' && Number.isInteger(value) ? value & 0xff : 0
}

/**
 * Which kind a message is, by the reference's PeekMessageType in its code order. Its comparisons are on
 * Go's wrapped conversions (key 1 as uint32, keys 2 to 4 as uint8), kept here so that both ends agree.
 */
function classify(fields: ReadonlyMap<unknown, unknown>): MashMessage['kind'] {
  const field1 = wrappedUint32(fields.get(1))
  if (field1 === 0) return 'notification'
  const field2 = wrappedUint8(fields.get(2))
  if (fields.get(3) instanceof Map) return 'response'
  // Before the status check: a control message's key 2 is a sequence number, any u32.
  if (field1 >= 1 && field1 <= 3 && !fields.has(3) && !fields.has(4)) return 'control'
  if (field2 > 4) return 'response'
  if (field2 >= 1 && field2 <= 4) {
    if (wrappedUint8(fields.get(3)) > 0 || wrappedUint8(fields.get(4)) > 0) return 'request'
    // Endpoint 0 is the device root: key 4 present is enough.
    if (fields.has(4)) return 'request'
  }
  // No operation, but an endpoint and a feature: a request, which validation refuses.
  if (field2 === 0 && fields.has(3) && fields.has(4)) return 'request'
  return 'response'
}

function learnedMessageId(fields: ReadonlyMap<unknown, unknown>): number {
  const value = fields.get(1)
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= maxUint32 ? value : 0
}

function describeCbor(value: unknown): string {
  if (value === undefined) return 'nothing'
  if (value instanceof Map) return `a map of ${value.size} keys`
  if (value instanceof Uint8Array) return `a byte string of ${value.byteLength} bytes`
  if (typeof value === 'bigint') return `the integer ${value}`
  if (typeof value === 'number') return Number.isInteger(value) ? `the integer ${value}` : `the float ${value}`
  return describe(value)
}

/** A problem with a decoded value's map keys, anywhere in it; undefined when there is none. */
function valueKeyProblem(value: unknown): string | undefined {
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = valueKeyProblem(item)
      if (problem !== undefined) return problem
    }
  } else if (value instanceof Map) {
    for (const [key, item] of value) {
      if (typeof key !== 'string' && !(typeof key === 'number' && Number.isSafeInteger(key))) {
        return `a map key is ${describeCbor(key)}; MASH map keys are integers or text`
      }
      const problem = valueKeyProblem(item)
      if (problem !== undefined) return problem
    }
  }
  return undefined
}

type FieldResult<T> = { value: T } | { problem: string }

/** A field decoded as the reference's typed struct decodes it: absent is 0; present, an integer in range. */
function uintField(fields: ReadonlyMap<unknown, unknown>, key: number, name: string, min: number, max: number): FieldResult<number> {
  const value = fields.get(key)
  if (value === undefined) return min === 0 ? { value: 0 } : { problem: `key ${key} (${name}) is missing` }
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return { value }
  return { problem: `key ${key} (${name}) must be an integer from ${min} to ${max}; it is ${describeCbor(value)}` }
}

function payloadField(fields: ReadonlyMap<unknown, unknown>, key: number): FieldResult<MashValue | undefined> {
  const value = fields.get(key)
  const problem = valueKeyProblem(value)
  return problem === undefined ? { value: value as MashValue | undefined } : { problem: `key ${key}: ${problem}` }
}

function validate(kind: MashMessage['kind'], fields: ReadonlyMap<unknown, unknown>): FieldResult<MashMessage> {
  switch (kind) {
    case 'request': {
      const messageId = uintField(fields, 1, 'messageId', 1, maxUint32)
      if ('problem' in messageId) return messageId
      const operation = uintField(fields, 2, 'operation', MashOperation.read, MashOperation.invoke)
      if ('problem' in operation) return operation
      const endpointId = uintField(fields, 3, 'endpointId', 0, maxUint8)
      if ('problem' in endpointId) return endpointId
      const featureId = uintField(fields, 4, 'featureId', 0, maxUint8)
      if ('problem' in featureId) return featureId
      const payload = payloadField(fields, 5)
      if ('problem' in payload) return payload
      const request: MashRequest = { kind, messageId: messageId.value, operation: operation.value, endpointId: endpointId.value, featureId: featureId.value }
      if (payload.value !== undefined) request.payload = payload.value
      return { value: request }
    }
    case 'response': {
      const messageId = uintField(fields, 1, 'messageId', 0, maxUint32)
      if ('problem' in messageId) return messageId
      const status = uintField(fields, 2, 'status', 0, maxUint8)
      if ('problem' in status) return status
      const payload = payloadField(fields, 3)
      if ('problem' in payload) return payload
      const response: MashResponse = { kind, messageId: messageId.value, status: status.value }
      if (payload.value !== undefined) response.payload = payload.value
      return { value: response }
    }
    case 'notification': {
      // Classified by key 1 wrapping to 0: it must be 0 itself (or absent).
      const messageId = uintField(fields, 1, 'messageId', 0, 0)
      if ('problem' in messageId) return messageId
      const subscriptionId = uintField(fields, 2, 'subscriptionId', 0, maxUint32)
      if ('problem' in subscriptionId) return subscriptionId
      const endpointId = uintField(fields, 3, 'endpointId', 0, maxUint8)
      if ('problem' in endpointId) return endpointId
      const featureId = uintField(fields, 4, 'featureId', 0, maxUint8)
      if ('problem' in featureId) return featureId
      const changes = fields.get(5)
      // Absent or null: no values (the reference's nil map).
      if (changes !== undefined && changes !== null && !(changes instanceof Map)) {
        return { problem: `key 5 (changes) must be a map of attribute id to value; it is ${describeCbor(changes)}` }
      }
      for (const attributeId of changes instanceof Map ? changes.keys() : []) {
        if (typeof attributeId !== 'number' || !Number.isInteger(attributeId) || attributeId < 0 || attributeId > maxUint16) {
          return { problem: `key 5 (changes): an attribute id must be an integer from 0 to ${maxUint16}; one is ${describeCbor(attributeId)}` }
        }
      }
      const problem = valueKeyProblem(changes)
      if (problem !== undefined) return { problem: `key 5 (changes): ${problem}` }
      return {
        value: {
          kind,
          subscriptionId: subscriptionId.value,
          endpointId: endpointId.value,
          featureId: featureId.value,
          changes: changes instanceof Map ? (changes as Map<number, MashValue>) : new Map<number, MashValue>(),
        },
      }
    }
    case 'control': {
      const type = uintField(fields, 1, 'type', MashControlType.ping, MashControlType.close)
      if ('problem' in type) return type
      const seq = uintField(fields, 2, 'seq', 0, maxUint32)
      if ('problem' in seq) return seq
      return { value: { kind, type: type.value, seq: seq.value } }
    }
  }
}

function failure(reason: MashDecodeFailure, detail: string, kind: MashMessage['kind'] | null = null, messageId = 0): MashDecoded {
  return { ok: false, reason, detail, kind, messageId }
}

/** The next map firstShrunkMap() looks at (maps counted in the order they start). */
let nextMap = 0

/**
 * The index of the first decoded map smaller than the items it was sent with (a key came twice), or -1.
 * Goes no further than the last map.
 */
function firstShrunkMap(value: unknown): number {
  if (nextMap === tokenizer.mapCount) return -1
  if (value instanceof Map) {
    const index = nextMap++
    if (value.size * 2 !== tokenizer.mapItems[index]) return index
    for (const [key, item] of value as Map<unknown, unknown>) {
      const inKey = typeof key === 'object' ? firstShrunkMap(key) : -1
      if (inKey >= 0) return inKey
      const inItem = typeof item === 'object' ? firstShrunkMap(item) : -1
      if (inItem >= 0) return inItem
    }
  } else if (Array.isArray(value)) {
    for (const item of value) {
      const found = typeof item === 'object' ? firstShrunkMap(item) : -1
      if (found >= 0) return found
    }
  }
  return -1
}

/**
 * Why a message that decoded breaks a strict rule, and what kind it would have been and its id, so that a
 * device can answer it under its id. Of several problems a duplicate key is named first, then a non-finite
 * number; what else the strict rules refuse is 'malformed-cbor'. undefined when it breaks none.
 */
function brokenRule(fields: unknown): MashDecoded | undefined {
  nextMap = 0
  const shrunk = firstShrunkMap(fields)
  let reason: MashDecodeFailure
  let detail: string
  if (shrunk >= 0) {
    reason = 'duplicate-key'
    detail = `Duplicate key in message (a map of ${tokenizer.mapItems[shrunk]! / 2} entries repeats a key)`
  } else if (tokenizer.nonFinite !== undefined) {
    reason = 'not-finite'
    detail = `NaN and ±Infinity are refused (one is ${tokenizer.nonFinite})`
  } else if (tokenizer.strictProblem !== undefined) {
    reason = 'malformed-cbor'
    detail = tokenizer.strictProblem
  } else {
    return undefined
  }
  if (!(fields instanceof Map)) return failure(reason, detail)
  if (![...fields.keys()].every((key) => isInteger(key) && key >= 0)) return failure(reason, detail, null, learnedMessageId(fields))
  // Of a repeated key 1, which is the id is unknown.
  const idUnknown = shrunk === 0 && (tokenizer.topKeyOnes > 1 || tokenizer.topKeyTagged)
  return failure(reason, detail, classify(fields), idUnknown ? 0 : learnedMessageId(fields))
}

/**
 * Decodes one message (the CBOR of one frame), strictly: no duplicate keys, no NaN or ±Infinity, no
 * undefined, integers in their shortest form, text in UTF-8, nesting at most 32 levels, bignums within 64
 * bits, top-level keys non-negative integers; unknown keys are ignored. A bad message is no throw: the
 * failure says why. (Only an argument that is no Uint8Array throws.) A message costs one pass of cborg's
 * decoder, whether it is good or refused.
 */
export function decodeMessage(bytes: Uint8Array): MashDecoded {
  if (!(bytes instanceof Uint8Array)) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "bytes" argument must be a Uint8Array. Received ${describe(bytes)}`)
  }
  if (bytes.byteLength > MASH_MAX_MESSAGE_BYTES) {
    return failure('too-large', `The message is ${bytes.byteLength} bytes; MASH messages are at most ${MASH_MAX_MESSAGE_BYTES} bytes`)
  }
  // A plain view: cborg copies byte strings out with slice(), which on a Buffer would be a view of the
  // caller's memory, and the caller (a framer) may reuse it.
  const data = bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let fields: unknown
  try {
    tokenizer.reset(data)
    // cborg's decode() without its per-call set-up: the tokenizer throws where decode() would find no item
    // (at the end of the bytes; a break outside an indefinite-length item).
    fields = tokensToObject(tokenizer, decodeOptions)
  } catch (error) {
    const text = error instanceof Error || error instanceof Undecodable ? error.message : String(error)
    return failure('malformed-cbor', text.replace(/^CBOR decode error: /, ''))
  } finally {
    tokenizer.release()
  }
  if (tokenizer.pos() < data.byteLength) return failure('malformed-cbor', `${data.byteLength - tokenizer.pos()} bytes follow the message's CBOR item`)
  const broken = brokenRule(fields)
  if (broken !== undefined) return broken
  if (!(fields instanceof Map)) return failure('not-a-map', `A MASH message is a CBOR map; this is ${describeCbor(fields)}`)
  for (const key of fields.keys()) {
    if (!isInteger(key) || key < 0) {
      return failure('non-integer-key', `Top-level keys are non-negative integers; one is ${describeCbor(key)}`, null, learnedMessageId(fields))
    }
  }
  const kind = classify(fields)
  if (tokenizer.oversizedBignum > 0) {
    return failure('invalid-field', `Invalid ${kind}: a bignum of ${tokenizer.oversizedBignum} bytes is beyond 64 bits, which no MASH value is`, kind, learnedMessageId(fields))
  }
  const checked = validate(kind, fields)
  if ('problem' in checked) return failure('invalid-field', `Invalid ${kind}: ${checked.problem}`, kind, learnedMessageId(fields))
  return { ok: true, message: checked.value }
}

// ---------------------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------------------

/** A payload read: its value, or the status (and text) a device answers a bad one with. */
export type MashParsed<T> = { ok: true; value: T } | { ok: false; status: number; detail: string }

function parsed<T>(value: T): MashParsed<T> {
  return { ok: true, value }
}

function refused(status: number, detail: string): { ok: false; status: number; detail: string } {
  return { ok: false, status, detail }
}

/**
 * An integer field of a payload: a value of the wrong type is INVALID_PARAMETER, one out of range
 * CONSTRAINT_ERROR (message-framing.md §5.2: "Value out of range for field X").
 */
function payloadInteger(value: unknown, name: string, min: number, max: number): MashParsed<number> {
  if (!isInteger(value)) return refused(MashStatus.INVALID_PARAMETER, `${name} must be an integer; it is ${describeCbor(value)}`)
  if (typeof value === 'bigint' || value < min || value > max) return refused(MashStatus.CONSTRAINT_ERROR, `Value out of range for field ${name}: ${value} (${min} to ${max})`)
  return parsed(value)
}

function attributeIdList(value: unknown): MashParsed<number[]> {
  if (!Array.isArray(value)) return refused(MashStatus.INVALID_PARAMETER, `attribute IDs must be an array; they are ${describeCbor(value)}`)
  const ids: number[] = []
  for (const item of value) {
    const id = payloadInteger(item, 'attributeId', 0, maxUint16)
    if (!id.ok) return id
    ids.push(id.value)
  }
  return parsed(ids)
}

function checkAttributeIds(name: string, attributeIds: unknown): readonly number[] {
  if (!Array.isArray(attributeIds)) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be an array of attribute ids. Received ${describe(attributeIds)}`)
  for (const id of attributeIds) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > maxUint16) {
      throw new VolleyRangeError('ERR_OUT_OF_RANGE', `Each of the "${name}" must be an integer from 0 to ${maxUint16}. Received ${describe(id)}`)
    }
  }
  return attributeIds as readonly number[]
}

function builderInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be of type number. Received ${describe(value)}`)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "${name}" argument must be an integer from ${min} to ${max}. Received ${value}`)
  }
  return value
}

/** A read's payload: {1: [ids]}, or an empty map (key 1 left out, as the reference's omitempty) for all. */
export function readPayload(attributeIds: readonly number[]): MashValue | undefined {
  const ids = checkAttributeIds('attributeIds', attributeIds)
  return ids.length === 0 ? new Map() : new Map([[1, [...ids]]])
}

/**
 * The attribute ids a read asks for; empty: all. Takes {1: [ids]}, a bare array of ids (what the reference's
 * interaction client sends), and no payload.
 */
export function parseReadPayload(payload: MashValue | undefined): MashParsed<number[]> {
  if (payload === undefined || payload === null) return parsed([])
  if (Array.isArray(payload)) return attributeIdList(payload)
  if (!(payload instanceof Map)) return refused(MashStatus.INVALID_PARAMETER, `A read payload is {1: [attribute IDs]}; this is ${describeCbor(payload)}`)
  const ids: unknown = payload.get(1)
  return ids === undefined || ids === null ? parsed([]) : attributeIdList(ids)
}

/**
 * A write's attribute id → value. Text keys are left out, as the reference device leaves them; a payload
 * with no attribute left is INVALID_PARAMETER.
 */
export function parseWritePayload(payload: MashValue | undefined): MashParsed<Map<number, MashValue>> {
  if (!(payload instanceof Map)) return refused(MashStatus.INVALID_PARAMETER, `A write payload is a map of attribute ID to value; this is ${describeCbor(payload)}`)
  const values = new Map<number, MashValue>()
  for (const [key, value] of payload as ReadonlyMap<number | string, MashValue>) {
    if (typeof key === 'string') continue
    const id = payloadInteger(key, 'attributeId', 0, maxUint16)
    if (!id.ok) return id
    values.set(id.value, value)
  }
  if (values.size === 0) return refused(MashStatus.INVALID_PARAMETER, 'no attributes to write')
  return parsed(values)
}

export interface MashSubscribeParameters {
  /** Empty or absent: all attributes. */
  attributeIds?: readonly number[] | undefined
  /** ms; absent: the device's default (1,000). 0 is sent: no coalescing. */
  minIntervalMs?: number | undefined
  /** ms; absent: the device's default (60,000). */
  maxIntervalMs?: number | undefined
}

export interface MashParsedSubscribe {
  /** Empty: all. */
  attributeIds: number[]
  /** undefined when absent, which is not an explicit 0 (research §A.4). */
  minIntervalMs: number | undefined
  maxIntervalMs: number | undefined
}

/** A subscribe's payload {1: [ids], 2: minInterval ms, 3: maxInterval ms}, each key only when given. */
export function subscribePayload(parameters: MashSubscribeParameters): MashValue {
  if (typeof parameters !== 'object' || parameters === null) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The subscribe parameters must be an object. Received ${describe(parameters)}`)
  }
  const payload = new Map<number, MashValue>()
  const ids = parameters.attributeIds === undefined ? [] : checkAttributeIds('attributeIds', parameters.attributeIds)
  if (ids.length > 0) payload.set(1, [...ids])
  if (parameters.minIntervalMs !== undefined) payload.set(2, builderInteger('minIntervalMs', parameters.minIntervalMs, 0, maxUint32))
  if (parameters.maxIntervalMs !== undefined) payload.set(3, builderInteger('maxIntervalMs', parameters.maxIntervalMs, 0, maxUint32))
  return payload
}

/** A subscribe's attribute ids and intervals; no payload asks for all, with the device's defaults. */
export function parseSubscribePayload(payload: MashValue | undefined): MashParsed<MashParsedSubscribe> {
  const result: MashParsedSubscribe = { attributeIds: [], minIntervalMs: undefined, maxIntervalMs: undefined }
  if (payload === undefined || payload === null) return parsed(result)
  if (!(payload instanceof Map)) {
    return refused(MashStatus.INVALID_PARAMETER, `A subscribe payload is {1: [attribute IDs], 2: minInterval, 3: maxInterval}; this is ${describeCbor(payload)}`)
  }
  const ids: unknown = payload.get(1)
  if (ids !== undefined && ids !== null) {
    const list = attributeIdList(ids)
    if (!list.ok) return list
    result.attributeIds = list.value
  }
  for (const [key, name] of [[2, 'minInterval'], [3, 'maxInterval']] as const) {
    const value: unknown = payload.get(key)
    if (value === undefined || value === null) continue
    const interval = payloadInteger(value, name, 0, maxUint32)
    if (!interval.ok) return interval
    if (key === 2) result.minIntervalMs = interval.value
    else result.maxIntervalMs = interval.value
  }
  return parsed(result)
}

/** An unsubscribe's payload {1: subscriptionId}; it goes as a subscribe to endpoint 0, feature 0. */
export function unsubscribePayload(subscriptionId: number): MashValue {
  return new Map([[1, builderInteger('subscriptionId', subscriptionId, 1, maxUint32)]])
}

/** The subscription an unsubscribe ends; 0 or none is INVALID_PARAMETER "subscription ID required". */
export function parseUnsubscribePayload(payload: MashValue | undefined): MashParsed<number> {
  const id: unknown = payload instanceof Map ? payload.get(1) : undefined
  if (id === undefined || id === null || id === 0 || !isInteger(id)) return refused(MashStatus.INVALID_PARAMETER, 'subscription ID required')
  return payloadInteger(id, 'subscriptionId', 1, maxUint32)
}

export interface MashParsedSubscribeResponse {
  subscriptionId: number
  /** The priming values: attribute id → value. */
  currentValues: Map<number, MashValue>
}

/** A subscribe response's payload {1: subscriptionId, 2: current values}; key 2 left out when there are none. */
export function subscribeResponsePayload(subscriptionId: number, currentValues: ReadonlyMap<number, MashValue>): MashValue {
  const payload = new Map<number, MashValue>([[1, builderInteger('subscriptionId', subscriptionId, 1, maxUint32)]])
  if (!(currentValues instanceof Map)) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "currentValues" argument must be a Map of attribute id to value. Received ${describe(currentValues)}`)
  }
  for (const id of currentValues.keys()) checkAttributeIdKey('currentValues', 'argument', id)
  if (currentValues.size > 0) payload.set(2, currentValues)
  return payload
}

/** The subscription id and priming values a device answered a subscribe with. */
export function parseSubscribeResponsePayload(payload: MashValue | undefined): MashParsed<MashParsedSubscribeResponse> {
  if (!(payload instanceof Map)) {
    return refused(MashStatus.INVALID_PARAMETER, `A subscribe response payload is {1: subscription ID, 2: current values}; this is ${describeCbor(payload)}`)
  }
  const id: unknown = payload.get(1)
  if (id === undefined || id === null) return refused(MashStatus.INVALID_PARAMETER, 'subscription ID missing')
  const subscriptionId = payloadInteger(id, 'subscriptionId', 1, maxUint32)
  if (!subscriptionId.ok) return subscriptionId
  const currentValues = new Map<number, MashValue>()
  const values: unknown = payload.get(2)
  if (values !== undefined && values !== null) {
    if (!(values instanceof Map)) return refused(MashStatus.INVALID_PARAMETER, `current values must be a map of attribute ID to value; they are ${describeCbor(values)}`)
    for (const [key, value] of values as ReadonlyMap<number | string, MashValue>) {
      if (typeof key === 'string') continue // as the reference client, which keeps integer keys only
      const attributeId = payloadInteger(key, 'attributeId', 0, maxUint16)
      if (!attributeId.ok) return attributeId
      currentValues.set(attributeId.value, value)
    }
  }
  return parsed({ subscriptionId: subscriptionId.value, currentValues })
}

export interface MashParsedInvoke {
  commandId: number
  /** Parameter name → value. */
  params: Map<string, MashValue>
}

/** An invoke's payload {1: commandId, 2: params}; key 2 left out when there are no parameters. */
export function invokePayload(commandId: number, params?: ReadonlyMap<string, MashValue> | Readonly<Record<string, MashValue>>): MashValue {
  const payload = new Map<number, MashValue>([[1, builderInteger('commandId', commandId, 0, maxUint8)]])
  let named: Map<string, MashValue>
  if (params === undefined) {
    named = new Map()
  } else if (params instanceof Map) {
    for (const key of params.keys()) {
      if (typeof key !== 'string') throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "params" of an invoke are named by strings. Received a key ${describe(key)}`)
    }
    named = new Map(params)
  } else if (typeof params === 'object' && params !== null && !Array.isArray(params)) {
    named = new Map(Object.entries(params))
  } else {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "params" argument must be a Map or an object of parameter name to value. Received ${describe(params)}`)
  }
  if (named.size > 0) payload.set(2, named)
  return payload
}

/**
 * The command and parameters an invoke asks for. Parameters are named by text; other keys are left out, as
 * the reference device leaves them. No command id is INVALID_COMMAND (the reference looks up command 0).
 */
export function parseInvokePayload(payload: MashValue | undefined): MashParsed<MashParsedInvoke> {
  if (!(payload instanceof Map)) return refused(MashStatus.INVALID_PARAMETER, 'command payload required')
  const id: unknown = payload.get(1)
  if (id === undefined || id === null) return refused(MashStatus.INVALID_COMMAND, 'command ID required')
  const commandId = payloadInteger(id, 'commandId', 0, maxUint8)
  if (!commandId.ok) return commandId
  const params = new Map<string, MashValue>()
  const given: unknown = payload.get(2)
  if (given !== undefined && given !== null) {
    if (!(given instanceof Map)) return refused(MashStatus.INVALID_PARAMETER, `parameters must be a map of name to value; they are ${describeCbor(given)}`)
    for (const [key, value] of given as ReadonlyMap<number | string, MashValue>) {
      if (typeof key === 'string') params.set(key, value)
    }
  }
  return parsed({ commandId: commandId.value, params })
}

/**
 * An error response's payload {1: text}; empty text leaves key 1 out (the reference's omitempty). Text past
 * the sender limit is cut (at a character) and ends with '…': an answer with a shorter reason beats none.
 */
export function errorPayload(text: string): MashValue {
  if (typeof text !== 'string') throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "text" argument must be of type string. Received ${describe(text)}`)
  if (text === '') return new Map()
  return new Map([[1, overStringLimit(text) ? cutText(text, MASH_SENDER_LIMITS.stringBytes - 3) + '…' : text]])
}

/** The longest start of `text` that is at most `maxBytes` bytes of UTF-8, whole characters only. */
function cutText(text: string, maxBytes: number): string {
  let bytes = 0
  let end = 0
  for (const character of text) {
    const codePoint = character.codePointAt(0)!
    bytes += codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4
    if (bytes > maxBytes) break
    end += character.length
  }
  return text.slice(0, end)
}

/** The text of an error payload {1: text}; undefined when the payload has none. */
export function errorText(payload: MashValue | undefined): string | undefined {
  if (!(payload instanceof Map)) return undefined
  const text: unknown = payload.get(1)
  return typeof text === 'string' ? text : undefined
}
