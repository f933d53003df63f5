// The native client state machine against the native server (their test bindings), through a fake network
// and a fake clock: every state of the standard, the rates, and moving to the token's next server address.
import { beforeAll, describe, expect, it } from 'vitest'
import { loadTestingAddon } from '../testing-addon.ts'
import { encodeConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { type Sodium, loadSodium } from '../../src/protocol/netcode/sodium.ts'
import type { ClientCoreBinding as ClientCore, ClientEvent, Sent, ServerCoreBinding as ServerCore, ServerCoreOptions, ServerEvent } from './core-bindings.ts'
import { fill } from './spec.ts'

const protocolId = 0x77n
const privateKey = fill(32, 0x31)
const serverAddress = '127.0.0.1:40000'
const clientAddress = '127.0.0.1:50000'
const T0 = 1_900_000_000n
const ms = 1000

let sodium: Sodium
beforeAll(async () => {
  sodium = await loadSodium()
})

/** How a world makes its cores: a client, and a server with a given challenge key. */
interface Cores {
  client(): ClientCore
  server(challengeKey: Uint8Array, challengeSequenceStart?: bigint): ServerCore
}
const native = () => loadTestingAddon().netcode as unknown as { ClientCore: new () => ClientCore; ServerCore: new (o: ServerCoreOptions) => ServerCore }
const serverOptions = (challengeKey: Uint8Array, challengeSequenceStart?: bigint): ServerCoreOptions => ({
  protocolId,
  privateKey,
  publicAddress: serverAddress,
  maxClients: 2,
  challengeKey,
  ...(challengeSequenceStart !== undefined && { challengeSequenceStart }),
})
const cores: Cores = {
  client: () => new (native().ClientCore)(),
  server: (challengeKey, challengeSequenceStart) => new (native().ServerCore)(serverOptions(challengeKey, challengeSequenceStart)),
}

function token(options: { serverAddresses?: string[]; expireSeconds?: number; timeoutSeconds?: number; clientId?: bigint } = {}): Uint8Array {
  return encodeConnectToken(sodium, {
    protocolId,
    privateKey,
    clientId: options.clientId ?? 1n,
    serverAddresses: options.serverAddresses ?? [serverAddress],
    expireSeconds: options.expireSeconds ?? 60,
    timeoutSeconds: options.timeoutSeconds ?? 5,
    nowSeconds: Number(T0),
  })
}

/** A client and a server joined by a network that drops what `drop` says, stepped in 10 ms ticks. */
class World {
  readonly client: ClientCore
  /** Replaced to restart the server: a new one knows no token, and starts its sequences at 0 again. */
  server: ServerCore
  readonly states: string[] = []
  /** The server each state named (none once the attempt or the connection ended). */
  readonly servers: (string | undefined)[] = []
  readonly clientPayloads: Uint8Array[] = []
  readonly serverEvents: ServerEvent[] = []
  readonly sentByClient: Sent[] = []
  readonly sentByServer: Sent[] = []
  now = 0
  drop: { toServer?: ((data: Uint8Array) => boolean) | undefined; toClient?: ((data: Uint8Array) => boolean) | undefined } = {}

  constructor(readonly cores: Cores) {
    this.client = cores.client()
    this.server = cores.server(fill(32, 9))
  }

  // A call's events are taken first, then its datagrams carried: the cores' events are polled after each call.
  handleClient(events: ClientEvent[]): void {
    for (const event of events) {
      if (event.kind === 'state') {
        this.states.push(event.state)
        this.servers.push(event.server)
      } else if (event.kind === 'payload') this.clientPayloads.push(event.data)
    }
    for (const event of events) {
      if (event.kind !== 'send') continue
      this.sentByClient.push(event)
      if (event.to === serverAddress && !this.drop.toServer?.(event.data)) this.handleServer(this.server.receive(clientAddress, event.data, this.now, T0))
    }
  }

  handleServer(events: ServerEvent[]): void {
    for (const event of events) if (event.kind !== 'send') this.serverEvents.push(event)
    for (const event of events) {
      if (event.kind !== 'send') continue
      this.sentByServer.push(event)
      if (!this.drop.toClient?.(event.data)) this.handleClient(this.client.receive(serverAddress, event.data, this.now))
    }
  }

  run(durationMs: number): void {
    const end = this.now + durationMs * ms
    while (this.now < end) {
      this.now += 10 * ms
      this.handleClient(this.client.update(this.now))
      this.handleServer(this.server.update(this.now, T0))
    }
  }

  /** As the engine drives them: each core is updated only at the deadline it gives. Returns the update calls. */
  runByDeadlines(durationMs: number): number {
    const end = this.now + durationMs * ms
    let calls = 0
    for (;;) {
      const deadlines = [this.client.state().nextDeadlineUs, this.server.state().nextDeadlineUs].filter((d): d is number => d !== null)
      const next = Math.max(this.now, Math.min(end, ...deadlines))
      if (next >= end) break
      this.now = next
      if ((this.client.state().nextDeadlineUs ?? Infinity) <= next) {
        calls++
        this.handleClient(this.client.update(this.now))
      }
      if ((this.server.state().nextDeadlineUs ?? Infinity) <= next) {
        calls++
        this.handleServer(this.server.update(this.now, T0))
      }
    }
    this.now = end
    return calls
  }

  connect(bytes = token()): void {
    this.handleClient(this.client.connect(bytes, this.now))
  }
}

/** The challenge packets the server has sent so far. */
function challengesSent(world: World): Uint8Array[] {
  const CHALLENGE = 2
  return world.sentByServer.map((e) => e.data).filter((d) => (d[0]! & 0x0f) === CHALLENGE)
}

/**
 * Connects again with `connectToken`, a captured challenge replayed to the client ahead of the server's
 * answer (held until it has arrived): the client takes it first, then must take the server's own and connect.
 */
function connectWithChallengeReplayedFirst(world: World, connectToken: Uint8Array, captured: Uint8Array): void {
  const held: Uint8Array[] = []
  world.drop.toClient = (data) => (held.push(data), true)
  world.connect(connectToken)
  world.drop.toClient = undefined
  world.handleClient(world.client.receive(serverAddress, captured, world.now))
  expect(world.client.state().state).toBe('sending-connection-response')
  for (const data of held) world.handleClient(world.client.receive(serverAddress, data, world.now))
  world.run(300)
  expect(world.client.state().state).toBe('connected')
}

describe('native client and server cores', () => {
  describe('client states', () => {
    it('disconnected -> sending request -> sending response -> connected, then payloads both ways', () => {
      const world = new World(cores)
      expect(world.client.state().state).toBe('disconnected')
      world.connect()
      expect(world.states).toEqual(['sending-connection-request', 'sending-connection-response', 'connected'])
      expect(world.client.state()).toMatchObject({ clientIndex: 0, maxClients: 2 })
      const sent = world.client.sendPayload(new Uint8Array([3]), world.now)
      expect(sent.accepted).toBe(true)
      world.handleClient(sent)
      expect(world.serverEvents.filter((e) => e.kind === 'payload')).toHaveLength(1)
      world.handleServer(world.server.sendPayload(0, new Uint8Array([9]), world.now, T0))
      expect(world.clientPayloads.map((p) => [...p])).toEqual([[9]])
    })

    it('stays connected over 90 s of idle time: keep-alives at 10 Hz both ways', () => {
      const world = new World(cores)
      world.connect()
      world.run(90_000)
      expect(world.client.state().state).toBe('connected')
      expect(world.server.state().connectedClients).toBe(1)
      const keepAlives = world.sentByClient.length
      expect(keepAlives).toBeGreaterThanOrEqual(899)
      expect(keepAlives).toBeLessThanOrEqual(903)
    })

    it('driven only at the deadlines the cores give (as the engine does), keep-alives flow at 10 Hz and a silent server times out', () => {
      const world = new World(cores)
      world.connect(token({ timeoutSeconds: 5 }))
      const calls = world.runByDeadlines(90_000)
      expect(world.client.state().state).toBe('connected')
      expect(world.server.state().connectedClients).toBe(1)
      // 10 Hz each way for 90 s: about 1,800 timer calls in all, not one per 10 ms tick per core (18,000).
      expect(world.sentByClient.length).toBeGreaterThanOrEqual(899)
      expect(world.sentByClient.length).toBeLessThanOrEqual(901)
      expect(calls).toBeLessThan(2_000)
      // The server goes silent: the client times out 5 s after the last packet it got (a keep-alive at most
      // 100 ms before the silence began).
      world.drop.toClient = () => true
      world.runByDeadlines(4_899)
      expect(world.client.state().state).toBe('connected')
      world.runByDeadlines(101)
      expect(world.states.at(-1)).toBe('connection-timed-out')
    })

    it('connection request timed out: requests at 10 Hz, then the token timeout', () => {
      const world = new World(cores)
      world.drop.toServer = () => true
      world.connect(token({ timeoutSeconds: 5 }))
      world.run(990)
      expect(world.sentByClient.length).toBe(10) // at 0, 100, ..., 900 ms
      expect(world.sentByClient.every((s) => s.data.byteLength === 1078)).toBe(true)
      world.run(4010)
      expect(world.states).toEqual(['sending-connection-request', 'connection-request-timed-out'])
    })

    it('connection response timed out', () => {
      const world = new World(cores)
      world.drop.toServer = (data) => (data[0]! & 0x0f) === 3 // responses never arrive
      world.connect(token({ timeoutSeconds: 3 }))
      world.run(3100)
      expect(world.states).toEqual(['sending-connection-request', 'sending-connection-response', 'connection-response-timed-out'])
    })

    it('connection denied when the server is full', () => {
      const world = new World(cores)
      for (const [clientId, address] of [[10n, '127.0.0.1:1'], [11n, '127.0.0.1:2']] as const) {
        const other = cores.client()
        const sends = (events: ClientEvent[]): Sent[] => events.filter((e): e is Sent => e.kind === 'send')
        let outbound = sends(other.connect(token({ clientId }), 0))
        while (outbound.length > 0) {
          const replies = outbound.flatMap((s) => world.server.receive(address, s.data, 0, T0)).filter((e): e is Sent => e.kind === 'send')
          outbound = replies.flatMap((r) => sends(other.receive(serverAddress, r.data, 0)))
        }
      }
      expect(world.server.state().connectedClients).toBe(2)
      world.connect()
      expect(world.states).toEqual(['sending-connection-request', 'connection-denied'])
    })

    it('connect token expired: the whole attempt outlives the token', () => {
      const world = new World(cores)
      world.drop.toServer = () => true
      world.connect(token({ expireSeconds: 3, timeoutSeconds: 10 }))
      world.run(3000)
      expect(world.states).toEqual(['sending-connection-request', 'connect-token-expired'])
    })

    it('connect token expired: a reply that comes once the token has run out takes the handshake no further', () => {
      // Seen as the reply is read, not at the next update: a fast server's challenge and keep-alive
      // connected a client whose token had no lifetime left.
      const world = new World(cores)
      const client = cores.client()
      const clientEvents = client.connect(token({ expireSeconds: 3, timeoutSeconds: 10 }), 0)
      const request = clientEvents.find((event): event is Sent => event.kind === 'send')!
      const challenge = world.server.receive(clientAddress, request.data, 0, T0).find((event): event is Sent => event.kind === 'send')!
      const late = client.receive(serverAddress, challenge.data, 3000 * ms)
      expect(late).toEqual([{ kind: 'state', state: 'connect-token-expired' }]) // and no response sent
      // A microsecond earlier, the same challenge is answered.
      const other = cores.client()
      const otherRequest = other.connect(token({ expireSeconds: 3, timeoutSeconds: 10, clientId: 2n }), 0).find((event): event is Sent => event.kind === 'send')!
      const otherChallenge = world.server.receive('127.0.0.1:50001', otherRequest.data, 0, T0).find((event): event is Sent => event.kind === 'send')!
      const answered = other.receive(serverAddress, otherChallenge.data, 3000 * ms - 1)
      expect(answered.map((event) => event.kind)).toEqual(['state', 'send'])
    })

    it('invalid connect token', () => {
      const world = new World(cores)
      world.connect(new Uint8Array(2048))
      expect(world.states).toEqual(['invalid-connect-token'])
      const other = new World(cores)
      other.connect(token().subarray(0, 100))
      expect(other.states).toEqual(['invalid-connect-token'])
      // Again: answered again, though the state stays the same (a caller that waits for the outcome waited for good).
      other.connect(new Uint8Array(2048))
      expect(other.states).toEqual(['invalid-connect-token', 'invalid-connect-token'])
    })

    it('connection timed out when the server falls silent', () => {
      const world = new World(cores)
      world.connect(token({ timeoutSeconds: 2 }))
      world.drop.toClient = () => true
      world.run(2100)
      expect(world.states.at(-1)).toBe('connection-timed-out')
    })

    it('disconnected by the server', () => {
      const world = new World(cores)
      world.connect()
      world.handleServer(world.server.disconnect(0, world.now, T0))
      expect(world.states.at(-1)).toBe('disconnected')
    })

    it("disconnected by the server: the token's next address is not tried (STANDARD.md; the reference code tries it)", () => {
      const world = new World(cores)
      const next = '127.0.0.1:40998'
      world.connect(token({ serverAddresses: [serverAddress, next] }))
      world.run(100)
      expect(world.states.at(-1)).toBe('connected')
      world.handleServer(world.server.disconnect(0, world.now, T0))
      world.run(500)
      expect(world.states).toEqual(['sending-connection-request', 'sending-connection-response', 'connected', 'disconnected'])
      expect(world.sentByClient.filter((sent) => sent.to === next)).toEqual([])
    })

    it('a client disconnect sends 10 redundant packets at 10 Hz and frees the server slot', () => {
      const world = new World(cores)
      world.connect()
      const before = world.sentByClient.length
      world.handleClient(world.client.disconnect(world.now))
      expect(world.states.at(-1)).toBe('disconnected')
      expect(world.serverEvents.at(-1)).toEqual({ kind: 'disconnect', index: 0, reason: 'disconnected' })
      world.run(2000)
      expect(world.sentByClient.length - before).toBe(10)
      expect(world.client.state().pendingDisconnects).toBe(false)
    })

    it('a client that disconnects while sending its response frees the slot the server gave it already (its keep-alives were lost)', () => {
      const world = new World(cores)
      world.drop.toClient = (data) => (data[0]! & 0xf) === 4 // every keep-alive
      world.connect()
      world.run(50)
      expect(world.states.at(-1)).toBe('sending-connection-response')
      expect(world.serverEvents.map((event) => event.kind)).toEqual(['connect'])
      world.handleClient(world.client.disconnect(world.now))
      expect(world.states.at(-1)).toBe('disconnected')
      expect(world.serverEvents.at(-1)).toEqual({ kind: 'disconnect', index: 0, reason: 'disconnected' })
    })

    it('a client that gives up before the server took its response: its redundant disconnects are not counted as malformed', () => {
      const world = new World(cores)
      world.drop.toServer = (data) => (data[0]! & 0xf) === 3 // every response: the server holds a pending handshake only
      world.connect()
      world.run(50)
      expect(world.states.at(-1)).toBe('sending-connection-response')
      const before = world.server.state().counters
      world.handleClient(world.client.disconnect(world.now))
      world.run(1500)
      const disconnects = world.sentByClient.filter((e) => (e.data[0]! & 0xf) === 6).length
      expect(disconnects).toBe(10)
      const after = world.server.state().counters
      expect(after.packetsIn! - before.packetsIn!).toBe(10)
      expect(after.malformed).toBe(before.malformed) // they were 10 malformed packets
      expect(world.serverEvents).toEqual([])
    })

    it("moves to the token's next server address when one fails", () => {
      const world = new World(cores)
      const dead = '127.0.0.1:40999'
      world.connect(token({ serverAddresses: [dead, serverAddress], timeoutSeconds: 1 }))
      expect(world.sentByClient[0]!.to).toBe(dead)
      world.run(1100)
      // Each address starts with 'sending-connection-request', and names the server it is for.
      expect(world.states).toEqual(['sending-connection-request', 'sending-connection-request', 'sending-connection-response', 'connected'])
      expect(world.servers).toEqual([dead, serverAddress, serverAddress, serverAddress])
      expect(world.sentByClient.at(-1)!.to).toBe(serverAddress)
      world.handleClient(world.client.disconnect(world.now))
      expect(world.states.at(-1)).toBe('disconnected')
      expect(world.servers.at(-1)).toBeUndefined()
    })

    it('names no server once every address has failed', () => {
      const world = new World(cores)
      world.connect(token({ serverAddresses: ['127.0.0.1:40998', '127.0.0.1:40999'], timeoutSeconds: 1 }))
      world.run(2200)
      expect(world.states).toEqual(['sending-connection-request', 'sending-connection-request', 'connection-request-timed-out'])
      expect(world.servers).toEqual(['127.0.0.1:40998', '127.0.0.1:40999', undefined])
    })

    it('ignores packets from any address but its server', () => {
      const world = new World(cores)
      world.connect()
      const forged = world.client.receive('127.0.0.1:40001', new Uint8Array(30), world.now)
      expect(forged).toEqual([])
      expect(world.client.state().counters.unknownAddress).toBe(1)
    })

    it("takes its server's packets from the IPv4-mapped form of the token's address, as a dual-stack socket reports them", () => {
      const world = new World(cores)
      world.drop.toClient = () => true
      world.connect()
      world.run(20)
      world.drop.toClient = undefined
      const challenge = world.sentByServer.at(-1)!
      const events = world.client.receive('[::ffff:127.0.0.1]:40000', challenge.data, world.now)
      expect(events.filter((e) => e.kind === 'state')).toMatchObject([{ state: 'sending-connection-response', server: serverAddress }])
      // Another port, or another address in the mapped form, is not the server.
      expect(world.client.receive('[::ffff:127.0.0.1]:40001', challenge.data, world.now)).toEqual([])
      expect(world.client.receive('[::ffff:127.0.0.2]:40000', challenge.data, world.now)).toEqual([])
      expect(world.client.state().counters.unknownAddress).toBe(2)
    })
  })

  describe('client token lifetime', () => {
    /** A token whose public expire timestamp is patched (the client reads only the public part). */
    function withExpire(bytes: Uint8Array, expire: bigint): Uint8Array {
      const copy = bytes.slice()
      new DataView(copy.buffer).setBigUint64(13 + 8 + 8, expire, true)
      return copy
    }

    it('a token that lives for ages is not taken as expired: (expire - create) in µs must not wrap 64 bits', () => {
      const world = new World(cores)
      world.drop.toServer = () => true
      // 2^58 s × 10^6 µs is a multiple of 2^64: a wrapping product makes the lifetime 0.
      world.connect(withExpire(token({ timeoutSeconds: 10 }), T0 + (1n << 58n)))
      world.run(1000)
      expect(world.states).toEqual(['sending-connection-request'])
      expect(world.sentByClient.length).toBeGreaterThanOrEqual(10) // still requesting at 10 Hz
      const deadline = world.client.state().nextDeadlineUs
      expect(deadline).not.toBeNull()
      expect(deadline!).toBeGreaterThan(world.now)
    })

    it('a token lifetime near 2^64 s does not wrap the deadline either', () => {
      const world = new World(cores)
      world.drop.toServer = () => true
      world.now = 5_000_000
      world.connect(withExpire(token({ timeoutSeconds: -1 }), (1n << 64n) - 1n))
      world.run(500)
      expect(world.states).toEqual(['sending-connection-request'])
      expect(world.client.state().nextDeadlineUs!).toBeGreaterThan(world.now)
    })
  })

  describe('reconnecting right after a disconnect', () => {
    it("the old connection's redundant disconnects do not end the new one on the same server", () => {
      const world = new World(cores)
      world.connect(token({ clientId: 1n }))
      world.run(100)
      expect(world.states.at(-1)).toBe('connected')
      world.handleClient(world.client.disconnect(world.now))
      // At once a new token for the same server (as an application that reconnects does).
      world.connect(token({ clientId: 2n }))
      world.run(2000)
      expect(world.states.at(-1)).toBe('connected')
      expect(world.server.state().connectedClients).toBe(1)
      expect(world.serverEvents.filter((e) => e.kind === 'disconnect')).toHaveLength(1) // the first connection only
    })

    it('nor when the same token is used again (the same key)', () => {
      const world = new World(cores)
      const same = token({ clientId: 3n })
      world.connect(same)
      world.run(100)
      world.handleClient(world.client.disconnect(world.now))
      world.connect(same)
      world.run(2000)
      expect(world.states.at(-1)).toBe('connected')
      expect(world.server.state().connectedClients).toBe(1)
    })
  })

  describe('connecting again with the same token', () => {
    it("the server's packets of the first connection, captured and replayed, are refused", () => {
      const world = new World(cores)
      const same = token({ clientId: 4n })
      world.connect(same)
      world.run(300)
      const out = world.server.sendPayload(0, new Uint8Array([0x42]), world.now, T0)
      const captured = out.filter((e): e is Sent => e.kind === 'send').map((e) => e.data)
      world.handleServer(out)
      expect(world.clientPayloads).toHaveLength(1)
      world.handleClient(world.client.disconnect(world.now))
      world.run(1500)
      world.connect(same)
      world.run(300)
      expect(world.client.state().state).toBe('connected')
      const before = world.client.state().counters.replayed!
      for (const data of captured) world.handleClient(world.client.receive(serverAddress, data, world.now))
      expect(world.clientPayloads).toHaveLength(1)
      expect(world.client.state().counters.replayed).toBe(before + captured.length)
      // The server goes on past what it sent before: its new payloads arrive.
      world.handleServer(world.server.sendPayload(0, new Uint8Array([0x43]), world.now, T0))
      expect(world.clientPayloads.map((p) => p[0])).toEqual([0x42, 0x43])
    })

    it("the server's packets of the first connection, replayed, are refused though the token's first server was tried in between", () => {
      // Each server of the token keeps its own window: trying a dead first address wiped the one held for the
      // second, and the first connection's captured packets were new again.
      const world = new World(cores)
      const same = token({ clientId: 16n, serverAddresses: ['127.0.0.1:40999', serverAddress], timeoutSeconds: 1 })
      world.connect(same)
      world.run(1300) // the first address times out after 1 s, the second connects
      expect(world.client.state().state).toBe('connected')
      const out = world.server.sendPayload(0, new Uint8Array([0x42]), world.now, T0)
      const captured = out.filter((e): e is Sent => e.kind === 'send').map((e) => e.data)
      world.handleServer(out)
      world.handleClient(world.client.disconnect(world.now))
      world.run(1500)
      world.connect(same)
      expect(world.client.state()).toMatchObject({ state: 'sending-connection-request', clientIndex: 0, maxClients: 0 }) // not the last connection's
      world.run(1300)
      expect(world.client.state()).toMatchObject({ state: 'connected', maxClients: 2 })
      const before = world.client.state().counters.replayed!
      for (const data of captured) world.handleClient(world.client.receive(serverAddress, data, world.now))
      expect(world.clientPayloads.map((p) => p[0])).toEqual([0x42]) // [0x42, 0x42]: delivered twice
      expect(world.client.state().counters.replayed).toBe(before + captured.length)
    })

    // What the first connection sent and the other side never took (its last redundant disconnects, a tail
    // lost before a timeout) is under the same key: captured and replayed, it must not pass for new.
    const DISCONNECT = 6
    const disconnectsAfter = (sent: Sent[], mark: number): Uint8Array[] => sent.slice(mark).map((e) => e.data).filter((d) => (d[0]! & 0x0f) === DISCONNECT)
    /** A client connected with a token, and how to connect it again with the same token. */
    const connectedByToken = (clientId: bigint, timeoutSeconds?: number) => {
      const world = new World(cores)
      const same = token({ clientId, ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }) })
      world.connect(same)
      world.run(300)
      const again = (): void => {
        world.connect(same)
        world.run(300)
        expect(world.client.state().state).toBe('connected')
      }
      return { world, again }
    }

    it("the client's later redundant disconnects of the first connection, replayed to the server, do not end the new one", () => {
      const { world, again } = connectedByToken(11n)
      const mark = world.sentByClient.length
      world.handleClient(world.client.disconnect(world.now)) // the first reaches the server: it releases the slot
      world.run(300) // the next ones are ignored (an address just released)
      const captured = disconnectsAfter(world.sentByClient, mark)
      expect(captured.length).toBeGreaterThanOrEqual(3)
      again()
      const refused = world.server.state().counters.replayed!
      for (const data of captured.slice(1)) expect(world.server.receive(clientAddress, data, world.now, T0)).toEqual([])
      expect(world.server.state().connectedClients).toBe(1)
      expect(world.server.state().counters.replayed).toBe(refused + captured.length - 1)
    })

    it("the client's payloads the server never received before it timed the client out, replayed, are not delivered", () => {
      const { world, again } = connectedByToken(12n, 2)
      world.drop.toServer = () => true // from here the client's packets are lost (and captured on the way)
      const sent = world.client.sendPayload(new Uint8Array([0x99]), world.now)
      const payload = sent.find((e): e is Sent => e.kind === 'send')!.data
      world.handleClient(sent)
      world.run(4500)
      expect(world.serverEvents.some((e) => e.kind === 'disconnect' && e.reason === 'timeout')).toBe(true)
      world.drop.toServer = undefined
      again()
      expect(world.server.receive(clientAddress, payload, world.now, T0)).toEqual([])
    })

    it("the server's later redundant disconnects of the first connection, replayed to the client, do not end the new one", () => {
      const { world, again } = connectedByToken(13n)
      const mark = world.sentByServer.length
      world.handleServer(world.server.disconnect(0, world.now, T0)) // the first reaches the client
      expect(world.client.state().state).toBe('disconnected')
      world.run(250) // the next ones are ignored: the client is disconnected
      const captured = disconnectsAfter(world.sentByServer, mark)
      expect(captured.length).toBeGreaterThanOrEqual(3)
      again()
      const refused = world.client.state().counters.replayed!
      for (const data of captured.slice(1)) world.handleClient(world.client.receive(serverAddress, data, world.now))
      expect(world.client.state().state).toBe('connected')
      expect(world.client.state().counters.replayed).toBe(refused + captured.length - 1)
    })

    it("a challenge of the first connection's handshake, replayed ahead of the server's new one, does not stall the second", () => {
      // Challenges are not replay-protected. The client took the captured one and ignored the server's own,
      // and the server refused every response to it (an earlier handshake's challenge): response timed out.
      const world = new World(cores)
      const same = token({ clientId: 14n })
      world.connect(same)
      world.run(300)
      const captured = challengesSent(world)[0]!
      world.handleClient(world.client.disconnect(world.now))
      world.run(1500)
      const refused = world.server.state().counters.tokenRefused!
      connectWithChallengeReplayedFirst(world, same, captured)
      expect(world.server.state().counters.tokenRefused).toBe(refused + 1) // the response to the replayed one
      // An older challenge replayed now changes nothing.
      world.handleClient(world.client.receive(serverAddress, captured, world.now))
      expect(world.client.state().state).toBe('connected')
    })

    it("a challenge from before the server restarted, replayed ahead of the new server's, does not stall the client", () => {
      // The engine starts each server's challenges at the wall clock in µs (they counted from 0 at each
      // start, and a replayed one of the server before the restart won over every one of the new server's).
      const world = new World(cores)
      world.server = cores.server(fill(32, 9), 1_000_000n)
      const same = token({ clientId: 15n })
      world.connect(same)
      world.run(300)
      const captured = challengesSent(world).at(-1)! // its latest: the one that counted highest
      world.handleClient(world.client.disconnect(world.now))
      world.run(1500)
      world.server = cores.server(fill(32, 8), 2_000_000n) // restarted, a second later: a new challenge key
      connectWithChallengeReplayedFirst(world, same, captured)
    })

    it('a server that starts its sequence at 0 again (restarted, or as STANDARD.md has it) is connected to', () => {
      const world = new World(cores)
      const same = token({ clientId: 7n })
      world.connect(same)
      world.run(300)
      world.handleServer(world.server.sendPayload(0, new Uint8Array([1]), world.now, T0))
      world.handleClient(world.client.disconnect(world.now))
      world.run(1500)
      world.server = cores.server(fill(32, 8))
      const refusedBefore = world.client.state().counters.replayed!
      world.connect(same)
      world.run(300)
      // Its first keep-alive (sequence 0) is below where the first connection ended: the window starts afresh.
      expect(world.states.slice(-3)).toEqual(['sending-connection-request', 'sending-connection-response', 'connected'])
      world.handleServer(world.server.sendPayload(0, new Uint8Array([2]), world.now, T0))
      expect(world.clientPayloads.map((p) => p[0])).toEqual([1, 2])
      expect(world.client.state().counters.replayed).toBe(refusedBefore)
      world.run(6000) // past the token's 5 s timeout: the keep-alives of both sides pass
      expect(world.client.state().state).toBe('connected')
    })

    it('a new token starts a new window', () => {
      const world = new World(cores)
      world.connect(token({ clientId: 5n }))
      world.run(300)
      world.handleServer(world.server.sendPayload(0, new Uint8Array([1]), world.now, T0))
      world.handleClient(world.client.disconnect(world.now))
      world.run(1500)
      // Another token: other keys, and the server starts its sequence for them where it likes.
      world.connect(token({ clientId: 6n }))
      world.run(300)
      expect(world.client.state().state).toBe('connected')
      world.handleServer(world.server.sendPayload(0, new Uint8Array([2]), world.now, T0))
      expect(world.clientPayloads.map((p) => p[0])).toEqual([1, 2])
    })
  })

  describe('a client that takes the protocol id from its token', () => {
    it('takes it from each token: a later token of another protocol id is not refused as invalid', () => {
      const world = new World(cores) // ClientCore() without a protocolId, as the engine makes it
      world.connect()
      world.run(100)
      expect(world.states.at(-1)).toBe('connected')
      world.handleClient(world.client.disconnect(world.now))
      const other = encodeConnectToken(sodium, {
        protocolId: protocolId + 1n, privateKey, clientId: 9n, serverAddresses: ['127.0.0.1:40123'], expireSeconds: 60, timeoutSeconds: 5, nowSeconds: Number(T0),
      })
      world.connect(other)
      expect(world.states.at(-1)).toBe('sending-connection-request')
    })
  })
})

