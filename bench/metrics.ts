// `npm run bench:metrics`: what reading a server's metrics costs at 10,000 connected peers. A Server with
// channels in this process, its clients in another (bench/lib/metrics-load.ts, a ClientPool), each peer sent a
// message once so that it has a loss ratio as well as an RTT; keep-alives and pings once a second. Three
// readings: a ServerMetrics snapshot alone, a Prometheus scrape (registry.metrics() of a prom-client registry,
// snapshot included) and an OpenTelemetry collection (an SDK MetricReader's collect(), snapshot included).
//   wall: turn by turn, 50 of each 20 ms apart (after 5 of each to warm up): median and p99 (nearest rank).
//   CPU: then 50 of each back to back: the JavaScript thread's CPU time over them (/proc's schedstat, which
//        moves at the scheduler's ticks: over a batch, not a reading), and the whole process's (getrusage:
//        with the engine's I/O thread, busy with the peers' keep-alives meanwhile), each ÷ 50.
// And the size of a scrape's text. Unpinned.
//
//   npm run bench:metrics                 full run: 10,000 peers, 50 readings of each
//   npm run bench:metrics -- --quick      CI smoke: 500 peers, 10 readings of each (also BENCH_QUICK=1)
//
// Results: bench/results/latest-metrics.json and a line in bench/results/metrics-history.jsonl (a quick run:
// bench/results/latest-metrics-quick.json, not committed).
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { Registry } from 'prom-client'
import { Server } from '../src/index.ts'
import { ServerMetrics, metricFamilies } from '../src/metrics/index.ts'
import { registerOpenTelemetryMetrics } from '../src/metrics/opentelemetry.ts'
import { registerPrometheusMetrics } from '../src/metrics/prometheus.ts'
import { table } from './lib/format.ts'
import { currentCommit, runStamp } from './lib/history-lines.ts'
import { quickRun } from './lib/options.ts'
import { benchDir, resultText, root, runMain } from './lib/runner.ts'
import { median, percentile } from './lib/statistics.ts'
import { systemInfo } from './lib/system.ts'

/** Keep-alives and pings, ms: every peer sends and answers once a second. */
const intervalMs = 1000
const protocolId = 0x6d65n
const warmUps = 5
/** The issue's bar, "cheap enough to scrape a 10,000-peer server every second": at most 1 % of a core, ms per scrape. */
const scrapeCpuTargetMs = 10
/** Between readings: the event loop's other work (the server's records) gets its turn. */
const pauseMs = 20

/** A reader that collects when asked. */
class OnDemandReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** The JavaScript thread's CPU time so far, ns (/proc's schedstat of the main thread, whose id is the process's). */
const schedstat = `/proc/self/task/${process.pid}/schedstat`
function threadCpuNs(): number {
  return Number(readFileSync(schedstat, 'utf8').split(' ')[0])
}

async function wallMs(read: () => unknown): Promise<number> {
  const wall = performance.now()
  await read()
  return performance.now() - wall
}

interface Cost {
  wallMs: { median: number; p99: number }
  /** CPU per reading, ms: the JavaScript thread's, and the process's (every thread). */
  cpuMs: { thread: number; process: number }
}

