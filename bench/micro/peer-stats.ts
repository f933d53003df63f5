// What peer.stats() and server.stats() cost a server's JS thread: a monitor that reads every peer's
// statistics every second pays the first once per peer; the second sums the link statistics of every
// peer. N clients (the C++ handshake load of bench:connections, in a process of its own) connect to a
// server, without channels and then with a reliable channel; every peer's stats() is read 20 times per
// round, and server.stats() 50 times. CPU time of the whole process per call, 7 rounds, each printed.
//   npx tsx bench/micro/peer-stats.ts [--clients N] [--lib <volley's index.js or index.ts>]
// --lib measures another build side by side (e.g. an older checkout's dist/index.js, compiled with
// `npm run compile` there).
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { buildHandshakeLoad } from '../lib/connections-native.ts'
import { benchDir, root } from '../lib/runner.ts'

const { values } = parseArgs({ options: { clients: { type: 'string', default: '2000' }, lib: { type: 'string', default: join(root, 'src', 'index.ts') } } })
const clients = Number(values.clients)
const volley = (await import(pathToFileURL(resolve(values.lib)).href)) as typeof import('../../src/index.ts')
const load = buildHandshakeLoad(benchDir, root)
const tokensFile = join(tmpdir(), `volley-peer-stats-${process.pid}.tokens`)

async function measure(channels: boolean): Promise<{ peer: number[]; server: number[] }> {
  const privateKey = await volley.generateKey()
  const server = new volley.Server({
    protocolId: 0x1234n,
    privateKey,
    address: '127.0.0.1:0',
    maxClients: clients,
    keepAliveIntervalMs: 10_000,
    ...(channels ? { channels: [{ mode: 'reliable' as const }] } : {}),
  })
  const { port } = await server.listen()
  const tokens: Uint8Array[] = []
  for (let i = 0; i < clients; i++) {
    tokens.push(await volley.generateConnectToken({ protocolId: 0x1234n, privateKey, clientId: BigInt(i + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 60, timeoutSeconds: 30 }))
  }
  writeFileSync(tokensFile, Buffer.concat(tokens))
  const child = spawn(load, ['--tokens', tokensFile, '--concurrency', '256', '--keep-alive-ms', '10000'], { stdio: ['pipe', 'pipe', 'inherit'] })
  await new Promise<void>((connected) => createInterface({ input: child.stdout! }).on('line', (line) => line.includes('"connected"') && connected()))
  while (server.peers.size < clients) await new Promise((wait) => setTimeout(wait, 5))
  const peers = [...server.peers.values()]
  let packets = 0
  const nsPerCall = { peer: [] as number[], server: [] as number[] }
  const cpuNs = (before: NodeJS.CpuUsage): number => {
    const used = process.cpuUsage(before)
    return (used.user + used.system) * 1000
  }
  for (let round = 0; round < 7; round++) {
    let before = process.cpuUsage()
    for (let repeat = 0; repeat < 20; repeat++) for (const peer of peers) packets += peer.stats().packets.in
    nsPerCall.peer.push(cpuNs(before) / (20 * clients))
    before = process.cpuUsage()
    for (let repeat = 0; repeat < 50; repeat++) packets += server.stats().packets.in
    nsPerCall.server.push(cpuNs(before) / 50)
  }
  if (packets < clients) throw new Error('the peers counted no packets')
  child.stdin!.write('leave\n')
  await new Promise((exited) => child.on('exit', exited))
  await server.close()
  return nsPerCall
}

console.log(`# npx tsx bench/micro/peer-stats.ts --clients ${clients} --lib ${values.lib}; ${new Date().toISOString()}, node ${process.version}`)
for (const channels of [false, true]) {
  const nsPerCall = await measure(channels)
  const label = channels ? 'reliable channel' : 'netcode only'
  console.log(`${label}: peer.stats() ${nsPerCall.peer.map((ns) => Math.round(ns)).join(', ')} ns CPU per call (7 rounds)`)
  console.log(`${label}: server.stats() ${nsPerCall.server.map((ns) => (ns / 1000).toFixed(1)).join(', ')} µs CPU per call, ${clients} peers (7 rounds)`)
}
