// `npm run bench:delivery`: the delivery layer (channels) against its baselines, side by side in one run,
// on loopback, each side in its own process pinned apart (receiver/server on CPU 1, sender/client on CPU 0):
//   1. bulk: N MiB over volley's reliable channel (encrypted, 64 KiB messages, back-pressure respected)
//      against udx-native's reliable stream (unencrypted, 64 KiB writes); throughput first byte to last.
//   2. messages: 100-byte reliable messages as fast as back-pressure allows, for S seconds; delivered per second.
//   1b, 2b. the same on volley's fallback engine (VOLLEY_ENGINE=fallback, both sides: the
//      delivery layer built as WebAssembly, on node:dgram), the baseline the native engine beats.
//   3. ping: sequential round trips of 64 B, volley (reliable channel, echoed by the server's JS handler)
//      against a node:dgram echo; p50 and p99 of the round trips after a warm-up (the same for both:
//      the first few thousand round trips of either side run while V8 still compiles their code, on the
//      one core each process has, with stalls of milliseconds).
// Interleaved repeats, medians. Results as writeResults writes them (bench/lib/runner.ts): a line in
// bench/results/delivery-history.jsonl and, for a complete run, bench/results/latest-delivery.json.
//
//   npm run bench:delivery                 full run
//   npm run bench:delivery -- --quick      CI smoke run
//   npm run bench:delivery -- --help       the other options
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import { BenchChild } from './lib/processes.ts'
import { microseconds, table, times } from './lib/format.ts'
import { median, percentile, ratio } from './lib/statistics.ts'
import { quickRun } from './lib/options.ts'
import { systemInfo } from './lib/system.ts'
import { benchDir, describeFailure, root, runMain, settle, resultsLine, writeResults } from './lib/runner.ts'

const usage = `usage: npm run bench:delivery -- [options]
  --quick           CI smoke run: 16 MiB, 1 s of messages, 300 pings after 100, 1 repeat (also BENCH_QUICK=1)
  --total-mib=N     bulk transfer size (default 256)
  --seconds=S       time of the 100 B message case (default 5)
  --pings=N         measured round trips of the ping case (default 5000)
  --warmup=N        unmeasured round trips before them (default 3000)
  --repeats=N       interleaved repeats of every case, medians reported (default 3)
  --only=CASES      a comma-separated subset of bulk, messages, ping (default all)
  --help`

const cases = ['bulk', 'messages', 'ping'] as const

/** The command line, checked: a mistake prints one line and the usage, exit status 2. */
function parseOptions() {
  const fail = (message: string): never => {
    process.stderr.write(`bench:delivery: ${message}\n\n${usage}\n`)
    process.exit(2)
  }
  let values: Record<string, string | boolean | undefined> = {}
  try {
    values = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        'total-mib': { type: 'string' },
        seconds: { type: 'string' },
        pings: { type: 'string' },
        warmup: { type: 'string' },
        repeats: { type: 'string' },
        only: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }).values
  } catch (error) {
    fail((error as Error).message)
  }
  if (values.help === true) {
    console.log(usage)
    process.exit(0)
  }
  const env = process.env
  const quick = quickRun(values.quick, env)
  const count = (name: string, fallback: number, max: number): number => {
    const text = values[name]
    if (text === undefined) return fallback
    const value = Number(text)
    if (typeof text !== 'string' || !Number.isInteger(value) || value < 1 || value > max) fail(`--${name} must be an integer from 1 to ${max}, not '${String(text)}'`)
    return value
  }
  const only = typeof values.only === 'string' ? values.only.split(',') : [...cases]
  for (const name of only) if (!(cases as readonly string[]).includes(name)) fail(`--only takes ${cases.join(', ')}; not '${name}'`)
  return {
    quick,
    totalMiB: count('total-mib', quick ? 16 : 256, 65536),
    seconds: count('seconds', quick ? 1 : 5, 3600),
    pings: count('pings', quick ? 300 : 5000, 10_000_000),
    warmup: count('warmup', quick ? 100 : 3000, 10_000_000),
    repeats: count('repeats', quick ? 1 : 3, 100),
    only: new Set(only),
  }
}

interface Side {
  seconds: number
  bytes: number
  packets: number
  cpuUs: number
  details: Record<string, unknown>
}

