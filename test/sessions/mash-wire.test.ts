// The MASH wire codec: golden vectors worked out by hand from RFC 8949 and research §A.2, canonical order
// (and random maps against its definition), strict decoding, the reference's classification
// (PeekMessageType) row by row, the sender limits and sendableProblem(), the payload helpers both ways, and
// what encoding and refusing cost next to cborg's own encode() and a good message's decode.
import { encode } from 'cborg'
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../helpers.ts'
import {
  MASH_MAX_MESSAGE_BYTES,
  MASH_SENDER_LIMITS,
  MashStatus,
  decodeMessage,
  encodeMessage,
  errorPayload,
  errorText,
  invokePayload,
  mashStatusName,
  parseInvokePayload,
  parseReadPayload,
  parseSubscribePayload,
  parseSubscribeResponsePayload,
  parseUnsubscribePayload,
  parseWritePayload,
  readPayload,
  sendableProblem,
  subscribePayload,
  subscribeResponsePayload,
  unsubscribePayload,
  type MashDecoded,
  type MashMessage,
  type MashValue,
} from '../../src/sessions/mash/wire.ts'

/** Bytes from hex written with spaces between bytes. */
function bytes(hex: string): Uint8Array {
  const digits = hex.replace(/\s+/g, '')
  return Uint8Array.from({ length: digits.length / 2 }, (_, at) => parseInt(digits.slice(at * 2, at * 2 + 2), 16))
}

function hexOf(data: Uint8Array): string {
  return Array.from(data, (byte) => byte.toString(16).padStart(2, '0')).join(' ')
}

function normalize(hex: string): string {
  return hexOf(bytes(hex))
}

/** The hex of a request to endpoint 1, feature 2 carrying `payloadHex` (id 7, read). */
function requestWith(payloadHex: string): Uint8Array {
  return bytes(`a5 01 07 02 01 03 01 04 02 05 ${payloadHex}`)
}

function failureOf(decoded: MashDecoded): Extract<MashDecoded, { ok: false }> {
  if (decoded.ok) throw new Error(`expected a failure, got ${JSON.stringify(decoded.message)}`)
  return decoded
}

function messageOf(decoded: MashDecoded): MashMessage {
  if (!decoded.ok) throw new Error(`expected a message, got ${decoded.reason}: ${decoded.detail}`)
  return decoded.message
}

describe('golden vectors: encode gives these bytes, and they decode to the message', () => {
  const vectors: { name: string; message: MashMessage; hex: string }[] = [
    {
      name: 'read of attributes 1, 2, 3: {1: 7, 2: 1, 3: 1, 4: 2, 5: {1: [1, 2, 3]}}',
      message: { kind: 'request', messageId: 7, operation: 1, endpointId: 1, featureId: 2, payload: new Map([[1, [1, 2, 3]]]) },
      hex: 'a5 01 07 02 01 03 01 04 02 05 a1 01 83 01 02 03',
    },
    {
      name: 'read of all attributes: payload {} (key 1 left out)',
      message: { kind: 'request', messageId: 8, operation: 1, endpointId: 1, featureId: 2, payload: new Map() },
      hex: 'a5 01 08 02 01 03 01 04 02 05 a0',
    },
    {
      name: 'write {21: 6000000} (0x5b8d80 in 4 bytes)',
      message: { kind: 'request', messageId: 9, operation: 2, endpointId: 1, featureId: 3, payload: new Map([[21, 6_000_000]]) },
      hex: 'a5 01 09 02 02 03 01 04 03 05 a1 15 1a 00 5b 8d 80',
    },
    {
      name: 'subscribe to 1, 2, 3 with minInterval 1000 ms, maxInterval 60000 ms',
      message: {
        kind: 'request',
        messageId: 10,
        operation: 3,
        endpointId: 1,
        featureId: 2,
        payload: new Map<number, MashValue>([
          [1, [1, 2, 3]],
          [2, 1000],
          [3, 60_000],
        ]),
      },
      hex: 'a5 01 0a 02 03 03 01 04 02 05 a3 01 83 01 02 03 02 19 03 e8 03 19 ea 60',
    },
    {
      name: 'unsubscribe 5001: a subscribe to endpoint 0, feature 0, payload {1: 5001}',
      message: { kind: 'request', messageId: 11, operation: 3, endpointId: 0, featureId: 0, payload: new Map([[1, 5001]]) },
      hex: 'a5 01 0b 02 03 03 00 04 00 05 a1 01 19 13 89',
    },
    {
      name: 'invoke command 1 with text-named parameters ("cause" sorts before "limit": same length, c < l)',
      message: {
        kind: 'request',
        messageId: 12,
        operation: 4,
        endpointId: 1,
        featureId: 3,
        payload: new Map<number, MashValue>([
          [1, 1],
          [
            2,
            new Map<string, MashValue>([
              ['limit', 6_000_000],
              ['cause', 2],
            ]),
          ],
        ]),
      },
      hex: 'a5 01 0c 02 04 03 01 04 03 05 a2 01 01 02 a2 65 63 61 75 73 65 02 65 6c 69 6d 69 74 1a 00 5b 8d 80',
    },
    {
      name: 'response SUCCESS with values {1: 5000000, 2: 200000}',
      message: {
        kind: 'response',
        messageId: 7,
        status: 0,
        payload: new Map([
          [1, 5_000_000],
          [2, 200_000],
        ]),
      },
      hex: 'a3 01 07 02 00 03 a2 01 1a 00 4c 4b 40 02 1a 00 03 0d 40',
    },
    {
      name: 'error response INVALID_FEATURE {1: "feature not found"}',
      message: { kind: 'response', messageId: 9, status: 2, payload: new Map([[1, 'feature not found']]) },
      hex: 'a3 01 09 02 02 03 a1 01 71 66 65 61 74 75 72 65 20 6e 6f 74 20 66 6f 75 6e 64',
    },
    {
      name: 'subscribe response {1: 5001, 2: {1: 5000000, 2: null}} (priming values, a null kept)',
      message: {
        kind: 'response',
        messageId: 10,
        status: 0,
        payload: new Map<number, MashValue>([
          [1, 5001],
          [
            2,
            new Map<number, MashValue>([
              [1, 5_000_000],
              [2, null],
            ]),
          ],
        ]),
      },
      hex: 'a3 01 0a 02 00 03 a2 01 19 13 89 02 a2 01 1a 00 4c 4b 40 02 f6',
    },
    {
      name: 'response SUCCESS without payload (message 7: keys 1 and 2 only)',
      message: { kind: 'response', messageId: 7, status: 0 },
      hex: 'a2 01 07 02 00',
    },
    {
      name: 'notification of subscription 5001 with {1: 5500000}',
      message: { kind: 'notification', subscriptionId: 5001, endpointId: 1, featureId: 2, changes: new Map([[1, 5_500_000]]) },
      hex: 'a5 01 00 02 19 13 89 03 01 04 02 05 a1 01 1a 00 53 ec 60',
    },
    {
      name: 'heartbeat notification with no values: changes {}',
      message: { kind: 'notification', subscriptionId: 5001, endpointId: 1, featureId: 2, changes: new Map() },
      hex: 'a5 01 00 02 19 13 89 03 01 04 02 05 a0',
    },
    { name: 'ping seq 1', message: { kind: 'control', type: 1, seq: 1 }, hex: 'a2 01 01 02 01' },
    { name: 'ping seq 300 (0x012c in 2 bytes)', message: { kind: 'control', type: 1, seq: 300 }, hex: 'a2 01 01 02 19 01 2c' },
    { name: 'pong seq 1', message: { kind: 'control', type: 2, seq: 1 }, hex: 'a2 01 02 02 01' },
    { name: 'close: type 3, no seq', message: { kind: 'control', type: 3, seq: 0 }, hex: 'a1 01 03' },
  ]

  for (const { name, message, hex } of vectors) {
    it(name, () => {
      expect(hexOf(encodeMessage(message))).toBe(normalize(hex))
      expect(decodeMessage(bytes(hex))).toEqual({ ok: true, message })
    })
  }

  it('sends a response to message 1, 2 or 3 without payload with {} as payload, so that it does not read as control', () => {
    // {1: 2, 2: 0} is what the reference classifies as a pong (type 2): the codec must not send it.
    expect(messageOf(decodeMessage(bytes('a2 01 02 02 00')))).toEqual({ kind: 'control', type: 2, seq: 0 })
    for (const messageId of [1, 2, 3]) {
      const encoded = encodeMessage({ kind: 'response', messageId, status: MashStatus.INVALID_PARAMETER })
      expect(hexOf(encoded)).toBe(normalize(`a3 01 0${messageId} 02 05 03 a0`))
      expect(messageOf(decodeMessage(encoded))).toEqual({ kind: 'response', messageId, status: 5, payload: new Map() })
    }
    // From 4 on, keys 1 and 2 alone are a response.
    expect(hexOf(encodeMessage({ kind: 'response', messageId: 4, status: 0 }))).toBe('a2 01 04 02 00')
  })

  it('sends a response to message 0 as asked (the reference answers an undecodable request so); it reads as a notification that fails', () => {
    const encoded = encodeMessage({ kind: 'response', messageId: 0, status: 5, payload: errorPayload('x') })
    expect(hexOf(encoded)).toBe('a3 01 00 02 05 03 a1 01 61 78')
    expect(failureOf(decodeMessage(encoded))).toMatchObject({ reason: 'invalid-field', kind: 'notification', messageId: 0 })
  })

  it('keeps a request payload of null (key 5: null) apart from none', () => {
    const withNull = encodeMessage({ kind: 'request', messageId: 7, operation: 1, endpointId: 1, featureId: 2, payload: null })
    expect(hexOf(withNull)).toBe('a5 01 07 02 01 03 01 04 02 05 f6')
    expect(messageOf(decodeMessage(withNull))).toEqual({ kind: 'request', messageId: 7, operation: 1, endpointId: 1, featureId: 2, payload: null })
    const without = encodeMessage({ kind: 'request', messageId: 7, operation: 1, endpointId: 1, featureId: 2 })
    expect(hexOf(without)).toBe('a4 01 07 02 01 03 01 04 02')
    expect(messageOf(decodeMessage(without))).not.toHaveProperty('payload')
  })
})

