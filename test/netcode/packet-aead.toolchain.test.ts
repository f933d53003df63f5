// The native engine seals and opens netcode's packets and challenge tokens with libsodium's ChaCha20-Poly1305
// through one wrapper (native/protocol/netcode/aead.cc: the nonce, the sizes). Differential: the engine's packets are
// held here to libsodium-wrappers' crypto_aead_chacha20poly1305_ietf_* (libsodium compiled to WebAssembly,
// the TypeScript codecs' crypto) at every body size a packet can have, and refused under every kind of
// tampering; where JavaScript cannot see (in place, no plaintext written on failure, sizes out of range,
// RFC 8439's example), test/netcode/aead-harness.toolchain.test.ts checks it with a C++ program.
import { beforeAll, describe, expect, it } from 'vitest'
import { loadTestingAddon } from '../testing-addon.ts'
import { PacketType } from '../../src/protocol/netcode/constants.ts'
import { type Sodium, loadSodium } from '../../src/protocol/netcode/sodium.ts'
import { hex, specNonce, specPacketAd } from './spec.ts'

const native = loadTestingAddon().netcode
let sodium: Sodium
beforeAll(async () => {
  sodium = await loadSodium()
})

const protocolId = 0x1122334455667788n
const key = Uint8Array.from({ length: 32 }, (_, i) => (i * 29 + 7) & 0xff)
const maxPayload = 1200

/** Deterministic bytes that differ with size and seed (no two bodies alike). */
function bytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size)
  let x = (seed * 2654435761 + size) >>> 0
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

/** A payload packet sealed by libsodium-wrappers, laid out as the standard says. */
function sodiumPacket(sequence: bigint, body: Uint8Array): Uint8Array {
  const count = Math.max(1, Math.ceil(sequence.toString(16).length / 2))
  const prefix = (count << 4) | PacketType.payload
  const sealed = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(body, specPacketAd(protocolId, prefix), null, specNonce(sequence), key)
  const packet = new Uint8Array(1 + count + sealed.byteLength)
  packet[0] = prefix
  for (let i = 0; i < count; i++) packet[1 + i] = Number((sequence >> BigInt(8 * i)) & 0xffn)
  packet.set(sealed, 1 + count)
  return packet
}

const payloadMask = 1 << PacketType.payload

describe("the engine's ChaCha20-Poly1305 is libsodium-wrappers' AEAD", () => {
  it('seals every payload size from 1 to 1200 bytes as libsodium does, and opens what libsodium sealed', () => {
    let checked = 0
    for (let size = 1; size <= maxPayload; size++) {
      const sequence = BigInt(size) * 0x1_0000_0001n
      const body = bytes(size, 1)
      const expected = sodiumPacket(sequence, body)
      const sealed = native.encryptPacket(PacketType.payload, sequence, body, protocolId, key)
      if (hex(sealed) !== hex(expected)) expect.fail(`sealed ${size} B differently from libsodium`)
      const opened = native.readEncryptedPacket(expected, protocolId, key, payloadMask)
      if (opened.reason !== 'none' || hex(opened.body!) !== hex(body)) expect.fail(`could not open libsodium's ${size} B: ${opened.reason}`)
      checked++
    }
    expect(checked).toBe(maxPayload)
  })

  it('refuses a packet with any single bit of its ciphertext or tag flipped, at sizes around each ChaCha20 block and Poly1305 chunk edge', () => {
    const sizes = [1, 8, 15, 16, 17, 63, 64, 65, 191, 192, 193, 447, 448, 449, 703, 704, 705, 959, 960, 961, 1199, 1200]
    let refused = 0
    let bits = 0
    for (const size of sizes) {
      const body = bytes(size, 2)
      const packet = sodiumPacket(77n, body)
      bits += 8 * (packet.byteLength - 2)
      for (let bit = 8 * 2; bit < 8 * packet.byteLength; bit++) {
        const forged = packet.slice()
        forged[bit >> 3]! ^= 1 << (bit & 7)
        const result = native.readEncryptedPacket(forged, protocolId, key, payloadMask)
        if (result.reason !== 'decryption-failed' || result.body !== undefined) {
          expect.fail(`${size} B with bit ${bit} flipped: ${result.reason}`)
        }
        refused++
      }
      expect(native.readEncryptedPacket(packet, protocolId, key, payloadMask).reason).toBe('none')
    }
    expect(refused).toBe(bits)
  })

  it('refuses a packet opened with another key, protocol id (associated data), sequence (nonce) or length', () => {
    const body = bytes(300, 3)
    const packet = sodiumPacket(5n, body)
    const otherKey = key.slice()
    otherKey[31]! ^= 0x80
    expect(native.readEncryptedPacket(packet, protocolId, otherKey, payloadMask).reason).toBe('decryption-failed')
    expect(native.readEncryptedPacket(packet, protocolId ^ 1n, key, payloadMask).reason).toBe('decryption-failed')
    const otherSequence = packet.slice()
    otherSequence[1] = 6
    expect(native.readEncryptedPacket(otherSequence, protocolId, key, payloadMask).reason).toBe('decryption-failed')
    // One byte short: the tag is read from the wrong place. Moved bytes: the tag covers the length.
    expect(native.readEncryptedPacket(packet.subarray(0, packet.byteLength - 1), protocolId, key, payloadMask).reason).toBe('decryption-failed')
    expect(native.readEncryptedPacket(packet, protocolId, key, payloadMask)).toMatchObject({ reason: 'none', body })
  })

  it('seals and opens the fixed-size bodies (keep-alive, disconnect, challenge token) as libsodium does', () => {
    const keepAlive = bytes(8, 4)
    const ad = (type: number) => specPacketAd(protocolId, (1 << 4) | type)
    const sealedKeepAlive = native.encryptPacket(PacketType.keepAlive, 9n, keepAlive, protocolId, key)
    expect(hex(sealedKeepAlive.subarray(2))).toBe(hex(sodium.crypto_aead_chacha20poly1305_ietf_encrypt(keepAlive, ad(PacketType.keepAlive), null, specNonce(9n), key)))
    const sealedDisconnect = native.encryptPacket(PacketType.disconnect, 10n, new Uint8Array(0), protocolId, key)
    expect(hex(sealedDisconnect.subarray(2))).toBe(hex(sodium.crypto_aead_chacha20poly1305_ietf_encrypt(new Uint8Array(0), ad(PacketType.disconnect), null, specNonce(10n), key)))
    expect(native.readEncryptedPacket(sealedDisconnect, protocolId, key, 1 << PacketType.disconnect)).toMatchObject({ reason: 'none', body: new Uint8Array(0) })

    const userData = bytes(256, 5)
    const challenge = native.sealChallengeToken(0xabcdefn, userData, 1234n, key)
    const plain = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, challenge, null, specNonce(1234n), key)
    expect(hex(plain.subarray(8, 8 + 256))).toBe(hex(userData))
    const forged = challenge.slice()
    forged[299]! ^= 1
    expect(native.openChallengeToken(forged, 1234n, key)).toBeNull()
    expect(native.openChallengeToken(challenge, 1234n, key)).toMatchObject({ clientId: 0xabcdefn, userData })
  })
})
