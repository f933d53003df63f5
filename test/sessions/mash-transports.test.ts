// The MASH protocol suite over real connections: Volley's reliable channel on both engines, and TLS with
// 4-byte length framing (the framing MASH devices use). Session timers stay on a FakeClock.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import tls from 'node:tls'
import { describe } from 'vitest'
import { Client, Server, generateConnectToken, type Peer } from '../../src/index.ts'
import { StreamTransport } from '../../src/sessions/stream-transport.ts'
import type { SessionTransport } from '../../src/sessions/transport.ts'
import { ClientTransport, PeerTransports, type PeerTransport } from '../../src/sessions/volley-transport.ts'
import { type EngineKind, onEngine, within } from '../helpers.ts'
import { makeDevCertificates, type DevCertificates } from '../../src/sessions/keysync/dev-certificates.ts'
import { mashProtocolSuite, until, type TransportPair } from './mash-suite.ts'

const privateKey = new Uint8Array(32).fill(57)
const protocolId = 0x6d617368n // "mash"
const channels = [{ mode: 'reliable' as const }]

let nextClientId = 1n

/** A Volley server and one client on loopback, on `engine`: the pair is the client's transport and its peer's. */
async function volleyPair(engine: EngineKind): Promise<TransportPair> {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4, channels, disconnectIntervalMs: 5 })
  const { port } = await onEngine(engine, () => server.listen())
  let peerTransport: PeerTransport | undefined
  const serving = new PeerTransports(server, {}, (transport: PeerTransport, _peer: Peer) => (peerTransport = transport))
  const client = new Client({ channels, disconnectIntervalMs: 5 })
  const clientId = nextClientId++
  const token = await generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
  await within(
    onEngine(engine, () => client.connect(token)),
    5_000,
    'the Volley connection',
  )
  await until(() => peerTransport !== undefined, 'the peer transport')
  return {
    controllerSide: new ClientTransport(client),
    deviceSide: peerTransport!,
    async cleanup() {
      serving.close()
      await client.close()
      await server.close()
    },
  }
}

let certificates: Promise<DevCertificates> | undefined

/** A TLS connection on loopback whose client pins a development CA, each end framed by a StreamTransport. */
async function tlsPair(): Promise<TransportPair> {
  const { caCert, serverCert, serverKey } = await (certificates ??= makeDevCertificates('127.0.0.1'))
  const server = tls.createServer({ key: serverKey, cert: serverCert })
  const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>
  server.listen(0, '127.0.0.1')
  await within(once(server, 'listening'), 5_000, 'the TLS server')
  const { port } = server.address() as AddressInfo
  const socket = tls.connect({ host: '127.0.0.1', port, ca: [caCert] })
  socket.setNoDelay(true)
  await within(once(socket, 'secureConnect'), 5_000, 'the TLS handshake')
  const [serverSocket] = await within(accepted, 5_000, 'the accepted TLS connection')
  serverSocket.setNoDelay(true)
  const controllerSide: SessionTransport = new StreamTransport(socket)
  const deviceSide: SessionTransport = new StreamTransport(serverSocket)
  return {
    controllerSide,
    deviceSide,
    async cleanup() {
      socket.destroy()
      serverSocket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

describe.each([['native'], ['fallback']] as [EngineKind][])('MASH over Volley on the %s engine', (engine) => {
  mashProtocolSuite(() => volleyPair(engine))
})

describe('MASH over TLS (4-byte length framing)', () => {
  mashProtocolSuite(tlsPair)
})
