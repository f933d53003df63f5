// The clients of `npm run bench:metrics`, in a process of their own (a ClientPool: one socket per client, on one
// engine thread): they connect to the server, say so on stdout (one JSON line), and stay connected until stdin
// closes, then close and exit.
// Run as: node --import tsx bench/lib/metrics-load.ts --server 127.0.0.1:<port> --key <hex> --protocol-id <n>
//         --clients <n> --interval-ms <keep-alive and ping period>
import { parseArgs } from 'node:util'
import { ClientPool, generateConnectToken } from '../../src/index.ts'

const { values } = parseArgs({
  options: {
    server: { type: 'string' },
    key: { type: 'string' },
    'protocol-id': { type: 'string' },
    clients: { type: 'string' },
    'interval-ms': { type: 'string' },
  },
  strict: true,
})

const server = values.server ?? ''
const privateKey = Uint8Array.from(Buffer.from(values.key ?? '', 'hex'))
const protocolId = BigInt(values['protocol-id'] ?? '0')
const count = Number(values.clients)
const intervalMs = Number(values['interval-ms'])
const pool = new ClientPool({ channels: [{ mode: 'reliable' }], keepAliveIntervalMs: intervalMs, pingIntervalMs: intervalMs })
const result = await pool.connect(
  {
    count,
    make: (index) =>
      generateConnectToken({ protocolId, privateKey, clientId: BigInt(index + 1), serverAddresses: [server], expireSeconds: 600, timeoutSeconds: 10 }),
  },
  { concurrency: 256 },
)
process.stdout.write(`${JSON.stringify({ type: 'connected', ...result, failures: pool.stats().failed })}\n`)
process.stdin.resume()
process.stdin.on('end', () => {
  void pool.close().then(() => process.exit(0))
})
