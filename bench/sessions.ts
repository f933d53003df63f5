// `npm run bench:sessions`: what the session layer (MASH, issue 57) costs, on loopback, the process under
// test and its counterpart in separate processes, pinned apart with taskset when it works (gateway or
// server on CPU 1, controllers or client on CPU 0):
//   A. fan-out: one gateway process hosting 10,000 MashDevices (5 features × 10 float attributes each) behind
//      serveSessions; a controller process with a ClientPool of 10,000 clients (one UDP socket each, as
//      bench:connections holds its 10,000), a MashController on each, subscribed to the 5 features of its
//      device (50,000 subscriptions, minInterval 1 s). Every attribute changes once a second in the gateway,
//      the changes spread evenly over the second. Measured over a steady window: notifications a second at
//      the controllers, gateway CPU per notification, gateway RSS per subscription (with them − without,
//      after a full GC each), and whether every notification sent arrived.
//   B. request/response pairs: a MashController reading one attribute from a MashDevice with 32 reads
//      outstanding, against a bare echo on a second reliable channel of the same connection (messages of
//      the read request's size, 32 outstanding), alternating, several rounds: CPU of both processes per
//      pair, and the difference (issue 57's target: at most 2 µs). The same MASH pair over an in-memory
//      transport pair in one process, against a bare in-memory echo: the session layer's own cost.
// The tables go to stdout (markdown); the full record to bench/results/latest-sessions.json and one line to
// bench/results/sessions-history.jsonl (not for --quick, nor with --no-write).
//
//   npm run bench:sessions                 full run (~3 min)
//   npm run bench:sessions -- --quick      smoke run (~1 min): 500 devices, short windows, no files written
//   npm run bench:sessions -- --help       the other options
import { randomBytes } from 'node:crypto'
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { UsageError } from '../src/cli/arguments.ts'
import { describeFailure, benchDir, root, runMain, settle } from './lib/runner.ts'
import { type FanOutResult, type PairsResult, type SessionsContext, runFanOut, runPairs } from './lib/sessions-phases.ts'
import { parseSessionsOptions, sessionsUsage } from './lib/sessions-options.ts'
import { historyLine, renderSessions, summarizeSessions } from './lib/sessions-render.ts'
import { systemInfo } from './lib/system.ts'

/** The full run's size: a run this large (or larger) with no failure is `complete`. */
const FULL_DEVICES = 10_000

