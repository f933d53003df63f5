// Command line of `npm run bench:sessions` (after `--`), e.g. `npm run bench:sessions -- --quick`.
import { UsageError, numberArgument, parseCommandLine } from '../../src/cli/arguments.ts'
import type { Pinning } from './options.ts'

export interface SessionsOptions {
  quick: boolean
  pin: Pinning
  /** Fan-out: devices behind the gateway, one controller (one connection) each. */
  devices: number
  /** Subscriptions per device (one per feature), and the attributes each follows. */
  subscriptions: number
  attributes: number
  /** Changes a second of each attribute. */
  changeRate: number
  minIntervalMs: number
  maxIntervalMs: number
  /** Controller processes (the devices split between them). */
  controllerProcesses: number
  /** Handshakes in flight at a time, and controllers subscribing at a time. */
  concurrency: number
  /** Volley's keep-alive and RTT ping period, both sides of the fan-out. */
  keepAliveMs: number
  /** Seconds with the connections up and no subscriptions: the baselines (no changes, then changes). */
  baselineSeconds: number
  /** Seconds from the last subscription to the measured window: the first windows close meanwhile. */
  settleSeconds: number
  /** The measured steady window, seconds. */
  windowSeconds: number
  /** Pairs: requests outstanding at a time; seconds per run; rounds (each a MASH run and an echo run). */
  pairWindow: number
  pairSeconds: number
  rounds: number
  skipFanOut: boolean
  skipPairs: boolean
  /** Write latest-sessions.json and a line of sessions-history.jsonl (not for a quick run). */
  write: boolean
  /** A folder for CPU profiles (node --cpu-prof) of the processes under test: the gateway, the pair server and the memory pairs. */
  cpuProfileDir: string | undefined
}

export const sessionsUsage = `usage: npm run bench:sessions -- [options]
  --quick                 smoke run (~1 min): 500 devices, 3 s windows, 2 rounds of 1 s pairs; writes no
                          result file (also BENCH_QUICK=1)
  fan-out (scenario A): a gateway process with --devices MashDevices, controllers in another process
  --devices=N             devices, and controllers, one connection each (default 10000)
  --subscriptions=N       subscriptions per device, one per feature (default 5)
  --attributes=N          attributes per subscription (default 10)
  --change-rate=N         changes a second of each attribute (default 1)
  --min-interval-ms=N     the subscriptions' minInterval (default 1000) and
  --max-interval-ms=N     maxInterval (default 60000, MASH's)
  --controller-processes=N  processes the controllers are split between (default 1)
  --concurrency=N         handshakes in flight, and controllers subscribing, at a time (default 256)
  --keep-alive-ms=N       Volley's keep-alive and RTT ping period on both sides (default 1000)
  --baseline=S            seconds of each baseline: connected and idle, then changes without subscriptions
                          (default 5, quick 2)
  --settle=S              seconds between the last subscription and the measured window (default 3, quick 2)
  --window=S              the measured window (default 10, quick 3)
  request/response (scenario B): MASH reads against a bare reliable-channel echo, same connection
  --pair-window=N         requests outstanding at a time (default 32)
  --pair-seconds=S        seconds per run (default 3, quick 1)
  --rounds=N              rounds, each a MASH run and an echo run, in alternating order (default 5, quick 2)
  --pin=split|none        split (default when taskset works): gateway/server on CPU 1, controllers/client on CPU 0
  --no-fan-out            skip scenario A
  --no-pairs              skip scenario B
  --no-write              write no result file
  --cpu-prof=DIR          CPU profiles (node --cpu-prof) of the gateway, the pair server and the in-memory
                          pairs, written to DIR as they exit
  --help`

export function parseSessionsOptions(argv: readonly string[], env: NodeJS.ProcessEnv, canPin: boolean): SessionsOptions | 'help' {
  const { values } = parseCommandLine({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      devices: { type: 'string' },
      subscriptions: { type: 'string' },
      attributes: { type: 'string' },
      'change-rate': { type: 'string' },
      'min-interval-ms': { type: 'string' },
      'max-interval-ms': { type: 'string' },
      'controller-processes': { type: 'string' },
      concurrency: { type: 'string' },
      'keep-alive-ms': { type: 'string' },
      baseline: { type: 'string' },
      settle: { type: 'string' },
      window: { type: 'string' },
      'pair-window': { type: 'string' },
      'pair-seconds': { type: 'string' },
      rounds: { type: 'string' },
      pin: { type: 'string' },
      'no-fan-out': { type: 'boolean', default: false },
      'no-pairs': { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) return 'help'
  const quick = values.quick === true || (env.BENCH_QUICK !== undefined && env.BENCH_QUICK !== '' && env.BENCH_QUICK !== '0')
  const pin = values.pin ?? (canPin ? 'split' : 'none')
  if (pin !== 'split' && pin !== 'none') throw new UsageError(`--pin must be split or none, not '${pin}'`)
  if (pin === 'split' && !canPin) throw new UsageError('--pin=split needs taskset and at least 2 CPUs')
  const minIntervalMs = integerOption('min-interval-ms', values['min-interval-ms'], 1000, 0, 3_600_000)
  const maxIntervalMs = integerOption('max-interval-ms', values['max-interval-ms'], 60_000, 1, 3_600_000)
  if (minIntervalMs > maxIntervalMs) throw new UsageError(`--min-interval-ms (${minIntervalMs}) must not be above --max-interval-ms (${maxIntervalMs})`)
  return {
    quick,
    pin,
    devices: integerOption('devices', values.devices, quick ? 500 : 10_000, 1, 60_000),
    subscriptions: integerOption('subscriptions', values.subscriptions, 5, 1, 50),
    attributes: integerOption('attributes', values.attributes, 10, 1, 100),
    changeRate: numberOption('change-rate', values['change-rate'], 1, 0.01, 100),
    minIntervalMs,
    maxIntervalMs,
    controllerProcesses: integerOption('controller-processes', values['controller-processes'], 1, 1, 8),
    concurrency: integerOption('concurrency', values.concurrency, 256, 1, 60_000),
    keepAliveMs: integerOption('keep-alive-ms', values['keep-alive-ms'], 1000, 1, 60_000),
    baselineSeconds: numberOption('baseline', values.baseline, quick ? 2 : 5, 0.5, 600),
    settleSeconds: numberOption('settle', values.settle, quick ? 2 : 3, 0, 600),
    windowSeconds: numberOption('window', values.window, quick ? 3 : 10, 0.5, 3600),
    pairWindow: integerOption('pair-window', values['pair-window'], 32, 1, 10_000),
    pairSeconds: numberOption('pair-seconds', values['pair-seconds'], quick ? 1 : 3, 0.1, 600),
    rounds: integerOption('rounds', values.rounds, quick ? 2 : 5, 1, 50),
    skipFanOut: values['no-fan-out'] === true,
    skipPairs: values['no-pairs'] === true,
    write: !quick && values['no-write'] !== true,
    cpuProfileDir: values['cpu-prof'],
  }
}

function numberOption(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  return numberArgument(name, text, fallback, { min, max })
}

function integerOption(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  return numberArgument(name, text, fallback, { integer: true, min, max })
}
