// Hostile and malformed input: every reader drops it, says why, and never throws. Checked on both the
// TypeScript codec and the native one, which must agree.
import { beforeAll, describe, expect, it } from 'vitest'
import { type NativeReplayWindow, loadTestingAddon } from '../testing-addon.ts'
import { encodeConnectToken, readConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { PacketType } from '../../src/protocol/netcode/constants.ts'
import { type DropReason, encryptPacket, readConnectionRequest, readEncryptedPacket, writeConnectionRequest } from './codecs/packets.ts'
import { ReplayProtection } from './codecs/replay-protection.ts'
import { type Sodium, loadSodium } from '../../src/protocol/netcode/sodium.ts'
import { seededRandom } from '../helpers.ts'
import { fill, goldenToken, goldenTokenOptions } from './spec.ts'

const native = loadTestingAddon().netcode
const protocolId = goldenToken.protocolId
const key = fill(32, 0x44)
const all = new Set([1, 2, 3, 4, 5, 6])
let sodium: Sodium
beforeAll(async () => {
  sodium = await loadSodium()
})

/** Reads with both implementations; they must agree. Returns the reason ('none' when accepted). */
function read(packet: Uint8Array, accept: ReadonlySet<number> = all, replays?: { ts: ReplayProtection; native: NativeReplayWindow }): DropReason | 'none' {
  const mine = readEncryptedPacket(sodium, packet, { protocolId, key, accept, replay: replays?.ts })
  let mask = 0
  for (const type of accept) mask |= 1 << type
  const theirs = native.readEncryptedPacket(packet, protocolId, key, mask, replays?.native) as { reason: string }
  const reason = mine.ok ? 'none' : mine.reason
  expect(theirs.reason).toBe(reason)
  return reason
}

function packet(type: number, sequence: bigint, body: Uint8Array, withKey = key): Uint8Array {
  return encryptPacket(sodium, { type: type as PacketType, sequence, body }, protocolId, withKey)
}

describe('encrypted packet reader', () => {
  it('drops packets shorter than 18 bytes, of type 0 or 7..15, and with 0 or 9..15 sequence bytes', () => {
    const good = packet(PacketType.payload, 1n, fill(10, 1))
    expect(read(good)).toBe('none')
    expect(read(good.subarray(0, 17))).toBe('malformed')
    expect(read(new Uint8Array(0))).toBe('malformed')
    for (const type of [0, 7, 8, 15]) {
      const bad = good.slice()
      bad[0] = (bad[0]! & 0xf0) | type
      expect(read(bad)).toBe('malformed')
    }
    for (const count of [0, 9, 15]) {
      const bad = good.slice()
      bad[0] = (count << 4) | PacketType.payload
      expect(read(bad)).toBe('malformed')
    }
  })

  it('drops types this side does not take (a server ignores challenges; a client requests and responses)', () => {
    const challenge = packet(PacketType.connectionChallenge, 1n, fill(308, 2))
    expect(read(challenge, new Set([1, 3, 4, 5, 6]))).toBe('unexpected-type')
    expect(read(challenge, new Set([1, 2, 4, 5, 6]))).toBe('none')
  })

  it('drops bodies of the wrong size for their type', () => {
    expect(read(packet(PacketType.keepAlive, 1n, fill(9, 0)))).toBe('malformed')
    expect(read(packet(PacketType.connectionDenied, 1n, fill(1, 0)))).toBe('malformed')
    expect(read(packet(PacketType.disconnect, 1n, fill(1, 0)))).toBe('malformed')
    expect(read(packet(PacketType.connectionResponse, 1n, fill(307, 0)))).toBe('malformed')
    expect(read(packet(PacketType.payload, 1n, new Uint8Array(0)))).toBe('malformed')
    // 1201 bytes of payload cannot be encrypted by either encoder; forge the frame by hand.
    const forged = new Uint8Array(1 + 1 + 1201 + 16)
    forged[0] = (1 << 4) | PacketType.payload
    expect(read(forged)).toBe('malformed')
  })

  it('drops any tampering: a flipped bit in the body, the MAC, the sequence or the prefix', () => {
    const good = packet(PacketType.payload, 300n, fill(40, 9))
    for (const at of [3, 20, good.byteLength - 1]) {
      const bad = good.slice()
      bad[at]! ^= 0x01
      expect(read(bad)).toBe('decryption-failed')
    }
    const otherSequence = good.slice()
    otherSequence[1]! ^= 0x01 // sequence 301: the nonce no longer matches
    expect(read(otherSequence)).toBe('decryption-failed')
    const otherType = packet(PacketType.keepAlive, 5n, fill(8, 0)).slice()
    otherType[0] = (otherType[0]! & 0xf0) | PacketType.payload // same size would fit a payload: the AD catches it
    expect(read(otherType)).toBe('decryption-failed')
  })

  it('drops packets under another key or protocol id', () => {
    expect(read(packet(PacketType.payload, 1n, fill(5, 1), fill(32, 0x45)))).toBe('decryption-failed')
    const other = encryptPacket(sodium, { type: PacketType.payload, sequence: 1n, body: fill(5, 1) }, protocolId + 1n, key)
    expect(read(other)).toBe('decryption-failed')
  })

  it('never throws on random bytes', () => {
    const random = seededRandom(7) // a failure repeats
    for (let i = 0; i < 2000; i++) {
      const size = 1 + Math.floor(random() * 1300)
      const bytes = Uint8Array.from({ length: size }, () => Math.floor(random() * 256))
      expect(['malformed', 'unexpected-type', 'decryption-failed']).toContain(read(bytes))
    }
  })
})

describe('replay protection', () => {
  function windows(): { ts: ReplayProtection; native: NativeReplayWindow } {
    return { ts: new ReplayProtection(), native: new native.ReplayWindow() }
  }

  it('refuses a packet seen before (replayed) and one older than the window (too-old); keep-alive, payload and disconnect only', () => {
    const replay = windows()
    const first = packet(PacketType.payload, 10n, fill(4, 1))
    expect(read(first, all, replay)).toBe('none')
    expect(read(first, all, replay)).toBe('replayed')
    expect(read(packet(PacketType.keepAlive, 300n, fill(8, 0)), all, replay)).toBe('none')
    expect(read(packet(PacketType.payload, 45n, fill(4, 1)), all, replay)).toBe('none') // the oldest inside: 300 - 255
    // 300 - 256: outside, counted apart from a replay inside (reordered that far, as often as replayed)
    expect(read(packet(PacketType.payload, 44n, fill(4, 1)), all, replay)).toBe('too-old')
    expect(read(packet(PacketType.payload, 3n, fill(4, 1)), all, replay)).toBe('too-old')
    expect(read(packet(PacketType.disconnect, 300n, new Uint8Array(0)), all, replay)).toBe('replayed')
    // Handshake packets are not replay-protected by the window (they carry their own tokens).
    const denied = packet(PacketType.connectionDenied, 300n, new Uint8Array(0))
    expect(read(denied, all, replay)).toBe('none')
    expect(read(denied, all, replay)).toBe('none')
  })

  it('advances only after decryption: a forged packet with a huge sequence cannot push the window', () => {
    const replay = windows()
    expect(read(packet(PacketType.payload, 5n, fill(4, 1)), all, replay)).toBe('none')
    const forged = packet(PacketType.payload, 1_000_000n, fill(4, 1), fill(32, 0x99))
    expect(read(forged, all, replay)).toBe('decryption-failed')
    expect(read(packet(PacketType.payload, 6n, fill(4, 1)), all, replay)).toBe('none')
  })

  it('works at the top of the sequence space (no overflow in the window test)', () => {
    const replay = windows()
    const top = (1n << 64n) - 2n
    expect(read(packet(PacketType.payload, top - 10n, fill(4, 1)), all, replay)).toBe('none')
    expect(read(packet(PacketType.payload, top, fill(4, 1)), all, replay)).toBe('none')
    expect(read(packet(PacketType.payload, top - 5n, fill(4, 1)), all, replay)).toBe('none')
    expect(read(packet(PacketType.payload, top - 5n, fill(4, 1)), all, replay)).toBe('replayed')
  })

  /** A packet near `base` (mostly ahead, some behind and replayed): both windows decide alike; most taken ones advance them. */
  function offerAlike({ ts, native: bitmap }: ReturnType<typeof windows>, base: bigint, random: () => number): void {
    const sequence = base - BigInt(Math.floor(random() * 400)) + 50n
    const seen = ts.alreadyReceived(sequence)
    expect(bitmap.alreadyReceived(sequence)).toBe(seen)
    if (!seen && random() < 0.9) {
      ts.advance(sequence)
      bitmap.advance(sequence)
    }
  }

  it('the native bitmap window and the TypeScript table window decide alike on random traffic', () => {
    const random = seededRandom(11) // a failure repeats
    for (let round = 0; round < 20; round++) {
      const both = windows()
      let base = BigInt(Math.floor(random() * 2 ** 40))
      for (let i = 0; i < 3000; i++) {
        base += BigInt(Math.floor(random() * 8))
        offerAlike(both, base, random)
      }
    }
  })

  it('alike too where a connection again with the same token carries the window (resetBelow, receivedEnd)', () => {
    const random = seededRandom(12)
    for (let round = 0; round < 20; round++) {
      const both = windows()
      const { ts, native: bitmap } = both
      expect(ts.receivedEnd()).toBe(0n)
      expect(bitmap.receivedEnd()).toBe(0n)
      let base = BigInt(Math.floor(random() * 2 ** 40))
      for (let i = 0; i < 2000; i++) {
        const roll = random()
        if (roll < 0.01) {
          // Every sequence below `end` counts as received, those far below included.
          const end = base + BigInt(Math.floor(random() * 300))
          ts.resetBelow(end)
          bitmap.resetBelow(end)
          base = end
        } else if (roll < 0.02) {
          ts.resetBelow(0n) // a fresh window
          bitmap.resetBelow(0n)
        }
        base += BigInt(Math.floor(random() * 8))
        offerAlike(both, base, random)
        expect(ts.receivedEnd()).toBe(bitmap.receivedEnd())
      }
    }
  })

  it('resetBelow: below the end refused, the end itself taken; receivedEnd past the last received, saturating at 2^64 - 1', () => {
    for (const window of [new ReplayProtection(), new native.ReplayWindow()]) {
      window.resetBelow(300n)
      expect([299n, 200n, 44n, 0n].map((s) => window.alreadyReceived(s))).toEqual([true, true, true, true])
      expect(window.alreadyReceived(300n)).toBe(false)
      expect(window.receivedEnd()).toBe(300n)
      window.resetBelow(3n)
      expect([0n, 1n, 2n, 3n].map((s) => window.alreadyReceived(s))).toEqual([true, true, true, false])
      const top = (1n << 64n) - 1n
      window.advance(top)
      expect(window.receivedEnd()).toBe(top)
    }
  })
})

describe('connection request reader', () => {
  const now = goldenToken.createTimestamp + 1n
  function request(): Uint8Array {
    return writeConnectionRequest(readConnectToken(encodeConnectToken(sodium, goldenTokenOptions())))
  }
  function check(bytes: Uint8Array, expected: string, options: { protocolId?: bigint; privateKey?: Uint8Array; now?: bigint } = {}): void {
    const expectedBy = { protocolId: options.protocolId ?? protocolId, privateKey: options.privateKey ?? goldenToken.privateKey, nowSeconds: options.now ?? now }
    const mine = readConnectionRequest(sodium, bytes, expectedBy)
    expect(mine.ok ? 'none' : mine.reason).toBe(expected)
    expect(native.readConnectionRequest(bytes, expectedBy.protocolId, expectedBy.privateKey, expectedBy.nowSeconds).reason).toBe(expected)
  }

  it('checks size, version, protocol id, expiry and the sealed token, in that order', () => {
    check(request(), 'none')
    check(request().subarray(0, 1077), 'malformed')
    check(Uint8Array.from([...request(), 0]), 'malformed')
    const version = request()
    version[12] = 0x33 // "NETCODE 1.03"
    check(version, 'wrong-protocol')
    check(request(), 'wrong-protocol', { protocolId: protocolId + 1n })
    check(request(), 'expired', { now: goldenToken.createTimestamp + 30n })
    check(request(), 'token-refused', { privateKey: fill(32, 0x78) })
    const tampered = request()
    tampered[500]! ^= 0x80
    check(tampered, 'token-refused')
    const otherExpiry = request()
    otherExpiry[22]! ^= 0x01 // the expire timestamp is bound into the AEAD
    check(otherExpiry, 'token-refused')
  })
})

describe('replay protection at 2^64 - 1', () => {
  it('refuses a second packet with the largest sequence, in both implementations', () => {
    const replay = { ts: new ReplayProtection(), native: new native.ReplayWindow() }
    const top = (1n << 64n) - 1n
    const last = packet(PacketType.payload, top, fill(4, 1))
    expect(read(last, all, replay)).toBe('none')
    expect(read(last, all, replay)).toBe('replayed')
    expect(replay.ts.alreadyReceived(top)).toBe(true)
    expect(replay.native.alreadyReceived(top)).toBe(true)
  })
})
