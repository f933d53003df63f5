// A server under attack from peers with valid connect tokens (a paying customer can have those), beside
// honest clients, over loopback on each engine: what the attackers can make it hold, do and send, and that the
// honest clients still connect and are served. bench/attacks.ts runs the same attacks at full size and reports
// their costs (docs/security.md).
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { DeliveryPackets, RawPeer, type Target, frames, tokenFor } from '../bench/lib/adversary.ts'
import { Client, type DisconnectReason, Server, generateConnectToken } from '../src/index.ts'
import { PacketType } from '../src/protocol/netcode/constants.ts'
import { type Sodium, loadSodium } from '../src/protocol/netcode/sodium.ts'
import { type EngineKind, onEngine, waitFor, within } from './helpers.ts'

const privateKey = new Uint8Array(32).fill(0x61)
const protocolId = 0xa77acn
const maxMessageBytes = 16 << 20
const reliable = { mode: 'reliable' } as const

let sodium: Sodium
beforeAll(async () => {
  sodium = await loadSodium()
})

const closing: (() => unknown)[] = []
afterEach(async () => {
  for (const close of closing.splice(0).reverse()) await close()
})

async function listen(engine: EngineKind, options: Partial<ConstructorParameters<typeof Server>[0]> = {}): Promise<{ server: Server; target: Target }> {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 64, disconnectIntervalMs: 5, ...options })
  const { port } = await onEngine(engine, () => server.listen())
  closing.push(() => server.close())
  server.on('message', (peer, data, channel) => peer.send(data.slice(), { channel })) // an echo server
  return { server, target: { host: '127.0.0.1', port, protocolId, privateKey } }
}

async function honestClient(engine: EngineKind, target: Target, clientId: bigint, channels?: readonly { mode: 'reliable' }[]): Promise<{ client: Client; connectMs: number }> {
  const token = await generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [`${target.host}:${target.port}`], expireSeconds: 60, timeoutSeconds: 10 })
  const client = new Client(channels === undefined ? {} : { channels, maxMessageBytes })
  closing.push(() => client.close())
  const started = performance.now()
  await onEngine(engine, () => within(client.connect(token), 10_000, `client ${clientId} to connect`))
  return { client, connectMs: performance.now() - started }
}

async function rawPeer(target: Target, clientId: bigint): Promise<RawPeer> {
  const peer = await RawPeer.open(sodium, target, tokenFor(sodium, target, clientId))
  closing.push(() => peer.close())
  return peer
}

/** Sends `count` small messages on channel 0 and waits for each to come back: true when all did. */
async function echoes(client: Client, count: number): Promise<boolean> {
  let back = 0
  const onMessage = (): void => void back++
  client.on('message', onMessage)
  for (let i = 0; i < count; i++) client.send(new Uint8Array([i]))
  try {
    await waitFor(() => back === count, 5000, 'the echoes')
    return true
  } finally {
    client.off('message', onMessage)
  }
}