async function main(): Promise<number> {
  const started = performance.now()
  const system = systemInfo(root)
  let options: ReturnType<typeof parseSessionsOptions>
  try {
    options = parseSessionsOptions(process.argv.slice(2), process.env, system.taskset)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    console.error(`bench:sessions: ${error.message}\n\n${sessionsUsage}`)
    return 2
  }
  if (options === 'help') {
    console.log(sessionsUsage)
    return 0
  }
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`)
  }
  const context: SessionsContext = {
    root,
    options,
    cpus: options.pin === 'split' ? { tested: 1, counterpart: 0 } : null,
    // A fresh key for the run: the children get it on their command lines.
    key: randomBytes(32).toString('hex'),
    protocolId: '0x6d617368', // "mash"
    log,
  }
  log(
    `bench:sessions: fan-out ${options.skipFanOut ? 'skipped' : `${options.devices} devices × ${options.subscriptions} × ${options.attributes}`}, ` +
      `pairs ${options.skipPairs ? 'skipped' : `${options.rounds} rounds`}, pinning ${options.pin}; ${system.node}, ${system.cpuModel}`,
  )
  const notes: string[] = []
  const failures: string[] = []
  if (system.volley.addon === null) notes.push("volley's native addon did not load in a probe process: the runs are on the fallback engine")
  if (!options.skipFanOut) {
    notes.push(
      `Volley keep-alives and RTT pings every ${options.keepAliveMs} ms on both sides of the fan-out (the library's default is 100 ms: ` +
        `10,000 connections at 10 Hz would be 100,000 keep-alive packets a second each way); MASH keep-alive pings at MASH's 30 s`,
    )
  }

  let fanOut: FanOutResult | null = null
  let fanOutSeconds = 0
  if (!options.skipFanOut) {
    const fanOutStarted = performance.now()
    try {
      fanOut = await runFanOut(context)
    } catch (error) {
      failures.push(`fan-out: ${describeFailure(error)}`)
      log(`fan-out FAILED: ${describeFailure(error)}`)
    }
    fanOutSeconds = (performance.now() - fanOutStarted) / 1000
    await settle(500)
  }
  let pairs: PairsResult | null = null
  if (!options.skipPairs) {
    try {
      pairs = await runPairs(context)
    } catch (error) {
      failures.push(`pairs: ${describeFailure(error)}`)
      log(`pairs FAILED: ${describeFailure(error)}`)
    }
  }
  if (fanOut !== null && (fanOut.steady.changesSkipped > 0 || fanOut.steady.gateway.cpuShare > 0.95)) {
    const { steady } = fanOut
    notes.push(
      `the gateway did not keep up: it made ${Math.round(steady.changesPerSecond).toLocaleString('en-US')} of the ${steady.changesAskedPerSecond.toLocaleString('en-US')} changes ` +
        `a second asked, its event loop up to ${(steady.eventLoopDelay.maxMs / 1000).toFixed(1)} s late, ${(steady.gateway.cpuShare * 100).toFixed(0)} % of its core busy: ` +
        'the notifications a second are its ceiling on this machine, not what the load asked for (about one a second per subscription)',
    )
  }
  if (fanOut?.steady.disturbed === true) {
    notes.push(`other processes took the pinned cores during the fan-out window (${JSON.stringify(fanOut.steady.disturbance)}): its figures are not the gateway's alone`)
  }
  for (const [where, summary] of [['over Volley', pairs?.summary.volley], ['in memory', pairs?.summary.memory]] as const) {
    if (summary !== undefined && summary.disturbedRounds > 0) notes.push(`pairs ${where}: ${summary.disturbedRounds} of ${options.rounds} rounds disturbed by other processes${summary.disturbedRounds === options.rounds ? ' (all: the medians are of all of them)' : ', left out of the medians'}`)
  }
  if (fanOut !== null) {
    const controllersShare = fanOut.steady.controllers.reduce((total, window) => total + window.cpuShare, 0)
    if (controllersShare > 0.95) notes.push(`the controllers' process was busy ${(controllersShare * 100).toFixed(0)} % of its core in the window: it may have held the gateway back`)
  }

  const summary = summarizeSessions(fanOut, pairs, [...notes, ...failures.map((failure) => `FAILED: ${failure}`)])
  console.log(renderSessions(summary, fanOut, pairs, options, system))
  const complete = failures.length === 0 && !options.skipFanOut && !options.skipPairs && options.devices >= FULL_DEVICES && !options.quick
  const seconds = (performance.now() - started) / 1000
  log(`bench:sessions: ${seconds.toFixed(1)} s (fan-out ${fanOutSeconds.toFixed(1)} s)`)
  if (options.write && failures.length === 0) {
    const dir = join(benchDir, 'results')
    mkdirSync(dir, { recursive: true })
    const record = { schema: 1, benchmark: 'sessions', complete, options: { ...options, host: '127.0.0.1' }, system, seconds, fanOutSeconds, summary, fanOut, pairs }
    writeFileSync(join(dir, 'latest-sessions.json'), `${JSON.stringify(record, null, 2)}\n`)
    appendFileSync(join(dir, 'sessions-history.jsonl'), `${JSON.stringify(historyLine(summary, options, system, complete, fanOut === null ? null : fanOut.steady.disturbed))}\n`)
    log('results: bench/results/latest-sessions.json, a line in bench/results/sessions-history.jsonl')
  } else {
    log(failures.length > 0 ? 'results: none written (a scenario failed)' : 'results: none written (--quick or --no-write)')
  }
  return failures.length > 0 ? 1 : 0
}

runMain('bench:sessions', main)
