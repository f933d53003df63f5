// The MASH decoder against bytes a peer may send: random bytes, and the golden vectors of mash-wire.test.ts
// mutated (bits flipped, bytes set, cut short, bytes inserted, ranges repeated or left out), 20,000 cases
// from a fixed seed. decodeMessage() never throws and never takes long; it answers a message or a failure
// that says why; whatever it answers a message for re-encodes and decodes again to the same message.
import { isDeepStrictEqual } from 'node:util'
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../helpers.ts'
import { MASH_MAX_MESSAGE_BYTES, decodeMessage, encodeMessage, sendableProblem, type MashDecoded, type MashMessage, type MashValue } from '../../src/sessions/mash/wire.ts'

function bytes(hex: string): Uint8Array {
  const digits = hex.replace(/\s+/g, '')
  return Uint8Array.from({ length: digits.length / 2 }, (_, at) => parseInt(digits.slice(at * 2, at * 2 + 2), 16))
}

function hexOf(data: Uint8Array): string {
  return Array.from(data, (byte) => byte.toString(16).padStart(2, '0')).join(' ')
}

// The golden vectors of mash-wire.test.ts, and a few of its other messages that reach further into the
// decoder (indefinite lengths, tags, bignums, floats of each size, text, nesting).
const seeds = [
  'a5 01 07 02 01 03 01 04 02 05 a1 01 83 01 02 03',
  'a5 01 08 02 01 03 01 04 02 05 a0',
  'a5 01 09 02 02 03 01 04 03 05 a1 15 1a 00 5b 8d 80',
  'a5 01 0a 02 03 03 01 04 02 05 a3 01 83 01 02 03 02 19 03 e8 03 19 ea 60',
  'a5 01 0b 02 03 03 00 04 00 05 a1 01 19 13 89',
  'a5 01 0c 02 04 03 01 04 03 05 a2 01 01 02 a2 65 63 61 75 73 65 02 65 6c 69 6d 69 74 1a 00 5b 8d 80',
  'a3 01 07 02 00 03 a2 01 1a 00 4c 4b 40 02 1a 00 03 0d 40',
  'a3 01 09 02 02 03 a1 01 71 66 65 61 74 75 72 65 20 6e 6f 74 20 66 6f 75 6e 64',
  'a3 01 0a 02 00 03 a2 01 19 13 89 02 a2 01 1a 00 4c 4b 40 02 f6',
  'a2 01 07 02 00',
  'a5 01 00 02 19 13 89 03 01 04 02 05 a1 01 1a 00 53 ec 60',
  'a5 01 00 02 19 13 89 03 01 04 02 05 a0',
  'a2 01 01 02 01',
  'a2 01 01 02 19 01 2c',
  'a2 01 02 02 01',
  'a1 01 03',
  'bf 01 07 02 01 03 01 04 02 05 bf 01 9f 01 02 ff ff ff',
  'a3 01 07 02 00 03 a1 01 c2 48 ff ff ff ff ff ff ff ff',
  'a3 01 07 02 00 03 a1 01 c3 47 1f ff ff ff ff ff ff',
  'a3 01 07 02 00 03 a1 01 c1 1a 5e 0b e1 00',
  'a3 01 07 02 00 03 a3 01 f9 43 00 02 fa 40 60 00 00 03 fb 40 0c 00 00 00 00 00 00',
  'a3 01 07 02 00 03 a5 01 f5 02 f4 03 62 c3 bc 04 42 01 02 05 81 a1 61 6b 80',
  'a3 01 07 02 00 03 a3 18 18 01 20 02 61 61 03',
  'a3 01 07 02 00 03 a1 01 1b 00 20 00 00 00 00 00 01',
  `a5 01 07 02 01 03 01 04 02 05 ${'81 '.repeat(29)}80`,
].map(bytes)

