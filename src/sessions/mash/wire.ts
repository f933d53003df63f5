// The MASH wire codec (research §A.1, §A.2): messages are integer-keyed CBOR maps, encoded in the reference's
// canonical form (fxamacker's SortCanonical: definite lengths, shortest integers, keys ordered length-first
// then bytewise) and decoded strictly. Which kind a message is follows the reference's PeekMessageType rule
// for rule, quirks included, so that both ends agree on every message. The payload helpers build and read
// the payloads of the four operations with the statuses a device answers with.
import { isUtf8 } from 'node:buffer'
import { Token, Tokenizer, Type, decode, encode, encodeInto, tokensToObject, type DecodeOptions, type EncodeOptions, type TagDecoder } from 'cborg'
import type { DecodeTokenizer, MapSorter } from 'cborg/interface'
import { VolleyRangeError, VolleyTypeError, describe } from '../../errors.ts'

// ---------------------------------------------------------------------------------------------------------
// Numbers of the protocol
// ---------------------------------------------------------------------------------------------------------

/** Response status codes (reference wire/status.go). */
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

/** 'INVALID_PARAMETER' for 5; 'status 42' for a code MASH does not define (a newer peer's, TC-COMPAT-3). */
export function mashStatusName(status: number): string {
  return statusNames.get(status) ?? `status ${status}`
}

/** Request operations (key 2 of a request). */
export const MashOperation = { read: 1, write: 2, subscribe: 3, invoke: 4 } as const

/** Control message types (key 1 of a control message). */
export const MashControlType = { ping: 1, pong: 2, close: 3 } as const

/** The largest message, in bytes of CBOR (DEC-069; the frame's length field counts these). */
export const MASH_MAX_MESSAGE_BYTES = 8192

/** What a sender may put in one message (message-framing.md §6.3); encodeMessage() refuses more. */
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

// Map keys in RFC 7049 canonical order (fxamacker's SortCanonical): shorter encodings first, then bytewise.
// cborg's own default orders by major type first, which differs once a map mixes negative and positive
// integers, or integers and text (-1 then 24; 'a' then 256). Key bytes come from encodeInto() on a scratch
// buffer: a sorter runs in the middle of an encode(), whose shared writer a nested encode() would reset.
const keyScratch = new Uint8Array(MASH_SENDER_LIMITS.stringBytes + 16)
const keyBytesOf = new WeakMap<Token, Uint8Array>()

function keyBytes(key: Token | Token[]): Uint8Array {
  // Keys are integers or text (checkValue() saw to it): one token each.
  const token = Array.isArray(key) ? key[0]! : key
  let bytes = keyBytesOf.get(token)
  if (bytes === undefined) {
    const { written } = encodeInto(token.value, keyScratch)
    bytes = keyScratch.slice(0, written)
    keyBytesOf.set(token, bytes)
  }
  return bytes
}

const canonicalKeyOrder: MapSorter = (entry1, entry2) => {
  const bytes1 = keyBytes(entry1[0]!)
  const bytes2 = keyBytes(entry2[0]!)
  if (bytes1.length !== bytes2.length) return bytes1.length - bytes2.length
  for (let at = 0; at < bytes1.length; at++) {
    if (bytes1[at] !== bytes2[at]) return bytes1[at]! - bytes2[at]!
  }
  return 0
}

// Floats go out as float64, as the reference's Go float64 values do (message-framing.md §3.7: float64 only).
const encodeOptions: EncodeOptions = { mapSorter: canonicalKeyOrder, float64: true }

/** A value refused, with where it was (filled in as the check unwinds). */
class ValueProblem {
  readonly path: string[] = []
  constructor(
    readonly range: boolean,
    readonly text: string,
  ) {}
}

function overStringLimit(text: string): boolean {
  // At most 3 bytes of UTF-8 per UTF-16 unit: a short string cannot pass the limit, and is not measured.
  return text.length * 3 > MASH_SENDER_LIMITS.stringBytes && Buffer.byteLength(text, 'utf8') > MASH_SENDER_LIMITS.stringBytes
}

