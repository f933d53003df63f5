// The wire of resumable sessions against the reference's cross-language fixtures (research §C.1), and the
// decoder's refusals of everything else.
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../helpers.ts'
import {
  type ClientMessage,
  type ServerMessage,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
} from '../../src/sessions/resumable/wire.ts'

const t = 1705680000000 // 2024-01-19T12:00Z, the fixtures' timestamp
const payload = new TextEncoder().encode('test-payload')
const capabilities = new Map([
  ['capability1', 'value1'],
  ['capability2', 'value2'],
])

const clientFixtures: Array<[string, ClientMessage, string]> = [
  ['CreateSession', { type: 'create-session', capabilities, nonce: 42n }, '7a7261667401010002000b6361706162696c69747931000676616c756531000b6361706162696c69747932000676616c756532000000000000002a'],
  ['ContinueSession', { type: 'continue-session', sessionId: 'test-session-123', nonce: 42n }, '7a72616674010210746573742d73657373696f6e2d313233000000000000002a'],
  ['KeepAlive', { type: 'keep-alive', timestamp: t }, '7a7261667401030000018d22735400'],
  [
    'ClientRequest',
    { type: 'client-request', requestId: 100, lowestPendingRequestId: 100, payload, createdAt: t },
    '7a726166740104000000000000006400000000000000640000000c746573742d7061796c6f61640000018d22735400',
  ],
  ['ServerRequestAck', { type: 'server-request-ack', requestId: 100 }, '7a7261667401050000000000000064'],
  ['CloseSession', { type: 'close-session', reason: 'client-shutdown' }, '7a72616674010601'],
  ['ConnectionClosed', { type: 'connection-closed' }, '7a726166740107'],
  ['Query', { type: 'query', correlationId: 'corr-123', payload, createdAt: t }, '7a7261667401080008636f72722d3132330000000c746573742d7061796c6f61640000018d22735400'],
]

const serverFixtures: Array<[string, ServerMessage, string]> = [
  ['SessionCreated', { type: 'session-created', sessionId: 'test-session-123', nonce: 42n }, '7a72616674010110746573742d73657373696f6e2d313233000000000000002a'],
  ['SessionContinued', { type: 'session-continued', nonce: 42n }, '7a726166740102000000000000002a'],
  ['SessionRejected', { type: 'session-rejected', reason: 'not-leader', nonce: 42n, leaderId: 'node-1' }, '7a72616674010301000000000000002a80033737b232969880'],
  ['SessionRejectedNoLeader', { type: 'session-rejected', reason: 'invalid-capabilities', nonce: 42n }, '7a72616674010303000000000000002a00'],
  ['SessionClosed', { type: 'session-closed', reason: 'shutdown', leaderId: 'node-1' }, '7a7261667401040180033737b232969880'],
  ['KeepAliveResponse', { type: 'keep-alive-response', timestamp: t }, '7a7261667401050000018d22735400'],
  ['ClientResponse', { type: 'client-response', requestId: 100, result: payload }, '7a72616674010600000000000000640000000c746573742d7061796c6f6164'],
  ['ServerRequest', { type: 'server-request', requestId: 100, payload, createdAt: t }, '7a72616674010700000000000000640000000c746573742d7061796c6f61640000018d22735400'],
  ['RequestError', { type: 'request-error', requestId: 100, reason: 'response-evicted' }, '7a726166740108000000000000006401'],
  ['QueryResponse', { type: 'query-response', correlationId: 'corr-123', result: payload }, '7a7261667401090008636f72722d3132330000000c746573742d7061796c6f6164'],
]

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')
const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'))

describe('resumable wire: the reference fixtures', () => {
  for (const [name, message, fixture] of clientFixtures) {
    it(`${name} encodes to the fixture and decodes back`, () => {
      expect(hex(encodeClientMessage(message))).toBe(fixture)
      expect(decodeClientMessage(bytes(fixture))).toEqual(message)
    })
  }
  for (const [name, message, fixture] of serverFixtures) {
    it(`${name} encodes to the fixture and decodes back`, () => {
      expect(hex(encodeServerMessage(message))).toBe(fixture)
      expect(decodeServerMessage(bytes(fixture))).toEqual(message)
    })
  }

  it('decodes a fixture that sits inside a larger buffer at an odd offset', () => {
    const fixture = bytes(clientFixtures[3]![2])
    const backing = new Uint8Array(fixture.length + 3)
    backing.set(fixture, 3)
    expect(decodeClientMessage(backing.subarray(3))).toEqual(clientFixtures[3]![1])
  })
})

