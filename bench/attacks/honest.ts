// The honest clients of the attack report, in a process of their own: `--clients` clients connected from the
// start, each sending a small message on channel 0 every 200 ms, which the server echoes. Commands on stdin
// (bench/lib/connections-child.ts):
//   probe <n>   connects n more clients one after the other, then a mark with each one's connect time (ms)
//   mark        what the clients saw so far: connected, timed out, messages sent and echoed
//   stop        closes them all
// Run as: node --import tsx bench/attacks/honest.ts --server <host:port> --key <hex> --protocol-id <n> --clients <n> --max-ms <lifetime>
import { parseArgs } from 'node:util'
import { Client, generateConnectToken } from '../../src/index.ts'
import { type MarkCounters, emitMark, numberArg, serveCommands } from '../lib/connections-child.ts'
import { emit, failStart } from '../lib/protocol.ts'

const { values } = parseArgs({
  options: { server: { type: 'string' }, key: { type: 'string' }, 'protocol-id': { type: 'string' }, clients: { type: 'string' }, 'max-ms': { type: 'string' } },
  strict: true,
})

const protocolId = BigInt(values['protocol-id'] ?? '0x1234')
const privateKey = Uint8Array.from(Buffer.from(values.key ?? '', 'hex'))
const counters: MarkCounters = { packets: 0, bytes: 0 }
const seen = { connected: 0, failed: 0, timeouts: 0, disconnected: 0, sent: 0, echoed: 0 }
const clients: Client[] = []
let nextId = 1n

async function connectOne(): Promise<number> {
  const token = await generateConnectToken({ protocolId, privateKey, clientId: 7_000_000n + nextId++, serverAddresses: [values.server ?? ''], expireSeconds: 300, timeoutSeconds: 10 })
  const client = new Client({ channels: [{ mode: 'reliable' }, { mode: 'reliable' }], maxMessageBytes: 16 << 20 })
  client.on('message', () => {
    seen.echoed++
    counters.packets++
  })
  client.on('disconnect', (reason) => {
    if (reason === 'connection-timed-out') seen.timeouts++
    else seen.disconnected++
  })
  client.on('error', () => {})
  const started = performance.now()
  try {
    await client.connect(token)
  } catch {
    seen.failed++
    return Number.NaN
  }
  seen.connected++
  clients.push(client)
  return performance.now() - started
}

try {
  const count = numberArg('--clients', values.clients, 0, 10_000)
  await Promise.all(Array.from({ length: count }, () => connectOne()))
  const traffic = setInterval(() => {
    for (const client of clients) {
      if (client.state === 'connected' && client.send(new Uint8Array(32))) seen.sent++
    }
  }, 200)
  serveCommands(
    {
      probe: async ([n = '5']) => {
        const times: number[] = []
        for (let i = 0; i < Number(n); i++) times.push(await connectOne())
        emitMark('probe', counters, { seen: { ...seen }, connectMs: times })
      },
      mark: ([label = 'mark']) => emitMark(label, counters, { seen: { ...seen } }),
      stop: async () => {
        clearInterval(traffic)
        await Promise.all(clients.map((client) => client.close()))
        process.exit(0)
      },
    },
    numberArg('--max-ms', values['max-ms'], 1_000, 3_600_000),
  )
  emit({ type: 'ready', port: 0, recvBufferSize: 0 })
} catch (error) {
  failStart(error)
}