/** Throws a ValueProblem for a value MASH cannot carry or a sender must not send. */
function checkValue(value: unknown, level: number): void {
  switch (typeof value) {
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) throw new ValueProblem(false, `${value} is not a MASH value (NaN and ±Infinity are refused on the wire)`)
      return
    case 'bigint':
      if (value < minCborInteger || value > maxCborInteger) throw new ValueProblem(true, `${value} does not fit in a CBOR integer (-2^64 to 2^64 - 1)`)
      return
    case 'string':
      if (overStringLimit(value)) {
        throw new ValueProblem(true, `a string of ${Buffer.byteLength(value, 'utf8')} UTF-8 bytes is over the sender limit of ${MASH_SENDER_LIMITS.stringBytes} bytes`)
      }
      return
    case 'undefined':
      throw new ValueProblem(false, 'undefined is not a MASH value (null is; an absent attribute is left out of its map)')
    case 'object':
      break
    default:
      throw new ValueProblem(false, `${describe(value)} is not a MASH value`)
  }
  if (value === null) return
  if (value instanceof Uint8Array) {
    if (value.byteLength > MASH_SENDER_LIMITS.stringBytes) {
      throw new ValueProblem(true, `a byte string of ${value.byteLength} bytes is over the sender limit of ${MASH_SENDER_LIMITS.stringBytes} bytes`)
    }
    return
  }
  const isArray = Array.isArray(value)
  if (!isArray && !(value instanceof Map)) {
    const hint = Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null ? ' (use a Map: a plain object would send its keys as text, "1" for 1)' : ''
    throw new ValueProblem(false, `${describe(value)} is not a MASH value${hint}`)
  }
  if (level > MASH_MAX_NESTING_LEVELS) throw new ValueProblem(true, `arrays and maps nest deeper than ${MASH_MAX_NESTING_LEVELS} levels`)
  if (isArray) {
    const items = value as readonly unknown[]
    if (items.length > MASH_SENDER_LIMITS.arrayElements) {
      throw new ValueProblem(true, `an array of ${items.length} elements is over the sender limit of ${MASH_SENDER_LIMITS.arrayElements}`)
    }
    for (let index = 0; index < items.length; index++) {
      try {
        checkValue(items[index], level + 1)
      } catch (problem) {
        if (problem instanceof ValueProblem) problem.path.push(`[${index}]`)
        throw problem
      }
    }
    return
  }
  const map = value as ReadonlyMap<unknown, unknown>
  if (map.size > MASH_SENDER_LIMITS.mapKeys) throw new ValueProblem(true, `a map of ${map.size} keys is over the sender limit of ${MASH_SENDER_LIMITS.mapKeys}`)
  for (const [key, item] of map) {
    if (typeof key === 'string') {
      if (overStringLimit(key)) {
        throw new ValueProblem(true, `a map key of ${Buffer.byteLength(key, 'utf8')} UTF-8 bytes is over the sender limit of ${MASH_SENDER_LIMITS.stringBytes} bytes`)
      }
    } else if (typeof key !== 'number' || !Number.isSafeInteger(key)) {
      throw new ValueProblem(false, `a map key must be an integer (a safe one) or a string; ${describe(key)} is neither`)
    }
    try {
      checkValue(item, level + 1)
    } catch (problem) {
      if (problem instanceof ValueProblem) problem.path.push(`.get(${typeof key === 'string' ? JSON.stringify(key) : key})`)
      throw problem
    }
  }
}

/** Checks a value about to be sent as `name` of a MASH `kind` (level: the nesting level it sits at). */
function checkSentValue(value: unknown, kind: string, name: string, level: number): void {
  try {
    checkValue(value, level)
  } catch (problem) {
    if (!(problem instanceof ValueProblem)) throw problem
    const where = `The "${name}"${problem.path.reverse().join('')} of a MASH ${kind}`
    if (problem.range) throw new VolleyRangeError('ERR_OUT_OF_RANGE', `${where} cannot be sent: ${problem.text}`)
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `${where} cannot be sent: ${problem.text}`)
  }
}

