import { describe, expect, it } from 'vitest'
import {
  connectTokenFromBase64,
  connectTokenToBase64,
  formatServerAddress,
  generateConnectToken,
  generateKey,
  readConnectToken,
} from '../../src/index.ts'
import { loadAddon } from '../../src/engine/addon.ts'

const privateKey = new Uint8Array(32).fill(7)
const base = { protocolId: 0x1234n, privateKey, clientId: 42n, serverAddresses: ['127.0.0.1:40000'], expireSeconds: 30, timeoutSeconds: 10 }

describe('generateConnectToken', () => {
  it('makes a 2048-byte token that reads back, with random keys and nonce each time', async () => {
    const a = await generateConnectToken({ ...base, serverAddresses: ['10.0.0.1:1', '[fe80::1:2:3]:65535'], userData: new Uint8Array([1, 2, 3]) })
    const b = await generateConnectToken(base)
    expect(a.byteLength).toBe(2048)
    const read = readConnectToken(a)
    expect(read.protocolId).toBe(0x1234n)
    expect(read.expireTimestamp - read.createTimestamp).toBe(30n)
    expect(Math.abs(Number(read.createTimestamp) - Date.now() / 1000)).toBeLessThan(5)
    expect(read.timeoutSeconds).toBe(10)
    expect(read.serverAddresses.map(formatServerAddress)).toEqual(['10.0.0.1:1', '[fe80::1:2:3]:65535'])
    expect(Buffer.from(read.nonce).equals(Buffer.from(readConnectToken(b).nonce))).toBe(false)
    expect(Buffer.from(read.clientToServerKey).equals(Buffer.from(readConnectToken(b).clientToServerKey))).toBe(false)
    expect(Buffer.from(read.serverToClientKey).equals(Buffer.from(readConnectToken(b).serverToClientKey))).toBe(false)
    expect(Buffer.from(read.clientToServerKey).equals(Buffer.from(read.serverToClientKey))).toBe(false)
    // The native reader agrees on every field.
    expect(loadAddon().netcode.readConnectToken(a)).toMatchObject({ timeoutSeconds: 10, serverAddresses: ['10.0.0.1:1', '[fe80::1:2:3]:65535'] })
  })

  it('makes a token that never expires from a negative expireSeconds, as the reference does (expiry 2^64 - 1)', async () => {
    const token = await generateConnectToken({ ...base, expireSeconds: -1 })
    expect(readConnectToken(token).expireTimestamp).toBe(2n ** 64n - 1n)
    expect(loadAddon().netcode.readConnectToken(token)).toMatchObject({ expireTimestamp: 2n ** 64n - 1n })
  })

  it('round-trips through base64, and generateKey gives 32 random bytes', async () => {
    const token = await generateConnectToken(base)
    expect([...connectTokenFromBase64(connectTokenToBase64(token))]).toEqual([...token])
    const [k1, k2] = [await generateKey(), await generateKey()]
    expect(k1.byteLength).toBe(32)
    expect(Buffer.from(k1).equals(Buffer.from(k2))).toBe(false)
  })

  it.each([
    ['privateKey: new Uint8Array(31)', { privateKey: new Uint8Array(31) }, 'ERR_OUT_OF_RANGE', /"privateKey" option must be 32 bytes/],
    ['privateKey: "key"', { privateKey: 'key' }, 'ERR_INVALID_ARG_TYPE', /"privateKey" option must be a Uint8Array/],
    ['protocolId: -1n', { protocolId: -1n }, 'ERR_OUT_OF_RANGE', /"protocolId" option must fit in 64 bits/],
    ['clientId: 1.5', { clientId: 1.5 }, 'ERR_OUT_OF_RANGE', /"clientId" option must be an integer from 0 to 2\^64 - 1/],
    ['clientId: "1"', { clientId: '1' }, 'ERR_INVALID_ARG_TYPE', /"clientId" option must be a bigint/],
    ['clientId: 1n << 64n', { clientId: 1n << 64n }, 'ERR_OUT_OF_RANGE', /"clientId"/],
    ['serverAddresses: []', { serverAddresses: [] }, 'ERR_OUT_OF_RANGE', /1 to 32 addresses/],
    ['serverAddresses: Array(33).fill("1.2.3.4:5")', { serverAddresses: Array(33).fill('1.2.3.4:5') }, 'ERR_OUT_OF_RANGE', /1 to 32 addresses/],
    ['serverAddresses: ["localhost:40000"]', { serverAddresses: ['localhost:40000'] }, 'ERR_INVALID_ARG_VALUE', /host must be an IPv4 literal/],
    ['serverAddresses: ["127.0.0.1"]', { serverAddresses: ['127.0.0.1'] }, 'ERR_INVALID_ARG_VALUE', /does not parse/],
    ['serverAddresses: ["127.0.0.1:0"]', { serverAddresses: ['127.0.0.1:0'] }, 'ERR_INVALID_ARG_VALUE', /port from 1 to 65535/],
    ['serverAddresses: ["::1:40000"]', { serverAddresses: ['::1:40000'] }, 'ERR_INVALID_ARG_VALUE', /does not parse|IPv6 literal in brackets/],
    // A token has no room for an IPv6 zone: dropping it silently would name another address (the native parser refuses it too).
    ['serverAddresses: ["[fe80::1%eth0]:40000"]', { serverAddresses: ['[fe80::1%eth0]:40000'] }, 'ERR_INVALID_ARG_VALUE', /IPv6 literal in brackets/],
    ['expireSeconds: 0.5', { expireSeconds: 0.5 }, 'ERR_OUT_OF_RANGE', /"expireSeconds"/],
    ['expireSeconds: 2 ** 32 + 1', { expireSeconds: 2 ** 32 + 1 }, 'ERR_OUT_OF_RANGE', /"expireSeconds"/],
    ['timeoutSeconds: 1.5', { timeoutSeconds: 1.5 }, 'ERR_OUT_OF_RANGE', /"timeoutSeconds"/],
    ['timeoutSeconds: 0', { timeoutSeconds: 0 }, 'ERR_OUT_OF_RANGE', /"timeoutSeconds" option must be positive, or negative for no timeout. Received 0/],
    ['userData: new Uint8Array(257)', { userData: new Uint8Array(257) }, 'ERR_OUT_OF_RANGE', /at most 256 bytes. Received 257/],
    ['nonce: new Uint8Array(12)', { nonce: new Uint8Array(12) }, 'ERR_OUT_OF_RANGE', /"nonce" option must be 24 bytes/],
    // A misspelt option would otherwise make a token without what it names (here: user data all zeros).
    ['userdata: (misspelt)', { userdata: new Uint8Array([1]) }, 'ERR_INVALID_ARG_VALUE', /Unknown option "userdata"/],
    ['expireSeconds: "30"', { expireSeconds: '30' }, 'ERR_INVALID_ARG_TYPE', /"expireSeconds" option must be of type number/],
    ['expireSeconds: undefined', { expireSeconds: undefined }, 'ERR_INVALID_ARG_TYPE', /"expireSeconds" option is required/],
    ['serverAddresses: "127.0.0.1:1"', { serverAddresses: '127.0.0.1:1' }, 'ERR_INVALID_ARG_TYPE', /array of 1 to 32 addresses/],
    ['serverAddresses: new Array(2) (holes)', { serverAddresses: new Array(2) }, 'ERR_INVALID_ARG_TYPE', /server address must be a string/],
  ])('refuses %s', async (_name, change, code, message) => {
    const failure = await generateConnectToken({ ...base, ...(change as object) }).catch((error: unknown) => error)
    expect(failure).toMatchObject({ code })
    expect((failure as Error).message).toMatch(message)
  })
})

