#!/usr/bin/env node
// volley: `volley serve` runs a server, `volley load` connects many clients to one (a load generator),
// `volley token` prints a connect token, `volley kme` runs a development ETSI GS QKD 014 KME. Keys are given
// in hex; all traffic is whatever address you name.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { ClientPool } from '../api/client-pool.ts'
import { devSaeIdsProblem } from '../sessions/keysync/kme-wire.ts'
import { type ChannelOptions, connectTokenToBase64, generateConnectToken, generateKey } from '../index.ts'
import { parseReachableServerAddress } from '../protocol/netcode/server-address.ts'
import { netcodeDefaults } from '../protocol/netcode/constants.ts'
import { UsageError, exitOnCommandError, interruptedStatus, interruption, numberArgument, parseCommandLine, pause, seeHelp, tolerateClosedOutput } from './arguments.ts'
import { LatencyHistogram, echoRoundTripMs, stampPayload } from './echo-latency.ts'
import { resolveHostAddress } from './host-address.ts'
import { ProgressLine } from './load-progress.ts'
import { type LoadReport, loadReportText } from './load-report.ts'
import { runServe } from './serve.ts'
import { channelFlag, readServeConfig, serveFlagSettings, serveRun } from './serve-config.ts'
import { channelsOf, defaultProtocolId, keepAliveRange, keyFromHex, keyRequired, maxMessageBytesRange, secondsRange, serveDefaults, uint64 } from './settings.ts'

/** The size of each message --rate broadcasts (its first bytes the time it was sent: echo-latency.ts). */
const broadcastBytes = 64
/** Broadcasts a second without --rate: enough for the echoes' round trips, little for the server. */
const defaultRate = 10

const usage = `usage:
  volley serve --address 127.0.0.1:40000 --key <64 hex> [--public-address 203.0.113.7:40000] [--protocol-id 0x1234]
               [--max-clients ${serveDefaults.maxClients}] [--seconds N] [--keep-alive-ms ${serveDefaults.keepAliveMs}] [--reuse-port] [--channels reliable,unreliable]
               [--max-message-bytes N] [--config volley.json] [--metrics-address 127.0.0.1:9464]
               [--status-interval ${serveDefaults.statusIntervalSeconds}] [--workers N]
  volley load  --server 127.0.0.1:40000 --key <64 hex> [--protocol-id 0x1234] [--clients 1000] [--seconds 10]
               [--rate ${defaultRate}] [--concurrency 256] [--timeout 10] [--keep-alive-ms ${netcodeDefaults.keepAliveIntervalMs}] [--json]
               [--channels reliable,unreliable] [--max-message-bytes N]
  volley token --server 127.0.0.1:40000 --key <64 hex> [--protocol-id 0x1234] [--client-id 1] [--timeout 10]
  volley key   (prints a new random key)
  volley build-addon  (builds the native addon from source where no prebuild fits: g++, make, python3, libsodium-dev)
  volley kme   --sae sae1 --sae sae2 [--host 127.0.0.1] [--port 0] [--dir certs]
  volley --version | --help

  --key         the private key; without it, VOLLEY_KEY from the environment (a flag's value is in the
                command line, which other users of the host can read, and in the shell's history)
  --public-address  serve: the address tokens list and clients send to, when not --address (0.0.0.0, NAT)
  --server      load and token: a server's address; repeat it for up to 32, which a client tries in turn
  --protocol-id decimal, or hex with 0x (default 0x1234): serve, load and token must give the same
  --server, --address, --public-address  an IP address and port, or a host name and port (localhost:40000:
                its first address, as the system resolves it)
  --rate        broadcasts a second (default ${defaultRate}; 0: none): each is a message from every connected client
                whose send queue has room (the report counts the others as not queued); the server's echoes
                give the round trips (RTT p50, p99 and max in the report)
  --timeout     the connect token's timeout, seconds (-1: none; load's clients then wait for a silent server
                until their tokens expire, and never notice a server that went away)
  --seconds     serve: how long to run (0, the default: until Ctrl-C); load: the window after connecting
  --reuse-port  serve: share the address with other servers started with it, a shard each (SO_REUSEPORT)
  --config      serve: a JSON file of the same settings, and keyFile (a file holding the key); the flags
                given override it (docs/connections.md, "volley serve")
  --metrics-address  serve: where to answer HTTP GET /metrics (Prometheus; needs prom-client installed) and
                GET /healthz (200 while serving, 503 while stopping)
  --status-interval  serve: seconds between its status lines (default ${serveDefaults.statusIntervalSeconds}; 0: none)
  --workers     serve: worker threads, each a server on the one port (SO_REUSEPORT; default 1)
  --channels    the delivery layer's channels, modes separated by commas (reliable, unreliable, sequenced):
                serve echoes each message on its channel, load broadcasts on channel 0; both sides the same
  --max-message-bytes  with --channels: the largest message (default ${serveDefaults.maxMessageBytes})
  --json        load: its two reports (connected, finished) as a JSON object a line. Without it, and on a
                terminal always, a progress line on stderr
  --sae         kme: an SAE the development KME serves, its ID (letters, digits, . _ ~ : @ -; not ca, . or
                .., no two the same but for case); at least 2
  --host, --port  kme: where it listens (default 127.0.0.1, port 0: any free one)
  --dir         kme: where it writes the CA's certificate (ca.pem) and each SAE's certificate and key
                (<SAE>.pem, <SAE>.key, mode 0600), made anew at each start (default certs); made with
                mode 0700 if missing, refused if other users may enter it or it is a symbolic link
  serve exits with status 0 when it stops (at --seconds, Ctrl-C or SIGTERM: it disconnects its clients first),
  1 when a worker failed, and kme with 0 when it stops (Ctrl-C or SIGTERM)
  load exits with status 1 when a client failed to connect or lost its connection, its channels differ
  from the server's, or its broadcasts stopped (the servers refused the message), 130 when interrupted
  (143 at SIGTERM)`

