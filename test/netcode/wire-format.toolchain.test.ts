// Golden vectors for netcode 1.02 tokens and packets (pinned: see the fixture's note), checked against the
// native codec (the test bindings' addon), the TypeScript one and libsodium-wrappers used directly, and the two
// codecs against each other.
import { readFileSync } from 'node:fs'
import { beforeAll, describe, expect, it } from 'vitest'
import { loadTestingAddon } from '../testing-addon.ts'
import { openChallengeToken, sealChallengeToken } from './codecs/challenge-token.ts'
import { encodeConnectToken, readConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { PacketType } from '../../src/protocol/netcode/constants.ts'
import { encryptPacket, readConnectionRequest, readEncryptedPacket, writeConnectionRequest } from './codecs/packets.ts'
import { type Sodium, loadSodium } from '../../src/protocol/netcode/sodium.ts'
import { VERSION, fill, goldenToken, goldenTokenOptions, hex, le, specNonce, specPacketAd } from './spec.ts'

const golden = JSON.parse(readFileSync(new URL('../fixtures/netcode-vectors.json', import.meta.url), 'utf8')) as {
  connectToken: string
  connectionRequest: string
  challengeToken: string
  packets: { type: number; sequence: string; body: string; packet: string }[]
}
const native = loadTestingAddon().netcode
let sodium: Sodium
beforeAll(async () => {
  sodium = await loadSodium()
})

function tsToken(): Uint8Array {
  return encodeConnectToken(sodium, goldenTokenOptions())
}

function nativeToken(): Uint8Array {
  const t = goldenToken
  return native.generateConnectToken({ ...t, expireTimestamp: t.createTimestamp + BigInt(t.expireSeconds) })
}

describe('connect token', () => {
  it('is byte-identical from TypeScript and from the native addon, and matches the golden vector', () => {
    expect(hex(nativeToken())).toBe(hex(tsToken()))
    expect(hex(nativeToken())).toBe(golden.connectToken)
  })

  it('reads back the same in both implementations', () => {
    const token = tsToken()
    const mine = readConnectToken(token)
    const theirs = native.readConnectToken(token)
    expect(mine.protocolId).toBe(goldenToken.protocolId)
    expect(mine.timeoutSeconds).toBe(5)
    expect(mine.serverAddresses.length).toBe(3)
    expect(theirs).toMatchObject({
      protocolId: goldenToken.protocolId,
      createTimestamp: goldenToken.createTimestamp,
      expireTimestamp: goldenToken.createTimestamp + 30n,
      timeoutSeconds: 5,
      serverAddresses: ['127.0.0.1:40000', '[::1]:40001', '[2001:db8::1:2]:7'],
    })
    expect(hex(theirs!.privateData)).toBe(hex(mine.privateData))
  })

  it('native opens what libsodium-wrappers sealed, and the reverse', () => {
    const fromTs = readConnectToken(tsToken())
    const opened = native.openPrivateConnectToken(fromTs.privateData, goldenToken.protocolId, fromTs.expireTimestamp, fromTs.nonce, goldenToken.privateKey)
    expect(opened).toMatchObject({ clientId: goldenToken.clientId, timeoutSeconds: 5, serverAddresses: goldenToken.serverAddresses })
    expect(hex(opened!.userData)).toBe(hex(goldenToken.userData))
    // A token the addon made with a random nonce and keys, opened with libsodium-wrappers.
    const random = native.generateConnectToken({
      ...goldenToken,
      expireTimestamp: 2_000_000_000n,
      nonce: sodium.randombytes_buf(24),
      clientToServerKey: sodium.randombytes_buf(32),
    })
    const parsed = readConnectToken(random)
    const ad = Uint8Array.from([...VERSION, ...le(goldenToken.protocolId, 8), ...le(2_000_000_000n, 8)])
    const plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, parsed.privateData, ad, parsed.nonce, goldenToken.privateKey)
    expect(hex(plain.subarray(0, 8))).toBe(hex(Uint8Array.from(le(goldenToken.clientId, 8))))
  })
})

