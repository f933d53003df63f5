// The server the attack report attacks: a volley Server on 127.0.0.1 (any free port) with two reliable
// channels and 16 MiB messages (so that a message's announced length is worth lying about), echoing every
// message on its channel. Commands on stdin (bench/lib/connections-child.ts): mark <label>, stop.
// Run as: node --import tsx bench/attacks/server.ts --key <hex> --protocol-id <n> --max-clients <n> --max-ms <lifetime>
import { parseArgs } from 'node:util'
import { Server } from '../../src/index.ts'
import { type MarkCounters, emitMark, numberArg, serveCommands } from '../lib/connections-child.ts'
import { HOST } from '../lib/constants.ts'
import { emit, failStart } from '../lib/protocol.ts'

const { values } = parseArgs({
  options: { key: { type: 'string' }, 'protocol-id': { type: 'string' }, 'max-clients': { type: 'string' }, 'max-ms': { type: 'string' } },
  strict: true,
})

const counters: MarkCounters = { packets: 0, bytes: 0 }
const disconnects: Record<string, number> = {}

try {
  const server = new Server({
    protocolId: BigInt(values['protocol-id'] ?? '0x1234'),
    privateKey: Uint8Array.from(Buffer.from(values.key ?? '', 'hex')),
    address: `${HOST}:0`,
    maxClients: numberArg('--max-clients', values['max-clients'], 1, 1 << 20),
    channels: [{ mode: 'reliable' }, { mode: 'reliable' }],
    maxMessageBytes: 16 << 20,
    engine: 'dedicated',
  })
  server.on('message', (peer, data, channel) => {
    counters.packets++
    counters.bytes += data.byteLength
    peer.send(data.slice(), { channel }) // false when the peer's queue is full: dropped, as a busy echo would
  })
  server.on('disconnect', (_peer, reason) => {
    disconnects[reason] = (disconnects[reason] ?? 0) + 1
  })
  server.on('error', () => {})
  const { port } = await server.listen()
  const snapshot = (): Record<string, unknown> => ({ stats: server.stats(), peers: server.peers.size, disconnects: { ...disconnects } })
  serveCommands(
    {
      mark: ([label = 'mark']) => emitMark(label, counters, snapshot()),
      stop: async () => {
        await Promise.race([server.close(), new Promise((resolve) => setTimeout(resolve, 5000).unref())])
        process.exit(0)
      },
    },
    numberArg('--max-ms', values['max-ms'], 1_000, 3_600_000),
  )
  emit({ type: 'ready', port, recvBufferSize: 0 })
} catch (error) {
  failStart(error)
}
