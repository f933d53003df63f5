// generateConnectToken's tokens read by the native codec (the test bindings' addon), and the server addresses
// the two codecs accept: the TypeScript codec that makes tokens and the C++ one that servers open them with
// must agree byte for byte and address for address.
import { describe, expect, it } from 'vitest'
import { generateConnectToken, readConnectToken } from '../../src/index.ts'
import { encodeConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { loadSodium } from '../../src/protocol/netcode/sodium.ts'
import { loadTestingAddon } from '../testing-addon.ts'

const native = loadTestingAddon().netcode
const privateKey = new Uint8Array(32).fill(7)
const base = { protocolId: 0x1234n, privateKey, clientId: 42n, serverAddresses: ['127.0.0.1:40000'], expireSeconds: 30, timeoutSeconds: 10 }

describe("generateConnectToken's tokens, read natively", () => {
  it('read back with the same fields: addresses of both families, timeouts, expiry', async () => {
    const token = await generateConnectToken({ ...base, serverAddresses: ['10.0.0.1:1', '[fe80::1:2:3]:65535'] })
    const read = readConnectToken(token)
    expect(native.readConnectToken(token)).toMatchObject({
      protocolId: read.protocolId,
      createTimestamp: read.createTimestamp,
      expireTimestamp: read.expireTimestamp,
      nonce: read.nonce,
      timeoutSeconds: 10,
      serverAddresses: ['10.0.0.1:1', '[fe80::1:2:3]:65535'],
    })
    expect(native.readConnectToken(await generateConnectToken({ ...base, expireSeconds: -1 }))).toMatchObject({ expireTimestamp: 2n ** 64n - 1n })
    expect(native.readConnectToken(await generateConnectToken({ ...base, timeoutSeconds: -1 }))).toMatchObject({ timeoutSeconds: -1 })
  })

  it('keeps 32 IPv6 addresses, the most a token holds', async () => {
    const serverAddresses = Array.from({ length: 32 }, (_, i) => `[2001:db8:ffff:ffff:ffff:ffff:ffff:${(i + 1).toString(16)}]:${65535 - i}`)
    const token = encodeConnectToken(await loadSodium(), { ...base, serverAddresses, userData: new Uint8Array([1, 2, 3]) })
    expect(native.readConnectToken(token)).toMatchObject({ serverAddresses })
  })

  it('refuses what the TypeScript reader refuses: no server address, created after it expires', async () => {
    const token = await generateConnectToken(base)
    const none = token.slice()
    none.set([0, 0, 0, 0], 1089) // zero server addresses
    const late = token.slice()
    new DataView(late.buffer).setBigUint64(21, new DataView(late.buffer).getBigUint64(29, true) + 1n, true) // created := expires + 1
    for (const bad of [none, late]) {
      expect(() => readConnectToken(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_CONNECT_TOKEN' }))
      expect(native.readConnectToken(bad)).toBeNull()
    }
  })
})

describe('server addresses in a token', () => {
  it('are destinations to both codecs alike: no wildcard, broadcast or multicast; every other unicast address', async () => {
    const nativeToken = (address: string) => () =>
      native.generateConnectToken({
        ...base,
        serverAddresses: [address],
        userData: new Uint8Array(256),
        clientToServerKey: new Uint8Array(32).fill(1),
        serverToClientKey: new Uint8Array(32).fill(2),
        nonce: new Uint8Array(24),
        createTimestamp: 1n,
        expireTimestamp: 100n,
      })
    const refused = ['0.0.0.0:40000', '0.1.2.3:40000', '255.255.255.255:40000', '224.0.0.1:40000', '239.255.255.255:40000', '[::]:40000', '[::ffff:0.0.0.0]:40000', '[::ffff:239.1.1.1]:40000', '[ff02::1]:40000']
    for (const address of refused) {
      await expect(generateConnectToken({ ...base, serverAddresses: [address] }), address).rejects.toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
      expect(nativeToken(address), address).toThrow(/does not parse as a destination/)
    }
    for (const address of ['1.0.0.0:1', '223.255.255.255:1', '240.0.0.1:1', '255.255.255.254:1', '[::1]:1', '[::2]:1', '[fe80::1]:1', '[::ffff:1.2.3.4]:1', '[feff::1]:1']) {
      await expect(generateConnectToken({ ...base, serverAddresses: [address] }), address).resolves.toHaveLength(2048)
      expect(nativeToken(address), address).not.toThrow()
    }
  })
})