async function main(): Promise<number> {
  const started = performance.now()
  const system = systemInfo(root)
  const { quick, totalMiB, seconds, pings, warmup, repeats, only } = parseOptions()
  const pin = system.taskset
  // Each child chooses volley's engine as VOLLEY_ENGINE says: the native one unless `engine` says otherwise.
  const node = (name: string, file: string, cpu: 0 | 1, args: string[], engine: 'native' | 'fallback' = 'native'): BenchChild =>
    new BenchChild({ name, command: process.execPath, args: ['--import', 'tsx', join(benchDir, 'delivery', file), ...args], cpu: pin ? cpu : undefined, cwd: root, env: { VOLLEY_ENGINE: engine } })
  const result = async (child: BenchChild, timeoutMs: number): Promise<Side> => {
    const message = await child.expect('result', timeoutMs)
    const details = { ...message.details }
    // The ping RTTs stay in the record, so that any percentile can be recomputed from it; rounded to 0.01 µs
    // (which keeps 5,000 of them small) before the summary's percentiles, so that the two agree.
    if (Array.isArray(details.rttsUs)) details.rttsUs = (details.rttsUs as number[]).map((us) => Math.round(us * 100) / 100)
    return { seconds: message.seconds, bytes: message.bytes, packets: message.packets, cpuUs: message.cpuUserUs + message.cpuSystemUs, details }
  }
  const log = (line: string): void => void process.stderr.write(`${line}\n`)
  const failures: string[] = []
  const runs: Record<string, Side[]> = { volleyBulk: [], udxBulk: [], fallbackBulk: [], volleyMessages: [], fallbackMessages: [], volleyPing: [], dgramPing: [] }
  const total = totalMiB * 2 ** 20
  // A bulk transfer that lost or duplicated bytes has no throughput worth a median: it fails the case.
  const whole = (side: Side): Side => {
    if (side.bytes !== total) throw new Error(`received ${side.bytes} B of the ${total} B sent`)
    return side
  }
  const attempt = async (name: keyof typeof runs, run: () => Promise<Side>): Promise<void> => {
    try {
      const side = await run()
      // A case that measured nothing fails (a smoke run that passed on no message proved nothing).
      if (!(side.packets > 0 && side.seconds > 0)) throw new Error(`measured nothing: ${side.packets} messages in ${side.seconds} s`)
      runs[name]?.push(side)
      log(`${name}: ${side.bytes} B in ${side.seconds.toFixed(3)} s`)
    } catch (error) {
      failures.push(`${name}: ${describeFailure(error)}`)
      log(`${name} FAILED: ${describeFailure(error)}`)
    }
    await settle(300)
  }
  const children: BenchChild[] = []
  const spawn = (child: BenchChild): BenchChild => {
    children.push(child)
    return child
  }
  const cleanup = (): void => {
    for (const child of children.splice(0)) child.kill()
  }

  // A server side (CPU 1) that says where it listens, a client side (CPU 0) told the port; the result of one.
  const serverAndClient = async (file: string, args: string[], serverArgs: string[], clientArgs: string[], from: 'server' | 'client', timeoutMs: number, engine: 'native' | 'fallback' = 'native'): Promise<Side> => {
    try {
      const server = spawn(node(`${file} server`, file, 1, ['--role', 'server', ...args, ...serverArgs], engine))
      const { port } = await server.expect('ready', 30_000)
      const client = spawn(node(`${file} client`, file, 0, ['--role', 'client', ...args, '--port', String(port), ...clientArgs], engine))
      return await result(from === 'server' ? server : client, timeoutMs)
    } finally {
      cleanup()
    }
  }

  for (let round = 1; round <= repeats; round++) {
    if (only.has('bulk')) await attempt('volleyBulk', async () => whole(await serverAndClient('volley-side.ts', ['--scenario', 'bulk', '--total', String(total)], [], [], 'server', 300_000)))
    if (only.has('bulk')) await attempt('udxBulk', async () => {
      try {
        const sink = spawn(node('udx sink', 'udx-side.ts', 1, ['--role', 'sink']))
        const source = spawn(node('udx source', 'udx-side.ts', 0, ['--role', 'source', '--total', String(total)]))
        const [a, b] = [await sink.expect('ready', 30_000), await source.expect('ready', 30_000)]
        sink.tell(`peer ${b.port}`)
        source.tell(`peer ${a.port}`)
        return whole(await result(sink, 300_000))
      } finally {
        cleanup()
      }
    })
    if (only.has('bulk')) await attempt('fallbackBulk', async () => whole(await serverAndClient('volley-side.ts', ['--scenario', 'bulk', '--total', String(total)], [], [], 'server', 600_000, 'fallback')))
    const messages = (engine: 'native' | 'fallback') => async (): Promise<Side> => {
      try {
        const server = spawn(node('volley server', 'volley-side.ts', 1, ['--role', 'server', '--scenario', 'messages'], engine))
        const { port } = await server.expect('ready', 30_000)
        const client = spawn(node('volley client', 'volley-side.ts', 0, ['--role', 'client', '--scenario', 'messages', '--port', String(port), '--seconds', String(seconds)], engine))
        const sent = await result(client, 60_000 + seconds * 1000)
        await settle(500) // what is in flight arrives (the server's window ends at the last message, not here)
        server.tell('report')
        const received = await result(server, 10_000)
        return { ...received, details: { sent: sent.packets, senderSeconds: sent.seconds, senderCpuUs: sent.cpuUs } }
      } finally {
        cleanup()
      }
    }
    if (only.has('messages')) await attempt('volleyMessages', messages('native'))
    if (only.has('messages')) await attempt('fallbackMessages', messages('fallback'))
    // The two pings of a round take turns at going first: a machine whose noise comes and goes by the
    // minute would otherwise favour the one that always ran second, or first.
    const pingCases = [
      () => attempt('volleyPing', () => serverAndClient('volley-side.ts', ['--scenario', 'ping'], [], ['--count', String(pings), '--warmup', String(warmup)], 'client', 120_000)),
      () => attempt('dgramPing', () => serverAndClient('dgram-ping.ts', [], [], ['--count', String(pings), '--warmup', String(warmup)], 'client', 120_000)),
    ]
    if (only.has('ping')) for (const run of round % 2 === 1 ? pingCases : pingCases.reverse()) await run()
  }

  const mbps = (side: Side): number => (side.bytes / side.seconds / 1e6) * 8
  const rtt = (side: Side, p: number): number => percentile((side.details.rttsUs as number[] | undefined) ?? [], p)
  const summary = {
    bulk: {
      volleyMbps: median(runs.volleyBulk!.map(mbps)),
      udxMbps: median(runs.udxBulk!.map(mbps)),
      volleyCpuPerMiB: median(runs.volleyBulk!.map((side) => side.cpuUs / (side.bytes / 2 ** 20))),
      udxCpuPerMiB: median(runs.udxBulk!.map((side) => side.cpuUs / (side.bytes / 2 ** 20))),
      fallbackMbps: median(runs.fallbackBulk!.map(mbps)),
      fallbackCpuPerMiB: median(runs.fallbackBulk!.map((side) => side.cpuUs / (side.bytes / 2 ** 20))),
    },
    messagesPerSecond: median(runs.volleyMessages!.map((side) => side.packets / side.seconds)),
    fallbackMessagesPerSecond: median(runs.fallbackMessages!.map((side) => side.packets / side.seconds)),
    ping: {
      volleyP50Us: median(runs.volleyPing!.map((side) => rtt(side, 0.5))),
      volleyP99Us: median(runs.volleyPing!.map((side) => rtt(side, 0.99))),
      dgramP50Us: median(runs.dgramPing!.map((side) => rtt(side, 0.5))),
      dgramP99Us: median(runs.dgramPing!.map((side) => rtt(side, 0.99))),
      // Each round runs both pings, one right after the other: the gap of each such pair. The target takes
      // their median (a round's two sides ran in the same minute; the medians of each side over the rounds
      // could pair a quiet minute of one with a noisy one of the other).
      p99GapsByRoundUs:
        runs.volleyPing!.length === runs.dgramPing!.length ? runs.volleyPing!.map((side, i) => rtt(side, 0.99) - rtt(runs.dgramPing![i]!, 0.99)) : [],
    },
  }
  const bulkRatio = ratio(summary.bulk.volleyMbps, summary.bulk.udxMbps)
  const p99Gap = summary.ping.p99GapsByRoundUs.length > 0 ? median(summary.ping.p99GapsByRoundUs) : summary.ping.volleyP99Us - summary.ping.dgramP99Us
  const targets = [
    { what: 'reliable bulk throughput, volley (encrypted) ÷ udx-native stream (unencrypted)', value: bulkRatio, target: '≥ 1×', met: Number.isFinite(bulkRatio) ? bulkRatio >= 1 : null },
    { what: 'ping RTT p99, volley − node:dgram echo', value: p99Gap, target: '≤ 50 µs', met: Number.isFinite(p99Gap) ? p99Gap <= 50 : null },
  ]
  const out: string[] = []
  out.push(`## volley delivery benchmark, ${system.date.slice(0, 16).replace('T', ' ')} UTC${quick ? ' (quick)' : ''}`)
  out.push('')
  out.push(`node ${system.node} · ${system.cpuModel}, ${system.cpus} CPUs · loopback · ${pin ? 'receiving side on CPU 1, sending side on CPU 0' : 'not pinned'} · medians of ${repeats}`)
  out.push('')
  out.push(
    table(
      ['measure', 'volley', 'baseline', 'ratio'],
      [
        [`bulk ${totalMiB} MiB, reliable, 64 KiB writes`, `${summary.bulk.volleyMbps.toFixed(0)} Mbit/s (${microseconds(summary.bulk.volleyCpuPerMiB)} µs CPU/MiB at the receiver, encrypted)`, `udx-native stream: ${summary.bulk.udxMbps.toFixed(0)} Mbit/s (${microseconds(summary.bulk.udxCpuPerMiB)} µs CPU/MiB, unencrypted)`, times(bulkRatio)],
        [`bulk ${totalMiB} MiB on the fallback engine`, '', `volley's fallback (the delivery layer as WebAssembly on node:dgram): ${summary.bulk.fallbackMbps.toFixed(0)} Mbit/s (${microseconds(summary.bulk.fallbackCpuPerMiB)} µs CPU/MiB)`, `native ${times(ratio(summary.bulk.volleyMbps, summary.bulk.fallbackMbps))}`],
        [`100 B reliable messages, ${seconds} s`, `${Math.round(summary.messagesPerSecond).toLocaleString('en-US')} messages/s delivered`, `fallback engine: ${Math.round(summary.fallbackMessagesPerSecond).toLocaleString('en-US')} messages/s`, `native ${times(ratio(summary.messagesPerSecond, summary.fallbackMessagesPerSecond))}`],
        [`ping RTT, ${pings} sequential 64 B round trips after ${warmup} unmeasured (p50 / p99)`, `${microseconds(summary.ping.volleyP50Us)} / ${microseconds(summary.ping.volleyP99Us)} µs`, `node:dgram echo: ${microseconds(summary.ping.dgramP50Us)} / ${microseconds(summary.ping.dgramP99Us)} µs`, `p99 ${p99Gap >= 0 ? '+' : ''}${microseconds(p99Gap)} µs`],
      ],
      'llll',
    ),
  )
  out.push('')
  for (const target of targets) out.push(`- ${target.what}: ${Number.isFinite(target.value) ? target.value.toFixed(2) : '–'} (target ${target.target}): ${target.met === null ? 'not measured' : target.met ? 'met' : 'NOT met'}`)
  if (summary.ping.p99GapsByRoundUs.length > 1) {
    out.push(`- ping RTT p99 gap of each round (the two pings one right after the other, volley's first in odd rounds; the target takes their median): ${summary.ping.p99GapsByRoundUs.map((gap) => `${gap >= 0 ? '+' : '−'}${Math.abs(gap).toFixed(0)}`).join(', ')} µs`)
  }
  for (const failure of failures) out.push(`- FAILED: ${failure}`)
  console.log(out.join('\n'))
  const complete = failures.length === 0 && only.size === cases.length && totalMiB >= 256 && seconds >= 5 && pings >= 5000 && warmup >= 3000 && repeats >= 3
  const record = { schema: 1, benchmark: 'delivery', quick, complete, failed: failures.length > 0, options: { totalMiB, seconds, pings, warmup, repeats }, system, seconds: (performance.now() - started) / 1000, summary, targets, failures, runs }
  const written = writeResults('delivery', record, system.date, { quick, complete })
  log(resultsLine(written, quick))
  return failures.length > 0 ? 1 : 0
}

runMain('bench:delivery', main)