// No defaults here: a flag given is a flag in `values`, so that one the command does not take is refused.
const options = {
  address: { type: 'string' },
  'public-address': { type: 'string' },
  server: { type: 'string', multiple: true },
  key: { type: 'string' },
  'protocol-id': { type: 'string' },
  'max-clients': { type: 'string' },
  clients: { type: 'string' },
  seconds: { type: 'string' },
  rate: { type: 'string' },
  concurrency: { type: 'string' },
  timeout: { type: 'string' },
  'keep-alive-ms': { type: 'string' },
  'client-id': { type: 'string' },
  json: { type: 'boolean' },
  'reuse-port': { type: 'boolean' },
  channels: { type: 'string' },
  'max-message-bytes': { type: 'string' },
  config: { type: 'string' },
  'metrics-address': { type: 'string' },
  'status-interval': { type: 'string' },
  workers: { type: 'string' },
  sae: { type: 'string', multiple: true },
  host: { type: 'string' },
  port: { type: 'string' },
  dir: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const

/** The flags' values, as parseArgs gives them. */
type ParsedValues = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>['values']

/** The flags each command takes (--help and --version go with any). */
const commandFlags: Record<string, readonly (keyof typeof options)[]> = {
  serve: [
    'config',
    'address',
    'public-address',
    'key',
    'protocol-id',
    'max-clients',
    'seconds',
    'keep-alive-ms',
    'reuse-port',
    'channels',
    'max-message-bytes',
    'metrics-address',
    'status-interval',
    'workers',
  ],
  load: ['server', 'key', 'protocol-id', 'clients', 'seconds', 'rate', 'concurrency', 'timeout', 'keep-alive-ms', 'json', 'channels', 'max-message-bytes'],
  token: ['server', 'key', 'protocol-id', 'client-id', 'timeout'],
  key: [],
  'build-addon': [],
  kme: ['sae', 'host', 'port', 'dir'],
}

/** The package's version, from its package.json (two levels up from src/cli and from dist/cli alike). */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
}

