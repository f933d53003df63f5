// The key sync end to end on loopback, with the development KME (ETSI 014 over mutual TLS): over a Volley
// connection, rotating a gateway's private key while clients connect across the instant (none refused); and
// over the signed datagrams, under hostile traffic that is dropped, counted and never answered.
import { createSocket, type Socket } from 'node:dgram'
import { generateKeyPairSync } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, Server, generateConnectToken } from '../../src/index.ts'
import { DatagramLink } from '../../src/sessions/keysync/datagram-link.ts'
import { DevKme } from '../../src/sessions/keysync/dev-kme.ts'
import { generateSaeKeyPair, publicKeyPemOf, signEnvelope } from '../../src/sessions/keysync/envelope.ts'
import { KmeClient } from '../../src/sessions/keysync/kme-client.ts'
import { TransportLink } from '../../src/sessions/keysync/link.ts'
import { KeySyncMaster } from '../../src/sessions/keysync/master.ts'
import { encodeKeySyncMessage } from '../../src/sessions/keysync/messages.ts'
import { KeySyncSlave } from '../../src/sessions/keysync/slave.ts'
import { IssuerKey, netcodeKeyFrom, rotateServerKeys } from '../../src/sessions/keysync/volley-keys.ts'
import { ClientTransport, serveSessions } from '../../src/sessions/volley-transport.ts'
import { type EngineKind, onEngine, waitFor, within } from '../helpers.ts'

const BACKEND = 'backend'
const GATEWAY = 'gateway'
let kme: DevKme
const clients: KmeClient[] = []

beforeAll(async () => {
  kme = await DevKme.start({ saeIds: [BACKEND, GATEWAY] })
})
afterAll(async () => {
  for (const client of clients) client.close()
  await kme.close()
})

function kmeFor(saeId: string): KmeClient {
  const client = new KmeClient(kme.credentialsFor(saeId))
  clients.push(client)
  return client
}