describe('canonical encoding', () => {
  it('orders keys given out of order: shortest encoding first, then bytewise (fxamacker SortCanonical)', () => {
    const payload = new Map<number | string, MashValue>([
      [256, 1],
      [24, 2],
      ['a', 3],
      [-1, 4],
      [1, 5],
    ])
    // 01 (1 byte), 20 = -1 (1 byte), 18 18 = 24 and 61 61 = 'a' (2 bytes, 0x18 < 0x61), 19 01 00 = 256 (3 bytes).
    // cborg's own default would put every positive integer first: 1, 24, 256, -1, 'a'.
    expect(hexOf(encodeMessage({ kind: 'request', messageId: 7, operation: 2, endpointId: 1, featureId: 2, payload }))).toBe(
      normalize('a5 01 07 02 02 03 01 04 02 05 a5 01 05 20 04 18 18 02 61 61 03 19 01 00 01'),
    )
    // Top-level fields too, whatever order the object lists them in.
    expect(hexOf(encodeMessage({ featureId: 2, endpointId: 1, operation: 1, messageId: 7, kind: 'request' }))).toBe('a4 01 07 02 01 03 01 04 02')
  })

  it('orders nested maps the same way', () => {
    const inner = new Map<number | string, MashValue>([
      ['bb', 1],
      ['a', 2],
      [1000, 3],
    ])
    const encoded = encodeMessage({ kind: 'response', messageId: 7, status: 0, payload: new Map([[1, [inner]]]) })
    // 'a' (61 61) < 'bb' (62 62 62) < 1000 (19 03 e8): lengths 2, 3, 3, then 0x19 < 0x62.
    expect(hexOf(encoded)).toBe(normalize('a3 01 07 02 00 03 a1 01 81 a3 61 61 02 19 03 e8 03 62 62 62 01'))
  })

  it('writes integers in their smallest form', () => {
    const cases: [number | bigint, string][] = [
      [0, '00'],
      [23, '17'],
      [24, '18 18'],
      [255, '18 ff'],
      [256, '19 01 00'],
      [65_535, '19 ff ff'],
      [65_536, '1a 00 01 00 00'],
      [4_294_967_295, '1a ff ff ff ff'],
      [4_294_967_296, '1b 00 00 00 01 00 00 00 00'],
      [2n ** 63n - 1n, '1b 7f ff ff ff ff ff ff ff'],
      [2n ** 64n - 1n, '1b ff ff ff ff ff ff ff ff'],
      [5n, '05'],
      [-1, '20'],
      [-24, '37'],
      [-25, '38 18'],
      [-5000, '39 13 87'],
      [-(2n ** 63n), '3b 7f ff ff ff ff ff ff ff'],
      [-(2n ** 64n), '3b ff ff ff ff ff ff ff ff'],
    ]
    for (const [value, hex] of cases) {
      const encoded = encodeMessage({ kind: 'response', messageId: 7, status: 0, payload: new Map([[1, value]]) })
      expect(hexOf(encoded), String(value)).toBe(normalize(`a3 01 07 02 00 03 a1 01 ${hex}`))
    }
  })

  it('writes floats as float64, as the reference does, and reads the shorter forms', () => {
    const encoded = encodeMessage({ kind: 'response', messageId: 7, status: 0, payload: new Map([[1, 3.5]]) })
    expect(hexOf(encoded)).toBe(normalize('a3 01 07 02 00 03 a1 01 fb 40 0c 00 00 00 00 00 00'))
    for (const float of ['f9 43 00', 'fa 40 60 00 00', 'fb 40 0c 00 00 00 00 00 00']) {
      expect(messageOf(decodeMessage(bytes(`a3 01 07 02 00 03 a1 01 ${float}`)))).toEqual({ kind: 'response', messageId: 7, status: 0, payload: new Map([[1, 3.5]]) })
    }
  })

  it('reads integers up to 2^53 as numbers and beyond as bigints (TC-INT-1..3)', () => {
    const cases: [string, number | bigint][] = [
      ['1a ff ff ff ff', 4_294_967_295],
      ['1b 00 1f ff ff ff ff ff ff', Number.MAX_SAFE_INTEGER],
      ['1b 00 20 00 00 00 00 00 01', 9_007_199_254_740_993n],
      ['1b 7f ff ff ff ff ff ff ff', 9_223_372_036_854_775_807n],
      ['3b 7f ff ff ff ff ff ff ff', -9_223_372_036_854_775_808n],
    ]
    for (const [hex, value] of cases) {
      expect(messageOf(decodeMessage(bytes(`a3 01 07 02 00 03 a1 01 ${hex}`)))).toEqual({ kind: 'response', messageId: 7, status: 0, payload: new Map([[1, value]]) })
    }
  })

  it('keeps 0, null and absent apart (TC-NULL-1..3)', () => {
    const values = new Map<number, MashValue>([
      [20, 0],
      [21, null],
    ])
    const encoded = encodeMessage({ kind: 'request', messageId: 7, operation: 2, endpointId: 1, featureId: 2, payload: values })
    expect(hexOf(encoded)).toBe(normalize('a5 01 07 02 02 03 01 04 02 05 a2 14 00 15 f6'))
    const payload = (messageOf(decodeMessage(encoded)) as { payload: ReadonlyMap<number, MashValue> }).payload
    expect(payload.get(20)).toBe(0)
    expect(payload.get(21)).toBeNull()
    expect(payload.has(21)).toBe(true)
    expect(payload.has(22)).toBe(false)
  })

  it('carries text, bytes, booleans, arrays and nested maps', () => {
    const payload = new Map<number, MashValue>([
      [1, true],
      [2, false],
      [3, 'ü'],
      [4, Uint8Array.of(1, 2)],
      [5, [new Map([['k', []]])]],
    ])
    const encoded = encodeMessage({ kind: 'response', messageId: 7, status: 0, payload })
    expect(hexOf(encoded)).toBe(normalize('a3 01 07 02 00 03 a5 01 f5 02 f4 03 62 c3 bc 04 42 01 02 05 81 a1 61 6b 80'))
    expect(messageOf(decodeMessage(encoded))).toEqual({ kind: 'response', messageId: 7, status: 0, payload })
  })

  it('gives bytes of their own: decoded byte strings do not share the input, even a Buffer', () => {
    const input = Buffer.from(bytes('a3 01 07 02 00 03 a1 01 43 01 02 03'))
    const payload = (messageOf(decodeMessage(input)) as { payload: ReadonlyMap<number, MashValue> }).payload
    input.fill(0)
    expect(payload.get(1)).toEqual(Uint8Array.of(1, 2, 3))
    const first = encodeMessage({ kind: 'control', type: 1, seq: 1 })
    encodeMessage({ kind: 'control', type: 2, seq: 2 })
    expect(hexOf(first)).toBe('a2 01 01 02 01')
  })
})

