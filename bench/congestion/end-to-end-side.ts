// One side of an end-to-end congestion cell (bench/congestion.ts --end-to-end), in its own process, on the
// engine VOLLEY_ENGINE chooses; every socket sends through the engine's network simulator
// (simulatorOptions in bench/lib/congestion-end-to-end.ts). Both sides stop by themselves after --limit-s.
//   --role server --mbps M --rtt-ms R --loss PERCENT --limit-s L
//       listens on 127.0.0.1 (any port), says 'ready' with the port, and keeps each client that connects
//       sent 64 KiB reliable messages, as fast as back-pressure allows; on "stop" (stdin) a 'result' with each
//       peer's link statistics and its simulator's counts, then it closes and exits.
//   --role clients --mbps M --rtt-ms R --loss PERCENT --flows 1|2 [--second-start-ms S] --seconds T --bin-ms B --limit-s L
//       once told the server's port on stdin ("port P": it starts while the server does), connects the first
//       client, the second S ms after the first began to; counts the message bytes each receives per B ms
//       from then, until T s after the last connected; a 'result', then it closes and exits.
import { parseArgs } from 'node:util'
import { Client, engineInUse, type Peer, Server, type SimulatedNetworkStats } from '../../src/index.ts'
import { benchToken, privateKey, protocolId } from '../delivery/volley-setup.ts'
import { type ClientsReport, type EngineName, endToEndMessageBytes, type ReceiverReport, type ServerReport, type SimulatorCounts, simulatorOptions } from '../lib/congestion-end-to-end.ts'
import { emit, failStart } from '../lib/protocol.ts'

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    mbps: { type: 'string' },
    'rtt-ms': { type: 'string' },
    loss: { type: 'string' },
    flows: { type: 'string', default: '1' },
    'second-start-ms': { type: 'string', default: '0' },
    seconds: { type: 'string' },
    'bin-ms': { type: 'string', default: '100' },
    'limit-s': { type: 'string', default: '120' },
  },
  strict: true,
})

const number = (name: keyof typeof values): number => {
  const value = Number(values[name])
  if (typeof values[name] !== 'string' || !Number.isFinite(value)) throw new Error(`--${name} takes a number, not '${String(values[name])}'`)
  return value
}
const path = { mbps: number('mbps'), rttMs: number('rtt-ms'), lossPercent: number('loss') }
/** The server's simulator takes this seed, client k (from 0) this + 1 + k: each socket's own random choices, the same in every run. */
const seed = 1
const channels = [{ mode: 'reliable' as const }]
/** The CPU time this process took since `from` (a process.resourceUsage()), µs, as the line protocol's 'result' has it. */
function cpuSince(from: NodeJS.ResourceUsage): { cpuUserUs: number; cpuSystemUs: number } {
  const now = process.resourceUsage()
  return { cpuUserUs: now.userCPUTime - from.userCPUTime, cpuSystemUs: now.systemCPUTime - from.systemCPUTime }
}

function engineName(): EngineName {
  return engineInUse().engine
}

function counts(stats: SimulatedNetworkStats | null): SimulatorCounts | null {
  return stats === null ? null : { lost: stats.lost, duplicated: stats.duplicated, reordered: stats.reordered, overflowed: stats.overflowed }
}