function checkAttributeIdKey(name: string, of: string, key: unknown): void {
  const text = `The keys of the "${name}" ${of} are attribute ids, integers from 0 to ${maxUint16}. Received ${describe(key)}`
  if (typeof key !== 'number') throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', text)
  if (!Number.isInteger(key) || key < 0 || key > maxUint16) throw new VolleyRangeError('ERR_OUT_OF_RANGE', text)
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
 * {1: id, 2: status} reads as a control message (type = id) by the reference's classification, and would
 * be taken for a ping, a pong or a close. A response to message 0 (the reference sends one when it cannot
 * learn a bad request's id) goes out as asked; it reads as a notification, and fails as one, at the peer.
 */
export function encodeMessage(message: MashMessage): Uint8Array {
  if (typeof message !== 'object' || message === null) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "message" argument must be a MASH message object. Received ${describe(message)}`)
  }
  const fields = new Map<number, MashValue>()
  const kind = String(message.kind)
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
  const bytes = encode(fields, encodeOptions)
  if (bytes.byteLength > MASH_MAX_MESSAGE_BYTES) {
    throw new VolleyRangeError('ERR_MESSAGE_TOO_LARGE', `The MASH ${kind} encodes to ${bytes.byteLength} bytes; a MASH message is at most ${MASH_MAX_MESSAGE_BYTES} bytes`)
  }
  return bytes
}

// ---------------------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------------------

/**
 * cborg's tokenizer, watched: it refuses nesting deeper than MASH_MAX_NESTING_LEVELS before cborg's
 * recursive decoder goes there, and text that is not UTF-8 (which cborg would decode with U+FFFD in place,
 * where the reference refuses it).
 */
class CheckedTokenizer implements DecodeTokenizer {
  readonly #tokens: Tokenizer
  /** Items still to come in each open array, map or tag (Infinity: until its break). */
  readonly #open: number[] = []

  constructor(data: Uint8Array, options: DecodeOptions) {
    this.#tokens = new Tokenizer(data, options)
  }

  done(): boolean {
    return this.#tokens.done()
  }

  pos(): number {
    return this.#tokens.pos()
  }

  next(): Token {
    const token = this.#tokens.next()
    const open = this.#open
    const type = token.type
    if (Type.equals(type, Type.break)) {
      // Ends the innermost indefinite-length item (cborg refuses a break anywhere else).
      open.pop()
      this.#closeFinished()
      return token
    }
    if (Type.equals(type, Type.string) && token.byteValue !== undefined && !isUtf8(token.byteValue)) {
      throw new Error('a text string is not valid UTF-8')
    }
    if (open.length > 0) open[open.length - 1]! -= 1
    const items = Type.equals(type, Type.array) ? (token.value as number) : Type.equals(type, Type.map) ? (token.value as number) * 2 : Type.equals(type, Type.tag) ? 1 : -1
    if (items < 0) {
      this.#closeFinished()
      return token
    }
    if (open.length + 1 > MASH_MAX_NESTING_LEVELS) throw new Error(`arrays, maps and tags nest deeper than ${MASH_MAX_NESTING_LEVELS} levels`)
    if (items > 0) open.push(items)
    else this.#closeFinished()
    return token
  }

  #closeFinished(): void {
    const open = this.#open
    while (open.length > 0 && open[open.length - 1] === 0) open.pop()
  }
}

function toSafeInteger(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value
}

// Tags (message-framing.md §3.6): the wrapper is dropped and the inner value used, timestamps (0, 1) too;
// bignums (2, 3) become integers. cborg looks a tag's decoder up by number, so every number answers.
const stripTag: TagDecoder = (content) => content()
function bignum(negative: boolean): TagDecoder {
  return (content) => {
    const magnitude = content()
    if (!(magnitude instanceof Uint8Array)) throw new Error(`a bignum (tag ${negative ? 3 : 2}) wraps a byte string; this one wraps ${describeCbor(magnitude)}`)
    let value = 0n
    for (const byte of magnitude) value = (value << 8n) | BigInt(byte)
    return toSafeInteger(negative ? -1n - value : value)
  }
}
const bignumDecoders: Record<string, TagDecoder> = { 2: bignum(false), 3: bignum(true) }
const tagDecoders = new Proxy<Record<number, TagDecoder>>(
  {},
  { get: (_target, tag) => (typeof tag === 'string' ? (bignumDecoders[tag] ?? stripTag) : undefined) },
)

const strictOptions: DecodeOptions = {
  useMaps: true,
  rejectDuplicateMapKeys: true,
  allowNaN: false,
  allowInfinity: false,
  allowUndefined: false,
  strict: true,
  // Spelled out, defaults included: the tokenizer below is given these as they are, unmerged with cborg's.
  allowBigInt: true,
  // The reference decoder takes indefinite-length arrays and maps (strings cborg cannot decode: refused).
  allowIndefinite: true,
  retainStringBytes: true,
  tags: tagDecoders,
}

// For a message strictOptions refused: what it would have been, so that the failure can say why and the
// device can answer it under its id.
const lenientOptions: DecodeOptions = { ...strictOptions, rejectDuplicateMapKeys: false, allowNaN: true, allowInfinity: true, allowUndefined: true, strict: false }
const duplicateCheckOptions: DecodeOptions = { ...lenientOptions, rejectDuplicateMapKeys: true }
const finiteCheckOptions: DecodeOptions = { ...lenientOptions, allowNaN: false, allowInfinity: false }

function decodeWith(data: Uint8Array, options: DecodeOptions): unknown {
  return decode(data, { ...options, tokenizer: new CheckedTokenizer(data, options) })
}

function attempt(data: Uint8Array, options: DecodeOptions): { value: unknown } | { error: string } {
  try {
    return { value: decodeWith(data, options) }
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error)
    return { error: text.replace(/^CBOR decode error: /, '') }
  }
}

/** Whether key 1 comes more than once in the top-level map (the message's id is then unknown). */
function keyOneRepeats(data: Uint8Array): boolean {
  const tokens = new CheckedTokenizer(data, lenientOptions)
  const head = tokens.next()
  if (!Type.equals(head.type, Type.map)) return false
  let seen = 0
  for (let index = 0; index < (head.value as number); index++) {
    const key: unknown = tokensToObject(tokens, lenientOptions)
    if (typeof key === 'symbol') break // the break of an indefinite-length map
    tokensToObject(tokens, lenientOptions)
    if (key === 1 && ++seen > 1) return true
  }
  return false
}

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

/** Why a message cborg's strict options refused was refused, learning what it can from a lenient decode. */
function strictFailure(data: Uint8Array, strictError: string): MashDecoded {
  const lenient = attempt(data, lenientOptions)
  if ('error' in lenient) return failure('malformed-cbor', strictError)
  let reason: MashDecodeFailure = 'malformed-cbor'
  let detail = strictError
  const duplicates = attempt(data, duplicateCheckOptions)
  if ('error' in duplicates) {
    reason = 'duplicate-key'
    detail = `Duplicate key in message (${duplicates.error})`
  } else {
    const finite = attempt(data, finiteCheckOptions)
    if ('error' in finite) {
      reason = 'not-finite'
      detail = `NaN and ±Infinity are refused (${finite.error})`
    }
  }
  const fields = lenient.value
  if (!(fields instanceof Map)) return failure(reason, detail)
  if (![...fields.keys()].every((key) => isInteger(key) && key >= 0)) return failure(reason, detail, null, learnedMessageId(fields))
  const messageId = reason === 'duplicate-key' && keyOneRepeats(data) ? 0 : learnedMessageId(fields)
  return failure(reason, detail, classify(fields), messageId)
}

/**
 * Decodes one message (the CBOR of one frame), strictly: no duplicate keys, no NaN or ±Infinity, no
 * undefined, integers in their shortest form, text in UTF-8, nesting at most 32 levels, top-level keys
 * non-negative integers; unknown keys are ignored. A bad message is no throw: the failure says why. (Only
 * an argument that is no Uint8Array throws.)
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
  const strict = attempt(data, strictOptions)
  if ('error' in strict) return strictFailure(data, strict.error)
  const fields = strict.value
  if (!(fields instanceof Map)) return failure('not-a-map', `A MASH message is a CBOR map; this is ${describeCbor(fields)}`)
  for (const key of fields.keys()) {
    if (!isInteger(key) || key < 0) {
      return failure('non-integer-key', `Top-level keys are non-negative integers; one is ${describeCbor(key)}`, null, learnedMessageId(fields))
    }
  }
  const kind = classify(fields)
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