describe('strict decoding', () => {
  it('refuses a duplicate key at the top level, learning the id and kind (TC-CBOR-3)', () => {
    // {1: 7, 2: 1, 2: 1, 3: 1, 4: 2}
    expect(decodeMessage(bytes('a5 01 07 02 01 02 01 03 01 04 02'))).toEqual({
      ok: false,
      reason: 'duplicate-key',
      detail: expect.stringContaining('Duplicate key in message'),
      kind: 'request',
      messageId: 7,
    })
  })

  it('refuses a duplicate key nested in the payload, learning the id and kind', () => {
    // a write of {21: 1, 21: 2}
    expect(failureOf(decodeMessage(bytes('a5 01 07 02 02 03 01 04 02 05 a2 15 01 15 02')))).toMatchObject({ reason: 'duplicate-key', kind: 'request', messageId: 7 })
    // in an indefinite-length map too
    expect(failureOf(decodeMessage(bytes('a5 01 07 02 02 03 01 04 02 05 bf 15 01 15 02 ff')))).toMatchObject({ reason: 'duplicate-key', messageId: 7 })
  })

  it('gives id 0 when key 1 itself is repeated: which of the ids is unknown', () => {
    expect(failureOf(decodeMessage(bytes('a5 01 07 01 08 02 01 03 01 04 02')))).toMatchObject({ reason: 'duplicate-key', messageId: 0 })
    // The reference's own fixture (codec_test.go): {1: 12345, 1: 2, 2: 3}
    expect(failureOf(decodeMessage(bytes('a3 01 19 30 39 01 02 02 03')))).toMatchObject({ reason: 'duplicate-key', messageId: 0 })
  })

  it('refuses NaN, +Infinity and -Infinity in half, single and double precision (TC-CBOR-6, 7)', () => {
    const encodings = [
      'f9 7e 00',
      'f9 7c 00',
      'f9 fc 00',
      'fa 7f c0 00 00',
      'fa 7f 80 00 00',
      'fa ff 80 00 00',
      'fb 7f f8 00 00 00 00 00 00',
      'fb 7f f0 00 00 00 00 00 00',
      'fb ff f0 00 00 00 00 00 00',
    ]
    for (const float of encodings) {
      const decoded = decodeMessage(bytes(`a5 01 07 02 02 03 01 04 02 05 a1 15 ${float}`))
      expect(failureOf(decoded), float).toMatchObject({ reason: 'not-finite', kind: 'request', messageId: 7 })
    }
    // At the top level too: {1: 7, 2: 0, 9: NaN}
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 09 f9 7e 00')))).toMatchObject({ reason: 'not-finite', kind: 'response', messageId: 7 })
  })

  it('refuses a text top-level key (TC-CBOR-5), and a negative one', () => {
    // The reference's fixture: {"a": 1}
    expect(decodeMessage(bytes('a1 61 61 01'))).toEqual({ ok: false, reason: 'non-integer-key', detail: expect.any(String), kind: null, messageId: 0 })
    expect(failureOf(decodeMessage(bytes('a2 01 07 61 61 01')))).toMatchObject({ reason: 'non-integer-key', kind: null, messageId: 7 })
    expect(failureOf(decodeMessage(bytes('a2 01 07 20 01')))).toMatchObject({ reason: 'non-integer-key', messageId: 7 })
    expect(failureOf(decodeMessage(bytes('a2 01 07 f9 3e 00 01')))).toMatchObject({ reason: 'non-integer-key', messageId: 7 }) // key 1.5
  })

  it('ignores unknown keys (TC-CBOR-4, TC-COMPAT-1)', () => {
    // {1: 7, 2: 1, 3: 1, 4: 2, 99: "x", 200: 1}
    expect(messageOf(decodeMessage(bytes('a6 01 07 02 01 03 01 04 02 18 63 61 78 18 c8 01')))).toEqual({ kind: 'request', messageId: 7, operation: 1, endpointId: 1, featureId: 2 })
    // Keys out of order are fine (TC-CBOR-2): {4: 2, 1: 7, 3: 1, 2: 1}
    expect(messageOf(decodeMessage(bytes('a4 04 02 01 07 03 01 02 01')))).toEqual({ kind: 'request', messageId: 7, operation: 1, endpointId: 1, featureId: 2 })
    // A key beyond 2^53 is an integer, and unknown.
    expect(messageOf(decodeMessage(bytes('a3 01 07 02 00 1b 00 20 00 00 00 00 00 01 00')))).toEqual({ kind: 'response', messageId: 7, status: 0 })
  })

  it('refuses what is no CBOR, or more than one item', () => {
    const malformed = ['', 'a5 01 07 02', 'a1 01 03 00', 'ff', '1c', 'a3 01 07 02 00 03 62 61', '5f 41 01 ff', '7f 61 61 ff']
    for (const hex of malformed) {
      expect(decodeMessage(bytes(hex)), hex).toEqual({ ok: false, reason: 'malformed-cbor', detail: expect.any(String), kind: null, messageId: 0 })
    }
  })

  it('refuses a top level that is no map', () => {
    for (const hex of ['83 01 02 03', '01', '61 61', 'f6', '80']) {
      expect(decodeMessage(bytes(hex)), hex).toEqual({ ok: false, reason: 'not-a-map', detail: expect.any(String), kind: null, messageId: 0 })
    }
  })

  it('refuses undefined and integers not in their shortest form, learning the id', () => {
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 03 f7')))).toMatchObject({ reason: 'malformed-cbor', kind: 'response', messageId: 7 })
    // {1: 7 written as 18 07, 2: 0}
    expect(failureOf(decodeMessage(bytes('a2 01 18 07 02 00')))).toMatchObject({ reason: 'malformed-cbor', kind: 'response', messageId: 7 })
  })

  it('refuses text that is not UTF-8', () => {
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 03 a1 01 62 c3 28')))).toMatchObject({ reason: 'malformed-cbor' })
    // U+FFFD written as such is fine.
    expect(messageOf(decodeMessage(bytes('a3 01 07 02 00 03 a1 01 63 ef bf bd')))).toEqual({ kind: 'response', messageId: 7, status: 0, payload: new Map([[1, '\ufffd']]) })
  })

  it('takes indefinite-length arrays and maps, as the reference decoder does', () => {
    // {_ 1: 7, 2: 1, 3: 1, 4: 2, 5: {_ 1: [_ 1, 2]}}
    expect(messageOf(decodeMessage(bytes('bf 01 07 02 01 03 01 04 02 05 bf 01 9f 01 02 ff ff ff')))).toEqual({
      kind: 'request',
      messageId: 7,
      operation: 1,
      endpointId: 1,
      featureId: 2,
      payload: new Map([[1, [1, 2]]]),
    })
  })

  it('takes nesting to 32 levels and refuses 33, even 8,000 deep, without running out of stack', () => {
    // The message's map is level 1; 31 arrays under it reach 32.
    expect(decodeMessage(requestWith('81'.repeat(30) + '80')).ok).toBe(true)
    expect(failureOf(decodeMessage(requestWith('81'.repeat(31) + '80')))).toMatchObject({ reason: 'malformed-cbor' })
    expect(failureOf(decodeMessage(new Uint8Array(MASH_MAX_MESSAGE_BYTES).fill(0x81)))).toMatchObject({ reason: 'malformed-cbor' })
  })

  it('drops tag wrappers and reads bignums as integers (message-framing.md §3.6)', () => {
    // {1: 1(1577836800)} epoch time: the number; 2(h'ffffffffffffffff') = 2^64 - 1; 3(h'00') = -1
    expect(messageOf(decodeMessage(bytes('a3 01 07 02 00 03 a1 01 c1 1a 5e 0b e1 00')))).toMatchObject({ payload: new Map([[1, 1_577_836_800]]) })
    expect(messageOf(decodeMessage(bytes('a3 01 07 02 00 03 a1 01 c2 48 ff ff ff ff ff ff ff ff')))).toMatchObject({ payload: new Map([[1, 2n ** 64n - 1n]]) })
    expect(messageOf(decodeMessage(bytes('a3 01 07 02 00 03 a1 01 c3 41 00')))).toMatchObject({ payload: new Map([[1, -1]]) })
    // A bignum must wrap bytes; a tag around a map still counts as a level and holds no duplicates.
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 03 a1 01 c2 01')))).toMatchObject({ reason: 'malformed-cbor' })
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 03 d8 64 a2 01 01 01 02')))).toMatchObject({ reason: 'duplicate-key', messageId: 7 })
  })

  it('reads bignums of up to 64 bits exactly, numbers up to 2^53 - 1 and bigints beyond, leading zeros skipped', () => {
    const cases: [string, number | bigint][] = [
      ['c2 40', 0],
      ['c3 40', -1],
      ['c2 41 17', 23],
      ['c2 44 ff ff ff ff', 0xffff_ffff],
      ['c2 45 01 00 00 00 00', 2 ** 32],
      ['c2 47 1f ff ff ff ff ff ff', Number.MAX_SAFE_INTEGER],
      ['c2 47 20 00 00 00 00 00 00', 2n ** 53n],
      ['c3 47 1f ff ff ff ff ff fd', -Number.MAX_SAFE_INTEGER + 1],
      ['c3 47 1f ff ff ff ff ff fe', -Number.MAX_SAFE_INTEGER],
      ['c3 47 1f ff ff ff ff ff ff', -(2n ** 53n)],
      ['c2 48 01 02 03 04 05 06 07 08', 0x0102030405060708n],
      ['c2 48 ff ff ff ff ff ff ff ff', 2n ** 64n - 1n],
      ['c3 48 ff ff ff ff ff ff ff ff', -(2n ** 64n)],
      ['c2 4a 00 00 ff ff ff ff ff ff ff ff', 2n ** 64n - 1n],
      ['c2 4c 00 00 00 00 00 00 00 00 00 00 00 05', 5],
    ]
    for (const [hex, value] of cases) {
      expect(messageOf(decodeMessage(bytes(`a3 01 07 02 00 03 a1 01 ${hex}`))), hex).toEqual({ kind: 'response', messageId: 7, status: 0, payload: new Map([[1, value]]) })
    }
  })

  it('refuses a bignum beyond 64 bits as a field no MASH value fits (the reference has no Go int for it), learning the id', () => {
    // 2(h'010000000000000000') = 2^64; 3(h'010000000000000000') = -2^64 - 1
    for (const hex of ['c2 49 01 00 00 00 00 00 00 00 00', 'c3 49 01 00 00 00 00 00 00 00 00']) {
      expect(decodeMessage(bytes(`a3 01 07 02 00 03 a1 01 ${hex}`)), hex).toEqual({
        ok: false,
        reason: 'invalid-field',
        detail: expect.stringContaining('a bignum of 9 bytes is beyond 64 bits'),
        kind: 'response',
        messageId: 7,
      })
    }
    // 8,000 bytes of magnitude: refused in about the time a message of 8,000 bytes takes, not the 10 ms a
    // byte-by-byte bigint took.
    const large = new Uint8Array(12 + 8000).fill(0xff)
    large.set(bytes('a3 01 07 02 00 03 a1 01 c2 59 1f 40'))
    expect(failureOf(decodeMessage(large))).toMatchObject({ reason: 'invalid-field', kind: 'response', messageId: 7 })
  })

  it('refuses nested map keys that are neither integers nor text', () => {
    for (const key of ['f5', 'f6', '41 01', '80', 'a0', 'fb 3f f8 00 00 00 00 00 00', '1b 00 20 00 00 00 00 00 01']) {
      expect(failureOf(decodeMessage(bytes(`a3 01 07 02 00 03 a1 ${key} 01`))), key).toMatchObject({ reason: 'invalid-field', kind: 'response', messageId: 7 })
    }
  })

  it('takes 8192 bytes and refuses 8193 as too large, before decoding anything', () => {
    // {1: 0, 2: 1, 3: 1, 4: 1, 5: {1: h'…'}}: 15 bytes of head and 8177 (0x1ff1) of byte string.
    const largest = new Uint8Array(MASH_MAX_MESSAGE_BYTES)
    largest.set(bytes('a5 01 00 02 01 03 01 04 01 05 a1 01 59 1f f1'))
    const decoded = messageOf(decodeMessage(largest)) as { kind: string; changes: ReadonlyMap<number, MashValue> }
    expect(decoded.kind).toBe('notification')
    expect((decoded.changes.get(1) as Uint8Array).byteLength).toBe(8177)
    const tooLarge = new Uint8Array(MASH_MAX_MESSAGE_BYTES + 1)
    tooLarge.set(largest)
    expect(decodeMessage(tooLarge)).toEqual({ ok: false, reason: 'too-large', detail: expect.stringContaining('8193'), kind: null, messageId: 0 })
  })

  it('throws only for an argument that is no Uint8Array', () => {
    expect(() => decodeMessage('a0' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })
})

describe('classification, in the reference PeekMessageType order', () => {
  const rows: { rule: string; hex: string; kind: MashMessage['kind']; ok: boolean }[] = [
    { rule: 'key 1 = 0 → notification', hex: 'a5 01 00 02 01 03 01 04 02 05 a0', kind: 'notification', ok: true },
    { rule: 'key 1 absent → notification', hex: 'a4 02 01 03 01 04 02 05 a0', kind: 'notification', ok: true },
    { rule: 'key 1 = 2^32 wraps to 0 → notification, which then fails', hex: 'a4 01 1b 00 00 00 01 00 00 00 00 02 01 03 01 04 02', kind: 'notification', ok: false },
    { rule: 'key 3 a map → response, though key 2 looks like an operation', hex: 'a3 01 07 02 01 03 a0', kind: 'response', ok: true },
    { rule: 'key 1 in 1..3, keys 3 and 4 absent → control', hex: 'a2 01 03 02 01', kind: 'control', ok: true },
    { rule: 'control with seq > 4 is still control (checked before the status rule)', hex: 'a2 01 01 02 19 01 2c', kind: 'control', ok: true },
    { rule: 'control with an unknown key 5 is still control', hex: 'a3 01 01 02 01 05 01', kind: 'control', ok: true },
    { rule: 'key 1 = 2^32 + 1 wraps to 1 → control, which then fails (type out of range)', hex: 'a2 01 1b 00 00 00 01 00 00 00 01 02 01', kind: 'control', ok: false },
    { rule: 'key 1 = 257 does not wrap (uint32) → not control: a response', hex: 'a2 01 19 01 01 02 01', kind: 'response', ok: true },
    { rule: 'key 2 > 4 → response with status > 4 and no payload', hex: 'a2 01 07 02 05', kind: 'response', ok: true },
    { rule: 'key 2 > 4 → response, though keys 3 and 4 are there', hex: 'a4 01 07 02 05 03 01 04 02', kind: 'response', ok: true },
    { rule: 'key 2 in 1..4 with endpoint > 0 → request', hex: 'a3 01 07 02 01 03 01', kind: 'request', ok: true },
    { rule: 'key 2 in 1..4 with feature > 0 → request', hex: 'a3 01 07 02 01 04 02', kind: 'request', ok: true },
    { rule: 'key 2 in 1..4, endpoint 0, feature 0, key 4 present → request', hex: 'a5 01 07 02 03 03 00 04 00 05 a1 01 19 13 89', kind: 'request', ok: true },
    { rule: 'key 2 = 260 wraps to 4 → request, which then fails (operation out of range)', hex: 'a4 01 07 02 19 01 04 03 01 04 02', kind: 'request', ok: false },
    { rule: 'key 2 absent, keys 3 and 4 present → request, which validation refuses', hex: 'a3 01 07 03 01 04 02', kind: 'request', ok: false },
    { rule: 'key 2 = 0, keys 3 and 4 present → request, which validation refuses', hex: 'a4 01 07 02 00 03 01 04 02', kind: 'request', ok: false },
    { rule: 'otherwise → response: {1: 7, 2: 0}', hex: 'a2 01 07 02 00', kind: 'response', ok: true },
    { rule: 'otherwise → response: operation 1 to endpoint 0 without key 4 reads as status 1', hex: 'a3 01 07 02 01 03 00', kind: 'response', ok: true },
    { rule: 'otherwise → response: key 1 alone', hex: 'a1 01 07', kind: 'response', ok: true },
  ]

  for (const { rule, hex, kind, ok } of rows) {
    it(rule, () => {
      const decoded = decodeMessage(bytes(hex))
      expect(decoded.ok).toBe(ok)
      if (decoded.ok) expect(decoded.message.kind).toBe(kind)
      else expect(decoded).toMatchObject({ reason: 'invalid-field', kind })
    })
  }

  it('reads the fields of each kind as the reference structs do: absent is 0', () => {
    expect(messageOf(decodeMessage(bytes('a4 02 01 03 01 04 02 05 a0')))).toEqual({ kind: 'notification', subscriptionId: 1, endpointId: 1, featureId: 2, changes: new Map() })
    expect(messageOf(decodeMessage(bytes('a0')))).toEqual({ kind: 'notification', subscriptionId: 0, endpointId: 0, featureId: 0, changes: new Map() })
    expect(messageOf(decodeMessage(bytes('a5 01 00 02 01 03 01 04 02 05 f6')))).toMatchObject({ kind: 'notification', changes: new Map() })
    expect(messageOf(decodeMessage(bytes('a3 01 07 02 01 04 02')))).toEqual({ kind: 'request', messageId: 7, operation: 1, endpointId: 0, featureId: 2 })
    expect(messageOf(decodeMessage(bytes('a1 01 07')))).toEqual({ kind: 'response', messageId: 7, status: 0 })
    expect(messageOf(decodeMessage(bytes('a3 01 07 02 05 03 01')))).toEqual({ kind: 'response', messageId: 7, status: 5, payload: 1 })
    expect(messageOf(decodeMessage(bytes('a1 01 03')))).toEqual({ kind: 'control', type: 3, seq: 0 })
  })

  it('refuses fields of the wrong type or range with the kind and the id learned (TC-INT-4)', () => {
    const cases: [string, MashMessage['kind'], number][] = [
      ['a4 01 07 02 01 03 19 01 00 04 02', 'request', 7], // endpoint 256
      ['a4 01 07 02 01 03 61 78 04 02', 'request', 7], // endpoint "x"
      ['a4 01 07 02 01 03 01 04 20', 'request', 7], // feature -1
      ['a2 01 07 02 19 01 00', 'response', 7], // status 256 (wraps to 0: not > 4)
      ['a2 01 07 02 61 61', 'response', 7], // status "a"
      ['a5 01 00 02 01 03 01 04 02 05 a1 61 61 01', 'notification', 0], // a text attribute id
      ['a5 01 00 02 01 03 01 04 02 05 a1 1a 00 01 00 00 01', 'notification', 0], // attribute id 65536
      ['a5 01 00 02 01 03 01 04 02 05 81 01', 'notification', 0], // changes an array
      ['a5 01 00 02 1b 00 00 00 01 00 00 00 00 03 01 04 02 05 a0', 'notification', 0], // subscription id 2^32
      ['a2 01 01 02 1b 00 00 00 01 00 00 00 00', 'control', 1], // seq 2^32 (key 1 is the type, learned as an id all the same)
      ['a2 01 01 02 20', 'control', 1], // seq -1
    ]
    for (const [hex, kind, messageId] of cases) {
      expect(failureOf(decodeMessage(bytes(hex))), hex).toMatchObject({ reason: 'invalid-field', kind, messageId })
    }
    // The largest id is fine.
    expect(messageOf(decodeMessage(bytes('a5 01 1a ff ff ff ff 02 01 03 01 04 02 05 f9 3c 00')))).toMatchObject({ kind: 'request', messageId: 0xffff_ffff, payload: 1 })
  })
})

describe('encodeMessage() checks', () => {
  const request = { kind: 'request', messageId: 7, operation: 1, endpointId: 1, featureId: 2 } as const

  it('range-checks every field', () => {
    const outOfRange: MashMessage[] = [
      { ...request, messageId: 0 },
      { ...request, messageId: 2 ** 32 },
      { ...request, messageId: 1.5 },
      { ...request, operation: 0 },
      { ...request, operation: 5 },
      { ...request, endpointId: 256 },
      { ...request, featureId: -1 },
      { kind: 'response', messageId: -1, status: 0 },
      { kind: 'response', messageId: 7, status: 256 },
      { kind: 'notification', subscriptionId: 2 ** 32, endpointId: 1, featureId: 1, changes: new Map() },
      { kind: 'notification', subscriptionId: 1, endpointId: 1, featureId: 1, changes: new Map([[65_536, 1]]) },
      { kind: 'control', type: 0, seq: 0 },
      { kind: 'control', type: 4, seq: 0 },
      { kind: 'control', type: 1, seq: 2 ** 32 },
    ]
    for (const message of outOfRange) {
      expect(() => encodeMessage(message), JSON.stringify(message, (_k, v: unknown) => (v instanceof Map ? [...v] : v))).toThrow(
        expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }),
      )
    }
    expect(() => encodeMessage({ ...request, messageId: '7' as unknown as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => encodeMessage({ kind: 'other' } as unknown as MashMessage)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => encodeMessage(null as unknown as MashMessage)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => encodeMessage({ kind: 'notification', subscriptionId: 1, endpointId: 1, featureId: 1, changes: {} as unknown as Map<number, MashValue> })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
    )
    // The edges are taken.
    expect(() => encodeMessage({ ...request, messageId: 0xffff_ffff, endpointId: 255, featureId: 0 })).not.toThrow()
    expect(() => encodeMessage({ kind: 'control', type: 2, seq: 0xffff_ffff })).not.toThrow()
  })

  it('refuses NaN, ±Infinity, undefined and things MASH has no form for, saying where', () => {
    const bad: [MashValue, string][] = [
      [new Map([[1, NaN]]), '.get(1)'],
      [new Map([[1, [Infinity]]]), '.get(1)[0]'],
      [[1, -Infinity], '[1]'],
      [new Map([[1, undefined as unknown as MashValue]]), '.get(1)'],
      [[1, , 3] as unknown as MashValue, '[1]'], // a hole is undefined
      [new Map([[1, { a: 1 } as unknown as MashValue]]), '.get(1)'],
      [new Map([[1, new Date(0) as unknown as MashValue]]), '.get(1)'],
      [new Map([[1, Uint16Array.of(1) as unknown as MashValue]]), '.get(1)'],
      [new Map([[1.5, 1]]), ''],
      [new Map([[2n ** 60n as unknown as number, 1]]), ''],
    ]
    for (const [payload, where] of bad) {
      let error: (Error & { code?: string }) | undefined
      try {
        encodeMessage({ ...request, payload })
      } catch (caught) {
        error = caught as Error & { code?: string }
      }
      expect(error?.code, where).toBe('ERR_INVALID_ARG_VALUE')
      expect(error?.name).toBe('TypeError')
      expect(error?.message).toContain(`"payload"${where} of a MASH request`)
    }
    const plain = (() => {
      try {
        encodeMessage({ ...request, payload: { 1: [1] } as unknown as MashValue })
      } catch (caught) {
        return (caught as Error).message
      }
      return ''
    })()
    expect(plain).toContain('use a Map')
    expect(() => encodeMessage({ ...request, payload: new Map([[1, 2n ** 64n]]) })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })

  it('refuses nesting past 32 levels, a cycle included', () => {
    const arrays = (count: number): MashValue => (count === 1 ? [] : [arrays(count - 1)])
    // The message's map is level 1, the payload level 2: 31 arrays reach level 32.
    expect(hexOf(encodeMessage({ ...request, payload: arrays(31) }))).toBe(hexOf(requestWith('81'.repeat(30) + '80')))
    expect(() => encodeMessage({ ...request, payload: arrays(32) })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    const cycle = new Map<number, MashValue>()
    cycle.set(1, cycle)
    expect(() => encodeMessage({ ...request, payload: cycle })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })

  it('refuses a message over 8192 bytes (ERR_MESSAGE_TOO_LARGE)', () => {
    const text = 'x'.repeat(3000)
    expect(() => encodeMessage({ ...request, payload: [text, text] })).not.toThrow()
    expect(() => encodeMessage({ ...request, payload: [text, text, text] })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_MESSAGE_TOO_LARGE' }))
  })
})

describe('sender limits', () => {
  const request = { kind: 'request', messageId: 7, operation: 2, endpointId: 1, featureId: 2 } as const
  const encodeWith = (payload: MashValue): Uint8Array => encodeMessage({ ...request, payload })
  const refusal = (limit: number) => expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining(`limit of ${limit}`) })

  it('takes 1000 array elements and refuses 1001', () => {
    expect(MASH_SENDER_LIMITS.arrayElements).toBe(1000)
    const elements = Array.from({ length: 1000 }, () => 0)
    expect(encodeWith(elements).byteLength).toBe(9 + 1 + 3 + 1000)
    expect(() => encodeWith([...elements, 0])).toThrow(refusal(1000))
  })

  it('takes 500 map keys and refuses 501', () => {
    const keys = (count: number) => new Map(Array.from({ length: count }, (_, at): [number, MashValue] => [at, 0]))
    expect(() => encodeWith(keys(500))).not.toThrow()
    expect(() => encodeWith(keys(501))).toThrow(refusal(500))
    expect(() => encodeMessage({ kind: 'notification', subscriptionId: 1, endpointId: 1, featureId: 1, changes: keys(501) as Map<number, MashValue> })).toThrow(refusal(500))
  })

  it('takes a 4000-byte string or byte string and refuses 4001, counting UTF-8 bytes', () => {
    expect(() => encodeWith('x'.repeat(4000))).not.toThrow()
    expect(() => encodeWith('x'.repeat(4001))).toThrow(expect.objectContaining({ message: expect.stringContaining('4001 UTF-8 bytes') }))
    expect(() => encodeWith(new Uint8Array(4000))).not.toThrow()
    expect(() => encodeWith(new Uint8Array(4001))).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('4001 bytes') }))
    // 1334 euro signs are 4002 bytes in 1334 characters.
    expect(() => encodeWith('€'.repeat(1333) + 'x')).not.toThrow()
    expect(() => encodeWith('€'.repeat(1334))).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    // A text map key counts as a string.
    expect(() => encodeWith(new Map([['k'.repeat(4001), 1]]))).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })

  it('applies the limits at any depth, saying where', () => {
    const deep = new Map<number, MashValue>([[3, [new Map([[9, Array.from({ length: 1001 }, () => 1)]])]]])
    expect(() => encodeWith(deep)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"payload".get(3)[0].get(9) of a MASH request') }))
    expect(() => encodeWith([[['y'.repeat(4001)]]])).toThrow(expect.objectContaining({ message: expect.stringContaining('"payload"[0][0][0]') }))
  })
})

describe('payload helpers', () => {
  it('names statuses', () => {
    expect(mashStatusName(0)).toBe('SUCCESS')
    expect(mashStatusName(5)).toBe('INVALID_PARAMETER')
    expect(mashStatusName(13)).toBe('RESOURCE_EXHAUSTED')
    expect(mashStatusName(42)).toBe('status 42')
  })

  describe('read', () => {
    it('builds {1: [ids]}, and {} for all', () => {
      expect(readPayload([1, 2, 3])).toEqual(new Map([[1, [1, 2, 3]]]))
      expect(readPayload([])).toEqual(new Map())
      expect(() => readPayload([65_536])).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
      expect(() => readPayload(7 as unknown as number[])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    })

    it('reads {1: [ids]}, a bare array, {} and no payload (empty: all)', () => {
      expect(parseReadPayload(new Map([[1, [1, 2, 3]]]))).toEqual({ ok: true, value: [1, 2, 3] })
      expect(parseReadPayload([4, 5])).toEqual({ ok: true, value: [4, 5] })
      expect(parseReadPayload(new Map())).toEqual({ ok: true, value: [] })
      expect(parseReadPayload(new Map([[1, null]]))).toEqual({ ok: true, value: [] })
      expect(parseReadPayload(undefined)).toEqual({ ok: true, value: [] })
      expect(parseReadPayload(null)).toEqual({ ok: true, value: [] })
      expect(parseReadPayload([])).toEqual({ ok: true, value: [] })
    })

    it('refuses a payload of the wrong shape (INVALID_PARAMETER) or an id out of range (CONSTRAINT_ERROR)', () => {
      expect(parseReadPayload('all')).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      expect(parseReadPayload(new Map([[1, 3]]))).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      expect(parseReadPayload([1, 'two'])).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      expect(parseReadPayload([1, 1.5])).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      expect(parseReadPayload([65_536])).toMatchObject({ ok: false, status: MashStatus.CONSTRAINT_ERROR, detail: expect.stringContaining('Value out of range for field attributeId') })
      expect(parseReadPayload([-1])).toMatchObject({ ok: false, status: MashStatus.CONSTRAINT_ERROR })
    })

    it('reads what the wire gave: the vector decoded', () => {
      const request = messageOf(decodeMessage(bytes('a5 01 07 02 01 03 01 04 02 05 a1 01 83 01 02 03'))) as { payload: MashValue }
      expect(parseReadPayload(request.payload)).toEqual({ ok: true, value: [1, 2, 3] })
    })
  })

  describe('write', () => {
    it('reads attribute id → value, values of any kind, null kept', () => {
      const payload = new Map<number, MashValue>([
        [21, 6_000_000],
        [22, null],
        [23, new Map([['x', 1]])],
      ])
      expect(parseWritePayload(payload)).toEqual({ ok: true, value: payload })
    })

    it('leaves text keys out as the reference does, and refuses a write with nothing left', () => {
      expect(parseWritePayload(new Map<number | string, MashValue>([[21, 1], ['name', 2]]))).toEqual({ ok: true, value: new Map([[21, 1]]) })
      expect(parseWritePayload(new Map([['name', 2]]))).toEqual({ ok: false, status: MashStatus.INVALID_PARAMETER, detail: 'no attributes to write' })
      expect(parseWritePayload(new Map())).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
    })

    it('refuses no payload or one that is no map (INVALID_PARAMETER), an id out of range (CONSTRAINT_ERROR)', () => {
      for (const payload of [undefined, null, [1, 2], 5, 'x']) {
        expect(parseWritePayload(payload), String(payload)).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      }
      expect(parseWritePayload(new Map([[65_536, 1]]))).toMatchObject({ ok: false, status: MashStatus.CONSTRAINT_ERROR })
      expect(parseWritePayload(new Map([[-1, 1]]))).toMatchObject({ ok: false, status: MashStatus.CONSTRAINT_ERROR })
    })
  })

  describe('subscribe and unsubscribe', () => {
    it('builds {1: ids, 2: min, 3: max}, each key only when given, an explicit 0 kept', () => {
      expect(subscribePayload({ attributeIds: [1, 2, 3], minIntervalMs: 1000, maxIntervalMs: 60_000 })).toEqual(
        new Map<number, MashValue>([
          [1, [1, 2, 3]],
          [2, 1000],
          [3, 60_000],
        ]),
      )
      expect(subscribePayload({ attributeIds: [] })).toEqual(new Map())
      expect(subscribePayload({})).toEqual(new Map())
      expect(subscribePayload({ minIntervalMs: 0, maxIntervalMs: undefined })).toEqual(new Map([[2, 0]]))
      expect(() => subscribePayload({ minIntervalMs: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
      expect(() => subscribePayload({ maxIntervalMs: 2 ** 32 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
      expect(() => subscribePayload({ attributeIds: [70_000] })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    })

    it('reads ids and intervals, absent apart from an explicit 0', () => {
      const sent = subscribePayload({ attributeIds: [1, 2, 3], minIntervalMs: 1000, maxIntervalMs: 60_000 })
      expect(parseSubscribePayload(sent)).toEqual({ ok: true, value: { attributeIds: [1, 2, 3], minIntervalMs: 1000, maxIntervalMs: 60_000 } })
      expect(parseSubscribePayload(new Map([[2, 0]]))).toEqual({ ok: true, value: { attributeIds: [], minIntervalMs: 0, maxIntervalMs: undefined } })
      expect(parseSubscribePayload(new Map())).toEqual({ ok: true, value: { attributeIds: [], minIntervalMs: undefined, maxIntervalMs: undefined } })
      expect(parseSubscribePayload(undefined)).toEqual({ ok: true, value: { attributeIds: [], minIntervalMs: undefined, maxIntervalMs: undefined } })
      expect(parseSubscribePayload(new Map([[3, 0xffff_ffff]]))).toMatchObject({ ok: true, value: { maxIntervalMs: 0xffff_ffff } })
    })

    it('refuses a subscribe payload of the wrong shape or range', () => {
      expect(parseSubscribePayload([1, 2])).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      expect(parseSubscribePayload(new Map([[1, 'all']]))).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      expect(parseSubscribePayload(new Map([[2, 'soon']]))).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      expect(parseSubscribePayload(new Map([[2, 2.5]]))).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      expect(parseSubscribePayload(new Map([[3, 2 ** 32]]))).toMatchObject({ ok: false, status: MashStatus.CONSTRAINT_ERROR })
      expect(parseSubscribePayload(new Map([[1, [65_536]]]))).toMatchObject({ ok: false, status: MashStatus.CONSTRAINT_ERROR })
    })

    it('builds and reads an unsubscribe {1: subscriptionId}', () => {
      expect(unsubscribePayload(5001)).toEqual(new Map([[1, 5001]]))
      expect(() => unsubscribePayload(0)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
      expect(parseUnsubscribePayload(new Map([[1, 5001]]))).toEqual({ ok: true, value: 5001 })
    })

    it('refuses an unsubscribe without id: INVALID_PARAMETER "subscription ID required"', () => {
      for (const payload of [undefined, null, new Map(), new Map([[1, 0]]), new Map([[1, 'x']]), [5001]]) {
        expect(parseUnsubscribePayload(payload)).toEqual({ ok: false, status: MashStatus.INVALID_PARAMETER, detail: 'subscription ID required' })
      }
      expect(parseUnsubscribePayload(new Map([[1, 2 ** 32]]))).toMatchObject({ ok: false, status: MashStatus.CONSTRAINT_ERROR })
    })

    it('builds and reads a subscribe response {1: id, 2: current values}, key 2 left out when empty', () => {
      const values = new Map<number, MashValue>([
        [1, 5_000_000],
        [2, null],
      ])
      const payload = subscribeResponsePayload(5001, values)
      expect(payload).toEqual(
        new Map<number, MashValue>([
          [1, 5001],
          [2, values],
        ]),
      )
      expect(parseSubscribeResponsePayload(payload)).toEqual({ ok: true, value: { subscriptionId: 5001, currentValues: values } })
      expect(subscribeResponsePayload(7, new Map())).toEqual(new Map([[1, 7]]))
      expect(parseSubscribeResponsePayload(new Map([[1, 7]]))).toEqual({ ok: true, value: { subscriptionId: 7, currentValues: new Map() } })
      expect(() => subscribeResponsePayload(0, new Map())).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
      expect(() => subscribeResponsePayload(1, new Map([[70_000, 1]]))).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    })

    it('refuses a malformed subscribe response', () => {
      for (const payload of [undefined, [1], new Map(), new Map([[1, 'x']]), new Map<number, MashValue>([[1, 1], [2, [1]]])]) {
        expect(parseSubscribeResponsePayload(payload)).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      }
      expect(parseSubscribeResponsePayload(new Map([[1, 0]]))).toMatchObject({ ok: false, status: MashStatus.CONSTRAINT_ERROR })
      expect(parseSubscribeResponsePayload(new Map<number, MashValue>([[1, 1], [2, new Map([[65_536, 1]])]]))).toMatchObject({ ok: false, status: MashStatus.CONSTRAINT_ERROR })
    })
  })

  describe('invoke', () => {
    it('builds {1: commandId, 2: params} from a Map or an object, key 2 left out without parameters', () => {
      expect(invokePayload(1, { limit: 6_000_000, cause: 2 })).toEqual(
        new Map<number, MashValue>([
          [1, 1],
          [
            2,
            new Map<string, MashValue>([
              ['limit', 6_000_000],
              ['cause', 2],
            ]),
          ],
        ]),
      )
      expect(invokePayload(1, new Map([['on', true]]))).toEqual(new Map<number, MashValue>([[1, 1], [2, new Map([['on', true]])]]))
      expect(invokePayload(3)).toEqual(new Map([[1, 3]]))
      expect(invokePayload(3, {})).toEqual(new Map([[1, 3]]))
      expect(() => invokePayload(256)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
      expect(() => invokePayload(1, new Map([[1, 1]]) as unknown as Map<string, MashValue>)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
      expect(() => invokePayload(1, [1] as unknown as Record<string, MashValue>)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    })

    it('reads the command and its text-named parameters, dropping other keys as the reference device does', () => {
      const sent = invokePayload(1, { limit: 6_000_000 })
      expect(parseInvokePayload(sent)).toEqual({ ok: true, value: { commandId: 1, params: new Map([['limit', 6_000_000]]) } })
      const mixed = new Map<number, MashValue>([
        [1, 4],
        [
          2,
          new Map<number | string, MashValue>([
            [1, 'dropped'],
            ['kept', 2],
          ]),
        ],
      ])
      expect(parseInvokePayload(mixed)).toEqual({ ok: true, value: { commandId: 4, params: new Map([['kept', 2]]) } })
      expect(parseInvokePayload(new Map([[1, 2]]))).toEqual({ ok: true, value: { commandId: 2, params: new Map() } })
    })

    it('refuses no payload (INVALID_PARAMETER), no command (INVALID_COMMAND), a bad one (INVALID_PARAMETER, CONSTRAINT_ERROR)', () => {
      expect(parseInvokePayload(undefined)).toEqual({ ok: false, status: MashStatus.INVALID_PARAMETER, detail: 'command payload required' })
      expect(parseInvokePayload([1])).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      expect(parseInvokePayload(new Map())).toMatchObject({ ok: false, status: MashStatus.INVALID_COMMAND })
      expect(parseInvokePayload(new Map([[1, 'on']]))).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
      expect(parseInvokePayload(new Map([[1, 256]]))).toMatchObject({ ok: false, status: MashStatus.CONSTRAINT_ERROR })
      expect(parseInvokePayload(new Map<number, MashValue>([[1, 1], [2, [1, 2]]]))).toMatchObject({ ok: false, status: MashStatus.INVALID_PARAMETER })
    })
  })

  describe('error text', () => {
    it('builds and reads {1: text}', () => {
      expect(errorPayload('feature not found')).toEqual(new Map([[1, 'feature not found']]))
      expect(errorText(errorPayload('feature not found'))).toBe('feature not found')
      expect(errorPayload('')).toEqual(new Map())
      for (const payload of [undefined, null, new Map(), new Map([[1, 5]]), 'text']) expect(errorText(payload)).toBeUndefined()
    })

    it('cuts text past the sender limit at a character, so that the answer still goes', () => {
      const long = errorText(errorPayload('€'.repeat(2000)))!
      expect(Buffer.byteLength(long)).toBeLessThanOrEqual(4000)
      expect(long.endsWith('€…')).toBe(true)
      expect(() => encodeMessage({ kind: 'response', messageId: 9, status: 5, payload: errorPayload('x'.repeat(10_000)) })).not.toThrow()
    })
  })
})

describe('canonical key order, against its definition', () => {
  // The oracle: each key encoded alone (cborg writes integers and text in their one shortest form), then
  // shorter encodings first and equal lengths bytewise. Slow, and plainly the definition.
  function definitionOrder(key1: number | string, key2: number | string): number {
    const bytes1 = encode(key1)
    const bytes2 = encode(key2)
    if (bytes1.length !== bytes2.length) return bytes1.length - bytes2.length
    for (let at = 0; at < bytes1.length; at++) {
      if (bytes1[at] !== bytes2[at]) return bytes1[at]! - bytes2[at]!
    }
    return 0
  }

  function head(major: number, count: number): number[] {
    if (count < 24) return [(major << 5) | count]
    if (count < 256) return [(major << 5) | 24, count]
    return [(major << 5) | 25, count >> 8, count & 0xff]
  }

  /** The canonical CBOR of a value of maps, arrays, integers and text, maps ordered by the oracle. */
  function expectedBytes(value: MashValue): number[] {
    if (value instanceof Map) {
      const keys = [...value.keys()].sort(definitionOrder)
      return [...head(5, keys.length), ...keys.flatMap((key) => [...encode(key), ...expectedBytes(value.get(key)!)])]
    }
    if (Array.isArray(value)) return [...head(4, value.length), ...value.flatMap((item: MashValue) => expectedBytes(item))]
    return [...encode(value)]
  }

  // Keys at the edges of each head size, both signs, and text of one byte length in ways UTF-16 orders
  // otherwise ('\uffff' + 'a' and '😀' are 4 bytes each: ef bf bf 61 < f0 9f 98 80, though d83d < ffff).
  const integerKeys = [0, 1, 23, 24, 25, 255, 256, 65_535, 65_536, 4_294_967_295, 4_294_967_296, Number.MAX_SAFE_INTEGER, -1, -2, -24, -25, -256, -257, -65_536, -65_537, -4_294_967_296, -4_294_967_297, -Number.MAX_SAFE_INTEGER]
  const textKeys = ['', 'a', 'b', 'aa', 'ab', 'b'.repeat(22), 'a'.repeat(23), 'a'.repeat(24), 'b'.repeat(255), 'a'.repeat(256), 'é', 'ü', 'z€', '€', '\uffffa', '😀', '😀a']

  function randomMap(random: () => number, keyPool: readonly (number | string)[], depth: number): Map<number | string, MashValue> {
    const map = new Map<number | string, MashValue>()
    const size = Math.floor(random() * 12)
    for (let i = 0; i < size; i++) {
      const key = random() < 0.15 ? Math.floor(random() * 100_000) - 50_000 : keyPool[Math.floor(random() * keyPool.length)]!
      const roll = random()
      map.set(key, depth < 3 && roll < 0.15 ? randomMap(random, keyPool, depth + 1) : depth < 3 && roll < 0.25 ? [randomMap(random, keyPool, depth + 1), i] : i)
    }
    return map
  }

  function checkAgainstDefinition(seed: number, keyPool: readonly (number | string)[]): void {
    const random = seededRandom(seed)
    for (let round = 0; round < 1500; round++) {
      const payload = randomMap(random, keyPool, 0)
      const encoded = encodeMessage({ kind: 'response', messageId: 7, status: 0, payload })
      expect(hexOf(encoded), `round ${round}`).toBe(hexOf(Uint8Array.from([0xa3, 0x01, 0x07, 0x02, 0x00, 0x03, ...expectedBytes(payload)])))
    }
  }

  it('orders maps mixing integers of both signs and text as the definition does (tokens compared, nothing encoded)', () => {
    checkAgainstDefinition(0x5eed_0001, [...integerKeys, ...textKeys])
  })

  it('orders maps of one key type as the definition does (cborg’s own sorter, which agrees there)', () => {
    checkAgainstDefinition(0x5eed_0002, integerKeys.filter((key) => key >= 0))
    checkAgainstDefinition(0x5eed_0003, integerKeys.filter((key) => key < 0))
    checkAgainstDefinition(0x5eed_0004, textKeys)
  })

  it('orders the pairs the rule turns on', () => {
    const payload = new Map<number | string, MashValue>([
      ['😀', 0],
      ['\uffffa', 1],
      [-25, 2],
      [24, 3],
      [-24, 4],
      [23, 5],
      ['a'.repeat(23), 6],
      [4_294_967_296, 7],
    ])
    // 17 (23), 37 (-24): one byte, major 0 first; 18 18 (24), 38 18 (-25): two bytes; the text keys of
    // 5 bytes bytewise (64 ef… before 64 f0…); 2^32 in 9 bytes; 23 bytes of text in 24.
    expect(hexOf(encodeMessage({ kind: 'response', messageId: 7, status: 0, payload }))).toBe(
      normalize(`a3 01 07 02 00 03 a8 17 05 37 04 18 18 03 38 18 02 64 ef bf bf 61 01 64 f0 9f 98 80 00 1b 00 00 00 01 00 00 00 00 07 77 ${'61 '.repeat(23)} 06`),
    )
  })
})

describe('decoding in one pass', () => {
  it('refuses a break in place of an indefinite-length map’s value (cborg would keep a symbol there)', () => {
    // {1: 7, 2: 0, 3: {_ 1: break, 2: 3}}
    expect(decodeMessage(bytes('a3 01 07 02 00 03 bf 01 ff 02 03 ff'))).toEqual({ ok: false, reason: 'malformed-cbor', detail: expect.stringContaining('break'), kind: null, messageId: 0 })
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 03 82 01 ff')))).toMatchObject({ reason: 'malformed-cbor' })
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 03 c1 ff')))).toMatchObject({ reason: 'malformed-cbor' })
    // Where one ends an indefinite-length array or map, it is fine.
    expect(messageOf(decodeMessage(bytes('a3 01 07 02 00 03 bf 01 9f ff ff')))).toEqual({ kind: 'response', messageId: 7, status: 0, payload: new Map([[1, []]]) })
  })

  it('applies the shortest-form rule to lengths and tag numbers too, learning the id', () => {
    // A 1-byte text with its length in 2 bytes; tag 1 written as d8 01; an array of 1 with its length in 3 bytes.
    for (const value of ['78 01 61', 'd8 01 01', '99 00 01 01', '5a 00 00 00 01 01', '3b 00 00 00 00 00 00 00 05']) {
      expect(failureOf(decodeMessage(bytes(`a3 01 07 02 00 03 ${value}`))), value).toMatchObject({ reason: 'malformed-cbor', detail: expect.stringContaining('shortest form'), kind: 'response', messageId: 7 })
    }
  })

  it('names a duplicate key before a non-finite number, and that before another broken rule, wherever they come', () => {
    // {1: 7, 2: 0, 3: {1: NaN, 2: undefined, 1: 1}}
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 03 a3 01 f9 7e 00 02 f7 01 01')))).toMatchObject({ reason: 'duplicate-key', kind: 'response', messageId: 7 })
    // {1: 7, 2: 0, 3: [undefined, NaN]}
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 03 82 f7 f9 7e 00')))).toMatchObject({ reason: 'not-finite', kind: 'response', messageId: 7 })
    // A top level that is no map: what it breaks, nothing learned.
    expect(decodeMessage(bytes('81 f9 7e 00'))).toEqual({ ok: false, reason: 'not-finite', detail: expect.any(String), kind: null, messageId: 0 })
  })

  it('finds a duplicate in any map: a map inside a key, after a duplicate-free one, in an indefinite-length one', () => {
    // A map as a key of a nested map (decodes, then is refused for its key type), itself holding {1: 1, 1: 2}.
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 03 a1 a2 01 01 01 02 00')))).toMatchObject({ reason: 'duplicate-key', messageId: 7 })
    // [{1: 1, 2: 2}, {_ 3: 3, 3: 4}]
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 03 82 a2 01 01 02 02 bf 03 03 03 04 ff')))).toMatchObject({ reason: 'duplicate-key', messageId: 7 })
    // The same keys in different maps are no duplicates.
    expect(messageOf(decodeMessage(bytes('a3 01 07 02 00 03 82 a1 01 01 a1 01 02')))).toMatchObject({ kind: 'response' })
  })

  it('gives id 0 for key 1 repeated as a float or behind a tag, as for a plain repeat', () => {
    expect(failureOf(decodeMessage(bytes('a3 01 07 f9 3c 00 08 02 00')))).toMatchObject({ reason: 'duplicate-key', messageId: 0 })
    expect(failureOf(decodeMessage(bytes('a3 01 07 c1 01 08 02 00')))).toMatchObject({ reason: 'duplicate-key', messageId: 0 })
    // A repeat of another key leaves the id known.
    expect(failureOf(decodeMessage(bytes('a3 01 07 02 00 02 00')))).toMatchObject({ reason: 'duplicate-key', messageId: 7 })
  })

  it('reads no further than the message: a cut one and trailing bytes are malformed, a Buffer’s own bytes not read past', () => {
    const whole = bytes('a5 01 07 02 01 03 01 04 02 05 a1 01 83 01 02 03')
    for (let length = 0; length < whole.length; length++) {
      expect(decodeMessage(whole.subarray(0, length)), `${length} bytes`).toEqual({ ok: false, reason: 'malformed-cbor', detail: expect.any(String), kind: null, messageId: 0 })
    }
    // Lengths and counts the bytes left cannot hold: 2^64 - 1 elements, 65,536 entries, 4 bytes of text.
    for (const value of ['9b ff ff ff ff ff ff ff ff', 'ba 00 01 00 00 01', '64 61 62 63', 'fb 40 0c 00']) {
      expect(decodeMessage(bytes(`a3 01 07 02 00 03 ${value}`)), value).toEqual({ ok: false, reason: 'malformed-cbor', detail: expect.any(String), kind: null, messageId: 0 })
    }
    const padded = Buffer.from([...whole, 0x00])
    expect(failureOf(decodeMessage(padded))).toMatchObject({ reason: 'malformed-cbor', detail: expect.stringContaining('1 bytes follow') })
    expect(messageOf(decodeMessage(padded.subarray(0, whole.length)))).toMatchObject({ kind: 'request', messageId: 7 })
  })
})

describe('sendableProblem()', () => {
  const encodedLength = (value: MashValue): number => encode(value, { float64: true }).byteLength
  /** A subscribe response with the largest ids, carrying `value` as its one current value: an attribute value's deepest, largest place. */
  const primingOf = (value: MashValue): MashMessage => ({
    kind: 'response',
    messageId: 0xffff_ffff,
    status: 0,
    payload: subscribeResponsePayload(0xffff_ffff, new Map([[65_535, value]])),
  })

  it('takes what a MASH message can carry, up to each limit', () => {
    const values: MashValue[] = [
      null,
      true,
      0,
      -1.5,
      2n ** 64n - 1n,
      -(2n ** 64n),
      'x'.repeat(4000),
      new Uint8Array(4000),
      Array.from({ length: 1000 }, () => 0),
      new Map(Array.from({ length: 500 }, (_, at): [number, MashValue] => [at, at])),
      new Map<number | string, MashValue>([
        [1, 'a'],
        ['b', [new Map([[-1, null]])]],
      ]),
    ]
    for (const value of values) {
      expect(sendableProblem(value)).toBeUndefined()
      expect(() => encodeMessage(primingOf(value))).not.toThrow()
    }
  })

  it('says why it cannot send a value, and where in it, without throwing', () => {
    const cases: [unknown, string][] = [
      [NaN, 'NaN is not a MASH value'],
      [-Infinity, '-Infinity is not a MASH value'],
      [undefined, 'undefined is not a MASH value'],
      [2n ** 64n, 'does not fit in a CBOR integer'],
      ['x'.repeat(4001), 'a string of 4001 UTF-8 bytes is over the sender limit of 4000 bytes'],
      ['€'.repeat(1334), 'a string of 4002 UTF-8 bytes'],
      [new Uint8Array(4001), 'a byte string of 4001 bytes'],
      [Array.from({ length: 1001 }, () => 0), 'an array of 1001 elements is over the sender limit of 1000'],
      [new Map(Array.from({ length: 501 }, (_, at): [number, MashValue] => [at, 0])), 'a map of 501 keys is over the sender limit of 500'],
      [new Map([[1.5, 1]]), 'a map key must be an integer'],
      [{ 1: 1 }, 'use a Map'],
      [new Date(0), 'is not a MASH value'],
      [Symbol('s'), 'is not a MASH value'],
      [() => 1, 'is not a MASH value'],
      [new Map([[3, [new Map([[9, Array.from({ length: 1001 }, () => 1)]])]]]), 'over the sender limit of 1000 (at .get(3)[0].get(9))'],
      [[1, [2, NaN]], '(at [1][1])'],
      [new Map([['k', { a: 1 }]]), '(at .get("k"))'],
    ]
    for (const [value, text] of cases) expect(sendableProblem(value), String(text)).toContain(text)
    const cycle = new Map<number, MashValue>()
    cycle.set(1, cycle)
    expect(sendableProblem(cycle)).toContain('nest deeper than 32 levels')
  })

  it('counts nesting from where an attribute value sits deepest (level 4): what it takes, the priming can carry', () => {
    const arrays = (count: number): MashValue => (count === 1 ? [] : [arrays(count - 1)])
    // Levels 4 to 32: 29 arrays.
    expect(sendableProblem(arrays(29))).toBeUndefined()
    expect(() => encodeMessage(primingOf(arrays(29)))).not.toThrow()
    expect(sendableProblem(arrays(30))).toContain('nest deeper than 32 levels')
    expect(() => encodeMessage(primingOf(arrays(30)))).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })

  it('refuses a value whose encoding leaves no room in a message, to the byte the priming has room for', () => {
    // Three byte strings (83, 59 0fa0 and 4,000 bytes twice, 58 nn and the rest): the last sets the length.
    const sized = (length: number): MashValue => [new Uint8Array(4000), new Uint8Array(4000), new Uint8Array(length - 1 - 2 * 4003 - 2)]
    let room = 0
    for (let length = 8100; length <= 8192; length++) {
      if (encodedLength(sized(length)) !== length) continue
      if (sendableProblem(sized(length)) === undefined) {
        expect(() => encodeMessage(primingOf(sized(length)))).not.toThrow()
        room = length
      } else {
        expect(sendableProblem(sized(length))).toContain(`encodes to ${length} bytes`)
        expect(() => encodeMessage(primingOf(sized(length)))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }))
      }
    }
    // {1: 1a ffffffff, 2: 00, 3: {1: 1a ffffffff, 2: {19 ffff: value}}} takes 22 bytes around the value.
    expect(room).toBe(MASH_MAX_MESSAGE_BYTES - 22)
  })
})
