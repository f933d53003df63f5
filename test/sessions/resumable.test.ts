// Resumable sessions on a fake clock: every server and client rule of the keep-alive contract and §C.3–C.4,
// and the contract's flows (normal exchange, stale response, missed heartbeat, connection drop, leader change).
import { describe, expect, it } from 'vitest'
import { MemoryTransport } from '../../src/sessions/transport.ts'
import { ConnectionManager } from '../../src/sessions/connection-manager.ts'
import { SessionClient } from '../../src/sessions/resumable/client.ts'
import { MemorySessionStore, type SessionStore } from '../../src/sessions/resumable/store.ts'
import { type ClientMessage, decodeClientMessage, decodeServerMessage, encodeClientMessage, encodeServerMessage } from '../../src/sessions/resumable/wire.ts'
import { Bench, EPOCH, loggingFilter, read, settle, text } from './resumable-harness.ts'

async function connected(bench: Bench, options: Parameters<Bench['client']>[0] = {}) {
  const server = bench.gateway()
  const client = bench.client(options)
  const link = bench.connect(client, server)
  await settle()
  expect(client.state).toBe('connected')
  return { server, client, link, session: server.session(client.sessionId!)! }
}

describe('resumable sessions: create and requests', () => {
  it('creates a session (nonce echoed), applies a request and answers it', async () => {
    const bench = new Bench()
    const { server, client, session } = await connected(bench)
    expect(client.sessionId).toMatch(/^[0-9a-f-]{36}$/)
    expect(session.clientId).toBe(7n)
    expect(session.capabilities).toEqual(new Map([['app', 'test']]))
    const response = client.request(text('hello'))
    await settle()
    expect(read(await response)).toBe('hello:done')
    expect(server.health()).toMatchObject({ activeSessions: 1, boundSessions: 1, sessionsCreated: 1, requests: { applied: 1 } })
  })

  it('rejects a session the application refuses (InvalidCapabilities), and a throw as Other', async () => {
    for (const [accept, reason] of [[() => false, 'invalid-capabilities'], [() => Promise.reject(new Error('no')), 'other']] as const) {
      const bench = new Bench()
      const server = bench.gateway({ acceptSession: accept })
      const client = bench.client()
      const ended: Error[] = []
      client.on('ended', (error) => ended.push(error))
      const pending = expect(client.request(text('x'))).rejects.toMatchObject({ code: 'ERR_SESSION_REJECTED' })
      const { clientSide } = bench.connect(client, server)
      await settle()
      expect(client.state).toBe('rejected')
      expect(clientSide.closed).toBe(true)
      expect(ended[0]).toMatchObject({ code: 'ERR_SESSION_REJECTED', message: expect.stringContaining(reason) })
      await pending
      expect(server.size).toBe(0)
      expect(server.health().sessionsRejected).toBe(1)
    }
  })

  it('ignores a SessionCreated whose nonce is not the one sent', async () => {
    const bench = new Bench()
    const client = bench.client()
    const [clientSide, far] = MemoryTransport.pair()
    const sent: string[] = []
    far.on('message', (data) => sent.push(Buffer.from(data).toString('hex')))
    client.attach(clientSide)
    far.send(encodeServerMessage({ type: 'session-created', sessionId: 'forged', nonce: 12345n }))
    expect(client.state).toBe('connecting-new')
    expect(client.stats().dropped.wrongNonce).toBe(1)
    expect(sent).toHaveLength(1)
  })

  it('answers a resent request from the recorded response, and ResponseEvicted once the client moved past it', async () => {
    const bench = new Bench()
    const { client, link, session } = await connected(bench)
    await client.request(text('a'))
    const key = `${session.id}#1`
    // The same id again, by hand: answered from the record, not applied again.
    const answers: unknown[] = []
    link.clientSide.on('message', (data) => answers.push(decodeServerMessage(data)))
    link.clientSide.send(encodeClientMessage({ type: 'client-request', requestId: 1, lowestPendingRequestId: 1, payload: text('a'), createdAt: EPOCH }))
    await settle()
    expect(bench.applied.get(key)).toBe(1)
    expect(answers.at(-1)).toMatchObject({ type: 'client-response', requestId: 1 })
    // lowestPending 2: the client has its answer to 1, which is evicted; a late resend of 1 is refused.
    link.clientSide.send(encodeClientMessage({ type: 'client-request', requestId: 2, lowestPendingRequestId: 2, payload: text('b'), createdAt: EPOCH }))
    link.clientSide.send(encodeClientMessage({ type: 'client-request', requestId: 1, lowestPendingRequestId: 1, payload: text('a'), createdAt: EPOCH }))
    await settle()
    expect(answers).toContainEqual({ type: 'request-error', requestId: 1, reason: 'response-evicted' })
    expect(bench.applied.get(key)).toBe(1)
  })

  it('resends an unanswered request after requestTimeoutMs on the same connection, applied once', async () => {
    const bench = new Bench()
    let dropResponses = true
    const { log, filter } = loggingFilter((type) => dropResponses && type === 'client-response')
    const server = bench.gateway()
    const client = bench.client({ keepAliveTimeoutMs: 60_000 })
    bench.connect(client, server, 7n, filter)
    await settle()
    const response = client.request(text('slow'))
    await settle()
    dropResponses = false
    bench.clock.advance(10_000)
    await settle()
    expect(read(await response)).toBe('slow:done')
    expect(log.filter((entry) => entry === 'client:client-request')).toHaveLength(2)
    expect(bench.applied.get(`${client.sessionId}#1`)).toBe(1)
    expect(client.stats().requestsResent).toBe(1)
  })

  it('fails a request with ERR_INVALID_ARG_TYPE for a non-bytes payload, and ABORT_ERR when aborted', async () => {
    const bench = new Bench()
    const { client } = await connected(bench)
    expect(() => client.request('x' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    const controller = new AbortController()
    controller.abort()
    await expect(client.request(text('x'), { signal: controller.signal })).rejects.toMatchObject({ code: 'ABORT_ERR' })
  })
})

describe('resumable sessions: heartbeats (the contract flows)', () => {
  it('normal exchange: KeepAlive(T) → KeepAliveResponse(T), expiry = now + timeout, RTT from the echo', async () => {
    const bench = new Bench()
    const { log, filter } = loggingFilter()
    const server = bench.gateway()
    const client = bench.client()
    bench.connect(client, server, 7n, filter)
    await settle()
    bench.clock.advance(30_000)
    expect(log.slice(-2)).toEqual(['client:keep-alive', 'server:keep-alive-response'])
    const session = server.session(client.sessionId!)!
    expect(session.diagnostics()).toMatchObject({ currentExpiresAt: EPOCH + 30_000 + 90_000, lastHeartbeats: [EPOCH + 30_000], heartbeats: 1, bound: true })
    expect(client.diagnostics()).toMatchObject({ lastHeartbeats: [EPOCH + 30_000], lastRoundTripMs: 0, averageRoundTripMs: 0, droppedStaleResponses: 0 })
    expect(client.stats()).toMatchObject({ heartbeatsSent: 1, heartbeatsAnswered: 1 })
    // 3 × 30 s of heartbeats: the session lives on.
    bench.clock.advance(120_000)
    expect(server.session(client.sessionId!)).toBe(session)
    expect(server.health().heartbeats.answered).toBe(5)
  })

  it('stale response: the answer to T1 arriving after T2 was sent is dropped; T2 is taken', async () => {
    const bench = new Bench()
    const server = bench.gateway()
    const client = bench.client({ keepAliveTimeoutMs: 60_000 })
    const { clientSide } = bench.connect(client, server)
    await settle()
    clientSide.pause() // the client reads nothing: both answers wait
    bench.clock.advance(30_000)
    bench.clock.advance(30_000)
    clientSide.resume()
    expect(client.diagnostics()).toMatchObject({ droppedStaleResponses: 1, lastHeartbeats: [EPOCH + 30_000, EPOCH + 60_000] })
    expect(client.stats().heartbeatsAnswered).toBe(1)
  })

  it('missed heartbeats: the session expires within a second of its timeout, warned at 85 %, ended once', async () => {
    const bench = new Bench()
    const server = bench.gateway()
    const client = bench.client({ keepAliveTimeoutMs: 120_000 })
    let silent = false
    const { clientSide } = bench.connect(client, server, 7n, (_data, from) => !(silent && from === 'a'))
    await settle()
    bench.clock.advance(60_000) // heartbeats at 30 s and 60 s get through: expiry at 150 s
    silent = true
    const warnings: number[] = []
    const gone: number[] = []
    server.on('sessionWarning', () => warnings.push(bench.clock.now()))
    server.on('sessionGone', () => gone.push(bench.clock.now()))
    bench.clock.advanceTo(149_999)
    await settle()
    expect(gone).toEqual([])
    // Due at 85 % of the timeout after the last heartbeat, noticed by the next cleanup tick.
    expect(warnings).toHaveLength(1)
    expect(warnings[0]! - (60_000 + 76_500)).toBeGreaterThanOrEqual(0)
    expect(warnings[0]! - (60_000 + 76_500)).toBeLessThan(1_000)
    bench.clock.advanceTo(151_000)
    await settle()
    expect(gone).toHaveLength(1)
    expect(gone[0]! - 150_000).toBeGreaterThanOrEqual(0)
    expect(gone[0]! - 150_000).toBeLessThanOrEqual(1_000)
    expect(bench.ended).toEqual([[client.sessionId, 'expired', server.gatewayId]])
    // The client still on the connection is told, and the session is over for it.
    expect(client.state).toBe('expired')
    expect(clientSide.closed).toBe(true)
    expect(server.health()).toMatchObject({ activeSessions: 0, timeouts: 1 })
  })

  it('refuses heartbeats past the clock skew either way, and rate-limits a flood; the session is untouched otherwise', async () => {
    const bench = new Bench()
    const { server, link, session } = await connected(bench)
    const answers: string[] = []
    link.clientSide.on('message', (data) => answers.push(decodeServerMessage(data).type))
    for (const timestamp of [EPOCH + 10_001, EPOCH - 10_001, EPOCH + 3_600_000]) link.clientSide.send(encodeClientMessage({ type: 'keep-alive', timestamp }))
    expect(answers).toEqual([])
    expect(server.health().heartbeats.clockSkew).toBe(3)
    bench.clock.advance(1_000)
    for (let index = 0; index < 50; index++) link.clientSide.send(encodeClientMessage({ type: 'keep-alive', timestamp: EPOCH + 1_000 }))
    expect(answers.length).toBeLessThanOrEqual(10)
    expect(answers.length).toBeGreaterThan(0)
    expect(server.health().heartbeats.rateLimited).toBe(50 - answers.length)
    expect(session.active).toBe(true)
  })

  it('a heartbeat unanswered for keepAliveTimeoutMs ends the connection, and the next one continues the session', async () => {
    const bench = new Bench()
    const server = bench.gateway()
    const client = bench.client()
    const manager = new ConnectionManager<MemoryTransport>({
      scheduler: bench.clock,
      backoff: { random: () => 0 },
      connect: async ({ attempt }) => {
        const filter = attempt === 0 ? (_data: Uint8Array, from: 'a' | 'b') => !(from === 'b' && bench.clock.now() > 1_000) : undefined
        const [clientSide, serverSide] = MemoryTransport.pair(filter === undefined ? {} : { filter })
        server.accept(serverSide, { clientId: 7n })
        return clientSide
      },
    })
    const sessionClient = new SessionClient({ capabilities: { a: 'b' }, connection: manager, scheduler: bench.clock, wallClock: bench.wallClock })
    void client
    const events: Array<[string, boolean]> = []
    sessionClient.on('session', (id, continued) => events.push([id, continued]))
    manager.start()
    await settle()
    bench.clock.advance(30_000) // the heartbeat's answer is lost
    bench.clock.advance(10_000)
    expect(sessionClient.stats().heartbeatTimeouts).toBe(1)
    await settle()
    bench.clock.advance(1_000) // the backoff's first delay
    await settle()
    expect(sessionClient.state).toBe('connected')
    expect(events.map(([, continued]) => continued)).toEqual([false, true])
    expect(server.size).toBe(1)
    await sessionClient.close()
  })
})

describe('resumable sessions: connections come and go', () => {
  it('connection drop → continue: the session is unbound with its expiry kept, then rebound', async () => {
    const bench = new Bench()
    const { server, client, link, session } = await connected(bench)
    const expiresAt = session.diagnostics().currentExpiresAt
    link.clientSide.close()
    await settle()
    expect(client.state).toBe('disconnected')
    expect(session.bound).toBe(false)
    expect(session.diagnostics().currentExpiresAt).toBe(expiresAt)
    bench.clock.advance(20_000)
    bench.connect(client, server)
    await settle()
    expect(client.state).toBe('connected')
    expect(session.bound).toBe(true)
    expect(session.diagnostics().currentExpiresAt).toBe(EPOCH + 20_000 + 90_000)
    expect(server.health()).toMatchObject({ sessionsContinued: 1, activeSessions: 1 })
  })

  it('exactly once across three forced reconnects, with every response lost until the last connection', async () => {
    const bench = new Bench()
    const server = bench.gateway()
    const client = bench.client()
    const dropResponses = (_data: Uint8Array, from: 'a' | 'b') => from === 'a' || decodeServerMessage(_data).type !== 'client-response'
    let link = bench.connect(client, server, 7n, dropResponses)
    await settle()
    const responses = Array.from({ length: 20 }, (_, index) => client.request(text(`r${index}`)))
    await settle()
    for (let reconnect = 0; reconnect < 3; reconnect++) {
      link.clientSide.close()
      await settle()
      link = bench.connect(client, server, 7n, reconnect < 2 ? dropResponses : undefined)
      await settle()
    }
    const results = await Promise.all(responses)
    expect(results.map(read)).toEqual(Array.from({ length: 20 }, (_, index) => `r${index}:done`))
    expect([...bench.applied.values()]).toEqual(Array(20).fill(1))
    expect(client.stats()).toMatchObject({ connections: 4, requestsResent: 60 })
  })

  it('a continue from another connection of the same client rebinds; the old connection is told and dropped', async () => {
    const bench = new Bench()
    const { server, client, link, session } = await connected(bench)
    const told: string[] = []
    link.clientSide.on('message', (data) => told.push(decodeServerMessage(data).type))
    // The client moved (a new network) before the old connection was found dead.
    const [clientSide, serverSide] = MemoryTransport.pair()
    server.accept(serverSide, { clientId: 7n })
    const answers: unknown[] = []
    clientSide.on('message', (data) => answers.push(decodeServerMessage(data)))
    clientSide.send(encodeClientMessage({ type: 'continue-session', sessionId: client.sessionId!, nonce: 99n }))
    await settle()
    expect(answers).toEqual([{ type: 'session-continued', nonce: 99n }])
    expect(told).toEqual(['session-closed'])
    expect(link.serverSide.closed).toBe(true)
    expect(session.bound).toBe(true)
  })

  it('a stolen session id continues nothing from another client; the honest session is untouched', async () => {
    const bench = new Bench()
    const { server, client, session } = await connected(bench)
    const [thiefSide, serverSide] = MemoryTransport.pair()
    server.accept(serverSide, { clientId: 666n })
    const answers: unknown[] = []
    thiefSide.on('message', (data) => answers.push(decodeServerMessage(data)))
    thiefSide.send(encodeClientMessage({ type: 'continue-session', sessionId: client.sessionId!, nonce: 5n }))
    await settle()
    expect(answers).toEqual([{ type: 'session-rejected', reason: 'session-not-found', nonce: 5n }])
    expect(thiefSide.closed).toBe(true)
    expect(session.bound).toBe(true)
    expect(client.state).toBe('connected')
    expect(server.health().continuesRefused).toEqual({ notFound: 0, foreignClient: 1 })
    await expect(client.request(text('still mine'))).resolves.toEqual(text('still mine:done'))
  })

  it('an unknown or expired session id is refused SessionNotFound, and the client ends with ERR_SESSION_EXPIRED', async () => {
    const bench = new Bench()
    const { server, client, link } = await connected(bench)
    const pending = expect(client.request(text('late'), {})).rejects.toMatchObject({ code: 'ERR_SESSION_EXPIRED' })
    link.clientSide.pause()
    link.clientSide.close()
    await settle()
    bench.clock.advance(92_000) // expired while the client was away
    await settle()
    expect(server.size).toBe(0)
    bench.connect(client, server)
    await settle()
    expect(client.state).toBe('expired')
    await pending
    expect(server.health().continuesRefused.notFound).toBe(1)
    expect(() => bench.connect(client, server)).toThrow(expect.objectContaining({ code: 'ERR_SESSION_CLOSED' }))
  })

  it('CloseSession expires the session at once: onSessionEnd(closed), and it cannot be continued', async () => {
    const bench = new Bench()
    const { server, client } = await connected(bench)
    const id = client.sessionId
    await client.close()
    await settle()
    expect(bench.ended).toEqual([[id, 'closed', server.gatewayId]])
    expect(server.size).toBe(0)
    expect(server.health().closedByClient).toBe(1)
    const other = bench.client()
    const [clientSide, serverSide] = MemoryTransport.pair()
    server.accept(serverSide, { clientId: 7n })
    const answers: unknown[] = []
    clientSide.on('message', (data) => answers.push(decodeServerMessage(data)))
    clientSide.send(encodeClientMessage({ type: 'continue-session', sessionId: id!, nonce: 3n }))
    await settle()
    expect(answers).toEqual([{ type: 'session-rejected', reason: 'session-not-found', nonce: 3n }])
    void other
  })
})

describe('resumable sessions: server requests', () => {
  it('delivers server requests in order, each once, acknowledged; resends the unacknowledged after a continue', async () => {
    const bench = new Bench()
    let dropSecond = true
    const filter = (data: Uint8Array, from: 'a' | 'b') => {
      if (from !== 'b' || !dropSecond) return true
      const message = decodeServerMessage(data)
      return !(message.type === 'server-request' && message.requestId === 2)
    }
    const server = bench.gateway()
    const client = bench.client()
    let link = bench.connect(client, server, 7n, filter)
    await settle()
    const seen: string[] = []
    client.on('serverRequest', (payload, id) => seen.push(`${id}:${read(payload)}`))
    const session = server.session(client.sessionId!)!
    const acks = [session.request(text('one')), session.request(text('two')), session.request(text('three'))]
    await settle()
    expect(seen).toEqual(['1:one'])
    expect(client.stats().dropped.outOfOrder).toBe(1) // 3 came before 2
    await acks[0]
    dropSecond = false
    link.clientSide.close()
    await settle()
    link = bench.connect(client, server)
    await settle()
    await Promise.all(acks)
    expect(seen).toEqual(['1:one', '2:two', '3:three'])
  })

  it('fails the unacknowledged server requests when the session ends', async () => {
    const bench = new Bench()
    const { client, link, session } = await connected(bench)
    link.clientSide.pause()
    const ack = session.request(text('never'))
    await client.close()
    link.clientSide.resume()
    await session.close()
    await expect(ack).rejects.toMatchObject({ code: 'ERR_SESSION_CLOSED' })
    expect(() => session.request(text('x'))).toThrow(expect.objectContaining({ code: 'ERR_SESSION_CLOSED' }))
  })
})

describe('resumable sessions: bad input', () => {
  it('counts undecodable messages and drops them; a session message with no session gets SessionClosed(SessionError)', async () => {
    const bench = new Bench()
    const server = bench.gateway()
    const [side, serverSide] = MemoryTransport.pair()
    server.accept(serverSide, { clientId: 1n })
    const answers: unknown[] = []
    side.on('message', (data) => answers.push(decodeServerMessage(data)))
    side.send(Uint8Array.of(1, 2, 3))
    side.send(Buffer.from('7a7261667402030000018d22735400', 'hex'))
    side.send(Buffer.from('7a726166740109', 'hex'))
    side.send(Buffer.from('7a72616674010300', 'hex'))
    expect(answers).toEqual([])
    expect(server.health().dropped).toMatchObject({ signature: 1, version: 1, 'unknown-type': 1, truncated: 1 })
    side.send(encodeClientMessage({ type: 'keep-alive', timestamp: EPOCH }))
    expect(answers).toEqual([{ type: 'session-closed', reason: 'session-error' }])
    expect(side.closed || serverSide.closed).toBe(true)
    expect(server.health().heartbeats.unbound).toBe(1)
  })

  it('holds messages that follow a create until it is settled (a client may pipeline)', async () => {
    const bench = new Bench()
    const server = bench.gateway({ acceptSession: async () => true })
    const [side, serverSide] = MemoryTransport.pair()
    server.accept(serverSide, { clientId: 1n })
    const answers: Array<{ type: string }> = []
    side.on('message', (data) => answers.push(decodeServerMessage(data)))
    side.send(encodeClientMessage({ type: 'create-session', capabilities: new Map([['a', 'b']]), nonce: 1n }))
    side.send(encodeClientMessage({ type: 'client-request', requestId: 1, lowestPendingRequestId: 1, payload: text('p'), createdAt: EPOCH }))
    await settle()
    expect(answers.map((answer) => answer.type)).toEqual(['session-created', 'client-response'])
  })
})

describe('resumable sessions: gateways sharing a store', () => {
  it('leader change: a gone gateway’s sessions are taken over with expiry = now + grace, then continue or expire once', async () => {
    const bench = new Bench(new MemorySessionStore())
    const a = bench.gateway({ gatewayId: 'A' })
    const b = bench.gateway({ gatewayId: 'B', takeOverGraceMs: 20_000 })
    const kept = bench.client()
    const dropped = bench.client()
    bench.connect(kept, a)
    bench.connect(dropped, a)
    await settle()
    const answered = kept.request(text('before'))
    await settle()
    await answered
    bench.clock.advance(1_000)
    await settle()
    await a.close() // gateway A is gone: its clients lose their connections
    await settle()
    expect(kept.state).toBe('disconnected')
    bench.clock.advance(5_000) // A's entry goes stale (gatewayTtlMs 5 s); B's tick takes over
    await settle()
    bench.clock.advance(1_000)
    await settle()
    expect(b.size).toBe(2)
    expect(b.health().sessionsAdopted).toBe(2)
    const adopted = b.session(kept.sessionId!)!
    expect(adopted.bound).toBe(false)
    expect(adopted.diagnostics().currentExpiresAt).toBeGreaterThan(bench.wallClock() + 18_000)
    expect(adopted.diagnostics().currentExpiresAt).toBeLessThanOrEqual(bench.wallClock() + 20_000)
    bench.connect(kept, b)
    await settle()
    expect(kept.state).toBe('connected')
    await expect(kept.request(text('after'))).resolves.toEqual(text('after:done'))
    // The session that nobody continued expires after the grace, once, at B.
    bench.clock.advance(21_000)
    await settle()
    expect(bench.ended).toEqual([[dropped.sessionId, 'expired', 'B']])
    expect(b.session(kept.sessionId!)?.bound).toBe(true)
    await b.close()
  })

  it('a continue at another live gateway moves the session; the old gateway tells its connection NotLeaderAnymore', async () => {
    const bench = new Bench(new MemorySessionStore())
    const a = bench.gateway({ gatewayId: 'A' })
    const b = bench.gateway({ gatewayId: 'B' })
    const client = bench.client()
    const first = bench.connect(client, a)
    await settle()
    const told: unknown[] = []
    first.clientSide.on('message', (data) => told.push(decodeServerMessage(data)))
    // The same client, on a second connection to B (a resend of its continue from a new network path).
    const [side, serverSide] = MemoryTransport.pair()
    b.accept(serverSide, { clientId: 7n })
    side.send(encodeClientMessage({ type: 'continue-session', sessionId: client.sessionId!, nonce: 8n }))
    await settle()
    expect(b.session(client.sessionId!)?.bound).toBe(true)
    expect(a.session(client.sessionId!)).toBeUndefined()
    expect(told).toEqual([{ type: 'session-closed', reason: 'not-leader-anymore' }])
    expect(b.health().sessionsTakenOver).toBe(1)
    await a.close()
    await b.close()
  })
})

describe('resumable sessions: queries, evictions, refusals, a failing store', () => {
  it('answers queries through onQuery, not recorded: run again on each resend', async () => {
    const bench = new Bench()
    let runs = 0
    const server = bench.gateway({ onQuery: (payload) => (runs++, text(`q:${read(payload)}`)) })
    const client = bench.client()
    bench.connect(client, server)
    await settle()
    const answer = client.query(text('status'))
    await settle()
    expect(read(await answer)).toBe('q:status')
    expect(runs).toBe(1)
    expect(server.health().requests.queries).toBe(1)
    // Without onQuery, a query is dropped and counted.
    const bare = bench.gateway()
    const other = bench.client()
    bench.connect(other, bare)
    await settle()
    void other.query(text('x')).catch(() => {})
    await settle()
    expect(bare.health().dropped.unexpected).toBe(1)
    await other.close()
  })

  it('evicts the oldest responses past maxHeldResponses; the client learns ERR_RESPONSE_EVICTED for a resend of one', async () => {
    const bench = new Bench()
    const server = bench.gateway({ maxHeldResponses: 2 })
    const [side, serverSide] = MemoryTransport.pair()
    server.accept(serverSide, { clientId: 1n })
    const answers: Array<{ type: string; requestId?: number }> = []
    side.on('message', (data) => answers.push(decodeServerMessage(data) as { type: string; requestId?: number }))
    side.send(encodeClientMessage({ type: 'create-session', capabilities: new Map([['a', 'b']]), nonce: 1n }))
    await settle()
    // A client that never moves its lowest pending id: the server holds two responses, not all.
    for (const requestId of [1, 2, 3]) side.send(encodeClientMessage({ type: 'client-request', requestId, lowestPendingRequestId: 1, payload: text('p'), createdAt: EPOCH }))
    await settle()
    side.send(encodeClientMessage({ type: 'client-request', requestId: 1, lowestPendingRequestId: 1, payload: text('p'), createdAt: EPOCH }))
    side.send(encodeClientMessage({ type: 'client-request', requestId: 3, lowestPendingRequestId: 1, payload: text('p'), createdAt: EPOCH }))
    await settle()
    expect(answers.slice(-2)).toEqual([
      { type: 'request-error', requestId: 1, reason: 'response-evicted' },
      { type: 'client-response', requestId: 3, result: text('p:done') },
    ])
    expect([...bench.applied.values()]).toEqual([1, 1, 1])
  })

  it('rejects a client request past its evicted ids with ERR_RESPONSE_EVICTED', async () => {
    const bench = new Bench()
    const client = bench.client()
    const [clientSide, far] = MemoryTransport.pair()
    let nonce = 0n
    far.on('message', (data) => {
      const message = decodeClientMessage(data)
      if (message.type === 'create-session') nonce = message.nonce
    })
    client.attach(clientSide)
    far.send(encodeServerMessage({ type: 'session-created', sessionId: 's', nonce }))
    const outcome = expect(client.request(text('x'))).rejects.toMatchObject({ code: 'ERR_RESPONSE_EVICTED' })
    far.send(encodeServerMessage({ type: 'request-error', requestId: 1, reason: 'response-evicted' }))
    await outcome
    expect(client.pendingRequests).toBe(0)
  })

  it('on NotLeader, or SessionClosed other than expired, tries a new connection and keeps the session', async () => {
    const bench = new Bench()
    const client = bench.client()
    /** A connection whose far side the test answers by hand; the nonce the client sent on it. */
    const connection = () => {
      const [near, far] = MemoryTransport.pair()
      const sent: ClientMessage[] = []
      far.on('message', (data) => sent.push(decodeClientMessage(data) as ClientMessage))
      client.attach(near)
      const nonce = (): bigint => (sent[0] as { nonce: bigint }).nonce
      return { near, far, sent, nonce }
    }
    const first = connection()
    first.far.send(encodeServerMessage({ type: 'session-rejected', reason: 'not-leader', nonce: first.nonce(), leaderId: 'node-2' }))
    await settle()
    expect(first.near.closed).toBe(true)
    expect(client.state).toBe('disconnected')
    let current = connection()
    current.far.send(encodeServerMessage({ type: 'session-created', sessionId: 's1', nonce: current.nonce() }))
    expect(client.state).toBe('connected')
    for (const reason of ['shutdown', 'not-leader-anymore', 'session-error', 'connection-closed'] as const) {
      current.far.send(encodeServerMessage({ type: 'session-closed', reason }))
      await settle()
      expect(current.near.closed).toBe(true)
      expect(client.state).toBe('disconnected')
      current = connection()
      expect(current.sent).toEqual([{ type: 'continue-session', sessionId: 's1', nonce: current.nonce() }])
      current.far.send(encodeServerMessage({ type: 'session-continued', nonce: current.nonce() }))
      expect(client.state).toBe('connected')
    }
    expect(client.stats().connections).toBe(5)
  })

  it('refuses a create when the store fails (Other), and ends a continue the store cannot serve with SessionError', async () => {
    const store = new MemorySessionStore()
    const failing = { create: false, claim: false }
    const wrapped: SessionStore = {
      create: (gateway, session) => (failing.create ? Promise.reject(new Error('store down')) : store.create(gateway, session)),
      claim: (...args) => (failing.claim ? Promise.reject(new Error('store down')) : store.claim(...args)),
      expire: (gateway, sessionId) => store.expire(gateway, sessionId),
      recordResponse: (sessionId, requestId, result) => store.recordResponse(sessionId, requestId, result),
      tick: (gateway, tick) => store.tick(gateway, tick),
      onClaimedAway: (gateway, listener) => store.onClaimedAway(gateway, listener),
    }
    const bench = new Bench(wrapped)
    const a = bench.gateway({ gatewayId: 'A' })
    const b = bench.gateway({ gatewayId: 'B' })
    const errors: string[] = []
    for (const server of [a, b]) server.on('storeError', (error) => errors.push(error.message))
    failing.create = true
    const refused = bench.client()
    bench.connect(refused, a)
    await settle()
    expect(refused.state).toBe('rejected')
    failing.create = false
    const client = bench.client()
    const first = bench.connect(client, a)
    await settle()
    first.clientSide.close()
    await settle()
    // B cannot claim it while the store is down: the connection ends with SessionError, the session stays.
    failing.claim = true
    const second = bench.connect(client, b)
    const told: unknown[] = []
    second.clientSide.on('message', (data) => told.push(decodeServerMessage(data)))
    await settle()
    expect(told).toEqual([{ type: 'session-closed', reason: 'session-error' }])
    expect(second.clientSide.closed).toBe(true)
    expect(client.state).toBe('disconnected')
    failing.claim = false
    bench.connect(client, b)
    await settle()
    expect(client.state).toBe('connected')
    expect(errors).toEqual(['store down', 'store down'])
    expect(a.health().storeErrors + b.health().storeErrors).toBe(2)
  })
})
