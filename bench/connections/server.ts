// The server of the connections benchmark: a volley Server on 127.0.0.1 (any free port) whose
// 'message' handler counts payloads and their bytes, as an application that reads them would. It does
// not answer them. Commands on stdin (bench/lib/connections-child.ts):
//   mark <label> [gc]   a snapshot: CPU time, memory (after a full GC with "gc"), server.stats(), events
//   stop                closes the server (clients are sent disconnects), a last mark, exit
// Run as: node --expose-gc --import tsx bench/connections/server.ts --key <hex> --protocol-id <n>
//         --max-clients <n> --keep-alive-ms <ms> --max-ms <lifetime>
import { parseArgs } from 'node:util'
import { Server } from '../../src/index.ts'
import { type MarkCounters, emitMark, memoryNow, numberArg, serveCommands } from '../lib/connections-child.ts'
import { HOST } from '../lib/constants.ts'
import { emit, failStart } from '../lib/protocol.ts'

const { values } = parseArgs({
  options: {
    key: { type: 'string' },
    'protocol-id': { type: 'string' },
    'max-clients': { type: 'string' },
    'keep-alive-ms': { type: 'string' },
    'max-ms': { type: 'string' },
  },
  strict: true,
})

const counters: MarkCounters = { packets: 0, bytes: 0 }
const events = { connects: 0, disconnects: {} as Record<string, number>, errors: 0, lastError: '' }

// The process before it has a server (its engine, its slots for maxClients): the baseline of the memory
// per peer, which so counts everything the server holds for its peers.
const beforeServer = memoryNow(true)

try {
  const server = new Server({
    protocolId: BigInt(values['protocol-id'] ?? '0x1234'),
    privateKey: Uint8Array.from(Buffer.from(values.key ?? '', 'hex')),
    address: `${HOST}:0`,
    maxClients: numberArg('--max-clients', values['max-clients'], 1, 1 << 20),
    keepAliveIntervalMs: numberArg('--keep-alive-ms', values['keep-alive-ms'], 1, 60_000),
    engine: 'dedicated',
  })
  server.on('message', (_peer, data) => {
    counters.packets++
    counters.bytes += data.byteLength
  })
  server.on('connect', () => {
    events.connects++
  })
  server.on('disconnect', (_peer, reason) => {
    events.disconnects[reason] = (events.disconnects[reason] ?? 0) + 1
  })
  server.on('error', (error) => {
    events.errors++
    events.lastError = error.message
  })
  const { port } = await server.listen()
  const snapshot = (): Record<string, unknown> => ({ stats: server.stats(), peers: server.peers.size, events: { ...events, disconnects: { ...events.disconnects } }, beforeServer })
  serveCommands(
    {
      mark: ([label = 'mark', collect]) => emitMark(label, counters, snapshot(), collect === 'gc'),
      stop: async () => {
        const deadline = new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref())
        await Promise.race([server.close(), deadline])
        emitMark('stopped', counters, { ...snapshot(), state: server.state })
        process.exit(0)
      },
    },
    numberArg('--max-ms', values['max-ms'], 1_000, 3_600_000),
  )
  emit({ type: 'ready', port, recvBufferSize: 0 })
} catch (error) {
  failStart(error)
}
