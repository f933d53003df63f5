// The native server core holding several private keys (the current one, and those it replaced in their
// grace), on a fake clock: which tokens it opens and when it stops, and what a 5th key does. The PrivateKeys
// set of src/protocol/netcode/ (Server's keys): private-keys-set.test.ts.
import { beforeAll, describe, expect, it } from 'vitest'
import { loadTestingAddon } from '../testing-addon.ts'
import { layout } from '../../src/engine/layout.ts'
import { encodeConnectToken, readConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { PacketType } from '../../src/protocol/netcode/constants.ts'
import { encryptPacket, readEncryptedPacket, writeConnectionRequest } from './codecs/packets.ts'
import { type Sodium, loadSodium } from '../../src/protocol/netcode/sodium.ts'
import type { ServerCoreBinding as Core, ServerCoreOptions, ServerEvent } from './core-bindings.ts'
import { fill } from './spec.ts'

const protocolId = 0x4e15n
const serverAddress = '127.0.0.1:40000'
const T0 = 1_800_000_000n // unix seconds of the fake clock
const second = 1_000_000
/** Keys A, B, C, ...: a byte each, repeated. */
const keys = Array.from({ length: 8 }, (_, i) => fill(32, 0x11 * (i + 1)))
const [A, B, C, D, E] = keys as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array]
const stranger = fill(32, 0xee)

let sodium: Sodium
beforeAll(async () => {
  sodium = await loadSodium()
})

type Options = Partial<Pick<ServerCoreOptions, 'privateKey' | 'previousKeys'>>
const coreOptions = (options: Options): ServerCoreOptions => ({ protocolId, privateKey: A, publicAddress: serverAddress, maxClients: 64, challengeKey: fill(32, 0x21), ...options })
const server = (options: Options = {}): Core => {
  const { ServerCore } = loadTestingAddon().netcode as unknown as { ServerCore: new (o: ServerCoreOptions) => Core }
  return new ServerCore(coreOptions(options))
}

let nextClient = 1
/** A connection request under `key`, from an address and client id of its own. */
function request(key: Uint8Array, expireSeconds = 600): { from: string; packet: Uint8Array } {
  const id = nextClient++
  const token = encodeConnectToken(sodium, { protocolId, privateKey: key, clientId: BigInt(id), serverAddresses: [serverAddress], expireSeconds, timeoutSeconds: 5, nowSeconds: Number(T0) })
  return { from: `10.0.${id >> 8}.${id & 255}:${5000 + (id % 1000)}`, packet: writeConnectionRequest(readConnectToken(token)) }
}

/** Whether the core took a request under `key` at `us`: answered with a challenge (else it sent nothing). */
function accepts(core: Core, key: Uint8Array, us: number): boolean {
  const { from, packet } = request(key)
  const events = core.receive(from, packet, us, T0)
  if (events.length === 0) return false
  expect(events).toHaveLength(1)
  expect((events[0] as Extract<ServerEvent, { kind: 'send' }>).data[0]! & 0x0f).toBe(PacketType.connectionChallenge)
  return true
}