describe('the native client core while the engine does not read its socket (every receive slab full)', () => {
  it('does not time the server out while paused, and gives the connection the length of the pause on resume', () => {
    const world = new World(cores)
    world.connect(token({ timeoutSeconds: 5 }))
    world.run(200)
    expect(world.client.state().state).toBe('connected')
    // Nothing the server sends is read from here on (it waits in the kernel): paused 1 s in, for a minute.
    world.drop.toClient = () => true
    const client = world.client as typeof world.client & { pauseTimeouts(us: number): ClientEvent[]; resumeTimeouts(us: number): ClientEvent[] }
    const lastHeard = world.now
    world.run(1000)
    client.pauseTimeouts(world.now)
    world.runByDeadlines(60_000)
    expect(world.client.state().state).toBe('connected')
    expect(world.client.state().nextDeadlineUs).toBeLessThanOrEqual(world.now + 100 * ms) // its keep-alives go on
    const resumedAt = world.now
    client.resumeTimeouts(resumedAt)
    // Silent since lastHeard, less the minute of pause: it times out 5 s after lastHeard + the pause.
    const timesOutAt = lastHeard + (resumedAt - (lastHeard + 1000 * ms)) + 5000 * ms
    world.runByDeadlines((timesOutAt - world.now) / ms - 1)
    expect(world.client.state().state).toBe('connected')
    world.runByDeadlines(2)
    expect(world.states.at(-1)).toBe('connection-timed-out')
  })
})
