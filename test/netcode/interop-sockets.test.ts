// Wire compatibility through real sockets: the engine's netcode against a second implementation — the
// TypeScript codec of src/protocol/netcode (written from STANDARD.md, checked against the golden vectors) driven
// over node:dgram by hand, packet by packet, as another netcode 1.02 client or server would be.
import dgram from 'node:dgram'
import { afterEach, describe, expect, it } from 'vitest'
import { Client, ClientPool, Server, type Peer } from '../../src/index.ts'
import { openChallengeToken, sealChallengeToken } from './codecs/challenge-token.ts'
import { generateConnectToken, generateKey, readConnectToken } from '../../src/protocol/netcode/connect-token.ts'
import { PacketType, sizes } from '../../src/protocol/netcode/constants.ts'
import { type Packet, type ReadResult, encryptPacket, readConnectionRequest, readEncryptedPacket, writeConnectionRequest } from './codecs/packets.ts'
import { ReplayProtection } from './codecs/replay-protection.ts'
import { loadSodium } from '../../src/protocol/netcode/sodium.ts'
import { Reader, Writer } from '../../src/protocol/netcode/wire.ts'
import { type EngineKind, onEngine, waitFor } from '../helpers.ts'

const protocolId = 0x7e57_1234n
const engines: EngineKind[] = ['native', 'fallback']
const opened: { close(): unknown }[] = []
afterEach(async () => {
  for (const thing of opened.splice(0)) await thing.close()
})

