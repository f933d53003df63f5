// Steady-state ping client, for looking into round-trip latency: W unmeasured round trips, then N measured
// ones; prints the percentiles and, for each thread of this process, its CPU per round trip (schedstat) and
// its voluntary / involuntary context switches per round trip. Against the delivery benchmark's echo servers:
//   taskset -c 1 node --import tsx bench/delivery/volley-side.ts --role server --scenario ping   (or dgram-ping.ts --role server)
//   taskset -c 0 node --import tsx bench/delivery/steady-ping.ts volley|dgram <port> [W=3000] [N=10000]
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

function threadTimes(): Map<string, ThreadTimes> {
  const times = new Map<string, ThreadTimes>()
  for (const tid of readdirSync('/proc/self/task')) {
    const dir = `/proc/self/task/${tid}`
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

await warmUp(roundTrip, warmup)
const before = threadTimes()
const rtts = await timeRoundTrips(roundTrip, count)
const after = threadTimes()
const at = (p: number): string => percentile(rtts, p).toFixed(0) // the delivery benchmark's definition
console.log(`${kind}: p50 ${at(0.5)} p90 ${at(0.9)} p99 ${at(0.99)} p99.9 ${at(0.999)} max ${at(1)} µs`)
for (const [thread, end] of after) {
  const start = before.get(thread) ?? { cpuUs: 0, voluntary: 0, involuntary: 0 }
  const cpu = (end.cpuUs - start.cpuUs) / count
  if (cpu < 0.5) continue
  console.log(`  ${thread}: ${cpu.toFixed(1)} µs CPU, ${((end.voluntary - start.voluntary) / count).toFixed(2)} voluntary / ${((end.involuntary - start.involuntary) / count).toFixed(2)} involuntary switches per round trip`)
}
await close()
process.exit(0)
