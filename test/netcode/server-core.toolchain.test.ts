// The native server state machine (its test binding), driven with a fake clock by clients written with the
// TypeScript codec: every check of the standard, in order, and what the server sends (or, for bad input,
// does not send).
import { beforeAll, describe, expect, it } from 'vitest'
import { loadTestingAddon } from '../testing-addon.ts'
import { encodeConnectToken, readConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { PacketType } from '../../src/protocol/netcode/constants.ts'
import { encryptPacket, readEncryptedPacket, writeConnectionRequest } from './codecs/packets.ts'
import { type Sodium, loadSodium } from '../../src/protocol/netcode/sodium.ts'
import type { ServerCoreBinding as Core, ServerCoreOptions, ServerEvent as Event } from './core-bindings.ts'
import { fill } from './spec.ts'

const protocolId = 0xabcdn
const privateKey = fill(32, 0x5a)
const serverAddress = '127.0.0.1:40000'
const T0 = 1_800_000_000n // unix seconds of the fake clock
const second = 1_000_000

let sodium: Sodium
beforeAll(async () => {
  sodium = await loadSodium()
})

type ServerOptions = Partial<Pick<ServerCoreOptions, 'maxClients' | 'layerAboveEveryUs' | 'layerAboveStartUs'>>

const serverCoreOptions = (options: ServerOptions): ServerCoreOptions => ({ protocolId, privateKey, publicAddress: serverAddress, maxClients: 4, challengeKey: fill(32, 0x21), ...options })

function server(options: ServerOptions = {}): Core {
  const { ServerCore } = loadTestingAddon().netcode as unknown as { ServerCore: new (o: ServerCoreOptions) => Core }
  return new ServerCore(serverCoreOptions(options))
}

class Client {
  readonly token
  readonly tokenBytes: Uint8Array
  sequence = 0n
  constructor(
    readonly address: string,
    clientId: bigint,
    options: { serverAddresses?: string[]; expireSeconds?: number; timeoutSeconds?: number; key?: Uint8Array; protocolId?: bigint } = {},
  ) {
    this.tokenBytes = encodeConnectToken(sodium, {
      protocolId: options.protocolId ?? protocolId,
      privateKey: options.key ?? privateKey,
      clientId,
      serverAddresses: options.serverAddresses ?? [serverAddress],
      expireSeconds: options.expireSeconds ?? 30,
      timeoutSeconds: options.timeoutSeconds ?? 5,
      userData: new Uint8Array([9, 8, 7]),
      nowSeconds: Number(T0),
    })
    this.token = readConnectToken(this.tokenBytes)
  }
  request(): Uint8Array {
    return writeConnectionRequest(this.token)
  }
  packet(type: number, body: Uint8Array): Uint8Array {
    return encryptPacket(sodium, { type: type as PacketType, sequence: this.sequence++, body }, protocolId, this.token.clientToServerKey)
  }
  open(data: Uint8Array) {
    const result = readEncryptedPacket(sodium, data, { protocolId, key: this.token.serverToClientKey, accept: new Set([1, 2, 4, 5, 6]) })
    if (!result.ok) throw new Error(`client could not read the server's packet: ${result.reason}`)
    return result.value
  }
}

const sends = (events: Event[]) => events.filter((e): e is Extract<Event, { kind: 'send' }> => e.kind === 'send')

/** Runs the handshake; returns the client index. */
function connect(core: Core, client: Client, us = 0): number {
  const [challenge] = sends(core.receive(client.address, client.request(), us, T0))
  const body = client.open(challenge!.data).body
  const events = core.receive(client.address, client.packet(PacketType.connectionResponse, body), us, T0)
  const connected = events.find((e) => e.kind === 'connect') as Extract<Event, { kind: 'connect' }>
  return connected.index
}

describe('native server core', () => {
  describe('handshake', () => {
    it('request -> challenge -> response -> connected with a keep-alive, then payloads both ways', () => {
      const core = server()
      const client = new Client('127.0.0.1:50000', 77n)
      const request = client.request()
      const answer = core.receive(client.address, request, 0, T0)
      expect(answer).toHaveLength(1)
      const challenge = client.open(sends(answer)[0]!.data)
      expect(challenge.type).toBe(PacketType.connectionChallenge)
      expect(challenge.sequence).toBe(1n << 63n) // the global sequence, apart from per-client ones
      expect(sends(answer)[0]!.data.byteLength).toBeLessThan(request.byteLength) // no amplification

      const response = client.packet(PacketType.connectionResponse, challenge.body)
      const events = core.receive(client.address, response, 1000, T0)
      expect(events[0]).toMatchObject({ kind: 'connect', index: 0, clientId: 77n, address: client.address })
      expect([...(events[0] as { userData: Uint8Array }).userData.subarray(0, 4)]).toEqual([9, 8, 7, 0])
      const keepAlive = client.open(sends(events)[0]!.data)
      expect(keepAlive).toMatchObject({ type: PacketType.keepAlive, sequence: 0n })
      expect([...keepAlive.body]).toEqual([0, 0, 0, 0, 4, 0, 0, 0]) // client index 0, max clients 4

      const payload = core.receive(client.address, client.packet(PacketType.payload, new Uint8Array([1, 2, 3])), 2000, T0)
      expect(payload).toEqual([{ kind: 'payload', index: 0, data: new Uint8Array([1, 2, 3]) }])
      const out = core.sendPayload(0, new Uint8Array([4, 5]), 3000, T0)
      expect(out.accepted).toBe(true)
      expect(client.open(sends(out)[0]!.data)).toMatchObject({ type: PacketType.payload, sequence: 1n, body: new Uint8Array([4, 5]) })
      expect(core.state().connectedClients).toBe(1)
    })

    it('precedes payloads with keep-alives until the client confirms', () => {
      const core = server()
      const client = new Client('127.0.0.1:50000', 1n)
      connect(core, client)
      const first = sends(core.sendPayload(0, new Uint8Array([1]), 10, T0))
      expect(first.map((e) => client.open(e.data).type)).toEqual([PacketType.keepAlive, PacketType.payload])
      core.receive(client.address, client.packet(PacketType.keepAlive, new Uint8Array(8)), 20, T0)
      const after = sends(core.sendPayload(0, new Uint8Array([1]), 30, T0))
      expect(after.map((e) => client.open(e.data).type)).toEqual([PacketType.payload])
    })
  })

  describe('connection request checks (each ignored: counted, never answered)', () => {
    // Each check has a counter of its own (but the token's own checks, all tokenRefused): only that one moves.
    function refused(mutate: (request: Uint8Array) => Uint8Array, counter: string, client = new Client('127.0.0.1:50001', 5n), core = server(), now = T0) {
      const before = core.state().counters
      const request = mutate(client.request())
      expect(core.receive(client.address, request, 0, now)).toEqual([])
      expect(core.state().counters).toEqual({ ...before, packetsIn: before.packetsIn! + 1, bytesIn: before.bytesIn! + request.byteLength, [counter]: before[counter]! + 1 })
    }

    it('wrong size', () => refused((r) => r.subarray(0, 1077), 'malformed'))
    it('wrong version', () =>
      refused((r) => {
        const copy = r.slice()
        copy[5] = 0
        return copy
      }, 'wrongProtocol'))
    it('wrong protocol id', () => refused((r) => r, 'wrongProtocol', new Client('127.0.0.1:1', 5n, { protocolId: protocolId + 1n })))
    it('expired token', () => refused((r) => r, 'tokenExpired', new Client('127.0.0.1:50001', 5n, { expireSeconds: 10 }), server(), T0 + 10n))
    it('token that does not decrypt with the private key', () => refused((r) => r, 'tokenRefused', new Client('127.0.0.1:1', 5n, { key: fill(32, 1) })))
    it('token that does not list this server', () => refused((r) => r, 'tokenRefused', new Client('127.0.0.1:1', 5n, { serverAddresses: ['127.0.0.1:40001', '[::1]:40000'] })))

    it('address already connected, client id already connected, token reused from another address', () => {
      const core = server()
      const client = new Client('127.0.0.1:50002', 6n)
      connect(core, client)
      expect(core.receive(client.address, new Client(client.address, 99n).request(), 0, T0)).toEqual([]) // same address
      expect(core.receive('127.0.0.1:50003', new Client('127.0.0.1:50003', 6n).request(), 0, T0)).toEqual([]) // same client id
      const fresh = new Client('127.0.0.1:50004', 7n)
      expect(sends(core.receive(fresh.address, fresh.request(), 0, T0))).toHaveLength(1)
      expect(core.receive('127.0.0.1:50005', fresh.request(), 0, T0)).toEqual([]) // same token, other address
      expect(sends(core.receive(fresh.address, fresh.request(), 100_000, T0))).toHaveLength(1) // resent from its own address: fine
      expect(core.state().counters.tokenRefused).toBe(3)
    })

    it("refuses a response that carries the challenge token sent for another client's request", () => {
      // With another token's challenge, this token's keys would connect as that other client id: a second
      // connection of the same token (once the history has forgotten it) would then pass the client-id check
      // and send the same sequence numbers under the same key.
      const core = server()
      const mine = new Client('127.0.0.1:50010', 1n)
      const other = new Client('127.0.0.1:50011', 2n)
      const othersChallenge = resentChallenge(core, other)
      resentChallenge(core, mine)
      const swapped = core.receive(mine.address, mine.packet(PacketType.connectionResponse, othersChallenge), 0, T0)
      expect(swapped).toEqual([]) // not connected, not answered
      expect(core.state()).toMatchObject({ connectedClients: 0, counters: { tokenRefused: 1 } })
      // Each with its own challenge connects, as the client it is.
      const events = core.receive(mine.address, mine.packet(PacketType.connectionResponse, resentChallenge(core, mine, 100_000)), 100_000, T0)
      expect(events.find((e) => e.kind === 'connect')).toMatchObject({ clientId: 1n })
    })
  })

  describe('bounded handshake state', () => {
    it('remembers the last maxClients × 8 tokens used (at least 2,048), forgetting the oldest first', () => {
      const core = server({ maxClients: 1 }) // 8 × 1 is below the floor: a history of 2,048 tokens
      const first = new Client('127.0.0.1:51000', 1n)
      expect(sends(core.receive(first.address, first.request(), 0, T0))).toHaveLength(1)
      const refusals = () => core.state().counters.tokenRefused
      const fromElsewhere = () => core.receive('127.0.0.1:52000', first.request(), 0, T0)
      expect(fromElsewhere()).toEqual([])
      expect(refusals()).toBe(1) // reused from another address
      // Each request is a new token (a new MAC); the address does not matter for the history.
      const request = (clientId: number) => core.receive(`10.0.${clientId >> 8}.${clientId & 255}:4000`, new Client('127.0.0.1:1', BigInt(clientId)).request(), 0, T0)
      for (let i = 0; i < 2047; i++) request(10 + i)
      fromElsewhere()
      expect(refusals()).toBe(2) // 2,048 tokens remembered: the first is still there
      request(5000)
      // The first token was the oldest of 2,049: forgotten, so the reuse check passes it now (it is then
      // ignored for want of room for another pending handshake, which is another bound).
      fromElsewhere()
      expect(refusals()).toBe(2)
    })

    it('holds at most maxClients × 4 pending handshakes (at least 1,024): a new one makes room by evicting the oldest', () => {
      for (const [maxClients, pending] of [
        [2, 1024],
        [300, 1200],
      ] as const) {
        const core = server({ maxClients })
        const clients = Array.from({ length: pending + 1 }, (_, i) => new Client(`10.1.${i >> 8}.${i & 255}:53000`, BigInt(100 + i)))
        const challenges = clients.map((client) => sends(core.receive(client.address, client.request(), 0, T0)).map((e) => client.open(e.data).body))
        expect(challenges.every((sent) => sent.length === 1)).toBe(true) // the last too
        expect(core.state()).toMatchObject({ pendingHandshakes: pending, counters: { handshakesEvicted: 1 } })
        // The oldest made room: its response to the challenge it was sent completes nothing.
        const response = (i: number) => core.receive(clients[i]!.address, clients[i]!.packet(PacketType.connectionResponse, challenges[i]![0]!), 1000, T0)
        expect(response(0)).toEqual([])
        expect(core.state().counters.unknownAddress).toBe(1)
        // The next oldest and the newest complete theirs.
        expect(response(1).some((e) => e.kind === 'connect')).toBe(true)
        expect(response(pending).some((e) => e.kind === 'connect')).toBe(true)
        expect(core.state().pendingHandshakes).toBe(pending - 2)
      }
    })
  })

  describe('handshakes under a flood of requests', () => {
    it('holds one pending handshake per client id: a request of the same client id from another address replaces it', () => {
      const core = server()
      const first = new Client('127.0.0.1:50020', 8n)
      const again = new Client('127.0.0.1:50021', 8n) // another token of the same client, from another address
      const firstChallenge = resentChallenge(core, first)
      const againChallenge = resentChallenge(core, again)
      expect(core.state()).toMatchObject({ pendingHandshakes: 1, counters: { handshakesReplaced: 1 } })
      expect(core.receive(first.address, first.packet(PacketType.connectionResponse, firstChallenge), 1000, T0)).toEqual([]) // replaced
      const events = core.receive(again.address, again.packet(PacketType.connectionResponse, againChallenge), 1000, T0)
      expect(events.find((e) => e.kind === 'connect')).toMatchObject({ clientId: 8n, address: again.address })
    })

    it("cannot be filled by one client id's tokens: 1,100 of them resent at 550 a second leave room for everyone else", () => {
      const core = server({ maxClients: 8 }) // room for 1,024 pending handshakes
      const flood = Array.from({ length: 1100 }, (_, i) => new Client(`10.2.${i >> 8}.${i & 255}:54000`, 1n))
      const requests = flood.map((client) => [client.address, client.request()] as const)
      let us = 0
      const honest: Client[] = []
      for (let round = 0; round < 3; round++) {
        for (const [address, request] of requests) core.receive(address, request, (us += 1818), T0) // 550 a second
        expect(core.state().pendingHandshakes).toBeLessThanOrEqual(1 + honest.length)
        const client = new Client(`127.0.0.1:${50030 + round}`, BigInt(200 + round))
        honest.push(client)
        expect(connect(core, client, us) >= 0).toBe(true)
      }
      expect(core.state()).toMatchObject({ connectedClients: 3, counters: { handshakesEvicted: 0 } })
      expect(core.state().counters.handshakesReplaced).toBeGreaterThan(3000)
    })

    it('sends at most one challenge per pending handshake per 100 ms, ignoring the requests between unopened', () => {
      const core = server()
      const client = new Client('127.0.0.1:50040', 9n)
      let challenges = 0
      for (let us = 0; us < 1_000_000; us += 1000) challenges += sends(core.receive(client.address, client.request(), us, T0)).length
      expect(challenges).toBe(10)
      expect(core.state().counters.requestsThrottled).toBe(990)
      // Not opened: a request that would fail its token's checks, sent in the interval, is throttled, not refused.
      const forged = client.request()
      forged[forged.length - 1]! ^= 1
      expect(core.receive(client.address, forged, 950_000, T0)).toEqual([]) // the last challenge went at 900 ms
      expect(core.state().counters).toMatchObject({ requestsThrottled: 991, tokenRefused: 0, decryptionFailed: 0 })
      // Forged requests never start the interval again: the client's own 100 ms after the last challenge is answered.
      expect(sends(core.receive(client.address, client.request(), 1_000_000, T0))).toHaveLength(1)
    })

    it('still connects a client whose first challenge was lost: the request it resends 100 ms later is answered', () => {
      const core = server()
      const client = new Client('127.0.0.1:50050', 10n)
      expect(sends(core.receive(client.address, client.request(), 0, T0))).toHaveLength(1) // lost on the way
      expect(sends(core.receive(client.address, client.request(), 99_999, T0))).toHaveLength(0) // a resend early by a hair
      const body = resentChallenge(core, client, 199_999)
      expect(core.receive(client.address, client.packet(PacketType.connectionResponse, body), 200_000, T0).some((e) => e.kind === 'connect')).toBe(true)
    })
  })

  /** The challenge body the server sends to a client that asks again (a resent request) at `us`. */
  function resentChallenge(core: Core, client: Client, us = 0): Uint8Array {
    const [challenge] = sends(core.receive(client.address, client.request(), us, T0))
    return client.open(challenge!.data).body
  }

  describe('full server', () => {
    it('answers a valid request with a denied packet when every slot is taken', () => {
      const core = server({ maxClients: 1 })
      connect(core, new Client('127.0.0.1:50010', 1n))
      const late = new Client('127.0.0.1:50011', 2n)
      const answer = sends(core.receive(late.address, late.request(), 0, T0))
      expect(answer).toHaveLength(1)
      expect(late.open(answer[0]!.data).type).toBe(PacketType.connectionDenied)
      expect(answer[0]!.data.byteLength).toBeLessThan(1078)
      expect(core.state().counters.denied).toBe(1)
    })
  })

  describe('connected traffic', () => {
    it('drops replayed, tampered and unknown-address packets, counting each cause', () => {
      const core = server()
      const client = new Client('127.0.0.1:50020', 1n)
      connect(core, client)
      const packet = client.packet(PacketType.payload, new Uint8Array([1]))
      expect(core.receive(client.address, packet, 0, T0)).toHaveLength(1)
      expect(core.receive(client.address, packet, 0, T0)).toEqual([])
      const tampered = client.packet(PacketType.payload, new Uint8Array([2])).slice()
      tampered[tampered.length - 1]! ^= 1
      expect(core.receive(client.address, tampered, 0, T0)).toEqual([])
      expect(core.receive('127.0.0.1:50999', packet, 0, T0)).toEqual([])
      expect(core.receive(client.address, new Uint8Array([0x15, 1, 2]), 0, T0)).toEqual([])
      expect(core.state().counters).toMatchObject({ replayed: 1, tooOld: 0, decryptionFailed: 1, unknownAddress: 1, malformed: 1 })
      // One held back past the window (256 packets behind the newest) is too old, not a replay.
      const heldBack = client.packet(PacketType.payload, new Uint8Array([3]))
      for (let i = 0; i < 256; i++) expect(core.receive(client.address, client.packet(PacketType.payload, new Uint8Array([4])), 0, T0)).toHaveLength(1)
      expect(core.receive(client.address, heldBack, 0, T0)).toEqual([])
      expect(core.state().counters).toMatchObject({ replayed: 1, tooOld: 1 })
    })

    it('drops and counts the packet types a server never takes when a connected client sends them', () => {
      const core = server()
      const client = new Client('127.0.0.1:50024', 1n)
      connect(core, client)
      for (const type of [PacketType.connectionDenied, PacketType.connectionChallenge]) {
        expect(core.receive(client.address, client.packet(type, new Uint8Array(type === PacketType.connectionDenied ? 0 : 308)), 0, T0)).toEqual([])
      }
      expect(core.state().counters.malformed).toBe(2)
    })

    it('ignores a connection response from an address already connected: no keep-alive in answer (STANDARD.md, as the reference)', () => {
      const core = server()
      const client = new Client('127.0.0.1:50023', 1n)
      const [challenge] = sends(core.receive(client.address, client.request(), 0, T0))
      const body = client.open(challenge!.data).body
      expect(core.receive(client.address, client.packet(PacketType.connectionResponse, body), 1000, T0).map((e) => e.kind)).toEqual(['connect', 'send'])
      const outBefore = core.state().counters.packetsOut
      // The same response again (the client resending it, or anyone replaying it: responses have no replay window).
      expect(core.receive(client.address, client.packet(PacketType.connectionResponse, body), 2000, T0)).toEqual([])
      expect(core.state().counters.packetsOut).toBe(outBefore)
    })

    it('a disconnect packet from the client frees its slot', () => {
      const core = server()
      const client = new Client('127.0.0.1:50021', 1n)
      const index = connect(core, client)
      expect(core.receive(client.address, client.packet(PacketType.disconnect, new Uint8Array(0)), 0, T0)).toEqual([
        { kind: 'disconnect', index, reason: 'disconnected' },
      ])
      expect(core.state().connectedClients).toBe(0)
      // Its redundant disconnect packets keep coming for a while: expected, ignored, not counted as drops.
      for (let i = 0; i < 9; i++) expect(core.receive(client.address, client.packet(PacketType.disconnect, new Uint8Array(0)), i * 100_000, T0)).toEqual([])
      expect(core.state().counters.unknownAddress).toBe(0)
      core.update(12_000_000, T0) // long after (the window allows a busy client 10 s more): a stranger again
      core.receive(client.address, client.packet(PacketType.disconnect, new Uint8Array(0)), 12_000_000, T0)
      expect(core.state().counters.unknownAddress).toBe(1)
    })

    it('an address that leaves, comes back and leaves again is expected for the window of its last departure', () => {
      const core = server()
      const address = '127.0.0.1:50022'
      const disconnect = (client: Client, us: number) => core.receive(address, client.packet(PacketType.disconnect, new Uint8Array(0)), us, T0)
      const before = new Client(address, 1n)
      connect(core, before)
      expect(disconnect(before, 0)).toHaveLength(1)
      const after = new Client(address, 2n)
      connect(core, after, 5 * second)
      expect(disconnect(after, 6 * second)).toHaveLength(1)
      // The first departure's window has passed (about 11 s), the second's has not: still expected.
      core.update(13 * second, T0)
      expect(disconnect(after, 13 * second)).toEqual([])
      expect(core.state().counters.unknownAddress).toBe(0)
      core.update(18 * second, T0)
      disconnect(after, 18 * second)
      expect(core.state().counters.unknownAddress).toBe(1)
    })

    it('from an address that just left, only what its client may still send goes uncounted', () => {
      const core = server()
      const client = new Client('127.0.0.1:50023', 1n)
      connect(core, client)
      core.receive(client.address, client.packet(PacketType.disconnect, new Uint8Array(0)), 0, T0)
      // Its redundant disconnects, a late keep-alive or payload: expected.
      core.receive(client.address, client.packet(PacketType.disconnect, new Uint8Array(0)), 0, T0)
      core.receive(client.address, client.packet(PacketType.keepAlive, new Uint8Array(8)), 0, T0)
      core.receive(client.address, client.packet(PacketType.payload, new Uint8Array(5)), 0, T0)
      const dropped = () => core.state().counters.malformed! + core.state().counters.unknownAddress!
      expect(dropped()).toBe(0)
      // Junk is not: a bad prefix, a body of the wrong size, a type a client never sends after connecting.
      for (const junk of [new Uint8Array(40).fill(0xff), Uint8Array.of(0x0f, ...new Uint8Array(30)), client.packet(PacketType.keepAlive, new Uint8Array(3)), client.packet(PacketType.connectionResponse, new Uint8Array(308))]) {
        expect(core.receive(client.address, junk, 0, T0)).toEqual([])
      }
      expect(core.state().counters.malformed).toBe(4)
    })

    it('drops what comes from port 0, which no reply could reach', () => {
      const core = server()
      const client = new Client('127.0.0.1:0', 1n)
      expect(core.receive(client.address, client.request(), 0, T0)).toEqual([])
      expect(core.state().counters.malformed).toBe(1)
      expect(core.state().counters.packetsIn).toBe(1)
    })
  })

  describe('timers (fake clock)', () => {
    it('sends keep-alives at 10 Hz to an idle client and times it out after the token timeout', () => {
      const core = server()
      const client = new Client('127.0.0.1:50030', 1n, { timeoutSeconds: 5 })
      connect(core, client)
      let keepAlives = 0
      for (let ms = 10; ms <= 1000; ms += 10) keepAlives += sends(core.update(ms * 1000, T0)).length
      expect(keepAlives).toBe(10)
      // The client stays silent: 5 s after its last packet it is gone.
      expect(core.update(4_999_999, T0).filter((e) => e.kind === 'disconnect')).toEqual([])
      expect(core.update(5 * second, T0).filter((e) => e.kind === 'disconnect')).toEqual([{ kind: 'disconnect', index: 0, reason: 'timeout' }])
      expect(core.state().connectedClients).toBe(0)
    })

    it('with many clients the timer wheel keeps each at 10 Hz', () => {
      const core = server({ maxClients: 200 })
      const clients = Array.from({ length: 200 }, (_, i) => new Client(`127.0.0.1:${20000 + i}`, BigInt(i + 1), { timeoutSeconds: 30 }))
      for (const client of clients) connect(core, client)
      const perClient = new Map<string, number>()
      for (let ms = 10; ms <= 10_000; ms += 10) {
        for (const event of sends(core.update(ms * 1000, T0))) perClient.set(event.to, (perClient.get(event.to) ?? 0) + 1)
      }
      const counts = [...perClient.values()]
      expect(counts).toHaveLength(200)
      // 10 s at 10 Hz: 100 each.
      expect(Math.min(...counts)).toBe(100)
      expect(Math.max(...counts)).toBe(100)
    })

    it('sends no keep-alive just before a payload of the layer above that is due within the same tick', () => {
      // The layer above (the delivery layer's pings, here a stand-in) sends 100 ms after its last send, so
      // its times fall anywhere within the wheel's 1 ms ticks, as the engine's turns do (here every 1.013 ms).
      // The keep-alive falls due with each ping, and the wheel fires up to a tick early: a keep-alive went out
      // whenever the turn came before the ping was due, a fraction of a millisecond before the ping that made
      // it needless.
      const core = server({ layerAboveEveryUs: 100_000, layerAboveStartUs: 50_500 })
      const client = new Client('127.0.0.1:50033', 1n, { timeoutSeconds: 30 })
      connect(core, client)
      const types: number[] = []
      for (let us = 1013; us <= 5 * second; us += 1013) {
        core.receive(client.address, client.packet(PacketType.keepAlive, new Uint8Array(8)), us - 1000, T0) // the client is alive
        for (const event of sends(core.update(us, T0))) types.push(client.open(event.data).type)
      }
      const payloads = types.filter((type) => type === PacketType.payload).length
      expect(payloads).toBeGreaterThanOrEqual(48) // every 100 ms from 50.5 ms, each a tick late at most
      expect(types.filter((type) => type === PacketType.keepAlive).length).toBeLessThanOrEqual(1) // the one after connecting
    })

    it('a client that keeps sending keep-alives stays connected for 90 s', () => {
      const core = server()
      const client = new Client('127.0.0.1:50031', 1n, { timeoutSeconds: 5 })
      connect(core, client)
      for (let ms = 100; ms <= 90_000; ms += 100) {
        core.receive(client.address, client.packet(PacketType.keepAlive, new Uint8Array(8)), ms * 1000, T0)
        expect(core.update(ms * 1000, T0).some((e) => e.kind === 'disconnect')).toBe(false)
      }
      expect(core.state().connectedClients).toBe(1)
    })

    it('sends 10 redundant disconnect packets at 10 Hz when it disconnects a client', () => {
      const core = server()
      const client = new Client('127.0.0.1:50032', 1n)
      const index = connect(core, client)
      const events = core.disconnect(index, 0, T0)
      expect(events.filter((e) => e.kind === 'disconnect')).toEqual([{ kind: 'disconnect', index, reason: 'server-disconnect' }])
      const packets = sends(events)
      for (let ms = 50; ms <= 2000; ms += 50) packets.push(...sends(core.update(ms * 1000, T0)))
      const read = packets.map((e) => client.open(e.data))
      expect(read).toHaveLength(10)
      expect(read.every((p) => p.type === PacketType.disconnect)).toBe(true)
      expect(read.map((p) => p.sequence)).toEqual(Array.from({ length: 10 }, (_, i) => BigInt(i + 1)))
    })

    it('a client that connects again with the same token: the old disconnects stop, and no sequence is used twice under its key', () => {
      const core = server()
      const client = new Client('127.0.0.1:50033', 1n)
      const index = connect(core, client)
      const first = sends(core.sendPayload(index, new Uint8Array([1]), 0, T0)).map((e) => client.open(e.data).sequence)
      expect(first).toEqual([1n, 2n]) // the keep-alive before an unconfirmed payload, and the payload
      // The server disconnects it; the client reads the first disconnect packet and connects again at once
      // with the same token from the same address, as it may while the token lasts.
      const kicked = sends(core.disconnect(index, 10_000, T0)).map((e) => client.open(e.data))
      expect(kicked).toMatchObject([{ type: PacketType.disconnect, sequence: 3n }])
      const again = connect(core, client, 20_000)
      const welcome = sends(core.sendPayload(again, new Uint8Array([2]), 30_000, T0)).map((e) => client.open(e.data).sequence)
      // Past the 10 disconnect packets the first connection had (sequences 3 to 12): 13 went to the keep-alive
      // that answered the response, then the keep-alive and the payload here.
      expect(welcome).toEqual([14n, 15n])
      // The 9 disconnect packets still owed to the address do not go out: one would end the new connection.
      const later: Event[] = []
      for (let ms = 50; ms <= 2000; ms += 50) later.push(...core.update(ms * 1000, T0))
      expect(sends(later).map((e) => client.open(e.data).type).filter((type) => type === PacketType.disconnect)).toEqual([])
      expect(core.state().connectedClients).toBe(1)
      // The client leaves by itself: a third connection with the token starts past everything sent before.
      const last = sends(later).map((e) => client.open(e.data).sequence).at(-1)!
      core.receive(client.address, client.packet(PacketType.disconnect, new Uint8Array(0)), 2_000_000, T0)
      const third = connect(core, client, 2_100_000)
      const keepAlive = sends(core.update(2_300_000, T0)).map((e) => client.open(e.data))
      expect(keepAlive[0]).toMatchObject({ type: PacketType.keepAlive })
      expect(keepAlive[0]!.sequence).toBeGreaterThan(last + 1n) // + 1: the keep-alive that confirmed the connection
      expect(core.state().connectedClients).toBe(1)
      expect(third).toBe(again)
    })

    it('a client that connects again with the same token: what it sent before, captured and replayed, is refused', () => {
      const core = server()
      const client = new Client('127.0.0.1:50036', 1n)
      connect(core, client)
      const payload = client.packet(PacketType.payload, new Uint8Array([0xde, 0xad]))
      expect(core.receive(client.address, payload, 1000, T0)).toMatchObject([{ kind: 'payload' }])
      const bye = client.packet(PacketType.disconnect, new Uint8Array(0))
      expect(core.receive(client.address, bye, 2000, T0)).toMatchObject([{ kind: 'disconnect' }])
      const index = connect(core, client, 10_000) // again, with the same token from the same address
      const before = core.state().counters.replayed!
      // The first connection's packets, byte for byte: the new connection's window starts past them.
      expect(core.receive(client.address, payload, 20_000, T0)).toEqual([])
      expect(core.receive(client.address, bye, 21_000, T0)).toEqual([])
      expect(core.state().counters.replayed).toBe(before + 2)
      expect(core.state().connectedClients).toBe(1)
      // The client goes on with its sequence, as this library's does: its new packets pass.
      expect(core.receive(client.address, client.packet(PacketType.payload, new Uint8Array([1])), 22_000, T0)).toMatchObject([{ kind: 'payload', index }])
      // One that starts again at 0 under the same key (reusing its nonces) is refused as a replay.
      client.sequence = 1n
      expect(core.receive(client.address, client.packet(PacketType.payload, new Uint8Array([2])), 23_000, T0)).toEqual([])
      expect(core.state().counters.replayed).toBe(before + 3)
    })

    it('a client that connects again with the same token and starts its sequence at 0 again, as STANDARD.md has it, is served', () => {
      const core = server()
      const client = new Client('127.0.0.1:50037', 1n)
      connect(core, client)
      for (let i = 1; i <= 3; i++) expect(core.receive(client.address, client.packet(PacketType.payload, new Uint8Array([i])), 1000 + i, T0)).toMatchObject([{ kind: 'payload' }])
      expect(core.receive(client.address, client.packet(PacketType.disconnect, new Uint8Array(0)), 2000, T0)).toMatchObject([{ kind: 'disconnect' }])
      // The reference client, or this library's in a new process on the same port: sequences from 0 again.
      client.sequence = 0n
      const index = connect(core, client, 10_000) // its response is sequence 0, below the first connection's 5
      const refusedBefore = core.state().counters.replayed!
      for (let i = 1; i <= 3; i++) {
        expect(core.receive(client.address, client.packet(PacketType.payload, new Uint8Array([i])), 20_000 + i, T0)).toMatchObject([{ kind: 'payload', index }])
      }
      expect(core.state().counters.replayed).toBe(refusedBefore)
      // Within its own connection the window holds as ever: a packet again is refused.
      client.sequence = 2n
      expect(core.receive(client.address, client.packet(PacketType.payload, new Uint8Array([9])), 30_000, T0)).toEqual([])
      expect(core.state().counters.replayed).toBe(refusedBefore + 1)
      expect(core.state().connectedClients).toBe(1)
    })

    it("an earlier handshake's response, captured and replayed, completes no later handshake", () => {
      const core = server()
      const client = new Client('127.0.0.1:50038', 1n)
      const [challenge] = sends(core.receive(client.address, client.request(), 0, T0))
      const oldResponse = client.packet(PacketType.connectionResponse, client.open(challenge!.data).body)
      expect(core.receive(client.address, oldResponse, 1000, T0).find((e) => e.kind === 'connect')).toBeDefined()
      const payload = client.packet(PacketType.payload, new Uint8Array([1]))
      expect(core.receive(client.address, payload, 2000, T0)).toMatchObject([{ kind: 'payload' }])
      expect(core.receive(client.address, client.packet(PacketType.disconnect, new Uint8Array(0)), 3000, T0)).toMatchObject([{ kind: 'disconnect' }])
      // The client connects again with the same token (going on with its sequence); before its response, the
      // first handshake's response arrives again, as an attacker would send it: its sequence is below where
      // the first connection ended, so taken, it would start a window that takes the first connection's packets.
      const [challengeAgain] = sends(core.receive(client.address, client.request(), 10_000, T0))
      const refusedBefore = core.state().counters.tokenRefused!
      expect(core.receive(client.address, oldResponse, 11_000, T0)).toEqual([])
      expect(core.state().counters.tokenRefused).toBe(refusedBefore + 1)
      expect(core.state().connectedClients).toBe(0)
      // The client's own response connects it, with the window carried: the replayed payload is refused.
      const events = core.receive(client.address, client.packet(PacketType.connectionResponse, client.open(challengeAgain!.data).body), 12_000, T0)
      expect(events.find((e) => e.kind === 'connect')).toBeDefined()
      expect(core.receive(client.address, payload, 13_000, T0)).toEqual([])
      expect(core.state().counters.replayed).toBe(1)
    })

    it('a token the history forgot starts past what it sent before when used again, as every token after it', () => {
      const core = server({ maxClients: 1 }) // a history of 2,048 tokens
      const client = new Client('127.0.0.1:50034', 1n)
      const index = connect(core, client)
      expect(sends(core.sendPayload(index, new Uint8Array([1]), 0, T0)).map((e) => client.open(e.data).sequence)).toEqual([1n, 2n])
      core.receive(client.address, client.packet(PacketType.disconnect, new Uint8Array(0)), 1000, T0)
      // 2,048 other tokens: the history forgets this one (a token that never expires may come back after that).
      for (let i = 0; i < 2048; i++) core.receive(`10.2.${i >> 8}.${i & 255}:53000`, new Client('127.0.0.1:1', BigInt(100 + i)).request(), 2000, T0)
      const firstSequence = (who: Client, us: number): bigint => {
        const [challenge] = sends(core.receive(who.address, who.request(), us, T0))
        const events = core.receive(who.address, who.packet(PacketType.connectionResponse, who.open(challenge!.data).body), us, T0)
        expect(events.some((e) => e.kind === 'connect')).toBe(true)
        return who.open(sends(events)[0]!.data).sequence // the keep-alive that confirms the connection
      }
      core.update(8 * second, T0) // their pending handshakes time out (5 s), which frees room for more
      expect(firstSequence(client, 8 * second)).toBe(3n) // past 0 to 2, not 0 again under the same key
      core.receive(client.address, client.packet(PacketType.disconnect, new Uint8Array(0)), 8 * second, T0)
      // A token never seen starts there too: the server cannot tell it from a forgotten one.
      const fresh = new Client('127.0.0.1:50035', 2n)
      expect(firstSequence(fresh, 8 * second)).toBe(3n)
      // What it receives starts at 0, though: the forgotten token's received sequences are not carried over
      // to it (a new client starts at 0; a floor would refuse its packets as replays).
      expect(fresh.sequence).toBe(1n) // its response was 0
      expect(core.receive(fresh.address, fresh.packet(PacketType.payload, new Uint8Array([3])), 8 * second + 1000, T0)).toMatchObject([{ kind: 'payload' }])
    })

    it('STOPPING: stop() disconnects everyone (server-closed) and is stopped once the redundant disconnects are out', () => {
      const core = server()
      const a = new Client('127.0.0.1:50040', 1n)
      const b = new Client('127.0.0.1:50041', 2n)
      connect(core, a)
      connect(core, b)
      const events = core.stop(0, T0)
      expect(events.filter((e) => e.kind === 'disconnect').map((e) => (e as { reason: string }).reason)).toEqual(['server-closed', 'server-closed'])
      expect(core.state().stopped).toBe(false)
      let packets = sends(events).length
      for (let ms = 100; ms <= 900; ms += 100) packets += sends(core.update(ms * 1000, T0)).length
      expect(packets).toBe(20)
      expect(core.state().stopped).toBe(true)
      // A stopped server answers nothing, and late packets of its clients are not counted as drops.
      expect(core.receive(a.address, new Client(a.address, 3n).request(), 1_000_000, T0)).toEqual([])
      expect(core.receive(a.address, a.packet(PacketType.disconnect, new Uint8Array(0)), 1_000_000, T0)).toEqual([])
      expect(core.state().counters).toMatchObject({ malformed: 0, unknownAddress: 0, tokenRefused: 0 })
    })

    it('forgets a pending handshake after the token timeout', () => {
      const core = server()
      const client = new Client('127.0.0.1:50050', 1n, { timeoutSeconds: 2 })
      const [challenge] = sends(core.receive(client.address, client.request(), 0, T0))
      core.update(2 * second, T0)
      const response = client.packet(PacketType.connectionResponse, client.open(challenge!.data).body)
      expect(core.receive(client.address, response, 2 * second, T0)).toEqual([])
      expect(core.state().counters.unknownAddress).toBe(1)
    })

    it('keeps a pending handshake the token timeout from its latest request, as the reference does', () => {
      const core = server()
      const client = new Client('127.0.0.1:50051', 1n, { timeoutSeconds: 2 })
      sends(core.receive(client.address, client.request(), 0, T0))
      // The client resends its request (its challenges were lost) at 1.5 s: the handshake lives to 3.5 s.
      const [challenge] = sends(core.receive(client.address, client.request(), 1.5 * second, T0))
      core.update(2.85 * second, T0)
      const response = client.packet(PacketType.connectionResponse, client.open(challenge!.data).body)
      expect(core.receive(client.address, response, 2.85 * second, T0).map((e) => e.kind)).toContain('connect')
      expect(core.state().counters.unknownAddress).toBe(0)
    })

    it('a pending handshake past its timeout is gone when the response comes, whenever housekeeping last ran (past the token expiry, without a timeout: below)', () => {
      // Timeout: request at 0 (timeout 2 s); housekeeping runs at 1.5 s, next at 2.5 s; the response at 2.2 s.
      const core = server()
      const client = new Client('127.0.0.1:50052', 1n, { timeoutSeconds: 2 })
      const [challenge] = sends(core.receive(client.address, client.request(), 0, T0))
      core.update(1.5 * second, T0)
      const response = client.packet(PacketType.connectionResponse, client.open(challenge!.data).body)
      expect(core.receive(client.address, response, 2.2 * second, T0)).toEqual([])
      expect(core.state().connectedClients).toBe(0)
    })

    it("the token's expiry ends no pending handshake that has a timeout: it was checked on the request (STANDARD.md, and the reference's mapping lives request time + timeout)", () => {
      // The token expires at T0 + 30; the request comes at T0 + 29, the response at T0 + 30, well within the 10 s timeout.
      const core = server()
      const client = new Client('127.0.0.1:50053', 2n, { timeoutSeconds: 10 })
      const [challenge] = sends(core.receive(client.address, client.request(), 0, T0 + 29n))
      core.update(0.1 * second, T0 + 29n)
      const response = client.packet(PacketType.connectionResponse, client.open(challenge!.data).body)
      expect(core.receive(client.address, response, 0.5 * second, T0 + 30n).map((e) => e.kind)).toContain('connect')
      expect(core.state().connectedClients).toBe(1)
    })

    it('with no timeout (negative), a pending handshake still ends when its token expires', () => {
      const core = server()
      const client = new Client('127.0.0.1:50054', 3n, { timeoutSeconds: -1 })
      const [challenge] = sends(core.receive(client.address, client.request(), 0, T0 + 29n))
      const response = client.packet(PacketType.connectionResponse, client.open(challenge!.data).body)
      expect(core.receive(client.address, response, 0.5 * second, T0 + 30n)).toEqual([])
      expect(core.state().connectedClients).toBe(0)
    })
  })
})

describe('the native core while the engine does not read its socket (every receive slab full)', () => {
  type PausingCore = Core & { pauseTimeouts(us: number, unix: bigint): Event[]; resumeTimeouts(us: number, unix: bigint): Event[] }
  const disconnects = (events: Event[]) => events.filter((e) => e.kind === 'disconnect')

  it('times no client out while paused, and gives each the length of the pause when reading resumes', () => {
    const core = server() as PausingCore
    const client = new Client('127.0.0.1:50060', 1n, { timeoutSeconds: 5 })
    connect(core, client)
    // Last heard at 0; reading pauses at 4 s, 1 s before its timeout, and resumes at 60 s.
    expect(disconnects(core.update(4 * second, T0))).toEqual([])
    core.pauseTimeouts(4 * second, T0)
    let keepAlives = 0
    for (let ms = 4010; ms < 60_000; ms += 10) {
      const events = core.update(ms * 1000, T0)
      expect(disconnects(events)).toEqual([])
      keepAlives += sends(events).length
    }
    expect(keepAlives).toBeGreaterThan(550) // the keep-alives go on at 10 Hz: the client hears the server
    expect(core.state().connectedClients).toBe(1)
    core.resumeTimeouts(60 * second, T0)
    // 56 s of pause given: the client, silent since 0, times out at 61 s, not at once.
    expect(disconnects(core.update(60_990_000, T0))).toEqual([])
    expect(disconnects(core.update(61 * second, T0))).toEqual([{ kind: 'disconnect', index: 0, reason: 'timeout' }])
  })

  it("after the pause, a client's timeout counts from the first packet read", () => {
    const core = server() as PausingCore
    const client = new Client('127.0.0.1:50061', 1n, { timeoutSeconds: 5 })
    connect(core, client)
    core.pauseTimeouts(1 * second, T0)
    core.update(30 * second, T0)
    core.resumeTimeouts(30 * second, T0)
    // What waited in the kernel is read now: the client's keep-alive, and its timeout starts again from here.
    core.receive(client.address, client.packet(PacketType.keepAlive, new Uint8Array(8)), 30_001_000, T0)
    expect(disconnects(core.update(34_900_000, T0))).toEqual([])
    expect(disconnects(core.update(35_001_000, T0))).toEqual([{ kind: 'disconnect', index: 0, reason: 'timeout' }])
  })
})
