// Steady-state ping client, for looking into round-trip latency: W unmeasured round trips, then N measured
// ones; prints the percentiles and, for each thread of this process, its CPU per round trip (schedstat) and
// its voluntary / involuntary context switches per round trip. Against the delivery benchmark's echo servers:
//   taskset -c 1 node --import tsx bench/delivery/volley-side.ts --role server --scenario ping   (or dgram-ping.ts --role server)
//   taskset -c 0 node --import tsx bench/delivery/steady-ping.ts volley|dgram <port> [W=3000] [N=10000]
// With SERVER_PID=<the echo server's pid> in the environment it prints that process's threads too.
import dgram from 'node:dgram'
import { readFileSync, readdirSync } from 'node:fs'
import { Client } from '../../src/index.ts'
import { percentile } from '../lib/statistics.ts'
import { type RoundTrip, dgramRoundTrip, timeRoundTrips, volleyRoundTrip, warmUp } from './round-trips.ts'
import { benchToken, channelOptions } from './volley-setup.ts'

const [kind, portText, warmText, countText] = process.argv.slice(2)
const port = Number(portText)
const warmup = Number(warmText ?? 3000)
const count = Number(countText ?? 10000)

interface ThreadTimes {
  cpuUs: number
  voluntary: number
  involuntary: number
}

/** Each thread's CPU time and switches, of this process or of another (the echo server's, by its pid). */
function threadTimes(pid: number | 'self' = 'self'): Map<string, ThreadTimes> {
  const times = new Map<string, ThreadTimes>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${tid}`
    const status = readFileSync(`${dir}/status`, 'utf8')
    const field = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0)
    times.set(`${readFileSync(`${dir}/comm`, 'utf8').trim()}:${tid}`, {
      cpuUs: Number(readFileSync(`${dir}/schedstat`, 'utf8').split(' ')[0]) / 1000,
      voluntary: field('voluntary_ctxt_switches'),
      involuntary: field('nonvoluntary_ctxt_switches'),
    })
  }
  return times
}

let roundTrip: RoundTrip
let close: () => Promise<void>
if (kind === 'volley') {
  const client = new Client(channelOptions)
  await client.connect(await benchToken(port))
  roundTrip = volleyRoundTrip(client)
  close = () => client.close()
} else {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
  roundTrip = dgramRoundTrip(socket, port)
  close = async () => {
    socket.close()
  }
}

// The echo server's threads too, when its pid is given (SERVER_PID): what the exchange costs that side.
const serverPid = process.env.SERVER_PID === undefined ? undefined : Number(process.env.SERVER_PID)
await warmUp(roundTrip, warmup)
const before = threadTimes()
const serverBefore = serverPid === undefined ? undefined : threadTimes(serverPid)
const rtts = await timeRoundTrips(roundTrip, count)
const after = threadTimes()
const serverAfter = serverPid === undefined ? undefined : threadTimes(serverPid)
const at = (p: number): string => percentile(rtts, p).toFixed(0) // the delivery benchmark's definition
console.log(`${kind}: p50 ${at(0.5)} p90 ${at(0.9)} p99 ${at(0.99)} p99.9 ${at(0.999)} max ${at(1)} µs`)
function printThreads(label: string, start: Map<string, ThreadTimes>, end: Map<string, ThreadTimes>): void {
  for (const [thread, last] of end) {
    const first = start.get(thread) ?? { cpuUs: 0, voluntary: 0, involuntary: 0 }
    const cpu = (last.cpuUs - first.cpuUs) / count
    if (cpu < 0.5) continue
    console.log(`  ${label}${thread}: ${cpu.toFixed(1)} µs CPU, ${((last.voluntary - first.voluntary) / count).toFixed(2)} voluntary / ${((last.involuntary - first.involuntary) / count).toFixed(2)} involuntary switches per round trip`)
  }
}
printThreads('', before, after)
if (serverBefore !== undefined && serverAfter !== undefined) printThreads('server ', serverBefore, serverAfter)
await close()
process.exit(0)
