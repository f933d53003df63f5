// Resumable sessions over real Volley connections on loopback, on both engines: two gateways (Servers with a
// SessionServer each) share a store; the client's connect tokens list both. Gateway A goes away with
// requests in flight; the session continues on B, every request answered once.
import { afterEach, describe, expect, it } from 'vitest'
import { Client, Server, generateConnectToken } from '../../src/index.ts'
import { ConnectionManager } from '../../src/sessions/connection-manager.ts'
import { SessionClient } from '../../src/sessions/resumable/client.ts'
import { SessionServer } from '../../src/sessions/resumable/server.ts'
import { MemorySessionStore } from '../../src/sessions/resumable/store.ts'
import { ClientTransport } from '../../src/sessions/volley-transport.ts'
import { type EngineKind, onEngine, waitFor, within } from '../helpers.ts'

const privateKey = new Uint8Array(32).fill(21)
const protocolId = 0x5e56n
const channels = [{ mode: 'reliable' as const }]
const text = (value: string): Uint8Array => new TextEncoder().encode(value)
const read = (data: Uint8Array): string => new TextDecoder().decode(data)

const opened: Array<{ close(): Promise<void> | void }> = []
afterEach(async () => {
  for (const each of opened.splice(0).reverse()) await each.close()
})

async function gateway(engine: EngineKind, name: string, store: MemorySessionStore, applied: Map<string, number>) {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 8, channels, disconnectIntervalMs: 5 })
  opened.push(server)
  const { port } = await onEngine(engine, () => server.listen())
  const sessions = new SessionServer({
    gatewayId: name,
    store,
    gatewayTtlMs: 2_000,
    onRequest: (payload, { session, requestId }) => {
      const key = `${session.id}#${requestId}`
      applied.set(key, (applied.get(key) ?? 0) + 1)
      return text(`${read(payload)}@${name}`)
    },
  })
  opened.push(sessions)
  sessions.listen(server)
  return { server, port, sessions }
}

describe.each([['native'], ['fallback']] as [EngineKind][])('resumable sessions over Volley, %s engine', (engine) => {
  it('continues on gateway B when gateway A goes away, each request applied once', async () => {
    const store = new MemorySessionStore()
    const applied = new Map<string, number>()
    const a = await gateway(engine, 'A', store, applied)
    const b = await gateway(engine, 'B', store, applied)
    let clients = 0
    const manager = new ConnectionManager<ClientTransport>({
      backoff: { initialMs: 50, maxMs: 200 },
      connect: async ({ signal }) => {
        const client = new Client({ channels, disconnectIntervalMs: 5 })
        opened.push(client)
        clients++
        // A connect token lists both gateways: the client tries A, and B when A does not answer (1 s).
        const token = await generateConnectToken({
          protocolId,
          privateKey,
          clientId: 42n,
          serverAddresses: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
          expireSeconds: 30,
          timeoutSeconds: 1,
        })
        await onEngine(engine, () => client.connect(token, { signal }))
        return new ClientTransport(client)
      },
    })
    opened.push(manager)
    const session = new SessionClient({ capabilities: { app: 'volley-test' }, connection: manager })
    manager.start()
    await waitFor(() => session.state === 'connected', 5_000, 'the session')
    const before = await within(Promise.all([1, 2, 3].map((index) => session.request(text(`r${index}`)))), 5_000, 'the first answers')
    expect(before.map(read)).toEqual(['r1@A', 'r2@A', 'r3@A'])
    expect(a.sessions.session(session.sessionId!)?.clientId).toBe(42n)
    // The server's diagnostics carry the Volley link's round trip.
    expect(a.sessions.session(session.sessionId!)?.diagnostics()).toMatchObject({ bound: true, averageRoundTripMs: expect.any(Number) })

    // Gateway A goes away with requests in flight.
    const inFlight = [4, 5, 6].map((index) => session.request(text(`r${index}`)))
    await a.sessions.close()
    await a.server.close()
    const after = await within(Promise.all(inFlight), 10_000, 'the answers from B')
    for (const answer of after.map(read)) expect(answer).toMatch(/^r[456]@[AB]$/)
    expect(session.state).toBe('connected')
    expect(b.sessions.session(session.sessionId!)?.bound).toBe(true)
    expect(await session.request(text('r7')).then(read)).toBe('r7@B')
    expect([...applied.values()].every((count) => count === 1)).toBe(true)
    expect(applied.size).toBe(7)
    expect(clients).toBeGreaterThanOrEqual(2)
    await session.close()
  })
})