/**
 * --key, or else VOLLEY_KEY from the environment: a flag's value is in the process's command line, which
 * other users of the host can read (/proc/<pid>/cmdline, ps) and the shell keeps in its history.
 */
function key(flag: string | undefined): Uint8Array {
  if (flag !== undefined) return keyFromHex(flag, '--key')
  const environment = process.env.VOLLEY_KEY
  if (environment === undefined) throw new UsageError(keyRequired)
  return keyFromHex(environment, 'VOLLEY_KEY')
}

/** --protocol-id, --client-id: an integer from 0 to 2^64 - 1. */
function bigint(name: string, text: string): bigint {
  return uint64(text, `--${name}`, `'${text}'`)
}

// load's own ranges (serve's are in settings.ts, which its config file shares).
const concurrencyRange = { integer: true, min: 1, max: 1_000_000 }
const clientsRange = { integer: true, min: 1, max: 1_000_000 }

/** --timeout: the token's timeout in whole seconds, or -1 for none (the generator refuses 0, which the standard leaves unclear). */
function timeoutArgument(text: string | undefined): number {
  if (text === undefined) return 10
  if (text === '-1') return -1
  if (/^\d+$/.test(text)) {
    const value = Number(text)
    if (value >= 1 && value <= 2_147_483_647) return value
  }
  throw new UsageError(`--timeout must be -1 (no timeout) or a whole number of seconds from 1 to 2147483647, not '${text}'`)
}

/** --channels and --max-message-bytes: the delivery options (none without --channels). */
function deliveryArguments(channels: string | undefined, maxMessageBytes: string | undefined): { channels?: ChannelOptions[]; maxMessageBytes?: number } {
  if (channels === undefined) {
    if (maxMessageBytes !== undefined) throw new UsageError('--max-message-bytes needs --channels')
    return {}
  }
  return {
    channels: channelsOf(channelFlag(channels), '--channels'),
    ...(maxMessageBytes === undefined ? {} : { maxMessageBytes: numberArgument('max-message-bytes', maxMessageBytes, serveDefaults.maxMessageBytes, maxMessageBytesRange) }),
  }
}

/**
 * --server, once or more, host names resolved: checked here so that an error names the flag rather than the
 * token option it fills.
 */
async function serverArguments(values: string[] | undefined): Promise<string[]> {
  if (values === undefined || values.length === 0) throw new UsageError('--server is required')
  if (values.length > 32) throw new UsageError(`--server is given ${values.length} times: a connect token lists 1 to 32 servers`)
  const servers = await Promise.all(values.map((server) => resolveHostAddress(server, '--server')))
  for (const server of servers) parseReachableServerAddress(server, '--server')
  return servers
}

/**
 * volley kme: a development KME for the SAEs named, its CA's certificate and each SAE's certificate and key
 * written to --dir; it runs until SIGINT or SIGTERM.
 */