async function server(): Promise<void> {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4, channels, networkSimulator: simulatorOptions(path, seed) })
  const message = new Uint8Array(endToEndMessageBytes).fill(7)
  const peers: Peer[] = []
  let messagesSent = 0
  // The queue kept full: a refused message is sent again once there is room. The connection's end (the
  // server closing) rejects drained(), which ends the loop.
  const keepSending = async (peer: Peer): Promise<void> => {
    try {
      for (;;) {
        while (!peer.send(message)) await peer.drained()
        messagesSent++
      }
    } catch {
      // the connection ended
    }
  }
  server.on('connect', (peer) => {
    peers.push(peer)
    void keepSending(peer)
  })
  const startUsage = process.resourceUsage()
  const startMs = performance.now()
  process.stdin.setEncoding('utf8').on('data', (text: string) => {
    if (!text.includes('stop')) return
    const cpu = cpuSince(startUsage)
    const report: ServerReport = {
      engine: engineName(),
      messagesSent,
      cpuSeconds: (cpu.cpuUserUs + cpu.cpuSystemUs) / 1e6,
      simulator: counts(server.stats().networkSimulator),
      peers: peers.map((peer) => {
        const stats = peer.stats()
        return {
          clientId: Number(peer.clientId),
          packetsOut: stats.packets.out,
          lossPercent: stats.lossPercent,
          resends: stats.resends,
          smoothedRttMs: stats.rtt.smoothedMs,
          minRttMs: stats.rtt.minMs,
          windowBytes: stats.congestion.windowBytes,
          pathBps: stats.bandwidth.pathBps,
        }
      }),
    }
    emit({ type: 'result', packets: messagesSent, bytes: messagesSent * message.byteLength, seconds: (performance.now() - startMs) / 1000, ...cpu, details: { ...report } })
    void server.close().then(() => process.exit(0))
  })
  const { port } = await server.listen()
  emit({ type: 'ready', port, recvBufferSize: 0 })
}

/** The server's port, from the runner's "port P" line. */
function serverPort(): Promise<number> {
  return new Promise((resolve) => {
    process.stdin.setEncoding('utf8').on('data', (text: string) => {
      const port = /port (\d+)/.exec(text)?.[1]
      if (port !== undefined) resolve(Number(port))
    })
  })
}

async function clients(): Promise<void> {
  const port = await serverPort()
  const flows = number('flows')
  const secondStartMs = number('second-start-ms')
  const seconds = number('seconds')
  const binMs = number('bin-ms')
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
  const startUsage = process.resourceUsage()
  // The run's clock starts as the first client starts to connect: every bin is after it.
  const originMs = performance.now()
  const connected: { client: Client; startMs: number; bytesByBin: number[] }[] = []
  const connect = async (index: number): Promise<void> => {
    const client = new Client({ channels, networkSimulator: simulatorOptions(path, seed + 1 + index) })
    const bytesByBin: number[] = []
    client.on('message', (data) => {
      const bin = Math.floor((performance.now() - originMs) / binMs)
      while (bytesByBin.length <= bin) bytesByBin.push(0)
      bytesByBin[bin] = (bytesByBin[bin] ?? 0) + data.byteLength
    })
    await client.connect(await benchToken(port, BigInt(index + 1)))
    connected.push({ client, startMs: performance.now() - originMs, bytesByBin })
  }
  await connect(0)
  for (let index = 1; index < flows; index++) {
    await sleep(originMs + secondStartMs - performance.now())
    await connect(index)
  }
  const lastStartMs = connected.reduce((latest, { startMs }) => Math.max(latest, startMs), 0)
  await sleep(originMs + lastStartMs + seconds * 1000 - performance.now())
  const cpu = cpuSince(startUsage)
  const report: ClientsReport = {
    engine: engineName(),
    binMs,
    cpuSeconds: (cpu.cpuUserUs + cpu.cpuSystemUs) / 1e6,
    flows: connected.map(({ client, startMs, bytesByBin }): ReceiverReport => {
      const { drops, networkSimulator } = client.stats()
      return { startMs, bytesByBin, drops: { replayed: drops.replayed, tooOld: drops.tooOld, receiveBufferFull: drops.receiveBufferFull }, simulator: counts(networkSimulator) }
    }),
  }
  const received = report.flows.reduce((total, flow) => total + flow.bytesByBin.reduce((sum, bytes) => sum + bytes, 0), 0)
  emit({ type: 'result', packets: Math.round(received / endToEndMessageBytes), bytes: received, seconds: (performance.now() - originMs) / 1000, ...cpu, details: { ...report } })
  await Promise.all(connected.map(({ client }) => client.close()))
  process.exit(0)
}

// However the run goes, the process ends: a runner that died leaves no side running.
setTimeout(() => {
  emit({ type: 'error', message: `still running after --limit-s ${values['limit-s']} s` })
  process.exit(3)
}, number('limit-s') * 1000)

try {
  await (values.role === 'server' ? server() : values.role === 'clients' ? clients() : Promise.reject(new Error(`--role takes server or clients, not '${String(values.role)}'`)))
} catch (error) {
  failStart(error)
}
