#!/usr/bin/env node
// volley: `volley serve` runs a server, `volley load` connects many clients to one (a load generator),
// `volley token` prints a connect token. Keys are given in hex; all traffic is whatever address you name.
import { parseArgs } from 'node:util'
import { ClientPool } from '../client-pool.ts'
import { Server, connectTokenToBase64, generateConnectToken, generateKey } from '../index.ts'

const usage = `usage:
  volley serve --address 127.0.0.1:40000 --key <64 hex> [--protocol-id 0x1234] [--max-clients 10000] [--seconds N]
  volley load  --server 127.0.0.1:40000 --key <64 hex> [--protocol-id 0x1234] [--clients 1000] [--seconds 10]
               [--rate 0] [--concurrency 256] [--timeout 10] [--keep-alive-ms 100] [--json]
  volley token --server 127.0.0.1:40000 --key <64 hex> [--protocol-id 0x1234] [--client-id 1]
  volley key   (prints a new random key)`

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    address: { type: 'string' },
    server: { type: 'string' },
    key: { type: 'string' },
    'protocol-id': { type: 'string', default: '0x1234' },
    'max-clients': { type: 'string', default: '10000' },
    clients: { type: 'string', default: '1000' },
    seconds: { type: 'string' },
    rate: { type: 'string', default: '0' },
    concurrency: { type: 'string', default: '256' },
    timeout: { type: 'string', default: '10' },
    'keep-alive-ms': { type: 'string', default: '100' },
    'client-id': { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
})

function fail(message: string): never {
  console.error(`volley: ${message}\n\n${usage}`)
  process.exit(2)
}

function key(): Uint8Array {
  const hex = values.key ?? fail('--key is required (64 hex digits; `volley key` makes one)')
  if (!/^[0-9a-f]{64}$/i.test(hex)) fail('--key must be 64 hex digits')
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

function number(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value < 0) fail(`--${name} must be a non-negative number`)
  return value
}

const protocolId = BigInt(values['protocol-id'])
const command = positionals[0]
if (values.help || command === undefined) {
  console.log(usage)
  process.exit(command === undefined && !values.help ? 2 : 0)
}

if (command === 'key') {
  console.log(Buffer.from(await generateKey()).toString('hex'))
} else if (command === 'token') {
  const server = values.server ?? fail('--server is required')
  const token = await generateConnectToken({ protocolId, privateKey: key(), clientId: BigInt(values['client-id']), serverAddresses: [server], expireSeconds: 300, timeoutSeconds: number('timeout', values.timeout, 10) })
  console.log(connectTokenToBase64(token))
} else if (command === 'serve') {
  const address = values.address ?? fail('--address is required')
  const server = new Server({ protocolId, privateKey: key(), address, maxClients: number('max-clients', values['max-clients'], 10000), keepAliveIntervalMs: number('keep-alive-ms', values['keep-alive-ms'], 100) })
  server.on('message', (peer, data) => peer.send(data)) // echo
  const { port } = await server.listen()
  console.log(JSON.stringify({ event: 'listening', port, pid: process.pid }))
  const stop = async (): Promise<void> => {
    await server.close()
    console.log(JSON.stringify({ event: 'stopped', stats: server.stats() }))
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  const seconds = number('seconds', values.seconds, 0)
  if (seconds > 0) setTimeout(stop, seconds * 1000)
} else if (command === 'load') {
  const server = values.server ?? fail('--server is required')
  const privateKey = key()
  const count = number('clients', values.clients, 1000)
  const seconds = number('seconds', values.seconds, 10)
  const rate = number('rate', values.rate, 0)
  const timeoutSeconds = number('timeout', values.timeout, 10)
  const tokens = await Promise.all(
    Array.from({ length: count }, (_, i) => generateConnectToken({ protocolId, privateKey, clientId: BigInt(i + 1), serverAddresses: [server], expireSeconds: 600, timeoutSeconds })),
  )
  const pool = new ClientPool({ keepAliveIntervalMs: number('keep-alive-ms', values['keep-alive-ms'], 100) })
  const connect = await pool.connect(tokens, { concurrency: number('concurrency', values.concurrency, 256) })
  const report = (event: string, extra: object = {}): void => {
    const line = { event, ...connect, ...pool.stats(), ...extra }
    console.log(values.json ? JSON.stringify(line) : `${event}: ${JSON.stringify(line)}`)
  }
  report('connected', { connectRate: (connect.connected / connect.ms) * 1000 })
  const payload = new Uint8Array(64).fill(1)
  const ticker = rate > 0 ? setInterval(() => pool.broadcast(payload), 1000 / rate) : undefined
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  if (ticker) clearInterval(ticker)
  report('finished')
  await pool.close()
  process.exit(0)
} else {
  fail(`unknown command '${command}'`)
}
