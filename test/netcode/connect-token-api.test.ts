import { describe, expect, it } from 'vitest'
import {
  ClientPool,
  Server,
  connectTokenFromBase64,
  connectTokenToBase64,
  formatServerAddress,
  generateConnectToken,
  generateKey,
  readConnectToken,
} from '../../src/index.ts'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { runInNewContext } from 'node:vm'
import { loadAddon } from '../../src/engine/native/addon.ts'
import { encodeConnectToken, openPrivateConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { parseServerAddress } from '../../src/protocol/netcode/server-address.ts'
import { loadSodium } from '../../src/protocol/netcode/sodium.ts'

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
  })

  it('makes a token that never expires from expireSeconds -1, as the reference does (expiry 2^64 - 1)', async () => {
    const token = await generateConnectToken({ ...base, expireSeconds: -1 })
    expect(readConnectToken(token).expireTimestamp).toBe(2n ** 64n - 1n)
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
    ['privateKey: all zeros', { privateKey: new Uint8Array(32) }, 'ERR_INVALID_ARG_VALUE', /"privateKey" option is all zeros, which is no secret: give a random key \(generateKey\(\)\)$/],
    ['privateKey: "key"', { privateKey: 'key' }, 'ERR_INVALID_ARG_TYPE', /"privateKey" option must be a Uint8Array/],
    // generateKey() without its await.
    ['privateKey: a promise', { privateKey: Promise.resolve(new Uint8Array(32).fill(1)) }, 'ERR_INVALID_ARG_TYPE', /"privateKey" option must be a Uint8Array of 32 bytes\. Received an instance of Promise \(missing an await\?\)$/],
    // A key given as its text (from an environment variable) is never quoted: the logs would have it.
    ['privateKey: its base64 text', { privateKey: 'nIHUeOirsFKDVKUol537O9fuMd5LlkvUqOv4AJCIabc=' }, 'ERR_INVALID_ARG_TYPE', /^(?!.*nIHUeOir).*Received type string of 44 characters \(decode it first/],
    ['protocolId: -1n', { protocolId: -1n }, 'ERR_OUT_OF_RANGE', /"protocolId" option must fit in 64 bits/],
    ['clientId: 1.5', { clientId: 1.5 }, 'ERR_OUT_OF_RANGE', /"clientId" option must be an integer from 0 to 2\^64 - 1/],
    ['clientId: "1"', { clientId: '1' }, 'ERR_INVALID_ARG_TYPE', /"clientId" option must be a bigint/],
    ['clientId: 1n << 64n', { clientId: 1n << 64n }, 'ERR_OUT_OF_RANGE', /"clientId"/],
    ['serverAddresses: []', { serverAddresses: [] }, 'ERR_INVALID_ARG_VALUE', /1 to 32 addresses/],
    ['serverAddresses: Array(33).fill("1.2.3.4:5")', { serverAddresses: Array(33).fill('1.2.3.4:5') }, 'ERR_INVALID_ARG_VALUE', /1 to 32 addresses/],
    ['serverAddresses: ["localhost:40000"]', { serverAddresses: ['localhost:40000'] }, 'ERR_INVALID_ARG_VALUE', /host must be an IPv4 literal/],
    ['serverAddresses: ["127.0.0.1"]', { serverAddresses: ['127.0.0.1'] }, 'ERR_INVALID_ARG_VALUE', /does not parse/],
    ['serverAddresses: ["127.0.0.1:0"]', { serverAddresses: ['127.0.0.1:0'] }, 'ERR_INVALID_ARG_VALUE', /port from 1 to 65535/],
    ['serverAddresses: ["::1:40000"]', { serverAddresses: ['::1:40000'] }, 'ERR_INVALID_ARG_VALUE', /does not parse|IPv6 literal in brackets/],
    // A token has no room for an IPv6 zone: dropping it silently would name another address (the native parser refuses it too).
    ['serverAddresses: ["[fe80::1%eth0]:40000"]', { serverAddresses: ['[fe80::1%eth0]:40000'] }, 'ERR_INVALID_ARG_VALUE', /IPv6 literal in brackets with no zone/],
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
    ['serverAddresses: new Array(2) (holes)', { serverAddresses: new Array(2) }, 'ERR_INVALID_ARG_TYPE', /server address \(the "serverAddresses\[0\]" option\) must be a string.*Received type undefined/],
    ['serverAddresses: ["1.2.3.4:5", null]', { serverAddresses: ['1.2.3.4:5', null] }, 'ERR_INVALID_ARG_TYPE', /"serverAddresses\[1\]" option\) must be a string.*Received null/],
    ['serverAddresses: [40000]', { serverAddresses: [40000] }, 'ERR_INVALID_ARG_TYPE', /"serverAddresses\[0\]".*Received type number \(40000\)/],
    ['serverAddresses: ["1.2.3.4:5", "1.2.3.4"]', { serverAddresses: ['1.2.3.4:5', '1.2.3.4'] }, 'ERR_INVALID_ARG_VALUE', /'1.2.3.4' \(the "serverAddresses\[1\]" option\) does not parse/],
    ['nowSeconds: -1', { nowSeconds: -1 }, 'ERR_OUT_OF_RANGE', /"nowSeconds"/],
    // Date.now()'s milliseconds made a 30 s token that expired in the year 58866.
    ['nowSeconds: Date.now()', { nowSeconds: 1_795_514_129_717 }, 'ERR_OUT_OF_RANGE', /seconds since the epoch, at most 4294967295\. Received 1795514129717: milliseconds \(Date\.now\(\)\)\? Divide them by 1000/],
    // A negative lifetime from arithmetic (a session that has ended) made a token that never expires.
    ['expireSeconds: -5', { expireSeconds: -5 }, 'ERR_OUT_OF_RANGE', /"expireSeconds" option must be -1 \(never expires\) or from 0/],
    // One key both ways: each side's packets would pass for the other's, under one keystream.
    ['the same key both ways', { clientToServerKey: new Uint8Array(32).fill(3), serverToClientKey: new Uint8Array(32).fill(3) }, 'ERR_INVALID_ARG_VALUE', /must differ/],
    ['clientToServerKey: all zeros', { clientToServerKey: new Uint8Array(32) }, 'ERR_INVALID_ARG_VALUE', /"clientToServerKey" option is all zeros, which is no secret: give a random key \(generateKey\(\)\), or none$/],
    ['nowSeconds: 1.5', { nowSeconds: 1.5 }, 'ERR_OUT_OF_RANGE', /"nowSeconds"/],
    ['nowSeconds: null', { nowSeconds: null }, 'ERR_INVALID_ARG_TYPE', /"nowSeconds"/],
    ['userData: [1, 2]', { userData: [1, 2] }, 'ERR_INVALID_ARG_TYPE', /"userData" option must be a Uint8Array. Received an array of 2 items/],
    ['clientToServerKey: new Uint8Array(16)', { clientToServerKey: new Uint8Array(16) }, 'ERR_OUT_OF_RANGE', /"clientToServerKey" option must be 32 bytes/],
    ['serverToClientKey: new Uint8Array(33)', { serverToClientKey: new Uint8Array(33) }, 'ERR_OUT_OF_RANGE', /"serverToClientKey" option must be 32 bytes/],
    ['protocolId: NaN', { protocolId: Number.NaN }, 'ERR_OUT_OF_RANGE', /"protocolId" option must be an integer/],
    ['protocolId: 2 ** 53', { protocolId: 2 ** 53 }, 'ERR_OUT_OF_RANGE', /"protocolId" option must be an integer from 0 to 2\^64 - 1 \(a bigint beyond 2\^53\)/],
  ])('refuses %s', async (_name, change, code, message) => {
    const failure = await generateConnectToken({ ...base, ...(change as object) }).catch((error: unknown) => error)
    expect(failure).toMatchObject({ code })
    expect((failure as Error).message).toMatch(message)
  })
})