// Bytes that start or end CBOR items of every kind, more likely than others in what is inserted.
const telling = [0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x20, 0x38, 0x3b, 0x40, 0x5f, 0x60, 0x7f, 0x80, 0x9f, 0xa0, 0xa1, 0xbf, 0xc0, 0xc2, 0xc3, 0xd8, 0xf4, 0xf6, 0xf7, 0xf9, 0xfa, 0xfb, 0xff]
// Whole items, each put in place of a byte (a small integer, often a whole item itself): NaN and ±Infinity,
// undefined, an integer too long, bignums, text, a negative key, maps with a key twice, indefinite items.
const items = [
  'f9 7e 00',
  'f9 7c 00',
  'fa ff 80 00 00',
  'fb 7f f8 00 00 00 00 00 00',
  'f7',
  '18 07',
  'c2 49 01 00 00 00 00 00 00 00 00',
  'c3 42 01 00',
  '61 61',
  '20',
  'a2 01 01 01 02',
  'bf 01 01 ff',
  '9f 01 ff',
  'c1 01',
  'fb 3f f8 00 00 00 00 00 00',
].map((hex) => Array.from(bytes(hex)))

function mutate(seed: Uint8Array, random: () => number): Uint8Array {
  let data = Array.from(seed)
  const at = (): number => Math.floor(random() * (data.length + 1))
  const byte = (): number => (random() < 0.5 ? telling[Math.floor(random() * telling.length)]! : Math.floor(random() * 256))
  const mutations = random() < 0.6 ? 1 : 2 + Math.floor(random() * 3)
  for (let m = 0; m < mutations; m++) {
    const position = Math.min(at(), Math.max(data.length - 1, 0))
    const choice = Math.floor(random() * 8)
    if (choice >= 6) {
      data.splice(position, 1, ...items[Math.floor(random() * items.length)]!)
      continue
    }
    switch (choice) {
      case 0:
        if (data.length > 0) data[position] = data[position]! ^ (1 << Math.floor(random() * 8))
        break
      case 1:
        if (data.length > 0) data[position] = byte()
        break
      case 2:
        if (random() < 0.5) data = data.slice(0, Math.floor(random() * data.length))
        else data[position] = Math.floor(random() * 24) // another small integer
        break
      case 3:
        data.splice(at(), 0, ...Array.from({ length: 1 + Math.floor(random() * 4) }, byte))
        break
      case 4: {
        // A range repeated: a key and its value twice, an item inside another.
        const start = Math.floor(random() * data.length)
        const range = data.slice(start, start + 1 + Math.floor(random() * 12))
        data.splice(at(), 0, ...range)
        break
      }
      default: {
        const start = Math.floor(random() * data.length)
        data.splice(start, 1 + Math.floor(random() * 6))
      }
    }
  }
  return Uint8Array.from(data)
}

function randomBytes(random: () => number): Uint8Array {
  const data = Array.from({ length: Math.floor(random() * 48) }, () => Math.floor(random() * 256))
  // Half start as a map, so that more of them get past the first byte.
  if (data.length > 0 && random() < 0.5) data[0] = 0xa0 + Math.floor(random() * 6)
  return Uint8Array.from(data)
}

const reasons = new Set(['too-large', 'malformed-cbor', 'duplicate-key', 'not-a-map', 'non-integer-key', 'not-finite', 'invalid-field'])
const kinds = new Set([null, 'request', 'response', 'notification', 'control'])

/** -0 goes out as the integer 0 (cborg writes an integral number as an integer): the same number. */
function withoutNegativeZero(value: MashValue): MashValue {
  if (Object.is(value, -0)) return 0
  if (Array.isArray(value)) return value.map((item: MashValue) => withoutNegativeZero(item))
  if (value instanceof Map) return new Map([...value].map(([key, item]) => [key, withoutNegativeZero(item)]))
  return value
}

/** What a decoded message decodes to once re-encoded. */
function afterRoundTrip(message: MashMessage): MashMessage {
  switch (message.kind) {
    case 'request':
      return message.payload === undefined ? message : { ...message, payload: withoutNegativeZero(message.payload) }
    case 'response':
      // A response to message 1, 2 or 3 without payload goes with {}, lest it read as a control message.
      if (message.payload === undefined) return message.messageId <= 3 ? { ...message, payload: new Map() } : message
      return { ...message, payload: withoutNegativeZero(message.payload) }
    case 'notification':
      return { ...message, changes: withoutNegativeZero(message.changes) as ReadonlyMap<number, MashValue> }
    case 'control':
      return message
  }
}