describe('native server core with several private keys', () => {
  it('opens tokens under the current key; under the previous one within its grace, then refuses them as tokens it cannot open', () => {
    const core = server()
    expect(accepts(core, A, 0)).toBe(true)
    core.rotatePrivateKey(B, 10 * second, 1 * second, T0)
    expect(core.state().privateKeyCount).toBe(2)
    expect(accepts(core, B, 1 * second)).toBe(true) // the new key at once
    expect(accepts(core, A, 1 * second)).toBe(true) // the old one in its grace
    expect(accepts(core, A, 11 * second - 1)).toBe(true) // ... to its last µs
    expect(core.state().counters).toMatchObject({ previousKeyRequests: 2, tokenRefused: 0 })
    expect(accepts(core, A, 11 * second)).toBe(false) // its grace is over
    expect(core.state().counters).toMatchObject({ previousKeyRequests: 2, tokenRefused: 1, decryptionFailed: 0 })
    expect(core.state().privateKeyCount).toBe(1)
    expect(accepts(core, B, 11 * second)).toBe(true)
    expect(core.state().counters.previousKeyRequests).toBe(2) // the current key's tokens never count
  })

  it('refuses a token under a key it never had, whatever it holds', () => {
    const core = server()
    expect(accepts(core, stranger, 0)).toBe(false)
    core.rotatePrivateKey(B, 10 * second, 0, T0)
    core.rotatePrivateKey(C, 10 * second, 0, T0)
    expect(core.state().privateKeyCount).toBe(3)
    expect(accepts(core, stranger, 1)).toBe(false)
    expect(core.state().counters).toMatchObject({ tokenRefused: 2, previousKeyRequests: 0, decryptionFailed: 0, malformed: 0 })
  })

  it('with a grace of 0, refuses the old key at once', () => {
    const core = server()
    core.rotatePrivateKey(B, 0, 5 * second, T0)
    expect(core.state().privateKeyCount).toBe(1)
    expect(core.state().nextDeadlineUs).toBeNull()
    expect(accepts(core, A, 5 * second)).toBe(false)
    expect(accepts(core, B, 5 * second)).toBe(true)
    expect(core.state().counters.tokenRefused).toBe(1)
  })

  it('keeps a key replaced earlier until its own deadline when it rotates again', () => {
    const core = server()
    core.rotatePrivateKey(B, 30 * second, 0, T0) // A until 30 s
    core.rotatePrivateKey(C, 5 * second, 10 * second, T0) // B until 15 s; A still until 30 s
    expect(core.state().privateKeyCount).toBe(3)
    expect([accepts(core, A, 14 * second), accepts(core, B, 14 * second), accepts(core, C, 14 * second)]).toEqual([true, true, true])
    expect([accepts(core, A, 16 * second), accepts(core, B, 16 * second)]).toEqual([true, false])
    expect(core.state().privateKeyCount).toBe(2)
    expect([accepts(core, A, 30 * second), accepts(core, C, 30 * second)]).toEqual([false, true])
    expect(core.state().privateKeyCount).toBe(1)
  })

  it(`holds at most ${layout.maxPrivateKeys} keys: a 5th rotation drops the oldest at once`, () => {
    expect(layout.maxPrivateKeys).toBe(4)
    const core = server()
    for (const key of [B, C, D]) core.rotatePrivateKey(key, 60 * second, 0, T0)
    expect(core.state().privateKeyCount).toBe(4)
    expect([A, B, C, D].map((key) => accepts(core, key, 1))).toEqual([true, true, true, true])
    core.rotatePrivateKey(E, 60 * second, 2, T0)
    expect(core.state().privateKeyCount).toBe(4)
    expect([A, B, C, D, E].map((key) => accepts(core, key, 3))).toEqual([false, true, true, true, true])
    expect(core.state().counters).toMatchObject({ tokenRefused: 1, previousKeyRequests: 3 + 3 })
  })

  it('takes a key back that is still in its grace as the current one, held once', () => {
    const core = server()
    core.rotatePrivateKey(B, 60 * second, 0, T0)
    core.rotatePrivateKey(A, 60 * second, 1, T0) // back to A: B in its grace, A current (not also a previous key)
    expect(core.state().privateKeyCount).toBe(2)
    expect([accepts(core, A, 2), accepts(core, B, 2)]).toEqual([true, true])
    expect(core.state().counters.previousKeyRequests).toBe(1) // B's
    core.rotatePrivateKey(A, 60 * second, 3, T0) // to the key it has: nothing changes
    expect(core.state().privateKeyCount).toBe(2)
  })

  it('starts with keys rotated before it (a server that listens after rotatePrivateKey()), those past their grace left out', () => {
    const core = server({ privateKey: C, previousKeys: [{ key: B, untilUs: 20 * second }, { key: A, untilUs: 10 * second }] })
    expect(core.state().privateKeyCount).toBe(3)
    expect([accepts(core, A, 5 * second), accepts(core, B, 5 * second), accepts(core, C, 5 * second)]).toEqual([true, true, true])
    expect([accepts(core, A, 12 * second), accepts(core, B, 12 * second)]).toEqual([false, true])
    const late = server({ privateKey: C, previousKeys: [{ key: B, untilUs: 20 * second }] })
    expect(accepts(late, B, 25 * second)).toBe(false)
    expect(late.state().privateKeyCount).toBe(1)
  })

  it('wakes when a grace ends, and drops the key then (update), with no request to find it', () => {
    const core = server()
    expect(core.state().nextDeadlineUs).toBeNull()
    core.rotatePrivateKey(B, 10 * second, 1 * second, T0)
    expect(core.state().nextDeadlineUs).toBe(11 * second)
    core.update(11 * second - 1, T0)
    expect(core.state().privateKeyCount).toBe(2)
    core.update(11 * second, T0)
    expect(core.state().privateKeyCount).toBe(1)
    expect(core.state().nextDeadlineUs).toBeNull()
  })

  it('a client whose token opened under the previous key completes its handshake and connects', () => {
    const core = server()
    core.rotatePrivateKey(B, 2 * second, 0, T0)
    const bytes = encodeConnectToken(sodium, { protocolId, privateKey: A, clientId: 999n, serverAddresses: [serverAddress], expireSeconds: 60, timeoutSeconds: 5, nowSeconds: Number(T0) })
    const token = readConnectToken(bytes)
    const from = '10.9.9.9:9999'
    const [challenge] = core.receive(from, writeConnectionRequest(token), 1, T0) as Extract<ServerEvent, { kind: 'send' }>[]
    const opened = readEncryptedPacket(sodium, challenge!.data, { protocolId, key: token.serverToClientKey, accept: new Set([PacketType.connectionChallenge]) })
    if (!opened.ok) throw new Error(`the challenge did not open: ${opened.reason}`)
    const response = encryptPacket(sodium, { type: PacketType.connectionResponse, sequence: 0n, body: opened.value.body }, protocolId, token.clientToServerKey)
    // The handshake's second half needs no private key: it completes after the grace too (within the token's 5 s).
    const events = core.receive(from, response, 3 * second, T0)
    expect(events[0]).toMatchObject({ kind: 'connect', clientId: 999n })
  })
})