/** CPU per reading over `count` readings back to back. */
async function cpuPerReading(read: () => unknown, count: number): Promise<Cost['cpuMs']> {
  const thread = threadCpuNs()
  const process0 = process.cpuUsage()
  for (let i = 0; i < count; i++) await read()
  const used = process.cpuUsage(process0)
  return { thread: (threadCpuNs() - thread) / 1e6 / count, process: (used.user + used.system) / 1000 / count }
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } }, strict: true })
  const quick = quickRun(values.quick, process.env)
  const peers = quick ? 500 : 10_000
  const readings = quick ? 10 : 50
  const system = systemInfo(root)
  const log = (line: string): void => void process.stderr.write(`${line}\n`)
  log(`bench:metrics: ${peers} peers, ${readings} readings of each; ${system.node}, ${system.cpuModel}`)

  const key = randomBytes(32)
  const server = new Server({ protocolId, privateKey: new Uint8Array(key), address: '127.0.0.1:0', maxClients: peers, channels: [{ mode: 'reliable' }], keepAliveIntervalMs: intervalMs, pingIntervalMs: intervalMs })
  const { port } = await server.listen()
  const registry = new Registry()
  const prometheus = registerPrometheusMetrics(server, { registry })
  const reader = new OnDemandReader()
  const provider = new MeterProvider({ readers: [reader] })
  const opentelemetry = registerOpenTelemetryMetrics(server, { meter: provider.getMeter('volley-bench') })
  const snapshots = new ServerMetrics(server)

  const started = performance.now()
  const load = spawn(
    process.execPath,
    ['--import', 'tsx', join('bench', 'lib', 'metrics-load.ts'), '--server', `127.0.0.1:${port}`, '--key', key.toString('hex'), '--protocol-id', String(protocolId), '--clients', String(peers), '--interval-ms', String(intervalMs)],
    { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] },
  )
  try {
    const connected = await new Promise<{ connected: number; failed: number; ms: number }>((resolve, reject) => {
      load.once('exit', (code) => reject(new Error(`the load process exited (${code}) before its clients connected`)))
      createInterface({ input: load.stdout! }).once('line', (line) => resolve(JSON.parse(line) as { connected: number; failed: number; ms: number }))
    })
    if (connected.connected !== peers) throw new Error(`${connected.connected} of ${peers} clients connected: ${JSON.stringify(connected)}`)
    log(`connected ${peers} clients in ${(connected.ms / 1000).toFixed(1)} s`)
    // One message to each peer: a loss ratio needs a packet that asks for an acknowledgement. Then a few
    // pings each, for their RTT.
    const hello = new Uint8Array([1])
    for (const peer of server.peers.values()) peer.send(hello)
    await pause(3 * intervalMs)
    const first = snapshots.snapshot()
    const measured = { rtt: first.distributions.peer_rtt_seconds?.count ?? 0, loss: first.distributions.peer_loss_ratio?.count ?? 0 }
    if (server.peers.size !== peers || measured.rtt !== peers || measured.loss !== peers) {
      throw new Error(`${server.peers.size} peers, ${measured.rtt} with an RTT and ${measured.loss} with a loss ratio; ${peers} expected`)
    }

    const cases = {
      snapshot: () => snapshots.snapshot(),
      prometheus: () => registry.metrics(),
      opentelemetry: () => reader.collect(),
    } as const
    const names = Object.keys(cases) as (keyof typeof cases)[]
    const taken: Record<keyof typeof cases, number[]> = { snapshot: [], prometheus: [], opentelemetry: [] }
    for (let round = 0; round < warmUps + readings; round++) {
      for (const name of names) {
        const ms = await wallMs(cases[name])
        if (round >= warmUps) taken[name].push(ms)
        await pause(pauseMs)
      }
    }
    const cost = {} as Record<keyof typeof cases, Cost>
    for (const name of names) {
      cost[name] = { wallMs: { median: median(taken[name]), p99: percentile(taken[name], 0.99) }, cpuMs: await cpuPerReading(cases[name], readings) }
      await pause(pauseMs)
    }
    const text = await registry.metrics()
    const collected = await reader.collect()
    const dataPoints = collected.resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics).reduce((sum, metric) => sum + metric.dataPoints.length, 0)
    const connectedLine = /^volley_connected_peers (\d+)$/m.exec(text)?.[1]
    if (Number(connectedLine) !== peers) throw new Error(`the scrape says ${connectedLine} connected peers, not ${peers}`)
    // Every documented family is in the scrape (the server has channels: none is left out).
    const missing = metricFamilies.filter((family) => !text.includes(`\n# TYPE volley_${family.name} `))
    if (missing.length > 0) throw new Error(`the scrape lacks ${missing.map((family) => `volley_${family.name}`).join(', ')}`)

    const results = {
      snapshot: cost.snapshot,
      prometheus: { ...cost.prometheus, textBytes: Buffer.byteLength(text), lines: text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length },
      opentelemetry: { ...cost.opentelemetry, dataPoints },
    }
    const ms = (value: number): string => `${value.toFixed(2)} ms`
    const row = (name: string, result: Cost, size: string): string[] => [
      name,
      ms(result.wallMs.median),
      ms(result.wallMs.p99),
      ms(result.cpuMs.thread),
      ms(result.cpuMs.process),
      `${((result.cpuMs.thread / 1000) * 100).toFixed(2)} %`,
      `${((result.cpuMs.thread * 1000) / peers).toFixed(3)} µs`,
      size,
    ]
    console.log(`\nmetrics of a server with ${peers.toLocaleString('en-US')} peers: wall time of ${readings} readings 20 ms apart (median, p99 by nearest rank); CPU per reading over ${readings} back to back\n`)
    console.log(
      table(
        ['reading', 'wall median', 'wall p99', 'CPU (JS thread)', 'CPU (process)', 'JS thread at 1 reading/s', 'per peer', 'size'],
        [
          row('ServerMetrics.snapshot()', results.snapshot, '–'),
          row('Prometheus: registry.metrics()', results.prometheus, `${results.prometheus.textBytes.toLocaleString('en-US')} B, ${results.prometheus.lines} series lines`),
          row('OpenTelemetry: reader.collect()', results.opentelemetry, `${results.opentelemetry.dataPoints} data points`),
        ],
        'lrrrrrrl',
      ),
    )
    const scrapeCpu = results.prometheus.cpuMs.thread
    const met = scrapeCpu <= scrapeCpuTargetMs
    console.log(`\ntarget: a Prometheus scrape of ${peers.toLocaleString('en-US')} peers costs the JavaScript thread ≤ ${scrapeCpuTargetMs} ms (1 % of a core at one scrape a second): ${met ? 'met' : 'NOT met'} (${ms(scrapeCpu)})`)
    const targets = [{ what: `Prometheus scrape of ${peers} peers: JavaScript thread CPU per scrape`, value: scrapeCpu, unit: 'ms', target: `≤ ${scrapeCpuTargetMs}`, met }]
    const seconds = (performance.now() - started) / 1000
    const record = {
      schema: 1,
      benchmark: 'metrics',
      quick,
      options: { peers, readings, warmUps, intervalMs, pauseMs, channels: ['reliable'] },
      system,
      commit: currentCommit(root) ?? null,
      seconds,
      connect: connected,
      results,
      summary: { targets },
      wallSamplesMs: taken,
    }
    const stamp = runStamp(system.date)
    const dir = join(benchDir, 'results')
    if (quick) {
      writeFileSync(join(dir, 'latest-metrics-quick.json'), resultText(record))
      log('results: bench/results/latest-metrics-quick.json')
    } else {
      writeFileSync(join(dir, 'latest-metrics.json'), resultText(record))
      const figures = {
        peers,
        snapshotWallMs: results.snapshot.wallMs.median,
        prometheusWallMs: results.prometheus.wallMs.median,
        prometheusWallP99Ms: results.prometheus.wallMs.p99,
        prometheusCpuMs: results.prometheus.cpuMs.thread,
        prometheusTextBytes: results.prometheus.textBytes,
        opentelemetryWallMs: results.opentelemetry.wallMs.median,
        opentelemetryWallP99Ms: results.opentelemetry.wallMs.p99,
        opentelemetryCpuMs: results.opentelemetry.cpuMs.thread,
      }
      const line = {
        stamp,
        commit: record.commit,
        cpu: system.cpuModel,
        kernel: system.kernel,
        complete: true,
        failed: false,
        figures,
        targets: { prometheusScrapeCpu: { value: scrapeCpu, met } },
      }
      appendFileSync(join(dir, 'metrics-history.jsonl'), `${JSON.stringify(line)}\n`)
      log('results: bench/results/latest-metrics.json, a line in bench/results/metrics-history.jsonl')
    }
    log(`${seconds.toFixed(1)} s`)
    return 0
  } finally {
    prometheus.close()
    opentelemetry.close()
    snapshots.close()
    await provider.shutdown()
    // Closing its stdin closes the clients; a process that does not go is killed.
    load.stdin!.end()
    const exited = new Promise((resolve) => load.once('exit', resolve))
    if ((await Promise.race([exited, pause(10_000).then(() => 'late')])) === 'late') load.kill('SIGKILL')
    await server.close()
  }
}

runMain('bench:metrics', main)
