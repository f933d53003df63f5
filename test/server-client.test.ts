// Server and Client over loopback: the netcode protocol running on the engine's I/O thread.
import dgram from 'node:dgram'
import { describe, expect, it } from 'vitest'
import { Client, ClientPool, ConnectError, type ConnectErrorCode, type Peer, Server, connectTokenToBase64, generateConnectToken, readConnectToken } from '../src/index.ts'
import { PacketType } from '../src/protocol/netcode/constants.ts'
import { readEncryptedPacket, writeConnectionRequest } from './netcode/codecs/packets.ts'
import { loadSodium } from '../src/protocol/netcode/sodium.ts'
import { blockUntil, freeUdpPort, waitFor, within } from './helpers.ts'

const privateKey = new Uint8Array(32).fill(3)
const protocolId = 0x1234n
const fast = { disconnectIntervalMs: 5 } // redundant disconnects 5 ms apart keep the tests short

async function startServer(options: Partial<ConstructorParameters<typeof Server>[0]> = {}): Promise<{ server: Server; address: string }> {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 8, ...fast, ...options })
  const { port } = await server.listen()
  return { server, address: `127.0.0.1:${port}` }
}

function token(address: string | string[], clientId = 1n, extra: { timeoutSeconds?: number; expireSeconds?: number; userData?: Uint8Array } = {}) {
  return generateConnectToken({
    protocolId,
    privateKey,
    clientId,
    serverAddresses: Array.isArray(address) ? address : [address],
    expireSeconds: extra.expireSeconds ?? 30,
    timeoutSeconds: extra.timeoutSeconds ?? 5,
    userData: extra.userData,
  })
}

/**
 * Sends the connection request of each token to the server by hand, from one socket, one after the other
 * (each once the server has counted or answered the one before). Replies come back in order: the types
 * of those that arrived, and which tokens (by position) they answer, once the last token was answered.
 */
async function requestsByHand(server: Server, address: string, tokens: Uint8Array[]) {
  const sodium = await loadSodium()
  const port = Number(address.split(':')[1])
  const socket = dgram.createSocket('udp4')
  const replies: Uint8Array[] = []
  socket.on('message', (data) => replies.push(new Uint8Array(data)))
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  try {
    const parsed = tokens.map((bytes) => readConnectToken(bytes))
    for (const each of parsed) {
      const handled = () => server.stats().drops.tokenRefused + replies.length
      const before = handled()
      socket.send(writeConnectionRequest(each), port, '127.0.0.1')
      await waitFor(() => handled() > before, 5000, 'the server to refuse or answer the request')
    }
    const answered = replies.map((reply) =>
      parsed.findIndex((each) => readEncryptedPacket(sodium, reply, { protocolId, key: each.serverToClientKey, accept: new Set([1, 2]) }).ok),
    )
    const types = replies.map((reply) => reply[0]! & 0x0f)
    return { tokenRefused: server.stats().drops.tokenRefused, replies: types, answered }
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()))
  }
}

