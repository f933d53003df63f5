// What an idle connection with channels costs in packets: a Server and a Client on loopback, connected and
// silent, and the packets each side sends per second (pings, pongs, acknowledgements, keep-alives).
//   npx tsx bench/delivery/idle-rate.ts [--ping-ms=100] [--keep-alive-ms=100] [--seconds=5]
import { parseArgs } from 'node:util'
import { Client, type Peer, Server } from '../../src/index.ts'
import { benchToken, privateKey, protocolId } from './volley-setup.ts'

const { values } = parseArgs({ options: { 'ping-ms': { type: 'string' }, 'keep-alive-ms': { type: 'string' }, seconds: { type: 'string' } }, strict: true })
const pingIntervalMs = Number(values['ping-ms'] ?? 100)
const keepAliveIntervalMs = Number(values['keep-alive-ms'] ?? 100)
const seconds = Number(values.seconds ?? 5)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const channels = [{ mode: 'reliable' as const }]
const options = { channels, pingIntervalMs, keepAliveIntervalMs }
const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 1, ...options })
const { port } = await server.listen()
let peer: Peer | undefined
server.on('connect', (connected) => (peer = connected))
const client = new Client(options)
await client.connect(await benchToken(port))
while (peer === undefined) await sleep(10)
await sleep(1000) // past the handshake's own packets
const clientBefore = client.stats().packets.out
const serverBefore = peer.stats().packets.out
await sleep(seconds * 1000)
const perSecond = (packets: number) => (packets / seconds).toFixed(1)
console.log(
  `idle connection, pings every ${pingIntervalMs} ms, keep-alives after ${keepAliveIntervalMs} ms: ` +
    `client ${perSecond(client.stats().packets.out - clientBefore)} packets/s, server ${perSecond(peer.stats().packets.out - serverBefore)} packets/s (over ${seconds} s)`,
)
await client.close()
await server.close()