async function runKme(values: { sae?: string[]; host?: string; port?: string; dir?: string }): Promise<void> {
  const saeIds = values.sae ?? []
  if (saeIds.length < 2) throw new UsageError('--sae is needed at least twice: a master SAE and a slave SAE')
  // DevKme's own rules (an ID is a path segment and a file name here), said in the words of the flag.
  const problem = devSaeIdsProblem(saeIds)
  if (problem !== undefined) throw new UsageError(`--sae: the SAE IDs ${problem}`)
  const port = numberArgument('port', values.port, 0, { integer: true, max: 65535 })
  const host = values.host ?? '127.0.0.1'
  if (host === '') throw new UsageError('--host needs a value')
  const directory = values.dir ?? 'certs'
  if (directory === '') throw new UsageError('--dir needs a value')
  // Loaded here: the certificates' library is for this command only.
  const { DevKme } = await import('../sessions/keysync/dev-kme.ts')
  const kme = await DevKme.start({ saeIds, host, port })
  let files: Awaited<ReturnType<typeof kme.writeCredentials>>
  try {
    files = await kme.writeCredentials(directory)
  } catch (error) {
    await kme.close()
    throw error
  }
  // Listened for before 'listening' is printed: a SIGTERM sent as soon as it is read must find a handler.
  const interrupted = interruption()
  console.log(JSON.stringify({ event: 'listening', url: kme.url, kmeId: kme.kmeId, ca: files.ca, saes: files.saes, pid: process.pid }))
  let stopping = false
  interrupted.addEventListener(
    'abort',
    () => {
      if (stopping) return
      stopping = true
      void kme.close().then(() => {
        console.log(JSON.stringify({ event: 'stopped', stats: kme.stats }))
        process.exit(0)
      })
    },
    { once: true },
  )
}

async function main(): Promise<void> {
  tolerateClosedOutput()
  // An unknown flag's "did you mean" names one of the command's own flags.
  const { positionals, values } = parseCommandLine({ allowPositionals: true, options }, (words) => commandFlags[words[0] ?? ''])
  const command = positionals[0]
  if (values.version) {
    console.log(packageVersion())
    return
  }
  if (values.help === true) {
    console.log(usage)
    process.exit(0)
  }
  if (command === undefined) throw new UsageError('a command is needed: serve, load, token, key, kme or build-addon') // a mistake, as the others are
  const flags = commandFlags[command]
  if (flags === undefined) throw new UsageError(`unknown command '${command}'`)
  // A flag of another command was a mistake (--client-id to load would have been ignored), as is a word more.
  for (const flag of Object.keys(values) as (keyof typeof options)[]) {
    if (!flags.includes(flag)) throw new UsageError(`${command} takes no --${flag}`)
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}' after ${command}`)
  // serve's --protocol-id may come from its config file instead.
  const protocolId = (): bigint => (values['protocol-id'] === undefined ? defaultProtocolId : bigint('protocol-id', values['protocol-id']))
  if (command === 'key') {
    console.log(Buffer.from(await generateKey()).toString('hex'))
  } else if (command === 'build-addon') {
    // The script is plain JavaScript beside the package's sources, two levels up from src/cli and dist/cli.
    const build = spawnSync(process.execPath, [fileURLToPath(new URL('../../scripts/build-addon.mjs', import.meta.url))], { stdio: 'inherit' })
    process.exit(build.status ?? 1)
  } else if (command === 'kme') {
    await runKme(values)
  } else if (command === 'token') {
    const servers = await serverArguments(values.server)
    const token = await generateConnectToken({
      protocolId: protocolId(),
      privateKey: key(values.key),
      clientId: bigint('client-id', values['client-id'] ?? '1'),
      serverAddresses: servers,
      expireSeconds: 300,
      timeoutSeconds: timeoutArgument(values.timeout),
    })
    console.log(connectTokenToBase64(token))
  } else if (command === 'serve') {
    const config = values.config === undefined ? undefined : await readServeConfig(values.config)
    await runServe(await serveRun(serveFlagSettings(values), config, values.key, values.config))
  } else if (command === 'load') {
    await runLoad(values, protocolId())
  }
}