describe.each([['native'], ['fallback']] as Array<[EngineKind]>)('over a Volley connection, the gateway on the %s engine', (engine) => {
  it('rotates the gateway key with a full cleanup; clients connecting across the instant are all accepted', async () => {
    const protocolId = 0x5e0000n
    const syncKey = new Uint8Array(32).fill(7)
    // The key sync's own connection: a server of its own on the gateway, under a key that does not rotate.
    const syncServer = new Server({ protocolId: 0x5e0001n, privateKey: syncKey, address: '127.0.0.1:0', maxClients: 2, channels: [{ mode: 'reliable' }] })
    const { port: syncPort } = await syncServer.listen()
    let slave: KeySyncSlave | undefined
    const gatewayKme = kmeFor(GATEWAY)
    const stopServing = serveSessions(syncServer, {}, (transport) => {
      slave = new KeySyncSlave({ saeId: GATEWAY, peerSaeId: BACKEND, link: new TransportLink(transport), kme: gatewayKme, prepareMs: 200, responseTimeoutMs: 2000 })
    })
    const syncClient = new Client({ channels: [{ mode: 'reliable' }] })
    await syncClient.connect(await generateConnectToken({ protocolId: 0x5e0001n, privateKey: syncKey, clientId: 1n, serverAddresses: [`127.0.0.1:${syncPort}`], expireSeconds: 60, timeoutSeconds: 5 }))
    const master = new KeySyncMaster({ saeId: BACKEND, peerSaeId: GATEWAY, link: new TransportLink(new ClientTransport(syncClient)), kme: kmeFor(BACKEND), responseTimeoutMs: 2000 })
    await waitFor(() => slave !== undefined, 5000, 'the slave')

    const first = await within(master.rotate({ rotationDelayMs: 1000 }), 10_000, 'the first rotation')
    const gatewayKey = netcodeKeyFrom((await slave!.currentKey())!.key)
    const gateway = await onEngine(engine, async () => {
      const server = new Server({ protocolId, privateKey: gatewayKey, address: '127.0.0.1:0', maxClients: 256 })
      await server.listen()
      return server
    })
    const gatewayPort = gateway.address()!.port
    rotateServerKeys(gateway, slave!, { graceMs: 5000 })
    const issuer = new IssuerKey(master, first.key)
    let refused = 0
    let connected = 0
    const mint = (key: Uint8Array, clientId: bigint) =>
      generateConnectToken({ protocolId, privateKey: key, clientId, serverAddresses: [`127.0.0.1:${gatewayPort}`], expireSeconds: 10, timeoutSeconds: 3 })
    const connectWith = async (token: Uint8Array) => {
      const client = await onEngine(engine, async () => new Client())
      try {
        await client.connect(token)
        connected++
      } catch {
        refused++
      } finally {
        await client.close()
      }
    }
    // A token minted under the first key just before the instant, used after it: accepted within the grace.
    const lateToken = await mint(first.key, 999n)
    const rotation = master.rotate({ rotationDelayMs: 1500 })
    const attempts: Promise<void>[] = []
    let clientId = 1n
    const rotatedAt = new Promise<number>((resolve) => master.once('rotated', () => resolve(Date.now())))
    const until = Date.now() + 2500
    while (Date.now() < until) {
      attempts.push(connectWith(await mint(issuer.current!, clientId++)))
      await new Promise((resolve) => setTimeout(resolve, 40))
    }
    const second = await within(rotation, 10_000, 'the second rotation')
    await within(rotatedAt, 1000, 'the master switch')
    attempts.push(connectWith(lateToken))
    await Promise.all(attempts)
    expect(refused).toBe(0)
    expect(connected).toBe(attempts.length)
    expect(second.rolledKeyIds).toEqual([first.keyId])
    expect(second.cleanup).toMatchObject({ status: 'completed', deletedKeyIds: [first.keyId], failedKeyIds: [] })
    const [atMaster, atSlave] = [await master.currentKey(), await slave!.currentKey()]
    expect(atMaster?.keyId).toBe(second.keyId)
    expect(atSlave?.keyId).toBe(second.keyId)
    expect(Buffer.from(atMaster!.key).equals(Buffer.from(atSlave!.key))).toBe(true)
    expect(gateway.privateKeyCount).toBe(2) // the new key, and the old one in its grace

    issuer.close()
    master.close()
    slave!.close()
    stopServing()
    await syncClient.close()
    await Promise.all([syncServer.close(), gateway.close()])
  }, 30_000)
})

/** A UDP socket that forwards what it gets to `to` and keeps a copy (the wire, as an attacker records it). */
async function tap(to: () => number): Promise<{ socket: Socket; seen: Buffer[] }> {
  const socket = createSocket('udp4')
  const seen: Buffer[] = []
  socket.on('message', (datagram) => {
    seen.push(datagram)
    socket.send(datagram, to(), '127.0.0.1')
  })
  socket.bind(0, '127.0.0.1')
  await new Promise((resolve) => socket.once('listening', resolve))
  return { socket, seen }
}