describe('readConnectToken', () => {
  it('refuses what is not a netcode 1.02 token, with ERR_INVALID_CONNECT_TOKEN', async () => {
    const token = await generateConnectToken(base)
    expect(() => readConnectToken(token.subarray(0, 2047))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_CONNECT_TOKEN' }))
    const version = token.slice()
    version[11] = 0x31
    expect(() => readConnectToken(version)).toThrow(/version info differs/)
    const count = token.slice()
    count.set([0, 0, 0, 0], 1089) // zero server addresses
    expect(() => readConnectToken(count)).toThrow(/0 server addresses/)
    const type = token.slice()
    type[1093] = 3 // address type 3
    expect(() => readConnectToken(type)).toThrow(/address type 3/)
    expect(() => connectTokenFromBase64('AAAA')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_CONNECT_TOKEN' }))
    expect(() => readConnectToken('x' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => connectTokenToBase64(new Uint8Array(3))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_CONNECT_TOKEN', message: expect.stringMatching(/Received an instance of Uint8Array of 3 bytes/) }))
    expect(() => connectTokenToBase64('abc' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_CONNECT_TOKEN' }))
    expect(() => formatServerAddress({} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => formatServerAddress({ family: 4, bytes: new Uint8Array(16), port: 1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(loadAddon().netcode.readConnectToken(count)).toBeNull()
  })
})