describe('Server and Client on loopback', () => {
  it('connects with a token, carries payloads both ways, and reports the peer', async () => {
    const { server, address } = await startServer()
    const connected: Peer[] = []
    const received: string[] = []
    server.on('connect', (peer) => connected.push(peer))
    server.on('message', (peer, data) => {
      received.push(Buffer.from(data).toString())
      peer.send(Buffer.from(`echo ${Buffer.from(data).toString()}`))
    })
    const client = new Client(fast)
    const states: string[] = []
    client.on('state', (state) => states.push(state))
    await client.connect(await token(address, 42n, { userData: new Uint8Array([7, 7]) }))
    expect(client.state).toBe('connected')
    expect(states).toEqual(['sending-connection-request', 'sending-connection-response', 'connected'])
    await waitFor(() => connected.length === 1)
    expect(connected[0]).toMatchObject({ clientId: 42n, address: '127.0.0.1', index: 0 })
    expect([...connected[0]!.userData.subarray(0, 3)]).toEqual([7, 7, 0])
    const answers: string[] = []
    client.on('message', (data) => answers.push(Buffer.from(data).toString()))
    for (let i = 0; i < 100; i++) client.send(Buffer.from(`m${i}`))
    await waitFor(() => answers.length === 100, 5000, 'echoes')
    expect(received).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`))
    expect(answers[99]).toBe('echo m99')
    const stats = server.stats()
    expect(stats.connectedClients).toBe(1)
    const peerStats = connected[0]!.stats()
    expect(peerStats.packets.in).toBeGreaterThanOrEqual(101) // the response, 100 payloads, keep-alives
    expect(peerStats.packets.out).toBeGreaterThanOrEqual(101) // the keep-alive that confirmed, 100 echoes
    expect(peerStats.bytes.in).toBeGreaterThan(100 * 18)
    await client.close()
    await waitFor(() => server.peers.size === 0)
    await server.close()
    expect(server.state).toBe('stopped')
  })

  it('server.address() and client.serverAddress say where each end is, and only while they are in use', async () => {
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 8, ...fast })
    expect(server.address()).toBeNull()
    const listening = await server.listen()
    expect(listening).toEqual({ address: '127.0.0.1', family: 'IPv4', port: expect.any(Number) })
    expect(listening.port).toBeGreaterThan(0)
    expect(server.address()).toEqual(listening)
    const client = new Client(fast)
    expect(client.serverAddress).toBeNull()
    const named: (string | undefined)[] = []
    client.on('state', () => named.push(client.serverAddress?.address))
    expect(client.connecting).toBe(false)
    const connected = client.connect(await token(`127.0.0.1:${listening.port}`))
    // connecting from the call on (the engine reports its first state a moment later), as net.Socket's
    expect(client.connecting).toBe(true)
    expect(() => client.send(new Uint8Array([1]))).toThrow(expect.objectContaining({ code: 'ERR_CLIENT_NOT_CONNECTED', message: 'The client is still connecting: send once connect() has resolved' }))
    await connected
    expect(client.connecting).toBe(false)
    expect(client.serverAddress).toEqual(listening)
    expect(named).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1'])
    await client.close()
    expect(client.serverAddress).toBeNull()
    await server.close()
    expect(server.address()).toBeNull()
  })

  it('a token that never expires (negative expireSeconds) connects', async () => {
    const { server, address } = await startServer()
    const client = new Client(fast)
    await client.connect(await token(address, 7n, { expireSeconds: -1 }))
    expect(client.state).toBe('connected')
    await client.close()
    await server.close()
  })

  it("each peer keeps its own user data, after its slot went to another client", async () => {
    // Three rounds of 8 clients through 8 slots: 24 copies, more than one of the buffers they share.
    const { server, address } = await startServer()
    const seen: { peer: Peer; expected: Uint8Array }[] = []
    const dataOf = (clientId: bigint) => Uint8Array.from({ length: 256 }, (_, i) => (Number(clientId) * 31 + i) & 0xff)
    server.on('connect', (peer) => seen.push({ peer, expected: dataOf(peer.clientId) }))
    for (let round = 0; round < 3; round++) {
      const ids = Array.from({ length: 8 }, (_, i) => BigInt(round * 100 + i + 1))
      const pool = new ClientPool(fast)
      const result = await pool.connect(await Promise.all(ids.map((id) => token(address, id, { userData: dataOf(id) }))))
      expect(result.connected).toBe(8)
      await waitFor(() => server.peers.size === 8)
      await pool.close()
      await waitFor(() => server.peers.size === 0)
    }
    expect(seen).toHaveLength(24)
    expect(new Set(seen.map(({ peer }) => peer.index)).size).toBe(8)
    // Handing one peer's user data to a worker with a transfer list takes that peer's copy only: the
    // copies once shared a buffer, and the others went empty with it.
    const moved = structuredClone(seen[0]!.peer.userData, { transfer: [seen[0]!.peer.userData.buffer as ArrayBuffer] })
    expect(Buffer.compare(Buffer.from(moved), Buffer.from(seen[0]!.expected))).toBe(0)
    expect(seen[0]!.peer.userData.byteLength).toBe(0)
    for (const { peer, expected } of seen.slice(1)) {
      expect(peer.connected).toBe(false)
      expect(peer.userData.byteLength).toBe(256)
      expect(Buffer.compare(Buffer.from(peer.userData), Buffer.from(expected))).toBe(0)
    }
    await server.close()
  })

  it.each([['a BYOB read into it'], ['a transfer']])("%s detaches one peer's user data, not the others'", async (how) => {
    // Both detach the buffer under peer.userData (a transfer: ArrayBuffer's transfer() from Node 22 on,
    // structuredClone's transfer list before). The peers' copies shared a buffer, and one handler emptied
    // every other peer's user data and broke the next connects.
    const { server, address } = await startServer()
    const transfer = (ArrayBuffer.prototype as { transfer?: () => ArrayBuffer }).transfer
    const peers: Peer[] = []
    server.on('connect', (peer) => {
      if (peers.push(peer) !== 2) return
      if (how === 'a transfer') {
        const buffer = peer.userData.buffer as ArrayBuffer
        if (transfer !== undefined) transfer.call(buffer)
        else structuredClone(buffer, { transfer: [buffer] })
      } else {
        void new ReadableStream({ type: 'bytes' })
          .getReader({ mode: 'byob' })
          .read(peer.userData)
          .catch(() => {})
      }
    })
    const dataOf = (clientId: bigint) => new Uint8Array(256).fill(Number(clientId))
    const pool = new ClientPool(fast)
    const ids = [1n, 2n, 3n]
    expect((await pool.connect(await Promise.all(ids.map((id) => token(address, id, { userData: dataOf(id) }))), { concurrency: 1 })).connected).toBe(3)
    await waitFor(() => peers.length === 3)
    expect(peers[1]!.userData.byteLength).toBe(0) // detached, as the handler asked
    for (const peer of peers.filter((_, i) => i !== 1)) {
      expect(peer.userData.byteLength).toBe(256)
      expect(Buffer.compare(Buffer.from(peer.userData), Buffer.from(dataOf(peer.clientId)))).toBe(0)
    }
    await pool.close()
    await server.close()
  })

  it('server states STOPPED -> RUNNING -> STOPPING -> STOPPED; clients see the disconnect', async () => {
    const { server, address } = await startServer()
    const states: string[] = []
    server.on('state', (state) => states.push(state))
    const client = new Client(fast)
    await client.connect(await token(address))
    const ended = new Promise<string>((resolve) => client.once('disconnect', resolve))
    const reasons: string[] = []
    server.on('disconnect', (_peer, reason) => reasons.push(reason))
    await waitFor(() => server.peers.size === 1)
    await server.close()
    expect(states).toEqual(['stopping', 'stopped'])
    expect(reasons).toEqual(['server-closed'])
    expect(await within(ended, 5000, "the client's disconnect")).toBe('disconnected')
    await client.close()
  })

  it('rejects with typed errors: denied when full, request timed out, invalid token', async () => {
    const { server, address } = await startServer({ maxClients: 1 })
    const first = new Client(fast)
    await first.connect(await token(address, 1n))
    const second = new Client(fast)
    const denied = await second.connect(await token(address, 2n)).catch((error: unknown) => error)
    expect(denied).toBeInstanceOf(ConnectError)
    expect(denied).toMatchObject({ code: 'ERR_CONNECTION_DENIED', state: 'connection-denied' })
    expect((denied as Error).message).toContain(`(at ${address}, the last address tried)`)
    expect(() => second.send(new Uint8Array([1]))).toThrow(expect.objectContaining({ code: 'ERR_CLIENT_NOT_CONNECTED', message: "The client is not connected: its connect() failed ('connection-denied')" }))
    if (denied instanceof ConnectError) {
      const code: ConnectErrorCode = denied.code // the codes of how an attempt ends, for exhaustive switches
      expect(code).toBe('ERR_CONNECTION_DENIED')
      // A ConnectError never carries a send-time code: a compile-time check, which CI's type-check step runs.
      // @ts-expect-error
      const impossible: ConnectErrorCode = 'ERR_NO_SUCH_CHANNEL'
      void impossible
    }
    const nobody = new Client(fast)
    const silent = await nobody.connect(await token('127.0.0.1:9', 3n, { timeoutSeconds: 1 })).catch((error: unknown) => error)
    expect(silent).toMatchObject({ code: 'ERR_CONNECTION_REQUEST_TIMED_OUT' })
    // Silence may be a refusal: the message says so, and where to look, and names the server.
    expect((silent as Error).message).toMatch(/refused the token without a word.*drops\.tokenRefused.*\(at 127\.0\.0\.1:9, the last address tried\)$/)
    await expect(new Client().connect(new Uint8Array(10))).rejects.toMatchObject({ code: 'ERR_INVALID_CONNECT_TOKEN' })
    await expect(new Client().connect(new Uint8Array(2048))).rejects.toThrow(TypeError) // documented: a bad argument, not a ConnectError
    expect(server.stats().denied).toBe(1)
    await Promise.all([first.close(), second.close(), nobody.close()])
    await server.close()
  })

  it("a token from another generator whose first address has port 0 is read as the reference reads it: the client moves on to the next", async () => {
    const { server, address } = await startServer()
    const bytes = await token(['127.0.0.1:9', address], 1n, { timeoutSeconds: 1 })
    // generateConnectToken never writes port 0; the first public address's port is at 1098.
    bytes.set([0, 0], 1098)
    expect(readConnectToken(bytes).serverAddresses[0]).toMatchObject({ family: 4, port: 0 })
    const client = new Client(fast)
    const tried: [string, number | undefined][] = []
    client.on('state', (state) => tried.push([state, client.serverAddress?.port]))
    const started = Date.now()
    await client.connect(bytes)
    // The request to port 0 failed in the kernel (counted) and timed out after the token's 1 s; the second
    // address answered.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
    expect(client.state).toBe('connected')
    const port = Number(address.split(':')[1])
    expect(tried).toEqual([['sending-connection-request', 0], ['sending-connection-request', port], ['sending-connection-response', port], ['connected', port]])
    expect(client.serverAddress).toEqual({ address: '127.0.0.1', family: 'IPv4', port })
    expect(client.stats().errors.send).toBeGreaterThan(0)
    await client.close()
    await server.close()
  })

  it('a token for another server is refused and counted, never answered', async () => {
    // The request goes to this server by hand (a Client would send it to the token's address instead).
    const { server, address } = await startServer()
    const seen = await requestsByHand(server, address, [await token('127.0.0.1:1', 9n), await token(address, 10n)])
    // The first is refused and counted; only the second, which lists this server, gets its challenge.
    expect(seen).toEqual({ tokenRefused: 1, replies: [PacketType.connectionChallenge], answered: [1] })
    await server.close()
  })

  it("counts each refused request under its cause in server.stats().drops, and answers none", async () => {
    const { server, address } = await startServer()
    const port = Number(address.split(':')[1])
    const socket = dgram.createSocket('udp4')
    let replies = 0
    socket.on('message', () => replies++)
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
    const request = async (options: { protocolId?: bigint; nowSeconds?: number; clientId: bigint }) =>
      writeConnectionRequest(readConnectToken(await generateConnectToken({ protocolId, privateKey, serverAddresses: [address], expireSeconds: 30, timeoutSeconds: 5, ...options })))
    const anotherVersion = await request({ clientId: 3n })
    anotherVersion[12] = 0x33 // "NETCODE 1.03"
    const cases: [Uint8Array, string][] = [
      [await request({ protocolId: protocolId + 1n, clientId: 1n }), 'wrongProtocol'],
      [anotherVersion, 'wrongProtocol'],
      [await request({ nowSeconds: Math.floor(Date.now() / 1000) - 100, clientId: 2n }), 'tokenExpired'],
      [(await request({ clientId: 4n })).subarray(0, 1077), 'malformed'],
    ]
    try {
      for (const [bytes, cause] of cases) {
        const before = server.stats().drops
        const handled = () => (['malformed', 'wrongProtocol', 'tokenExpired', 'tokenRefused'] as const).reduce((sum, name) => sum + server.stats().drops[name], 0)
        const total = handled()
        socket.send(bytes, port, '127.0.0.1')
        await waitFor(() => handled() > total, 5000, `the server to count a request refused as ${cause}`)
        expect(server.stats().drops, cause).toEqual({ ...before, [cause]: before[cause as keyof typeof before] + 1 })
      }
      await new Promise((resolve) => setTimeout(resolve, 50)) // an answer would have come by now
      expect(replies).toBe(0)
    } finally {
      socket.close()
      await server.close()
    }
  })

  it('with a publicAddress, takes tokens that list it and refuses those that list only the bound address', async () => {
    const publicAddress = '10.20.30.40:5000' // as behind NAT: clients reach the server at another address
    const { server, address } = await startServer({ publicAddress })
    const seen = await requestsByHand(server, address, [await token(address, 11n), await token(publicAddress, 12n)])
    expect(seen).toEqual({ tokenRefused: 1, replies: [PacketType.connectionChallenge], answered: [1] })
    await server.close()
  })

  it('a token that lists the server as an IPv4-mapped IPv6 address connects (::ffff:a.b.c.d is a.b.c.d)', async () => {
    // A dual-stack server: its IPv4 clients' packets come from ::ffff:127.0.0.1, and its replies reach the
    // client from 127.0.0.1, which the client must take for the token's [::ffff:127.0.0.1].
    const probe = await startServer()
    const port = Number(probe.address.split(':')[1])
    await probe.server.close()
    const mapped = `[::ffff:127.0.0.1]:${port}`
    const server = new Server({ protocolId, privateKey, address: `[::]:${port}`, publicAddress: mapped, maxClients: 2, ...fast })
    await server.listen()
    const client = new Client(fast)
    await client.connect(await token(mapped, 21n))
    expect(client.state).toBe('connected')
    expect(client.stats().drops.unknownAddress).toBe(0)
    // And a server whose public address is the IPv4 form takes a token that lists the mapped one.
    const plain = await startServer()
    const plainPort = Number(plain.address.split(':')[1])
    const other = new Client(fast)
    await other.connect(await token(`[::ffff:127.0.0.1]:${plainPort}`, 22n))
    expect(other.state).toBe('connected')
    await Promise.all([client.close(), other.close()])
    await Promise.all([server.close(), plain.server.close()])
  })

  it('connect() rejects with ERR_CLIENT_BUSY while connecting or connected, takes a base64 token, and reports an expired one', async () => {
    const { server, address } = await startServer()
    const client = new Client(fast)
    const first = client.connect(connectTokenToBase64(await token(address, 13n))) // the text form
    await expect(client.connect(await token(address, 14n))).rejects.toMatchObject({ code: 'ERR_CLIENT_BUSY' })
    await first
    expect(client.state).toBe('connected')
    await expect(client.connect(await token(address, 15n))).rejects.toMatchObject({ code: 'ERR_CLIENT_BUSY' })
    await waitFor(() => server.peers.size === 1)
    expect([...server.peers.values()].map((peer) => peer.clientId)).toEqual([13n])
    await client.close()
    const late = new Client(fast)
    const expired = await late.connect(await token(address, 16n, { expireSeconds: 0 })).catch((error: unknown) => error)
    expect(expired).toBeInstanceOf(ConnectError)
    expect(expired).toMatchObject({ code: 'ERR_CONNECT_TOKEN_EXPIRED', state: 'connect-token-expired' })
    await late.close()
    await server.close()
  })

  it('peer.disconnect() ends the client with redundant disconnect packets', async () => {
    const { server, address } = await startServer()
    const client = new Client(fast)
    await client.connect(await token(address))
    await waitFor(() => server.peers.size === 1)
    const ended = new Promise<string>((resolve) => client.once('disconnect', resolve))
    const peer = [...server.peers.values()][0]!
    const reason = new Promise<string>((resolve) => server.once('disconnect', (_, why) => resolve(why)))
    peer.disconnect()
    // From the call on, as after server.close(): not connected, and a send throws (it would be lost).
    expect(peer.connected).toBe(false)
    expect(() => peer.send(new Uint8Array([1]))).toThrow(
      expect.objectContaining({ code: 'ERR_PEER_DISCONNECTED', message: `Peer ${peer.clientId} is not connected: peer.disconnect() ended its connection` }),
    )
    await expect(peer.drained()).rejects.toMatchObject({ code: 'ERR_PEER_DISCONNECTED' })
    peer.disconnect() // harmless twice
    expect(await within(ended, 5000, "the client's disconnect")).toBe('disconnected')
    expect(await within(reason, 5000, "the server's disconnect")).toBe('server-disconnect')
    expect(server.peers.size).toBe(0)
    await client.close()
    await server.close()
  })

  it('a Peer whose client left before JavaScript heard of it never reaches the client that took its slot', async () => {
    // The I/O threads run on while JavaScript is busy: A leaves and B takes slot 0 before the server's
    // JavaScript has seen either; what it then does with A's Peer must not reach B.
    for (const options of [{}, { channels: [{ mode: 'reliable' as const }], sendQueueBytes: 16_384 }]) {
      const { server, address } = await startServer({ maxClients: 1, ...options })
      const peers: Peer[] = []
      server.on('connect', (peer) => peers.push(peer))
      const a = new Client({ ...fast, ...options })
      await a.connect(await token(address, 1n))
      await waitFor(() => peers.length === 1)
      if ('channels' in options) {
        // Twice the send queue's worth to A, all acknowledged: nothing queued.
        for (let i = 0; i < 200; i++) if (!peers[0]!.send(new Uint8Array(100))) await peers[0]!.drained()
        await peers[0]!.flushed()
      }
      let fromA = 0
      server.on('message', () => fromA++)
      for (let i = 0; i < 50; i++) a.send(new Uint8Array(200))
      await waitFor(() => fromA === 50, 5000, "A's messages")
      const before = peers[0]!.stats()
      expect(before.bytes.in).toBeGreaterThan(50 * 200) // (with channels, several messages share a packet)
      const b = new Client({ ...fast, ...options })
      const tokenB = await token(address, 2n)
      const reachedB: number[] = []
      b.on('message', (data) => reachedB.push(data.byteLength))
      const aClosed = a.close()
      const bConnected = b.connect(tokenB)
      // Until B is connected as its engine knows it (the server's keep-alive told it maxClients): slot 0, the
      // only one, is B's, A has left, and the server's JavaScript has seen neither.
      expect(blockUntil(() => b.stats().maxClients > 0, 10_000)).toBe(true)
      const stale = peers[0]!
      expect(stale.connected).toBe(true) // as far as JavaScript knows
      // Its counters are B's now: its statistics stay its own last reading.
      expect(stale.stats().bytes.in).toBeGreaterThanOrEqual(before.bytes.in)
      // Its queue is not read from B's row either: against B's released bytes it held all A was ever sent,
      // and a send() was refused for it.
      expect({ buffered: stale.bufferedAmount, queue: server.stats().link?.queue }).toEqual({ buffered: 0, queue: 'channels' in options ? { depth: 0, bytes: 0, delayMs: 0 } : undefined })
      expect(stale.send(new Uint8Array(10))).toBe(true)
      if ('channels' in options) stale.send(new Uint8Array(40_000)) // past the send slabs: a control of its own
      stale.disconnect()
      await Promise.all([aClosed, bConnected])
      await waitFor(() => peers.length === 2 && server.peers.get(0) === peers[1])
      expect(stale.connected).toBe(false)
      expect(stale.stats().bytes.in).toBeGreaterThanOrEqual(before.bytes.in)
      expect(peers[1]!.stats().bytes.in).toBeLessThan(before.bytes.in) // B's, counted from its handshake
      peers[1]!.send(new Uint8Array(3)) // B's own Peer reaches B
      await waitFor(() => reachedB.length === 1)
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect({ reachedB, state: b.state }).toEqual({ reachedB: [3], state: 'connected' })
      await b.close()
      await server.close()
    }
  })

  it('a peer that left gives its statistics as of when it left, however late they are read', async () => {
    // Made on first read (most peers that leave are never read): from the readings of that moment, so that a
    // bandwidth read a second and a half later is not spread over the time since.
    for (const options of [{}, { channels: [{ mode: 'reliable' as const }] }]) {
      const { server, address } = await startServer(options)
      let connectedAt = 0
      let endedAt = 0
      let left: Peer | undefined
      server.on('connect', () => (connectedAt = performance.now()))
      server.on('disconnect', (peer) => {
        endedAt = performance.now()
        left = peer
      })
      const client = new Client({ ...fast, ...options })
      await client.connect(await token(address, 1n))
      await waitFor(() => connectedAt > 0)
      const until = performance.now() + 1200
      while (performance.now() < until) {
        client.send(new Uint8Array(1000))
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      await client.close()
      await waitFor(() => left !== undefined, 5000, "the client's 'disconnect'")
      await new Promise((resolve) => setTimeout(resolve, 1500))
      const stats = (left as Peer).stats()
      const rateWhenLeft = (stats.bytes.in * 8) / ((endedAt - connectedAt) / 1000)
      expect(stats.bytes.in).toBeGreaterThan(100_000)
      expect(stats.bandwidth.inBps / rateWhenLeft, `${stats.bandwidth.inBps} b/s against ${rateWhenLeft} b/s`).toBeGreaterThan(0.85)
      expect(stats.bandwidth.inBps / rateWhenLeft).toBeLessThan(1.15)
      // They stand: read again later, the same figures (the clock's error bound no wider).
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect((left as Peer).stats()).toEqual(stats)
      // Each caller gets its own copy: changing one is not the next reading (it used to be the same object).
      const changed = (left as Peer).stats()
      changed.packets.in = -1
      changed.drops.malformed = 999
      expect((left as Peer).stats()).toEqual(stats)
      if ('channels' in options) expect(stats.clock.exchanges).toBeGreaterThan(0)
      await server.close()
    }
  })

  it("'disconnect' reports the peer's last statistics when a next client took its slot before JavaScript heard", async () => {
    // Its stats never read while it was connected: a server that logs each session's figures at 'disconnect'.
    for (const options of [{}, { channels: [{ mode: 'reliable' as const }] }]) {
      const { server, address } = await startServer({ maxClients: 1, ...options })
      const ended: { clientId: bigint; bytesIn: number; packetsIn: number; rttMs: number }[] = []
      server.on('disconnect', (peer) => {
        const stats = peer.stats()
        ended.push({ clientId: peer.clientId, bytesIn: stats.bytes.in, packetsIn: stats.packets.in, rttMs: stats.rtt.smoothedMs })
      })
      let fromA = 0
      server.on('message', () => fromA++)
      const a = new Client({ ...fast, ...options })
      await a.connect(await token(address, 1n))
      for (let i = 0; i < 50; i++) a.send(new Uint8Array(200))
      await waitFor(() => fromA === 50, 5000, "A's messages")
      const b = new Client({ ...fast, ...options })
      const tokenB = await token(address, 2n)
      const aClosed = a.close()
      const bConnected = b.connect(tokenB)
      // B holds slot 0, the only one, and has reset its counters, before the server's JavaScript runs again.
      expect(blockUntil(() => b.stats().maxClients > 0, 10_000)).toBe(true)
      await Promise.all([aClosed, bConnected])
      await waitFor(() => ended.length === 1, 5000, "A's 'disconnect'")
      expect(ended[0]!.clientId).toBe(1n)
      expect(ended[0]!.bytesIn).toBeGreaterThan(50 * 200)
      expect(ended[0]!.packetsIn).toBeGreaterThan(1)
      // With channels, its link statistics too (the pings measured its round trips).
      if ('channels' in options) expect(ended[0]!.rttMs).toBeGreaterThan(0)
      await b.close()
      await server.close()
    }
  })

  it('validates its arguments', async () => {
    expect(() => new Server({ protocolId: -1n, privateKey, address: '127.0.0.1:1' })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new Server({ protocolId: '5' as never, privateKey, address: '127.0.0.1:1' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => new Server({ protocolId, privateKey: new Uint8Array(3), address: '127.0.0.1:1' })).toThrow(
      expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringMatching(/must be 32 bytes\. Received 3 bytes/) }),
    )
    // A placeholder key: tokens sealed with it can be opened, and so made, by anyone.
    expect(() => new Server({ protocolId, privateKey: new Uint8Array(32), address: '127.0.0.1:1' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/"privateKey" option is all zeros, which is no secret: give a random key \(generateKey\(\)\)$/) }),
    )
    expect(() => new Server({ protocolId, privateKey: [1, 2] as never, address: '127.0.0.1:1' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(/Received an array of 2 items/) }),
    )
    expect(() => new Server({ protocolId, privateKey, address: 'nowhere' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => new Server({ protocolId, privateKey, address: '127.0.0.1:1', maxClients: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    const client = new Client()
    expect(() => client.send(new Uint8Array([1]))).toThrow(
      expect.objectContaining({ code: 'ERR_CLIENT_NOT_CONNECTED', message: 'The client is not connected: connect() first, and send once it has resolved' }),
    )
    const { server, address } = await startServer()
    const connected = new Client(fast)
    await connected.connect(await token(address))
    expect(() => connected.send(new Uint8Array(1201))).toThrow(expect.objectContaining({ code: 'ERR_PAYLOAD_SIZE' }))
    expect(() => connected.send(new Uint8Array(0))).toThrow(expect.objectContaining({ code: 'ERR_PAYLOAD_SIZE' })) // 1 to 1,200 bytes
    expect(connected.send(new Uint8Array(1200))).toBe(true)
    await connected.close()
    await server.close()
  })
})

describe('small sends from the JavaScript thread', () => {
  for (const channels of [undefined, [{ mode: 'reliable' as const }]]) {
    it(`a lone message leaves before the send's flush has returned, ${channels ? 'on a reliable channel' : 'as a netcode payload'}`, async () => {
      const { server, address } = await startServer({ channels })
      server.on('message', (peer, data) => peer.send(data))
      // An engine of its own, so that the client's I/O thread sleeps between these sends.
      const client = new Client({ ...fast, channels, engine: 'dedicated' })
      await client.connect(await token(address))
      const echoes: number[] = []
      client.on('message', (data) => echoes.push(data[0]!))
      let sentAtOnce = 0
      for (let i = 0; i < 40; i++) {
        // The last echo in (and, on the channel, its acknowledgement out 1 ms later): the I/O thread sleeps.
        await waitFor(() => echoes.length === i, 5000, () => `echo ${i}`)
        await new Promise((resolve) => setTimeout(resolve, 5))
        const before = client.stats().packets.out
        client.send(new Uint8Array([i]))
        await Promise.resolve() // the engine's flush, queued by send() as a microtask, has run
        if (client.stats().packets.out > before) sentAtOnce++
      }
      await waitFor(() => echoes.length === 40)
      expect(echoes).toEqual(Array.from({ length: 40 }, (_, i) => i))
      // Handed to the I/O thread, a packet is out by then only when that thread wins the race (2-5 of 20 in
      // trials); sent inline it always is. At least 60 % must be: the I/O thread may be awake for some (a
      // keep-alive, a ping, this server's work on the same engine, a busy machine).
      expect(sentAtOnce).toBeGreaterThanOrEqual(24)
      await client.close()
      await server.close()
    })
  }
})