describe.each(['native', 'fallback'] as const)('a server on the %s engine', (engine) => {
  it('holds no more than its reassembly budget for peers that announce 16 MiB messages and never send them, and disconnects them', async () => {
    const budget = 24 << 20 // room for one 16 MiB message (a connection's own bound takes 17 MiB)
    const { server, target } = await listen(engine, { channels: [reliable, reliable], maxMessageBytes, reassemblyBudgetBytes: budget })
    const reasons: DisconnectReason[] = []
    server.on('disconnect', (_peer, reason) => reasons.push(reason))
    const rssBefore = process.memoryUsage().rss
    // Each attacker: its settings and the second fragment of each channel's next message, announced at
    // 16 MiB (before, two such packets made the server allocate and zero 32 MiB), sent again every 100 ms as
    // a sender whose packets go unacknowledged does.
    const attackers = await Promise.all(Array.from({ length: 6 }, (_, i) => rawPeer(target, BigInt(1000 + i))))
    expect(await Promise.all(attackers.map((peer) => peer.connect()))).toEqual(attackers.map(() => true))
    const numbers = attackers.map(() => new DeliveryPackets())
    const push = setInterval(() => {
      attackers.forEach((peer, i) => {
        if (peer.state !== 'connected') return
        for (const channel of [0, 1]) {
          peer.send(PacketType.payload, numbers[i]!.packet(frames.settings(maxMessageBytes, [1, 1]), frames.fragment(channel, 0, maxMessageBytes, 1, 1100)))
        }
      })
    }, 100)
    closing.push(() => clearInterval(push))
    let most = 0
    const sample = setInterval(() => (most = Math.max(most, server.stats().reassembly!.usedBytes)), 20)
    closing.push(() => clearInterval(sample))
    // Honest clients meanwhile: they connect and are answered.
    const honest = await Promise.all([1, 2, 3].map((id) => honestClient(engine, target, BigInt(id), [reliable, reliable])))
    for (const { client } of honest) expect(await echoes(client, 20)).toBe(true)
    // Each attacker holds the budget in turn and is evicted once idle a second; the last goes when an honest
    // client's large message needs the room.
    await waitFor(() => attackers.filter((peer) => peer.state === 'disconnected').length >= 5, 20_000, () => `attackers disconnected (${attackers.map((p) => p.state)})`)
    // What the announcements made the server hold is what came: kilobytes, not 16 MiB a message (and 32 MiB
    // an attacker before, zero-filled, 192 MiB for the six).
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(48 << 20)
    const large = new Uint8Array(10 << 20).fill(7) // does not fit beside the last attacker's 16 MiB
    const back = new Promise<number>((resolve) => honest[0]!.client.once('message', (data) => resolve(data.byteLength)))
    expect(honest[0]!.client.send(large)).toBe(true)
    expect(await within(back, 15_000, 'the 10 MiB echo')).toBe(large.byteLength)
    await waitFor(() => attackers.every((peer) => peer.state === 'disconnected'), 10_000, 'the last attacker to be disconnected')
    await waitFor(() => reasons.length === 6, 2000, 'the disconnect events')
    expect(reasons).toEqual(Array(6).fill('reassembly-stalled'))
    const stats = server.stats()
    expect(stats.reassembly).toMatchObject({ budgetBytes: budget, stalled: 6 })
    expect(stats.reassembly!.evictions).toBeGreaterThanOrEqual(5)
    expect(most).toBeLessThanOrEqual(budget)
    expect(honest.every(({ client }) => client.state === 'connected')).toBe(true)
  }, 60_000)

  it("keeps one pending handshake per client id: 1,100 tokens of one account flooding at 550 a second leave room for 5 of 5 honest clients", async () => {
    const { server, target } = await listen(engine, { maxClients: 8 }) // room for 1,024 pending handshakes
    const flood = await Promise.all(Array.from({ length: 1100 }, () => rawPeer(target, 1n)))
    let next = 0
    const requests = setInterval(() => {
      for (let i = 0; i < 11; i++) flood[next++ % flood.length]!.request() // 11 every 20 ms: 550 a second, never answered
    }, 20)
    closing.push(() => clearInterval(requests))
    await waitFor(() => server.stats().handshakes.replaced > 100, 10_000, 'the flood to reach the server')
    const honest = []
    for (let id = 2n; id <= 6n; id++) honest.push(await honestClient(engine, target, id))
    expect(honest.every(({ client }) => client.state === 'connected')).toBe(true)
    const { handshakes } = server.stats()
    expect(handshakes.pending).toBeLessThanOrEqual(1)
    expect(handshakes.evicted).toBe(0)
  }, 60_000)
})

describe('a server on the native engine, flooded with connection requests', () => {
  it('sends each pending handshake at most one challenge per 100 ms, and an honest client still connects', async () => {
    const { server, target } = await listen('native', { maxClients: 16 })
    const flood = await Promise.all(Array.from({ length: 1000 }, (_, i) => rawPeer(target, BigInt(10_000 + i))))
    const started = performance.now()
    let rounds = 0
    const resend = (): void => {
      if (performance.now() - started > 2000) return
      for (const peer of flood) peer.request() // as fast as this thread can: each peer a request per round
      rounds++
      setImmediate(resend)
    }
    resend()
    await new Promise((resolve) => setTimeout(resolve, 500))
    const { client, connectMs } = await honestClient('native', target, 1n)
    await waitFor(() => performance.now() - started > 2100, 3000)
    await new Promise((resolve) => setTimeout(resolve, 100)) // the last challenges
    const seconds = (performance.now() - started) / 1000
    expect(rounds).toBeGreaterThan(20) // each peer sent well over 10 requests a second
    const most = Math.max(...flood.map((peer) => peer.challenges))
    expect(most).toBeLessThanOrEqual(Math.ceil(seconds * 10) + 1)
    expect(server.stats().drops.requestsThrottled).toBeGreaterThan(rounds * 500)
    expect(client.state).toBe('connected')
    expect(connectMs).toBeLessThan(2000)
  }, 30_000)
})