describe('over signed datagrams', () => {
  it('rotates through a recorded wire; forged, tampered, replayed, oversized and malformed datagrams are dropped, counted and never answered', async () => {
    const backendIdentity = generateSaeKeyPair()
    const gatewayIdentity = generateSaeKeyPair()
    const backendLink = await DatagramLink.open({ signer: { saeId: BACKEND, ...backendIdentity }, peer: { saeId: GATEWAY, publicKey: gatewayIdentity.publicKeyPem, address: '127.0.0.1', port: 1 }, address: '127.0.0.1', port: 0 })
    const gatewayLink = await DatagramLink.open({ signer: { saeId: GATEWAY, ...gatewayIdentity }, peer: { saeId: BACKEND, publicKey: backendIdentity.publicKeyPem, address: '127.0.0.1', port: backendLink.address().port }, address: '127.0.0.1', port: 0 })
    // The backend's datagrams pass through a recorder on their way to the gateway.
    const wire = await tap(() => gatewayLink.address().port)
    backendLink.setPeerAddress('127.0.0.1', wire.socket.address().port)
    // A role may not accept older messages than its link remembers the ids of.
    expect(() => new KeySyncSlave({ saeId: GATEWAY, peerSaeId: BACKEND, link: gatewayLink, kme: kmeFor(GATEWAY), timestampWindowMs: 7_200_000 })).toThrow(
      expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringMatching(/must not exceed its link's \(3600000\)/) }),
    )
    const master = new KeySyncMaster({ saeId: BACKEND, peerSaeId: GATEWAY, link: backendLink, kme: kmeFor(BACKEND), responseTimeoutMs: 2000 })
    const slave = new KeySyncSlave({ saeId: GATEWAY, peerSaeId: BACKEND, link: gatewayLink, kme: kmeFor(GATEWAY), prepareMs: 200, responseTimeoutMs: 2000 })
    const slaveCleanup = new Promise((resolve) => slave.once('cleanup', resolve))
    const first = await within(master.rotate({ rotationDelayMs: 1000 }), 10_000, 'a rotation')
    expect(first.cleanup?.status).toBe('completed')
    await within(slaveCleanup, 5000, "the slave's end of the cleanup")
    expect(wire.seen.length).toBeGreaterThanOrEqual(4)

    const attacker = createSocket('udp4')
    const answers: Buffer[] = []
    attacker.on('message', (datagram) => answers.push(datagram))
    attacker.bind(0, '127.0.0.1')
    await new Promise((resolve) => attacker.once('listening', resolve))
    const sentBefore = gatewayLink.stats().sent
    const toGateway = (datagram: Uint8Array) => attacker.send(datagram, gatewayLink.address().port, '127.0.0.1')
    // Replays of every recorded datagram.
    for (const datagram of wire.seen) toGateway(datagram)
    // A tampered copy: one byte of the payload changed.
    const tampered = JSON.parse(wire.seen[0]!.toString()) as Record<string, string>
    const payload = Buffer.from(tampered['payload']!, 'base64')
    payload[payload.length - 3]! ^= 1
    toGateway(Buffer.from(JSON.stringify({ ...tampered, payload: payload.toString('base64') })))
    // A self-consistent forgery: signed by a key of the attacker's own, carrying that key, naming the backend.
    const forger = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const notification = encodeKeySyncMessage({
      message_type: 'key_notification',
      message_id: '0b6d4f0e-4f5e-4b8f-9d59-0d3c4a2b1a10',
      timestamp: Math.floor(Date.now() / 1000),
      master_sae_id: BACKEND,
      slave_sae_id: GATEWAY,
      key_ids: ['forged'],
      rotation_timestamp: Math.floor(Date.now() / 1000) + 60,
    })
    toGateway(signEnvelope(notification, { saeId: BACKEND, privateKey: forger.privateKey, publicKeyPem: publicKeyPemOf(forger.publicKey) }, 'NOTIFY'))
    toGateway(Buffer.alloc(9000, 0x7b))
    toGateway(Buffer.from('{"payload": '))
    await waitFor(() => {
      const { drops } = gatewayLink.stats()
      return drops.replayed + drops.signature + drops.oversized + drops.malformed >= wire.seen.length + 4
    }, 5000, () => `the drops: ${JSON.stringify(gatewayLink.stats())} of ${wire.seen.length} recorded, ${JSON.stringify(slave.stats())}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const { drops } = gatewayLink.stats()
    expect(drops).toEqual({ oversized: 1, malformed: 1, unpinned: 0, signature: 2, replayed: wire.seen.length })
    expect(gatewayLink.stats().unsendable).toBe(0)
    expect(answers).toEqual([])
    expect(gatewayLink.stats().sent).toBe(sentBefore)
    expect(slave.stats().refused).toBe(0)
    expect((await slave.currentKey())?.keyId).toBe(first.keyId)

    attacker.close()
    wire.socket.close()
    master.close()
    slave.close()
    backendLink.close()
    gatewayLink.close()
  }, 30_000)
})