describe('reusePort: servers that share an address', () => {
  it('shares the clients out among them, each client to one of them; a server without the option cannot listen there', async () => {
    expect(() => new Server({ protocolId, privateKey, address: '127.0.0.1:0', reusePort: 1 as unknown as boolean })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: 'The "reusePort" option must be of type boolean. Received type number (1)' }),
    )
    for (const address of ['127.0.0.1:0', '127.0.0.1:00', '[::1]:000']) {
      expect(() => new Server({ protocolId, privateKey, address, reusePort: true })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: 'The "reusePort" option needs a fixed port in "address", not port 0' }),
      )
    }
    const first = await startServer({ address: `127.0.0.1:${await freeUdpPort()}`, maxClients: 32, reusePort: true })
    // Both sides must ask for the shared port.
    await expect(new Server({ protocolId, privateKey, address: first.address }).listen()).rejects.toMatchObject({ code: 'EADDRINUSE' })
    const second = new Server({ protocolId, privateKey, address: first.address, maxClients: 32, reusePort: true, ...fast })
    await second.listen()
    const servers = [first.server, second]
    for (const server of servers) server.on('message', (peer, data) => peer.send(data))
    const clients = Array.from({ length: 24 }, () => new Client())
    try {
      await Promise.all(clients.map(async (client, i) => client.connect(await token(first.address, BigInt(i + 1)))))
      // Each client's echo comes back from the server it connected to: its datagrams all reach that one.
      const echoes = clients.map((client) => new Promise<number>((resolve) => client.once('message', (data) => resolve(data[0]!))))
      clients.forEach((client, i) => client.send(Uint8Array.of(i)))
      expect(await within(Promise.all(echoes), 10_000, 'the 24 echoes')).toEqual(clients.map((_, i) => i))
      const peers = servers.map((server) => [...server.peers.values()].map((peer) => peer.clientId))
      expect(new Set(peers.flat()).size).toBe(24)
      expect(peers[0]!.length + peers[1]!.length).toBe(24)
      // The kernel hashes each client's address and port: all 24 on one server would have odds of 2^-23.
      expect(Math.min(peers[0]!.length, peers[1]!.length)).toBeGreaterThan(0)
    } finally {
      await Promise.all(clients.map((client) => client.close()))
      await Promise.all(servers.map((server) => server.close()))
    }
  })
})
