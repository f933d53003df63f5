// What peer.stats() and server.stats() cost a server's JS thread: a monitor that reads every peer's
// statistics every second pays the first once per peer; the second sums the link statistics of every
// peer. N clients in a process of their own connect to a server, without channels (the C++ handshake load
// of bench:connections) and then with a reliable channel (`volley load --channels reliable`: a server with
// channels disconnects clients that announce none); every peer's stats() is read 20 times per
// round, and server.stats() 50 times. CPU time of the whole process per call, 7 rounds, each printed.
// Then the clients leave, all at once (each sends its redundant disconnects), and the JS thread's busy time
// (event loop utilisation) until the server has no peer, per client: what a gateway's thread spends on a
// crowd that times out together, no 'disconnect' handler reading anything.
//   npx tsx bench/micro/peer-stats.ts [--clients N] [--lib <volley's index.js or index.ts>]
// --lib measures another build side by side (e.g. an older checkout's dist/index.js, compiled with
// `npm run compile` there).
import { type ChildProcess, spawn } from 'node:child_process'
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

async function measure(channels: boolean): Promise<{ peer: number[]; server: number[]; disconnectNs: number }> {
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
  let child: ChildProcess
  if (channels) {
    // Pings at the default 10 Hz keep each connection alive: keep-alives add nothing.
    const args = ['--import', 'tsx', join(root, 'src', 'cli', 'volley.ts'), 'load', '--server', `127.0.0.1:${port}`, '--clients', String(clients), '--channels', 'reliable', '--seconds', '3600', '--timeout', '30', '--json']
    child = spawn(process.execPath, args, { cwd: root, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, VOLLEY_KEY: Buffer.from(privateKey).toString('hex') } })
  } else {
    const tokens: Uint8Array[] = []
    for (let i = 0; i < clients; i++) {
      tokens.push(await volley.generateConnectToken({ protocolId: 0x1234n, privateKey, clientId: BigInt(i + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 60, timeoutSeconds: 30 }))
    }
    writeFileSync(tokensFile, Buffer.concat(tokens))
    child = spawn(load, ['--tokens', tokensFile, '--concurrency', '256', '--keep-alive-ms', '10000'], { stdio: ['pipe', 'pipe', 'inherit'] })
  }
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
  const exited = new Promise((resolve) => child.on('exit', resolve))
  const busy = performance.eventLoopUtilization()
  // Each client sends its redundant disconnects: the C++ load's on "leave", volley load's at a Ctrl-C.
  if (channels) child.kill('SIGINT')
  else child.stdin!.write('leave\n')
  while (server.peers.size > 0) await new Promise((wait) => setTimeout(wait, 5))
  const disconnectNs = (performance.eventLoopUtilization(busy).active * 1e6) / clients
  await exited
  await server.close()
  return { ...nsPerCall, disconnectNs }
}

console.log(`# npx tsx bench/micro/peer-stats.ts --clients ${clients} --lib ${values.lib}; ${new Date().toISOString()}, node ${process.version}`)
for (const channels of [false, true]) {
  const nsPerCall = await measure(channels)
  const label = channels ? 'reliable channel' : 'netcode only'
  console.log(`${label}: peer.stats() ${nsPerCall.peer.map((ns) => Math.round(ns)).join(', ')} ns CPU per call (7 rounds)`)
  console.log(`${label}: server.stats() ${nsPerCall.server.map((ns) => (ns / 1000).toFixed(1)).join(', ')} µs CPU per call, ${clients} peers (7 rounds)`)
  console.log(`${label}: the clients leaving, ${(nsPerCall.disconnectNs / 1000).toFixed(2)} µs of the JS thread's time per client`)
}