describe('connection request', () => {
  it('is the prefix 0, version, protocol id, expire timestamp, nonce and sealed token: 1078 bytes', () => {
    const token = readConnectToken(tsToken())
    const request = writeConnectionRequest(token)
    expect(request.byteLength).toBe(1078)
    const expected = Uint8Array.from([0, ...VERSION, ...le(goldenToken.protocolId, 8), ...le(token.expireTimestamp, 8), ...token.nonce, ...token.privateData])
    expect(hex(request)).toBe(hex(expected))
    expect(hex(native.writeConnectionRequest(tsToken())!)).toBe(hex(request))
    expect(hex(request)).toBe(golden.connectionRequest)
  })

  it('is read alike by both implementations', () => {
    const request = writeConnectionRequest(readConnectToken(tsToken()))
    const now = goldenToken.createTimestamp + 1n
    const mine = readConnectionRequest(sodium, request, { protocolId: goldenToken.protocolId, privateKey: goldenToken.privateKey, nowSeconds: now })
    const theirs = native.readConnectionRequest(request, goldenToken.protocolId, goldenToken.privateKey, now)
    expect(mine.ok).toBe(true)
    expect(theirs).toMatchObject({ reason: 'none', clientId: goldenToken.clientId, timeoutSeconds: 5, serverAddresses: goldenToken.serverAddresses })
    if (mine.ok) expect(mine.value.token.clientId).toBe(goldenToken.clientId)
  })
})

describe('challenge token', () => {
  it('is client id, user data and zero padding, sealed with ChaCha20-Poly1305-IETF under nonce [0000 | sequence LE]', () => {
    const key = fill(32, 0x33)
    const sealed = sealChallengeToken(sodium, { clientId: goldenToken.clientId, userData: goldenToken.userData }, 7n, key)
    expect(sealed.byteLength).toBe(300)
    const plain = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, sealed, null, specNonce(7n), key)
    const expected = new Uint8Array(284)
    expected.set([...le(goldenToken.clientId, 8), ...goldenToken.userData])
    expect(hex(plain)).toBe(hex(expected))
    expect(hex(native.sealChallengeToken(goldenToken.clientId, goldenToken.userData, 7n, key))).toBe(hex(sealed))
    expect(hex(sealed)).toBe(golden.challengeToken)
    expect(native.openChallengeToken(sealed, 7n, key)).toMatchObject({ clientId: goldenToken.clientId })
    expect(openChallengeToken(sodium, sealed, 8n, key)).toBeNull()
    expect(native.openChallengeToken(sealed, 8n, key)).toBeNull()
  })
})

describe('encrypted packets', () => {
  const key = fill(32, 0x44)
  const protocolId = goldenToken.protocolId

  it.each(golden.packets.map((p) => [p.type, p.sequence, p] as const))('type %i, sequence %s: prefix, sequence bytes, AEAD as specified', (type, sequenceText, vector) => {
    const sequence = BigInt(sequenceText)
    const body = Uint8Array.from(Buffer.from(vector.body, 'hex'))
    const packet = encryptPacket(sodium, { type: type as PacketType, sequence, body }, protocolId, key)
    // Sequence: high zero bytes omitted (at least one byte), little-endian; prefix = (bytes << 4) | type.
    const sequenceBytes = Math.max(1, Math.ceil(sequence.toString(16).length / 2))
    expect(packet[0]).toBe((sequenceBytes << 4) | type)
    expect([...packet.subarray(1, 1 + sequenceBytes)]).toEqual(le(sequence, sequenceBytes))
    const plain = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, packet.subarray(1 + sequenceBytes), specPacketAd(protocolId, packet[0]!), specNonce(sequence), key)
    expect(hex(plain)).toBe(vector.body)
    expect(hex(native.encryptPacket(type, sequence, body, protocolId, key))).toBe(hex(packet))
    expect(hex(packet)).toBe(vector.packet)
    const mine = readEncryptedPacket(sodium, packet, { protocolId, key, accept: new Set([type]) })
    const theirs = native.readEncryptedPacket(packet, protocolId, key, 1 << type)
    expect(mine).toEqual({ ok: true, value: { type, sequence, body } })
    expect(theirs).toEqual({ reason: 'none', type, sequence, body })
  })
})
