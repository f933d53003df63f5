// What an idle connected peer costs the server in memory, with and without channels: the server's RSS
// (and JS heap) with N clients connected and idle, less the same before the Server was made (its engine
// and the slots it makes for maxClients = N count as the peers'), ÷ N, each read after a full GC.
// The server and the clients (a ClientPool) run in processes of their own.
//   npx tsx bench/delivery/peer-memory.ts [--clients=5000] [--rounds=2]
import { parseArgs } from 'node:util'
import { ClientPool, Server } from '../../src/index.ts'
import { BenchChild } from '../lib/processes.ts'
import { emit } from '../lib/protocol.ts'
import { benchToken, privateKey, protocolId } from './volley-setup.ts'

const { values } = parseArgs({
  options: { role: { type: 'string' }, clients: { type: 'string' }, rounds: { type: 'string' }, channels: { type: 'boolean', default: false }, port: { type: 'string' } },
  strict: true,
})
const clients = Number(values.clients ?? 5000)
const channelOptions = values.channels ? { channels: [{ mode: 'reliable' as const }] } : {}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function settledMemory(): Promise<{ rss: number; heapUsed: number }> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run the server role with --expose-gc')
  gc()
  await sleep(300)
  gc()
  const { rss, heapUsed } = process.memoryUsage()
  return { rss, heapUsed }
}

async function server(): Promise<void> {
  const baseline = await settledMemory()
  const listening = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: clients, ...channelOptions })
  const { port } = await listening.listen()
  let connected = 0
  listening.on('connect', () => connected++)
  emit({ type: 'ready', port, recvBufferSize: 0 })
  while (connected < clients) await sleep(100)
  await sleep(2000) // idle: pings, pongs and keep-alives only
  const settled = await settledMemory()
  const perPeer = { rss: (settled.rss - baseline.rss) / clients, heap: (settled.heapUsed - baseline.heapUsed) / clients }
  emit({ type: 'result', packets: 0, bytes: 0, seconds: 0, cpuUserUs: 0, cpuSystemUs: 0, details: perPeer })
  await listening.close()
}

async function load(port: number): Promise<void> {
  const pool = new ClientPool(channelOptions)
  const tokens = []
  for (let i = 0; i < clients; i++) {
    tokens.push(await benchToken(port, BigInt(i + 1)))
  }
  await pool.connect(tokens)
  await new Promise((resolve) => process.stdin.once('data', resolve)) // until the runner says so
  await pool.close()
}

function child(name: string, args: string[], flags: string[] = []): BenchChild {
  const script = new URL(import.meta.url).pathname
  return new BenchChild({ name, command: process.execPath, args: [...flags, '--import', 'tsx', script, ...args], cpu: undefined, cwd: process.cwd() })
}

async function measure(withChannels: boolean): Promise<{ rss: number; heap: number }> {
  const flag = withChannels ? ['--channels'] : []
  const serving = child('server', ['--role', 'server', `--clients=${clients}`, ...flag], ['--expose-gc'])
  const { port } = await serving.expect('ready', 30_000)
  const loading = child('clients', ['--role', 'load', `--clients=${clients}`, `--port=${port}`, ...flag])
  const { details } = await serving.expect('result', 120_000)
  loading.tell('done')
  await Promise.all([serving.finish(10_000), loading.finish(10_000)])
  return { rss: details.rss as number, heap: details.heap as number }
}

if (values.role === 'server') await server()
else if (values.role === 'load') await load(Number(values.port))
else {
  const rounds = Number(values.rounds ?? 2)
  console.log(`server RSS per idle connected peer, ${clients} clients, ${rounds} rounds interleaved:`)
  for (let round = 0; round < rounds; round++) {
    for (const withChannels of [false, true]) {
      const { rss, heap } = await measure(withChannels)
      console.log(`  ${withChannels ? 'with a reliable channel' : 'netcode only           '}: ${Math.round(rss)} B of RSS, of which ${Math.round(heap)} B of JS heap`)
    }
  }
}