/** volley load: --clients clients connect, broadcast --rate times a second for --seconds, and report. */
async function runLoad(values: ParsedValues, protocolId: bigint): Promise<void> {
  const servers = await serverArguments(values.server)
  const privateKey = key(values.key)
  const count = numberArgument('clients', values.clients, 1000, clientsRange)
  const seconds = numberArgument('seconds', values.seconds, 10, secondsRange)
  const rate = numberArgument('rate', values.rate, defaultRate, { max: 1_000_000 })
  const timeoutSeconds = timeoutArgument(values.timeout)
  const concurrency = numberArgument('concurrency', values.concurrency, 256, concurrencyRange)
  const delivery = deliveryArguments(values.channels, values['max-message-bytes'])
  if (rate > 0 && (delivery.maxMessageBytes ?? broadcastBytes) < broadcastBytes) {
    throw new UsageError(`--max-message-bytes must be at least ${broadcastBytes} while load broadcasts (--rate, default ${defaultRate}; --rate 0 sends none): each broadcast is a ${broadcastBytes}-byte message`)
  }
  // Clients without channels told by the engine that the server has them: the report says what to do.
  let serverHasChannels = false
  process.on('warning', (warning: Error & { code?: string }) => {
    if (warning.code === 'VOLLEY_SERVER_HAS_CHANNELS') serverHasChannels = true
  })
  const keepAliveIntervalMs = numberArgument('keep-alive-ms', values['keep-alive-ms'], netcodeDefaults.keepAliveIntervalMs, keepAliveRange)
  if (timeoutSeconds > 0 && keepAliveIntervalMs >= timeoutSeconds * 1000) {
    throw new UsageError(`--keep-alive-ms must be below the --timeout of ${timeoutSeconds} s (${timeoutSeconds * 1000} ms), or every connection times out between keep-alives`)
  }
  const pool = new ClientPool({ keepAliveIntervalMs, ...delivery })
  // Each token is made as its attempt starts (100,000 made ahead took 4 s and 458 MiB before the first
  // connect), and lives 10 minutes past the longest its attempt can take (each address up to its timeout),
  // within the most a token's lifetime can be.
  const expireSeconds = Math.min(600 + servers.length * Math.max(timeoutSeconds, 10), 2 ** 32)
  const tokens = {
    count,
    make: (index: number) => generateConnectToken({ protocolId, privateKey, clientId: BigInt(index + 1), serverAddresses: servers, expireSeconds, timeoutSeconds }),
  }
  let phase: 'connecting' | 'running' = 'connecting'
  let messagesSent = 0 // the clients' sends that each broadcast's clients took
  let messagesReceived = 0 // as the pool counts them, without a walk over every client's stats
  const latency = new LatencyHistogram() // the whole window's echoes
  const sinceLastLine = new LatencyHistogram() // the progress line's, since its last line
  const progress = ProgressLine.start(
    {
      phase: () => phase,
      connected: () => (phase === 'connecting' ? pool.clients.length : pool.clients.filter((client) => client.state === 'connected').length),
      messagesSent: () => messagesSent,
      messagesReceived: () => messagesReceived,
      takeLatency: () => {
        const summary = sinceLastLine.count > 0 ? sinceLastLine.summary() : undefined
        sinceLastLine.reset()
        return summary
      },
    },
    values.json !== true,
  )
  // Ctrl-C ends the attempts, or the window, and still reports and disconnects every client.
  const interrupted = interruption()
  const connect = await pool.connect(tokens, { concurrency, signal: interrupted })
  phase = 'running'
  for (const client of pool.clients) {
    client.on('message', (data) => {
      messagesReceived++
      const roundTrip = echoRoundTripMs(data)
      if (roundTrip === undefined) return
      latency.record(roundTrip)
      sinceLastLine.record(roundTrip)
    })
  }
  const report = (event: LoadReport['event'], extra: Partial<LoadReport> = {}): void => {
    // The connect figures apart: the pool's stats have fields of the same names (failed by code, connected now).
    const line: LoadReport = { event, connect, ...pool.stats(), ...extra }
    progress?.clear()
    console.log(values.json === true ? JSON.stringify(line) : loadReportText(line))
  }
  report('connected', { connectRate: (connect.connected / connect.ms) * 1000 })
  // Each broadcast carries the time it is sent, for the echo's round trip.
  const payload = new Uint8Array(broadcastBytes).fill(1)
  // --rate broadcasts a second, counted from the start: a timer fires at most about once a millisecond
  // and not at fractions of one (every 2.5 ms fires every 2), so each tick sends what is due by then,
  // for a tick's time at most (a rate beyond reach must not hold up the event loop and the window's end).
  const started = performance.now()
  const period = Math.min(Math.max(1000 / rate, 1), 100)
  let broadcasts = 0
  // A broadcast the servers refuse ends the window (broadcast() throws: a message over their maximum).
  let broadcastFailure: Error | undefined
  const windowCut = new AbortController()
  const catchUp = (budgetMs = period, windowEnded = false): void => {
    // At the window's end, all of it: its timer may fire a fraction of a millisecond early by this clock.
    const window = Math.floor(seconds * rate)
    const due = windowEnded ? window : Math.min(Math.floor(((performance.now() - started) * rate) / 1000), window)
    const until = performance.now() + budgetMs
    while (broadcasts < due && performance.now() < until && broadcastFailure === undefined) {
      try {
        stampPayload(payload)
        messagesSent += pool.broadcast(payload)
      } catch (error) {
        // A smaller maximum than ours, announced by the servers at connect.
        broadcastFailure = error as Error
        windowCut.abort()
        return
      }
      broadcasts++
    }
  }

  const ticker = rate > 0 && connect.connected > 0 ? setInterval(catchUp, period) : undefined
  // The window ends after --seconds, or at SIGINT / SIGTERM: the report and the clients' disconnects follow.
  // With no client connected there is nothing to wait for.
  if (connect.connected > 0) await pause(seconds * 1000, AbortSignal.any([interrupted, windowCut.signal]))
  if (ticker) {
    clearInterval(ticker)
    if (!interrupted.aborted && broadcastFailure === undefined) catchUp(250, true) // the last ones due in the window, behind a busy machine's timers
  }
  // The echoes of the last broadcasts are on their way: the report waits until every message came back, or
  // none came for 250 ms (a server that does not echo, or lost ones), 2 s at most. One quiet poll was not
  // enough: on a busy machine the server's JavaScript can stall that long with echoes still to send.
  for (let waited = 0, quiet = 0, seen = messagesReceived; seen < messagesSent && quiet < 250 && waited < 2000; waited += 50) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    quiet = messagesReceived === seen ? quiet + 50 : 0
    seen = messagesReceived
  }
  progress?.stop()
  // Whether the run was cut short, as the report says: a signal while the clients close after a run
  // that went to its end does not turn its status into 130.
  const wasInterrupted = interrupted.aborted
  report('finished', { rate, broadcasts, messagesSent, ...(latency.count > 0 ? { latency: latency.summary() } : {}), ...(wasInterrupted ? { interrupted: true } : {}) })
  // Read before the clients close: a connection that ended in the window was lost (the server went away).
  const lost = pool.stats().connected < connect.connected
  await pool.close()
  // Said whatever the window: a short one ends before the server drops these clients, and looked fine.
  if (serverHasChannels) {
    console.error("volley load: the server runs channels and these clients have none (see the warning): give load the server's --channels")
  }
  if (broadcastFailure !== undefined) {
    const code = (broadcastFailure as { code?: string }).code
    console.error(`volley load: the broadcasts stopped: ${broadcastFailure.message}${code === undefined ? '' : ` (${code})`}`)
    process.exit(1)
  }
  // A load that did not connect every client, lost one or whose channels differ from the server's (those
  // with channels fail to connect: ERR_CHANNELS_MISMATCH) failed (1); one cut short by a signal ends as
  // signals do (130 for SIGINT, 143 for SIGTERM).
  process.exit(wasInterrupted ? interruptedStatus(interrupted) : connect.connected < count || lost || serverHasChannels ? 1 : 0)
}

try {
  await main()
} catch (error) {
  exitOnCommandError('volley', seeHelp('volley --help'), error)
}
