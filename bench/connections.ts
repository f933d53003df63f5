// `npm run bench:connections`: what volley's netcode Server costs per connection, side by side in one
// run, on loopback, with the server (or receiver) and its load generator in separate processes, pinned
// apart with taskset when it works (server on CPU 1, load on CPU 0):
//   0. handshakes: N clients connect to a fresh server (cold), leave, and N others connect (warm), with
//      keep-alives every 10 s so that the window holds handshakes only: server CPU per handshake. The
//      clients are a C++ program on volley's netcode client core (bench/native/handshake-load.cc) that
//      connects faster than the server accepts, so the server's own cost sets the rate. Three fresh
//      servers (--repeats), one after the other; the medians are the figures.
//   1. connect: N clients (ClientPool, one socket each) connect to one server; connect rate, server CPU
//      per completed handshake, failures.
//   2. idle hold: they stay connected with default keep-alives (10 Hz each way); connections that time
//      out, server CPU, server RSS per connected peer.
//   3. payload receive: 1,000 clients send 64 B payloads at a fixed total rate; server CPU per payload
//      delivered to its JS 'message' handler, against a node:dgram receiver of 64 B plaintext datagrams
//      at the same rate from the C paced sender (bench/native/paced-sender.c), and against the floor: a C
//      receiver of the same datagrams that does only what a receiver built like volley's server cannot
//      skip (recvmmsg batches, libsodium's AEAD per datagram, one hand-off per batch to a second thread;
//      bench/native/floor-receiver.c); and the same Server on volley's fallback engine
//      (VOLLEY_ENGINE=fallback), the baseline the native engine beats. Interleaved, repeated, medians.
// Every figure comes from the measured process itself (getrusage, memoryUsage) at marks the runner asks
// for (bench/lib/connections-child.ts). The table goes to stdout (markdown); the files written are
// writeResults' (bench/lib/runner.ts): a line in bench/results/connections-history.jsonl and, for a
// complete run, bench/results/latest-connections.json (quick runs: neither).
//
//   npm run bench:connections                 full run: 10,000 clients, 60 s hold, 3 × 5 s of payloads per receiver
//   npm run bench:connections -- --quick      CI smoke run (~20 s): 1,000 clients, 5 s hold, 1 × 2 s; also BENCH_QUICK=1
//   npm run bench:connections -- --help       the other options
import { randomBytes } from 'node:crypto'
import { connectionsLauncher } from './lib/connections-marks.ts'
import { buildFloorReceiver, buildHandshakeLoad, buildPacedSender } from './lib/connections-native.ts'
import { connectionsUsage, parseConnectionsOptions } from './lib/connections-options.ts'
import { type ConnectHoldResult, type Context, type HandshakePhase, PAYLOAD_SIZE, type PayloadRun, runConnectAndHold, runHandshakes, runPlaintextPayload, runVolleyPayload } from './lib/connections-phases.ts'
import { renderConnections, summarizeConnections } from './lib/connections-render.ts'
import { systemInfo } from './lib/system.ts'
import { benchDir, describeFailure, root, runMain, settle, resultsLine, writeResults } from './lib/runner.ts'

/** A pause between runs, so that one run's sockets and softirq work are gone before the next starts. */
const SETTLE_MS = 300

async function main(): Promise<number> {
  const started = performance.now()
  const system = systemInfo(root)
  const options = parseConnectionsOptions(process.argv.slice(2), process.env, system.taskset)
  if (options === 'help') {
    console.log(connectionsUsage)
    return 0
  }
  const pacedSender = buildPacedSender(benchDir)
  const floorReceiver = buildFloorReceiver(benchDir)
  // The C++ load (handshakes, and volley's payload senders), built once on first use; undefined: the ClientPool.
  let builtLoad: string | undefined
  const nativeLoad = (): string | undefined => (options.handshakeLoad === 'native' ? (builtLoad ??= buildHandshakeLoad(benchDir, root)) : undefined)
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`)
  }
  const context: Context = {
    launch: connectionsLauncher(root, { pacedSender, floorReceiver }, options.pin === 'split'),
    options,
    // A fresh key for the run: the server and the load generator get it on their command lines.
    key: randomBytes(32).toString('hex'),
    protocolId: '0x1234',
    log,
  }
  log(
    `bench:connections: ${options.clients} clients, ${options.holdSeconds} s hold, payloads ${options.rate}/s from ${options.payloadClients} clients for ` +
      `${options.payloadSeconds} s × ${options.repeats}, pinning ${options.pin}; ${system.node}, ${system.cpuModel}`,
  )
  const notes: string[] = []
  const failures: string[] = []
  if (system.volley.addon === null) notes.push("volley's native addon did not load in a probe process: the volley cases will fail")

  let handshakes: HandshakePhase | null = null
  if (!options.skipHandshakes) {
    try {
      handshakes = await runHandshakes(context, nativeLoad())
    } catch (error) {
      failures.push(`handshakes: ${describeFailure(error)}`)
      log(`handshakes FAILED: ${describeFailure(error)}`)
    }
    await settle(SETTLE_MS)
  }
  let connectHold: ConnectHoldResult | null = null
  if (!options.skipConnect) {
    try {
      connectHold = await runConnectAndHold(context)
    } catch (error) {
      failures.push(`connect/hold: ${describeFailure(error)}`)
      log(`connect/hold FAILED: ${describeFailure(error)}`)
    }
    await settle(SETTLE_MS)
  }
  const payloadRuns: PayloadRun[] = []
  if (!options.skipPayload) {
    const payloadLoad = nativeLoad()
    for (let round = 1; round <= options.repeats; round++) {
      for (const [receiver, run] of [
        ['volley', (c: Context, r: number) => runVolleyPayload(c, r, payloadLoad)],
        ['fallback', (c: Context, r: number) => runVolleyPayload(c, r, payloadLoad, 'fallback')],
        ['dgram', (c: Context, r: number) => runPlaintextPayload(c, r, 'dgram')],
        ['floor', (c: Context, r: number) => runPlaintextPayload(c, r, 'floor')],
      ] as const) {
        try {
          payloadRuns.push(await run(context, round))
        } catch (error) {
          failures.push(`payload ${receiver} #${round}: ${describeFailure(error)}`)
          log(`payload ${receiver} #${round} FAILED: ${describeFailure(error)}`)
        }
        await settle(SETTLE_MS)
      }
    }
  }

  const summary = summarizeConnections(handshakes, connectHold, payloadRuns, [...notes, ...failures.map((failure) => `FAILED: ${failure}`)])
  console.log(renderConnections(summary, handshakes, connectHold, options, system))
  const complete =
    failures.length === 0 && !options.skipHandshakes && !options.skipConnect && !options.skipPayload && options.clients >= 10_000 && options.holdSeconds >= 60 && options.repeats >= 3
  const record = {
    schema: 1,
    benchmark: 'connections',
    quick: options.quick,
    complete,
    failed: failures.length > 0,
    options: { ...options, host: '127.0.0.1', payloadSize: PAYLOAD_SIZE, protocolId: context.protocolId },
    system,
    seconds: (performance.now() - started) / 1000,
    summary,
    handshakes,
    connect: connectHold?.connect ?? null,
    hold: connectHold?.hold ?? null,
    final: connectHold ? { server: connectHold.serverFinal, load: connectHold.loadFinal } : null,
    payloadRuns,
  }
  const written = writeResults('connections', record, system.date, { quick: options.quick, complete })
  log(resultsLine(written, options.quick, ` (${record.seconds.toFixed(1)} s)`))
  return failures.length > 0 ? 1 : 0
}




runMain('bench:connections', main)
