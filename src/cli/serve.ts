// volley serve: an echo server (or --workers of them on one port), a JSON line for each thing that happens
// (listening, status, error, stopped) on stdout, /metrics and /healthz where asked, and a graceful stop at
// --seconds, SIGINT or SIGTERM: the clients are told, and the stop reported.
import type { MetricSample, MetricSnapshot } from '../metrics/index.ts'
import { engineInUse } from '../api/native-info.ts'
import { interruption } from './arguments.ts'
import { EchoServer, type ServerErrorReport, type StoppedReport } from './echo-server.ts'
import { type Health, MetricsEndpoint, loadPrometheus } from './metrics-endpoint.ts'
import type { ServeRun } from './serve-config.ts'
import { ServeWorkers } from './serve-workers.ts'

/** What serve runs on: one server in this thread, or workers. */
interface Serving {
  port: number
  publicAddress: string | null
  engine: 'native' | 'fallback'
  workers: number
  snapshot(): MetricSnapshot | Promise<MetricSnapshot>
  /** Stops the servers (they disconnect their clients) and gives the 'stopped' line's fields. */
  stop(): Promise<object>
}

function printLine(line: object): void {
  console.log(JSON.stringify(line))
}

/** One server, in this thread. */
async function serveHere(run: ServeRun): Promise<Serving> {
  const echo = new EchoServer(run.server, printLine)
  const { port } = await echo.listen()
  return {
    port,
    publicAddress: echo.server.publicAddress,
    engine: engineInUse().engine,
    workers: 1,
    snapshot: () => echo.metrics.snapshot(),
    stop: () => echo.stop(),
  }
}

/** --workers N: N servers on one port, a worker thread each. onFailure: a worker that ended while serving. */
async function serveInWorkers(run: ServeRun, onFailure: (error: Error) => void): Promise<Serving> {
  const workers = await ServeWorkers.start(run.workers, run.server, (worker: number, report: ServerErrorReport) => printLine({ ...report, worker }), onFailure)
  return {
    port: workers.listening.port,
    publicAddress: workers.listening.publicAddress,
    engine: workers.listening.engine,
    workers: workers.count,
    snapshot: () => workers.snapshot(),
    stop: async () => {
      const reports = await workers.stop()
      const sum = (field: 'connectedAtStop' | 'echoesRefused'): number => reports.reduce((total, report: StoppedReport) => total + report[field], 0)
      return { connectedAtStop: sum('connectedAtStop'), echoesRefused: sum('echoesRefused'), workers: reports }
    },
  }
}

/** The sum of a family's samples in a snapshot (0 where it has none). */
function total(snapshot: MetricSnapshot, family: keyof MetricSnapshot['samples']): number {
  return (snapshot.samples[family] ?? []).reduce((sum: number, sample: MetricSample) => sum + sample.value, 0)
}

/** Runs serve until --seconds, SIGINT or SIGTERM, then exits: 0 once stopped, 1 when a worker failed. */
export async function runServe(run: ServeRun): Promise<void> {
  // Listened for from the start: a SIGTERM that comes as soon as 'listening' is printed (a supervisor's, a
  // test's) would otherwise find no handler yet and end the process by its default action, unreported.
  const interrupted = interruption()
  // Before any socket: without prom-client, serve fails as it starts, not at the first scrape.
  const prometheus = run.metrics === undefined ? undefined : await loadPrometheus(run.metrics.from)
  // A worker that ended while serving stops the others: serve does not run on with part of its capacity.
  let workerFailure: Error | undefined
  const failed = new AbortController()
  const serving =
    run.workers > 1
      ? await serveInWorkers(run, (error) => {
          workerFailure ??= error
          failed.abort()
        })
      : await serveHere(run)
  let stopping = false
  let connectedAtStop = 0
  const health = async (): Promise<Health> => ({
    status: stopping ? 'stopping' : 'listening',
    engine: serving.engine,
    workers: serving.workers,
    connectedClients: stopping ? connectedAtStop : total(await serving.snapshot(), 'connected_peers'),
  })
  let endpoint: MetricsEndpoint | undefined
  if (run.metrics !== undefined && prometheus !== undefined) {
    try {
      endpoint = await MetricsEndpoint.start(run.metrics, prometheus, () => serving.snapshot(), health)
    } catch (error) {
      await serving.stop()
      throw error
    }
  }
  printLine({
    event: 'listening',
    port: serving.port,
    publicAddress: serving.publicAddress,
    protocolId: `0x${run.server.protocolId.toString(16)}`,
    pid: process.pid,
    ...(serving.workers > 1 ? { workers: serving.workers } : {}),
    ...(endpoint === undefined || run.metrics === undefined ? {} : { metricsAddress: hostPort(run.metrics.host, endpoint.port) }),
  })
  const status = run.statusIntervalSeconds > 0 ? statusLines(serving, run.statusIntervalSeconds) : undefined
  // Stops once, at --seconds, the first SIGINT / SIGTERM or a worker's failure: close() sends the redundant
  // disconnects for about a second, and the Ctrl-C that npm or a shell relays must not kill the process
  // meanwhile (a once-listener left the relayed signal to its default action: no report, disconnects cut short).
  let stopCalled = false
  const stop = async (): Promise<void> => {
    if (stopCalled) return
    stopCalled = true
    clearInterval(status)
    connectedAtStop = total(await Promise.resolve(serving.snapshot()).catch(() => ({ samples: {}, distributions: {} })), 'connected_peers')
    stopping = true // /healthz says 503 from here on: a load balancer takes the server out while its clients are told
    const stopped = await serving.stop()
    printLine({ event: 'stopped', ...stopped })
    await endpoint?.close()
    if (workerFailure !== undefined) console.error(`volley: ${workerFailure.message}`)
    process.exit(workerFailure === undefined ? 0 : 1)
  }
  const ended = AbortSignal.any([interrupted, failed.signal])
  if (ended.aborted) void stop()
  else ended.addEventListener('abort', () => void stop(), { once: true })
  if (run.seconds > 0) setTimeout(() => void stop(), run.seconds * 1000)
}

/** 'host:port', an IPv6 host in brackets. */
function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/**
 * A status line every `seconds`: clients connected, datagrams a second in and out, and the drops since the
 * line before (all causes), from the same snapshot as /metrics (the workers' sum, with --workers).
 */
function statusLines(serving: Serving, seconds: number): NodeJS.Timeout {
  let last = { at: performance.now(), in: 0, out: 0, drops: 0 } // the first line: since the server started
  const take = async (): Promise<void> => {
    const snapshot = await serving.snapshot()
    const now = { at: performance.now(), in: total(snapshot, 'received_packets_total'), out: total(snapshot, 'sent_packets_total'), drops: total(snapshot, 'drops_total') }
    const since = last
    const elapsed = (now.at - since.at) / 1000
    last = now
    printLine({
      event: 'status',
      connected: total(snapshot, 'connected_peers'),
      packetsPerSecond: { in: Math.round((now.in - since.in) / elapsed), out: Math.round((now.out - since.out) / elapsed) },
      drops: now.drops - since.drops,
      engine: serving.engine,
    })
  }
  return setInterval(() => void take().catch((error: Error) => printLine({ event: 'error', message: `status: ${error.message}` })), seconds * 1000)
}