/** A UDP socket on 127.0.0.1 and what arrives on it, read in order by next(). */
async function udpPeer() {
  const socket = dgram.createSocket('udp4')
  const queue: { data: Uint8Array; port: number }[] = []
  let wake: (() => void) | null = null
  socket.on('message', (data, rinfo) => {
    queue.push({ data: new Uint8Array(data), port: rinfo.port })
    wake?.()
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  opened.push({ close: () => new Promise<void>((resolve) => socket.close(() => resolve())) })
  return {
    port: socket.address().port,
    send(data: Uint8Array, port: number): void {
      socket.send(data, port, '127.0.0.1')
    },
    /** How many of the datagrams not yet read `read` accepts (they stay queued). */
    count<T>(read: (data: Uint8Array) => ReadResult<T>): number {
      return queue.filter((datagram) => read(datagram.data).ok).length
    },
    /** The next datagram `read` accepts (others are skipped: keep-alives, say); throws after timeoutMs. */
    async next<T>(read: (data: Uint8Array) => ReadResult<T>, timeoutMs = 3000): Promise<{ value: T; port: number }> {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const datagram = queue.shift()
        if (datagram !== undefined) {
          const result = read(datagram.data)
          if (result.ok) return { value: result.value, port: datagram.port }
          continue
        }
        if (Date.now() > deadline) throw new Error('no such datagram arrived in time')
        await new Promise<void>((resolve) => {
          wake = resolve
          setTimeout(resolve, 20)
        })
      }
    },
  }
}

const ofType = (type: number) => (result: ReadResult<Packet>): ReadResult<Packet> =>
  result.ok && result.value.type !== type ? { ok: false, reason: 'unexpected-type' } : result

describe('netcode 1.02 through real sockets, engine against the TypeScript codec', () => {
  // The native engine is the one under test; the fallback engine's run checks its wiring of the same (its counters).
  it.each(engines)('a hand-driven client connects to the engine\'s server, exchanges payloads, is replay-protected, disconnects, and connects again with the same token as netcode.c\'s does (%s engine)', async (engine) => {
    const sodium = await loadSodium()
    const privateKey = await generateKey()
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4 })
    opened.push(server)
    const { port } = await onEngine(engine, () => server.listen())
    const peers: Peer[] = []
    const messages: Uint8Array[] = []
    const disconnects: string[] = []
    server.on('connect', (peer) => peers.push(peer))
    server.on('message', (_peer, data) => messages.push(Uint8Array.from(data)))
    server.on('disconnect', (_peer, reason) => disconnects.push(reason))
    const userData = Uint8Array.from({ length: sizes.userData }, (_, i) => (i * 7) & 0xff)
    const token = readConnectToken(
      await generateConnectToken({ protocolId, privateKey, clientId: 77n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5, userData }),
    )
    const client = await udpPeer()
    const fromServer = (data: Uint8Array, accept: number[], replay?: ReplayProtection) =>
      readEncryptedPacket(sodium, data, { protocolId, key: token.serverToClientKey, accept: new Set(accept), replay })

    client.send(writeConnectionRequest(token), port)
    const { value: challenge } = await client.next((data) => fromServer(data, [PacketType.connectionChallenge]))
    // Sent before a slot exists: the server's global sequence, from 2^63 (IMPLEMENTERS.md).
    expect(challenge.sequence >= 1n << 63n).toBe(true)
    expect(challenge.body.byteLength).toBe(sizes.challengeBody)

    let sequence = 0n
    const toServer = (type: PacketType, body: Uint8Array) => encryptPacket(sodium, { type, sequence: sequence++, body }, protocolId, token.clientToServerKey)
    client.send(toServer(PacketType.connectionResponse, challenge.body), port)
    const replay = new ReplayProtection()
    const { value: keepAlive } = await client.next((data) => ofType(PacketType.keepAlive)(fromServer(data, [PacketType.keepAlive, PacketType.payload], replay)))
    const reader = new Reader(keepAlive.body)
    const clientIndex = reader.u32()
    expect(reader.u32()).toBe(4) // max clients
    await waitFor(() => peers.length === 1, 2000, 'the connect event')
    const peer = peers[0]!
    expect(peer.clientId).toBe(77n)
    expect(peer.index).toBe(clientIndex)
    expect(peer.port).toBe(client.port)
    expect(Buffer.from(peer.userData).equals(Buffer.from(userData))).toBe(true)

    // Payloads both ways.
    const sent = Array.from({ length: 10 }, (_, i) => Uint8Array.from({ length: 1 + i * 100 }, (_, j) => (i + j) & 0xff))
    const packets = sent.map((body) => toServer(PacketType.payload, body))
    for (const packet of packets) client.send(packet, port)
    await waitFor(() => messages.length === 10, 2000, 'ten payloads')
    expect(messages.map((m) => Buffer.from(m).toString('hex'))).toEqual(sent.map((m) => Buffer.from(m).toString('hex')))
    const reply = Uint8Array.from({ length: 1200 }, (_, i) => (i * 3) & 0xff)
    expect(peer.send(reply)).toBe(true)
    const { value: payload } = await client.next((data) => ofType(PacketType.payload)(fromServer(data, [PacketType.keepAlive, PacketType.payload], replay)))
    expect(Buffer.from(payload.body).equals(Buffer.from(reply))).toBe(true)

    // A replayed payload is dropped and counted, not delivered again.
    client.send(packets[3]!, port)
    await waitFor(() => server.stats().drops.replayed === 1, 2000, 'the replay counted')
    expect(messages).toHaveLength(10)
    // One held back past the window (256 packets behind the newest taken) is too old: counted apart.
    sequence += 300n
    const keepAliveBody = new Uint8Array(sizes.keepAliveBody)
    new Writer(keepAliveBody).u32(clientIndex).u32(4)
    client.send(toServer(PacketType.keepAlive, keepAliveBody), port)
    client.send(packets[4]!, port)
    await waitFor(() => server.stats().drops.tooOld === 1, 2000, 'the packet too old counted')
    expect(server.stats().drops.replayed).toBe(1)
    expect(messages).toHaveLength(10)
    // A forged packet and a malformed one from the peer's address: the peer's drops say which peer, by cause.
    const forged = toServer(PacketType.payload, Uint8Array.of(1, 2, 3))
    forged[forged.length - 1]! ^= 1
    client.send(forged, port)
    client.send(Uint8Array.of(0x15, 1, 2), port)
    await waitFor(() => server.stats().drops.malformed === 1, 2000, 'the malformed packet counted')
    const peerDrops = { malformed: 1, replayed: 1, tooOld: 1, decryptionFailed: 1 }
    expect(peer.stats().drops).toEqual(peerDrops)
    expect(server.stats().drops).toMatchObject(peerDrops)

    // Redundant disconnect packets: the first ends the connection, the rest are expected and not counted.
    for (let i = 0; i < 3; i++) client.send(toServer(PacketType.disconnect, new Uint8Array(0)), port)
    await waitFor(() => disconnects.length === 1, 2000, 'the disconnect event')
    expect(disconnects).toEqual(['disconnected'])
    expect(server.stats().drops.unknownAddress).toBe(0)
    expect(peer.stats().drops).toEqual(peerDrops) // the last readings, from the disconnect record

    // Again with the same token from the same socket, its sequence from 0 again, as netcode.c's client does:
    // connected, and served (not connected and then refused as replays).
    sequence = 0n
    client.send(writeConnectionRequest(token), port)
    const { value: again } = await client.next((data) => fromServer(data, [PacketType.connectionChallenge]))
    client.send(toServer(PacketType.connectionResponse, again.body), port)
    await waitFor(() => peers.length === 2, 2000, 'the second connect event')
    const replayedBefore = server.stats().drops.replayed
    const more = Array.from({ length: 3 }, (_, i) => Uint8Array.of(0xa0 + i))
    for (const body of more) client.send(toServer(PacketType.payload, body), port)
    await waitFor(() => messages.length === 13, 2000, 'three payloads of the second connection')
    expect(messages.slice(10).map((m) => m[0])).toEqual([0xa0, 0xa1, 0xa2])
    // The slot's next client starts with no drops of its own; the first peer keeps its last readings.
    expect(peers[1]!.index).toBe(peer.index)
    expect(peers[1]!.stats().drops).toEqual({ malformed: 0, replayed: 0, tooOld: 0, decryptionFailed: 0 })
    expect(peer.stats().drops).toEqual(peerDrops)
    expect(server.stats().drops.replayed).toBe(replayedBefore)
  })

  it.each(engines)('the engine\'s client connects to a hand-driven server, exchanges payloads, is disconnected, and connects again with the same token to a server that starts at 0 again (%s engine)', async (engine) => {
    const sodium = await loadSodium()
    const privateKey = await generateKey()
    const challengeKey = await generateKey()
    const server = await udpPeer()
    const userData = Uint8Array.from({ length: sizes.userData }, (_, i) => 255 - i)
    const tokenBytes = await generateConnectToken({
      protocolId, privateKey, clientId: 1234n, serverAddresses: [`127.0.0.1:${server.port}`], expireSeconds: 30, timeoutSeconds: 5, userData,
    })
    const client = new Client()
    opened.push(client)
    const received: Uint8Array[] = []
    client.on('message', (data) => received.push(Uint8Array.from(data)))
    const connected = onEngine(engine, () => client.connect(tokenBytes))

    const { value: request, port } = await server.next((data) =>
      readConnectionRequest(sodium, data, { protocolId, privateKey, nowSeconds: BigInt(Math.floor(Date.now() / 1000)) }),
    )
    expect(request.token.clientId).toBe(1234n)
    const { clientToServerKey, serverToClientKey } = request.token
    let globalSequence = 1n << 63n
    const challengeBody = new Uint8Array(sizes.challengeBody)
    new Writer(challengeBody).u64(0n).raw(sealChallengeToken(sodium, { clientId: 1234n, userData: request.token.userData }, 0n, challengeKey))
    server.send(encryptPacket(sodium, { type: PacketType.connectionChallenge, sequence: globalSequence++, body: challengeBody }, protocolId, serverToClientKey), port)

    const replay = new ReplayProtection()
    const fromClient = (data: Uint8Array, accept: number[]) =>
      readEncryptedPacket(sodium, data, { protocolId, key: clientToServerKey, accept: new Set(accept), replay })
    const { value: response } = await server.next((data) => fromClient(data, [PacketType.connectionResponse]))
    const reader = new Reader(response.body)
    const challengeSequence = reader.u64()
    const challengeToken = openChallengeToken(sodium, reader.raw(sizes.challengeToken), challengeSequence, challengeKey)
    expect(challengeToken?.clientId).toBe(1234n)

    let sequence = 0n
    const toClient = (type: PacketType, body: Uint8Array) => encryptPacket(sodium, { type, sequence: sequence++, body }, protocolId, serverToClientKey)
    const keepAliveBody = new Uint8Array(sizes.keepAliveBody)
    new Writer(keepAliveBody).u32(0).u32(1)
    server.send(toClient(PacketType.keepAlive, keepAliveBody), port)
    await connected
    expect(client.state).toBe('connected')
    expect(client.stats().maxClients).toBe(1)

    const up = Uint8Array.from({ length: 500 }, (_, i) => i & 0xff)
    client.send(up)
    const { value: payload } = await server.next((data) => ofType(PacketType.payload)(fromClient(data, [PacketType.keepAlive, PacketType.payload])))
    expect(Buffer.from(payload.body).equals(Buffer.from(up))).toBe(true)
    const down = Uint8Array.from({ length: 64 }, (_, i) => 200 - i)
    server.send(toClient(PacketType.payload, down), port)
    await waitFor(() => received.length === 1, 2000, 'the payload')
    expect(Buffer.from(received[0]!).equals(Buffer.from(down))).toBe(true)
    // The same payload again is a replay; one 256 packets behind the newest is too old: each counted.
    const downPacket = encryptPacket(sodium, { type: PacketType.payload, sequence: sequence - 1n, body: down }, protocolId, serverToClientKey)
    server.send(downPacket, port)
    await waitFor(() => client.stats().drops.replayed === 1, 2000, 'the replay counted')
    sequence += 300n
    server.send(toClient(PacketType.keepAlive, keepAliveBody), port)
    server.send(downPacket, port)
    await waitFor(() => client.stats().drops.tooOld === 1, 2000, 'the packet too old counted')
    expect(client.stats().drops.replayed).toBe(1)
    expect(received).toHaveLength(1)

    const ended = new Promise<string>((resolve) => client.once('disconnect', resolve))
    server.send(toClient(PacketType.disconnect, new Uint8Array(0)), port)
    expect(await ended).toBe('disconnected')

    // Again with the same token, to a server that starts its sequence at 0 again, as netcode.c's does (or
    // this one, restarted): the client connects and takes its payloads.
    const reconnected = onEngine(engine, () => client.connect(tokenBytes))
    await server.next((data) => readConnectionRequest(sodium, data, { protocolId, privateKey, nowSeconds: BigInt(Math.floor(Date.now() / 1000)) }))
    server.send(encryptPacket(sodium, { type: PacketType.connectionChallenge, sequence: globalSequence++, body: challengeBody }, protocolId, serverToClientKey), port)
    await server.next((data) => fromClient(data, [PacketType.connectionResponse]))
    sequence = 0n
    server.send(toClient(PacketType.keepAlive, keepAliveBody), port)
    await reconnected
    expect(client.state).toBe('connected')
    server.send(toClient(PacketType.payload, Uint8Array.of(7)), port)
    await waitFor(() => received.length === 2, 2000, 'the payload of the second connection')
    expect(received[1]).toEqual(Uint8Array.of(7))
  })

  // A packet's nonce is its sequence under the token's key. Two servers that serve one token (its next
  // address after a failover, another reusePort shard, a restart) each started at 0 (and 2^63 for
  // challenges): one key and nonce for two different packets, whose XOR gives away their plaintexts' XOR.
  it.each(engines)('two servers serving one token, and two clients using it, start their sequences apart (%s engine)', async (engine) => {
    const sodium = await loadSodium()
    const privateKey = await generateKey()
    const servers = [0, 1].map(() => new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4 }))
    opened.push(...servers)
    const ports = await Promise.all(servers.map((server) => onEngine(engine, () => server.listen()).then((info) => info.port)))
    const token = readConnectToken(
      await generateConnectToken({ protocolId, privateKey, clientId: 5n, serverAddresses: ports.map((port) => `127.0.0.1:${port}`), expireSeconds: 30, timeoutSeconds: 5 }),
    )
    const challenges: bigint[] = []
    const keepAlives: bigint[] = []
    for (const port of ports) {
      const client = await udpPeer()
      const fromServer = (data: Uint8Array, accept: number[]) => readEncryptedPacket(sodium, data, { protocolId, key: token.serverToClientKey, accept: new Set(accept) })
      client.send(writeConnectionRequest(token), port)
      const { value: challenge } = await client.next((data) => fromServer(data, [PacketType.connectionChallenge]))
      client.send(encryptPacket(sodium, { type: PacketType.connectionResponse, sequence: 0n, body: challenge.body }, protocolId, token.clientToServerKey), port)
      const { value: keepAlive } = await client.next((data) => ofType(PacketType.keepAlive)(fromServer(data, [PacketType.keepAlive, PacketType.payload])))
      challenges.push(challenge.sequence)
      keepAlives.push(keepAlive.sequence)
    }
    expect(challenges.every((sequence) => sequence >= 1n << 63n)).toBe(true)
    expect(challenges[0]).not.toBe(challenges[1])
    expect(keepAlives.every((sequence) => sequence < 1n << 48n)).toBe(true) // six bytes on the wire at most
    expect(keepAlives[0]).not.toBe(keepAlives[1])

    // Two clients with one token, to a hand-driven server: their connection responses (the first packets
    // under the client-to-server key) carry different sequences.
    const responses: bigint[] = []
    for (let i = 0; i < 2; i++) {
      const server = await udpPeer()
      const tokenBytes = await generateConnectToken({ protocolId, privateKey, clientId: 6n, serverAddresses: [`127.0.0.1:${server.port}`], expireSeconds: 30, timeoutSeconds: 1 })
      const client = new Client()
      opened.push(client)
      const attempt = onEngine(engine, () => client.connect(tokenBytes)).catch(() => {})
      const { value: request, port } = await server.next((data) => readConnectionRequest(sodium, data, { protocolId, privateKey, nowSeconds: BigInt(Math.floor(Date.now() / 1000)) }))
      const challengeBody = new Uint8Array(sizes.challengeBody)
      new Writer(challengeBody).u64(0n).raw(sealChallengeToken(sodium, { clientId: 6n, userData: request.token.userData }, 0n, await generateKey()))
      server.send(encryptPacket(sodium, { type: PacketType.connectionChallenge, sequence: 1n << 63n, body: challengeBody }, protocolId, request.token.serverToClientKey), port)
      const { value: response } = await server.next((data) =>
        readEncryptedPacket(sodium, data, { protocolId, key: request.token.clientToServerKey, accept: new Set([PacketType.connectionResponse]) }),
      )
      responses.push(response.sequence)
      await client.close()
      await attempt
    }
    expect(responses.every((sequence) => sequence < 1n << 48n)).toBe(true)
    expect(responses[0]).not.toBe(responses[1])
  })

  it.each(engines)("a server's challenges count from the wall clock at its start, so that a restarted server's come after its earlier ones (%s engine)", async (engine) => {
    // They counted from 0 at each start: a challenge captured before a restart and replayed to a client
    // ahead of the new server's won over every one of them (a client takes only a later challenge in place
    // of its own), and the client's responses were refused until its token timed out.
    const sodium = await loadSodium()
    const privateKey = await generateKey()
    const firstChallenges: bigint[] = []
    for (let start = 0; start < 2; start++) {
      const before = BigInt(Math.floor((performance.timeOrigin + performance.now()) * 1000))
      const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4 })
      opened.push(server)
      const { port } = await onEngine(engine, () => server.listen())
      const token = readConnectToken(await generateConnectToken({ protocolId, privateKey, clientId: 9n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 }))
      const client = await udpPeer()
      client.send(writeConnectionRequest(token), port)
      const { value: challenge } = await client.next((data) => readEncryptedPacket(sodium, data, { protocolId, key: token.serverToClientKey, accept: new Set([PacketType.connectionChallenge]) }))
      const sequence = new Reader(challenge.body).u64()
      expect(sequence).toBeGreaterThanOrEqual(before)
      firstChallenges.push(sequence)
      await server.close()
    }
    expect(firstChallenges[1]).toBeGreaterThan(firstChallenges[0]!)
  })

  it("ClientPool.connect() aborted mid-handshake resolves at once: the redundant disconnects a client owes go out after, and close() waits for them", async () => {
    const sodium = await loadSodium()
    const privateKey = await generateKey()
    const server = await udpPeer()
    const tokenBytes = await generateConnectToken({ protocolId, privateKey, clientId: 77n, serverAddresses: [`127.0.0.1:${server.port}`], expireSeconds: 30, timeoutSeconds: 5 })
    const pool = new ClientPool()
    opened.push(pool)
    const abort = new AbortController()
    const connecting = pool.connect([tokenBytes], { signal: abort.signal })
    const nowSeconds = (): bigint => BigInt(Math.floor(Date.now() / 1000))
    const { value: request, port } = await server.next((data) => readConnectionRequest(sodium, data, { protocolId, privateKey, nowSeconds: nowSeconds() }))
    const { clientToServerKey, serverToClientKey } = request.token
    const challengeBody = new Uint8Array(sizes.challengeBody)
    new Writer(challengeBody).u64(0n).raw(sealChallengeToken(sodium, { clientId: 77n, userData: request.token.userData }, 0n, await generateKey()))
    server.send(encryptPacket(sodium, { type: PacketType.connectionChallenge, sequence: 1n << 63n, body: challengeBody }, protocolId, serverToClientKey), port)
    const fromClient = (type: PacketType) => (data: Uint8Array) =>
      ofType(type)(readEncryptedPacket(sodium, data, { protocolId, key: clientToServerKey, accept: new Set([type]), replay: new ReplayProtection() }))
    await server.next(fromClient(PacketType.connectionResponse))
    // Sending its response, the client may hold a slot on the server already: it owes 10 disconnects, 10 Hz.
    abort.abort()
    expect(await connecting).toMatchObject({ connected: 0, failed: 1, skipped: 0 })
    expect(server.count(fromClient(PacketType.disconnect))).toBeLessThan(10) // connect() did not wait for them
    expect(pool.stats().failed).toEqual({ ABORT_ERR: 1 })
    await pool.close()
    await waitFor(() => server.count(fromClient(PacketType.disconnect)) === 10, 2000, 'the ten disconnects')
  })
})
