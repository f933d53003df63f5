// Golden vectors for netcode 1.02 connect tokens (pinned: see the fixture's note), checked against layouts
// written here from the standard and against libsodium-wrappers used directly. The native codec against the
// same vectors and this one: wire-format.toolchain.test.ts.
import { readFileSync } from 'node:fs'
import { beforeAll, describe, expect, it } from 'vitest'
import { encodeConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { PacketType, sizes } from '../../src/protocol/netcode/constants.ts'
import { type Sodium, loadSodium } from '../../src/protocol/netcode/sodium.ts'
import { VERSION, goldenToken, goldenTokenOptions, hex, le, specPrivatePlain, specPublicToken } from './spec.ts'

const golden = JSON.parse(readFileSync(new URL('../fixtures/netcode-vectors.json', import.meta.url), 'utf8')) as {
  connectToken: string
  connectionRequest: string
  challengeToken: string
  packets: { type: number; sequence: string; body: string; packet: string }[]
}
let sodium: Sodium
beforeAll(async () => {
  sodium = await loadSodium()
})

function tsToken(): Uint8Array {
  return encodeConnectToken(sodium, goldenTokenOptions())
}

describe('connect token', () => {
  it('is laid out as the standard says, with the private part sealed by XChaCha20-Poly1305', () => {
    const token = tsToken()
    const expire = goldenToken.createTimestamp + 30n
    const sealed = token.subarray(61, 61 + 1024)
    // Unseal with libsodium directly: associated data = version || protocol id || expire timestamp.
    const ad = Uint8Array.from([...VERSION, ...le(goldenToken.protocolId, 8), ...le(expire, 8)])
    const plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, sealed, ad, goldenToken.nonce, goldenToken.privateKey)
    expect(hex(plain)).toBe(hex(specPrivatePlain()))
    expect(hex(token)).toBe(hex(specPublicToken(sealed)))
  })

  it('matches the golden vector', () => {
    expect(hex(tsToken())).toBe(golden.connectToken)
  })
})

describe('sizes', () => {
  it('match the standard', () => {
    expect(sizes.connectionRequest).toBe(1 + 13 + 8 + 8 + 24 + 1024)
    expect(sizes.challengeBody).toBe(8 + 300)
    expect(PacketType.disconnect).toBe(6)
  })
})