/** Fails with the input, for a case to be replayed. */
function check(condition: boolean, what: string, data: Uint8Array): void {
  if (!condition) throw new Error(`${what}, for ${hexOf(data)}`)
}

function checkCase(data: Uint8Array, previous: Uint8Array, counts: Record<string, number>): void {
  let decoded: MashDecoded
  try {
    decoded = decodeMessage(data)
  } catch (error) {
    throw new Error(`decodeMessage threw for ${hexOf(data)}: ${String(error)}`)
  }
  // The decoder's state is its own per call: a decode in between changes nothing.
  decodeMessage(previous)
  const again = decodeMessage(data)
  if (!isDeepStrictEqual(again, decoded)) expect(again, hexOf(data)).toEqual(decoded)
  if (!decoded.ok) {
    counts[decoded.reason] = (counts[decoded.reason] ?? 0) + 1
    check(reasons.has(decoded.reason), `the reason ${decoded.reason}`, data)
    check(kinds.has(decoded.kind), `the kind ${String(decoded.kind)}`, data)
    check(decoded.detail.length > 0, 'no detail', data)
    check(Number.isInteger(decoded.messageId) && decoded.messageId >= 0 && decoded.messageId <= 0xffff_ffff, `the id ${decoded.messageId}`, data)
    check(decoded.reason !== 'invalid-field' || decoded.kind !== null, 'an invalid field of no kind', data)
    return
  }
  counts.ok = (counts.ok ?? 0) + 1
  const message = decoded.message
  // Inputs of under 2,000 bytes hold no array of 1,001 elements, map of 501 keys or string of 4,001 bytes,
  // and re-encode to less than 3 times their length (a half float becomes a double): all within the limits.
  const values = message.kind === 'request' || message.kind === 'response' ? message.payload : message.kind === 'notification' ? message.changes : undefined
  if (values !== undefined && sendableProblem(values) !== undefined) counts.unsendableAsAttribute = (counts.unsendableAsAttribute ?? 0) + 1
  let encoded: Uint8Array
  try {
    encoded = encodeMessage(message)
  } catch (error) {
    throw new Error(`encodeMessage threw for the message decoded from ${hexOf(data)}: ${String(error)}`)
  }
  check(encoded.byteLength <= MASH_MAX_MESSAGE_BYTES, 'a message too large', data)
  const expected = { ok: true, message: afterRoundTrip(message) }
  const roundTrip = decodeMessage(encoded)
  if (!isDeepStrictEqual(roundTrip, expected)) expect(roundTrip, hexOf(data)).toEqual(expected)
}

describe('decodeMessage() under fuzzing', () => {
  it('answers 20,000 random and mutated inputs without throwing, quickly, and what it reads round-trips', () => {
    const random = seededRandom(0x4d415348)
    const counts: Record<string, number> = {}
    let previous = seeds[0]!
    for (let index = 0; index < 20_000; index++) {
      const data = index % 5 === 0 ? randomBytes(random) : mutate(seeds[Math.floor(random() * seeds.length)]!, random)
      check(data.byteLength < 2000, 'an input too long', data)
      checkCase(data, previous, counts)
      previous = data
    }
    // The cases reach every answer but too-large (no input is that long): the fuzzing is not all noise.
    for (const reason of ['ok', 'malformed-cbor', 'duplicate-key', 'not-a-map', 'non-integer-key', 'not-finite', 'invalid-field']) {
      expect(counts[reason] ?? 0, `${reason}: ${JSON.stringify(counts)}`).toBeGreaterThan(50)
    }
  })

  it('answers the golden vectors themselves, which round-trip byte for byte', () => {
    for (const seed of seeds.slice(0, 16)) {
      const decoded = decodeMessage(seed)
      if (!decoded.ok) throw new Error(`${hexOf(seed)}: ${decoded.reason}`)
      expect(hexOf(encodeMessage(decoded.message))).toBe(hexOf(seed))
    }
  })
})
