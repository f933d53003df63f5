// Command line of `npm run bench:connections` (after `--`), e.g. `npm run bench:connections -- --quick`.
import { parseArgs } from 'node:util'
import { type Pinning, quickRun } from './options.ts'

export interface ConnectionsOptions {
  quick: boolean
  pin: Pinning
  /** Phase 0: clients that connect (twice: to a fresh server, then again after leaving), keep-alives off. */
  handshakeClients: number
  /** Phase 0's clients: the C++ handshake load (default) or the ClientPool. */
  handshakeLoad: 'native' | 'pool'
  skipHandshakes: boolean
  /** Phases 1 and 2: clients that connect, then stay connected for holdSeconds. */
  clients: number
  concurrency: number
  holdSeconds: number
  /** Connection timeout written into the connect tokens (seconds without packets). */
  timeoutSeconds: number
  /** Keep-alive period of the server and of every client, ms (the library's default: 100, 10 Hz). */
  keepAliveMs: number
  /** Phase 3: payloads per second in total, spread over payloadClients; sending time per run. */
  rate: number
  payloadClients: number
  payloadSeconds: number
  /** Phase 3: time with the payload clients connected but silent (keep-alives only), before sending. */
  baselineSeconds: number
  /** Phase 3: the senders' tick: every tick sends what is due by then. */
  tickUs: number
  repeats: number
  skipConnect: boolean
  skipPayload: boolean
}

export const connectionsUsage = `usage: npm run bench:connections -- [options]
  --quick                 CI smoke run: 1,000 clients, 5 s hold, 2 s of payloads, 1 repeat (also BENCH_QUICK=1)
  --handshake-clients=N   phase 0: clients that connect to a fresh server, leave, and connect again, with
                          keep-alives every 10 s so that only handshakes are measured (default 30,000,
                          quick 1,000: about half a second at the server's rate, each time)
  --handshake-load=native|pool
                          phase 0's clients and phase 3's volley senders: the C++ load (default; it
                          connects faster than the server, and sends payloads in the bursts of node:dgram's
                          C sender), or a ClientPool in node (then the load generator sets the rates)
  --no-handshakes         skip phase 0
  --clients=N             clients that connect and stay connected (default 10000, quick 1000)
  --concurrency=N         handshakes in flight at a time (default 256, ClientPool's default)
  --hold=S                seconds the clients stay connected, idle (default 60, quick 5)
  --timeout=S             connection timeout in the connect tokens (default 10, as \`volley load\`)
  --keep-alive-ms=N       keep-alive period of the server and the clients (default 100, the library's 10 Hz)
  --rate=N                payloads per second in total, phase 3 (default 100000)
  --payload-clients=N     clients that send them (default 1000)
  --payload-seconds=S     sending time per run (default 5, quick 2)
  --baseline-seconds=S    keep-alive-only time before sending, to show the idle cost (default 2, quick 1)
  --tick-us=N             sending tick of both senders (default 10000: bursts every 10 ms)
  --repeats=N             phase 0: fresh servers, one after the other (each a cold and a warm round);
                          phase 3: runs per receiver, interleaved; medians reported (default 3, quick 1)
  --pin=split|none        split (default when taskset works): server/receiver on CPU 1, load on CPU 0
  --no-connect            skip phases 1 and 2
  --no-payload            skip phase 3
  --help`

export function parseConnectionsOptions(argv: readonly string[], env: NodeJS.ProcessEnv, canPin: boolean): ConnectionsOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      clients: { type: 'string' },
      'handshake-clients': { type: 'string' },
      'no-handshakes': { type: 'boolean', default: false },
      'handshake-load': { type: 'string' },
      concurrency: { type: 'string' },
      hold: { type: 'string' },
      timeout: { type: 'string' },
      'keep-alive-ms': { type: 'string' },
      rate: { type: 'string' },
      'payload-clients': { type: 'string' },
      'payload-seconds': { type: 'string' },
      'baseline-seconds': { type: 'string' },
      'tick-us': { type: 'string' },
      repeats: { type: 'string' },
      pin: { type: 'string' },
      'no-connect': { type: 'boolean', default: false },
      'no-payload': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  })
  if (values.help) return 'help'
  const quick = quickRun(values.quick, env)
  const pin = values.pin ?? (canPin ? 'split' : 'none')
  if (pin !== 'split' && pin !== 'none') throw new Error(`--pin must be split or none, got ${pin}`)
  if (pin === 'split' && !canPin) throw new Error('--pin=split needs taskset and at least 2 CPUs')
  return {
    quick,
    pin,
    clients: integerOption('clients', values.clients, quick ? 1000 : 10_000, 1, 60_000),
    handshakeClients: integerOption('handshake-clients', values['handshake-clients'], quick ? 1000 : 30_000, 1, 60_000),
    handshakeLoad: handshakeLoad(values['handshake-load']),
    skipHandshakes: values['no-handshakes'] === true,
    concurrency: integerOption('concurrency', values.concurrency, 256, 1, 60_000),
    holdSeconds: numberOption('hold', values.hold, quick ? 5 : 60, 0.5, 3600),
    timeoutSeconds: integerOption('timeout', values.timeout, 10, 1, 600),
    keepAliveMs: integerOption('keep-alive-ms', values['keep-alive-ms'], 100, 1, 60_000),
    rate: integerOption('rate', values.rate, 100_000, 1, 10_000_000),
    payloadClients: integerOption('payload-clients', values['payload-clients'], 1000, 1, 60_000),
    payloadSeconds: numberOption('payload-seconds', values['payload-seconds'], quick ? 2 : 5, 0.2, 600),
    baselineSeconds: numberOption('baseline-seconds', values['baseline-seconds'], quick ? 1 : 2, 0.2, 600),
    tickUs: integerOption('tick-us', values['tick-us'], 10_000, 100, 1_000_000),
    repeats: integerOption('repeats', values.repeats, quick ? 1 : 3, 1, 50),
    skipConnect: values['no-connect'] === true,
    skipPayload: values['no-payload'] === true,
  }
}

function handshakeLoad(text: string | undefined): 'native' | 'pool' {
  if (text === undefined || text === 'native' || text === 'pool') return text ?? 'native'
  throw new Error(`--handshake-load must be native or pool, got ${text}`)
}

function numberOption(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value < min || value > max) throw new Error(`--${name} must be a number from ${min} to ${max}, got ${text}`)
  return value
}

function integerOption(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  const value = numberOption(name, text, fallback, min, max)
  if (!Number.isInteger(value)) throw new Error(`--${name} must be an integer, got ${text}`)
  return value
}