describe('resumable wire: values at the edges', () => {
  it('carries negative timestamps and ids up to 2^53 - 1, and the nonce as a signed 64-bit value', () => {
    for (const timestamp of [0, -1, -(2 ** 40) - 7, 2 ** 53 - 1, -(2 ** 53 - 1)]) {
      expect(decodeClientMessage(encodeClientMessage({ type: 'keep-alive', timestamp }))).toEqual({ type: 'keep-alive', timestamp })
    }
    const request: ClientMessage = { type: 'client-request', requestId: 2 ** 53 - 1, lowestPendingRequestId: 0, payload: new Uint8Array(0), createdAt: 1 }
    expect(decodeClientMessage(encodeClientMessage(request))).toEqual(request)
    for (const nonce of [-1n, -(2n ** 63n), 2n ** 63n - 1n]) {
      expect(decodeServerMessage(encodeServerMessage({ type: 'session-continued', nonce }))).toEqual({ type: 'session-continued', nonce })
    }
  })

  it('round-trips a leader id of every length class and non-ASCII text through the bit-shifted option', () => {
    for (const leaderId of ['', 'n', 'ü-node', 'x'.repeat(300), '😀'.repeat(50)]) {
      const message: ServerMessage = { type: 'session-closed', reason: 'not-leader-anymore', leaderId }
      expect(decodeServerMessage(encodeServerMessage(message))).toEqual(message)
    }
  })

  it('refuses fields out of range at encoding, with coded errors', () => {
    expect(() => encodeClientMessage({ type: 'continue-session', sessionId: 'x', nonce: 0n })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => encodeClientMessage({ type: 'continue-session', sessionId: 'x', nonce: 2n ** 63n })).toThrow(/non-zero 64-bit/)
    expect(() => encodeClientMessage({ type: 'continue-session', sessionId: 'x'.repeat(256), nonce: 1n })).toThrow(/at most 255 bytes/)
    expect(() => encodeClientMessage({ type: 'create-session', capabilities: new Map(), nonce: 1n })).toThrow(/at least one entry/)
    expect(() => encodeClientMessage({ type: 'keep-alive', timestamp: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => encodeClientMessage({ type: 'server-request-ack', requestId: -1 })).toThrow(/from 0 to 2\^53 - 1/)
    expect(() => encodeServerMessage({ type: 'session-closed', reason: 'gone' as 'shutdown' })).toThrow(/Not a reason of this message: .*'gone'/)
    expect(() => encodeServerMessage({ type: 'client-response', requestId: 1, result: 'x' as unknown as Uint8Array })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => encodeClientMessage({ type: 'nope' } as unknown as ClientMessage)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
  })
})

describe('resumable wire: refusals', () => {
  const keepAlive = bytes('7a7261667401030000018d22735400')
  const refusal = (data: Uint8Array) => (decodeClientMessage(data) as { reason?: string }).reason

  it('refuses a wrong signature, a version other than 1 and an unknown type', () => {
    expect(refusal(bytes('7a7261667501030000018d22735400'))).toBe('signature')
    expect(refusal(bytes('7a7261667402030000018d22735400'))).toBe('version')
    expect(refusal(bytes('7a7261667400030000018d22735400'))).toBe('version')
    expect(refusal(bytes('7a72616674010900'))).toBe('unknown-type')
    expect(refusal(bytes('7a72616674010000'))).toBe('unknown-type')
    expect((decodeServerMessage(bytes('7a72616674010a')) as { reason?: string }).reason).toBe('unknown-type')
    expect(refusal(bytes('00'))).toBe('signature')
    expect(refusal(new Uint8Array(0))).toBe('truncated')
    expect(refusal(bytes('7a72616674'))).toBe('truncated')
    expect(refusal(bytes('7a7261667402'))).toBe('version')
  })

  it('refuses every truncation of every fixture, and every fixture with a byte more', () => {
    for (const [, , fixture] of clientFixtures) {
      const data = bytes(fixture)
      for (let length = 0; length < data.length; length++) expect(refusal(data.subarray(0, length))).toBe('truncated')
      expect(refusal(new Uint8Array([...data, 0]))).toBe('trailing-bytes')
    }
    for (const [, , fixture] of serverFixtures) {
      const data = bytes(fixture)
      for (let length = 0; length < data.length; length++) expect((decodeServerMessage(data.subarray(0, length)) as { reason?: string }).reason).toBe('truncated')
      expect((decodeServerMessage(new Uint8Array([...data, 0])) as { reason?: string }).reason).toBe('trailing-bytes')
    }
  })

  it('refuses a zero nonce, unknown reason codes, bad UTF-8, ids past 2^53 - 1, negative lengths and repeated capabilities', () => {
    expect(refusal(bytes('7a72616674010210746573742d73657373696f6e2d3132330000000000000000'))).toBe('bad-value')
    expect(refusal(bytes('7a72616674010602'))).toBe('bad-value')
    expect((decodeServerMessage(bytes('7a7261667401040600')) as { reason?: string }).reason).toBe('bad-value')
    expect((decodeServerMessage(bytes('7a72616674010305000000000000002a00')) as { reason?: string }).reason).toBe('bad-value')
    expect((decodeServerMessage(bytes('7a726166740108000000000000006402')) as { reason?: string }).reason).toBe('bad-value')
    expect(refusal(bytes('7a72616674010202c328000000000000002a'))).toBe('bad-value')
    expect(refusal(bytes('7a7261667401050020000000000000'))).toBe('bad-value') // 2^53
    expect(refusal(bytes('7a7261667401058000000000000001'))).toBe('bad-value') // a negative request id
    expect(refusal(bytes('7a72616674010400000000000000640000000000000064ffffffff0000018d22735400'))).toBe('bad-value')
    expect(refusal(bytes('7a7261667401010000000000000000002a'))).toBe('bad-value') // no capabilities
    expect(refusal(bytes('7a72616674010100020001610001620001610001630000000000000001'))).toBe('bad-value')
  })

  it('refuses non-zero padding after the option flag', () => {
    expect((decodeServerMessage(bytes('7a72616674010303000000000000002a01')) as { reason?: string }).reason).toBe('trailing-bytes')
    expect((decodeServerMessage(bytes('7a7261667401040180033737b232969881')) as { reason?: string }).reason).toBe('trailing-bytes')
    expect((decodeServerMessage(bytes('7a7261667401040180033737b23296988000')) as { reason?: string }).reason).toBe('trailing-bytes')
  })

  it('decodes the bytes it is given and nothing else: a clean message still decodes after the refusals', () => {
    expect(decodeClientMessage(keepAlive)).toEqual({ type: 'keep-alive', timestamp: t })
    expect(() => decodeClientMessage('x' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })
})

describe('resumable wire: mutated fixtures (seeded)', () => {
  it('never throws on a mutated message, and what it decodes encodes back to the same bytes', () => {
    // The same 20,000 mutations every run.
    const random = seededRandom(0x9e3779b9)
    const fixtures = [...clientFixtures.map(([, , fixture]) => ['client', fixture] as const), ...serverFixtures.map(([, , fixture]) => ['server', fixture] as const)]
    let decoded = 0
    for (let round = 0; round < 20_000; round++) {
      const [direction, fixture] = fixtures[Math.floor(random() * fixtures.length)]!
      const data = Array.from(bytes(fixture))
      const edits = 1 + Math.floor(random() * 3)
      for (let edit = 0; edit < edits; edit++) {
        const at = Math.floor(random() * (data.length + 1))
        const kind = random()
        if (kind < 0.5) data[Math.min(at, data.length - 1)] = Math.floor(random() * 256)
        else if (kind < 0.75) data.splice(at, 0, Math.floor(random() * 256))
        else data.splice(at, 1)
      }
      const input = Uint8Array.from(data)
      if (direction === 'client') {
        const message = decodeClientMessage(input)
        if (message.type === 'malformed') continue
        expect(hex(encodeClientMessage(message))).toBe(hex(input))
      } else {
        const message = decodeServerMessage(input)
        if (message.type === 'malformed') continue
        expect(hex(encodeServerMessage(message))).toBe(hex(input))
      }
      decoded++
    }
    // Some mutations still make valid messages (a changed id, a changed byte of a payload): they were checked.
    expect(decoded).toBeGreaterThan(1_000)
  })
})