describe('generateConnectToken where libsodium-wrappers cannot load', () => {
  it('rejects with ERR_CRYPTO_UNAVAILABLE (node --jitless has no WebAssembly), after checking its options', () => {
    const script = `
      import { generateConnectToken } from './src/index.ts'
      const options = { protocolId: 1n, privateKey: new Uint8Array(32).fill(1), clientId: 1n, serverAddresses: ['127.0.0.1:4'], expireSeconds: 30, timeoutSeconds: 5 }
      const codes = []
      for (const change of [{}, { privateKey: 'text' }, {}]) codes.push(await generateConnectToken({ ...options, ...change }).then(() => 'made', (error) => error.code))
      console.log(codes.join(' '))`
    const run = spawnSync(process.execPath, ['--jitless', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, cwd: join(import.meta.dirname, '../..') })
    // Each call tries again, and a mistake in the options is told first.
    expect(run.stdout.trim()).toBe('ERR_CRYPTO_UNAVAILABLE ERR_INVALID_ARG_TYPE ERR_CRYPTO_UNAVAILABLE')
  }, 30_000)
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
    expect(() => connectTokenToBase64(new Uint8Array(3))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_CONNECT_TOKEN', message: 'A connect token is 2048 bytes. Received 3' }))
    expect(() => connectTokenToBase64('abc' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(/must be a Uint8Array of 2048 bytes. Received type string/) }))
    expect(() => formatServerAddress({} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => formatServerAddress(undefined as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => formatServerAddress('10.0.0.1:1' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => formatServerAddress({ family: 4, bytes: new Uint8Array(16), port: 1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
  })

  it('reads what the public part says: a negative timeout, a token created after it expires refused', async () => {
    const token = await generateConnectToken({ ...base, timeoutSeconds: -1 })
    expect(readConnectToken(token).timeoutSeconds).toBe(-1)
    const late = token.slice()
    late.set(late.subarray(29, 37), 21) // create timestamp := expire timestamp + 1
    new DataView(late.buffer).setBigUint64(21, new DataView(late.buffer).getBigUint64(29, true) + 1n, true)
    expect(() => readConnectToken(late)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_CONNECT_TOKEN', message: expect.stringMatching(/created after it expires/) }))
  })

  it('reads a token inside a larger buffer (a pooled Buffer) and one made in another realm', async () => {
    const token = await generateConnectToken(base)
    const pooled = Buffer.alloc(4096)
    pooled.set(token, 1000)
    const inside = pooled.subarray(1000, 3048)
    expect(readConnectToken(inside).nonce).toEqual(readConnectToken(token).nonce)
    expect(connectTokenToBase64(inside)).toBe(connectTokenToBase64(token))
    // A Uint8Array of another realm fails instanceof and libsodium-wrappers' own checks: it is viewed anew.
    const foreign = runInNewContext('(bytes) => new Uint8Array(bytes)')(token) as Uint8Array
    expect(foreign instanceof Uint8Array).toBe(false)
    expect(connectTokenToBase64(foreign)).toBe(connectTokenToBase64(token))
    const foreignKey = runInNewContext('new Uint8Array(32).fill(7)') as Uint8Array
    const made = await generateConnectToken({ ...base, privateKey: foreignKey, userData: runInNewContext('new Uint8Array([9])') as Uint8Array })
    expect(readConnectToken(made).protocolId).toBe(0x1234n)
  })

  it('takes a token of another realm in ClientPool.connect() too, and refuses a Proxy of a Uint8Array with a typed error', async () => {
    const token = await generateConnectToken(base)
    const foreign = runInNewContext('(bytes) => new Uint8Array(bytes)')(token) as Uint8Array
    // Refused at once before (ERR_INVALID_ARG_TYPE, "Received an instance of Uint8Array"); now its attempt
    // runs, aborted here.
    const pool = new ClientPool()
    const abort = new AbortController()
    const attempts = pool.connect([foreign], { signal: abort.signal })
    abort.abort()
    expect(await attempts).toMatchObject({ connected: 0, failed: 1 })
    await pool.close()
    // A Proxy passes instanceof and is no typed array: V8's own TypeError, with no code, came from reading it.
    const proxy = new Proxy(new Uint8Array(32).fill(1), {})
    const typed = expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' })
    await expect(generateConnectToken({ ...base, privateKey: proxy })).rejects.toThrow(typed)
    await expect(generateConnectToken({ ...base, userData: proxy })).rejects.toThrow(typed)
    expect(() => new Server({ protocolId: 1n, privateKey: proxy, address: '127.0.0.1:0' })).toThrow(typed)
    expect(() => connectTokenToBase64(new Proxy(token, {}))).toThrow(typed)
  })

  it('keeps 32 IPv6 addresses, the most a token holds, and pads short user data with zeros', async () => {
    const sodium = await loadSodium()
    const serverAddresses = Array.from({ length: 32 }, (_, i) => `[2001:db8:ffff:ffff:ffff:ffff:ffff:${(i + 1).toString(16)}]:${65535 - i}`)
    const token = encodeConnectToken(sodium, { ...base, serverAddresses, userData: new Uint8Array([1, 2, 3]) })
    const read = readConnectToken(token)
    expect(read.serverAddresses.map(formatServerAddress)).toEqual(serverAddresses)
    const opened = openPrivateConnectToken(sodium, read.privateData, read.protocolId, read.expireTimestamp, read.nonce, privateKey)
    expect(opened?.serverAddresses.map(formatServerAddress)).toEqual(serverAddresses)
    expect(opened?.userData).toEqual(Uint8Array.from({ length: 256 }, (_, i) => (i < 3 ? i + 1 : 0)))
  })
})

describe('connectTokenFromBase64', () => {
  it('takes the text connectTokenToBase64 wrote, with whitespace around it, and nothing else', async () => {
    const text = connectTokenToBase64(await generateConnectToken(base))
    expect(text).toHaveLength(2732)
    expect(connectTokenFromBase64(`  ${text}\n`)).toEqual(connectTokenFromBase64(text))
    // Buffer.from(text, 'base64') would skip the junk, or stop at '=' and ignore what follows.
    for (const bad of [`${text}AAAA`, `${text.slice(0, 100)}!${text.slice(101)}`, `${text.slice(0, 100)} ${text.slice(100)}`, text.slice(0, -4), `${text.slice(0, -1)}A`, `${text.slice(0, -2)}B=`]) {
      expect(() => connectTokenFromBase64(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_CONNECT_TOKEN', message: expect.stringMatching(/2,732 characters of standard base64/) }))
    }
    expect(() => connectTokenFromBase64(5 as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })
})

describe('server addresses', () => {
  it('in a token are destinations: no wildcard, broadcast or multicast (the native codec agrees: connect-token-native)', async () => {
    const refused = {
      '0.0.0.0:40000': 'the unspecified address',
      '0.1.2.3:40000': 'an address in 0.0.0.0/8',
      '255.255.255.255:40000': 'the broadcast address',
      '224.0.0.1:40000': 'a multicast address',
      '239.255.255.255:40000': 'a multicast address',
      '[::]:40000': 'the unspecified address',
      '[::ffff:0.0.0.0]:40000': 'the unspecified address',
      '[::ffff:239.1.1.1]:40000': 'a multicast address',
      '[ff02::1]:40000': 'a multicast address',
    }
    for (const [address, why] of Object.entries(refused)) {
      const failure = await generateConnectToken({ ...base, serverAddresses: ['127.0.0.1:1', address] }).catch((error: unknown) => error)
      expect(failure, address).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: `Server address '${address}' (the "serverAddresses[1]" option) is ${why}, which a client cannot send to: give the address clients reach the server at` })
    }
    // Their neighbours are destinations, and so is every unicast IPv6 address, link-local and loopback too.
    for (const address of ['1.0.0.0:1', '223.255.255.255:1', '240.0.0.1:1', '255.255.255.254:1', '[::1]:1', '[::2]:1', '[fe80::1]:1', '[::ffff:1.2.3.4]:1', '[feff::1]:1']) {
      expect(readConnectToken(await generateConnectToken({ ...base, serverAddresses: [address] })).serverAddresses.map(formatServerAddress), address).toEqual([address])
    }
  })

  it('are written as the native side names peers (inet_ntop): compressed as RFC 5952 asks, IPv4 dotted where embedded', () => {
    const addon = loadAddon()
    const cases = [
      '::',
      '::1',
      '::2',
      '1::',
      '::ffff:1.2.3.4', // mapped
      '::1.2.3.4', // embedded (deprecated, still inet_ntop's form)
      '::0.1.0.0',
      '::ffff:0.0.0.0',
      '::1:0:0',
      '::fffe:102:304', // not mapped: stays hex
      '1:0:1:1:1:1:1:1', // a single zero group is not compressed
      '1::1:0:0:1:1', // two equal runs: the first is compressed
      '2001:db8::ff00:42:8329',
      'fe80::1:2:3',
    ]
    for (const text of cases) {
      const address = parseServerAddress(`[${text}]:9`)
      expect(formatServerAddress(address)).toBe(`[${text}]:9`)
      expect(addon.formatIp(address.bytes, 6)).toBe(text)
    }
    // A dotted tail parses to the same bytes as its hex form.
    expect(parseServerAddress('[::ffff:1.2.3.4]:9').bytes).toEqual(parseServerAddress('[::ffff:102:304]:9').bytes)
    expect(formatServerAddress(parseServerAddress('[0:0:0:0:0:ffff:102:304]:9'))).toBe('[::ffff:1.2.3.4]:9')
  })
})
