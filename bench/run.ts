// `npm run bench`: datagram receive and send benchmarks, side by side in one run.
//
// Receive: the C blaster (bench/native/blaster.c, sendmmsg batch 64) floods 127.0.0.1 for a fixed time
// from its own process; the receiver under test runs in another process: volley's socket, node:dgram,
// udx-native, or the C recvmmsg sink (bench/native/sink.c, no JS). 64 B and 1200 B datagrams.
// Send: volley's send() and node:dgram's send() push 64 B datagrams to the C sink for a fixed time.
// Cases are interleaved (volley, dgram, udx-native, C, volley, ...) so that the machine's noise hits
// all alike, repeated, and the median is reported. The table goes to stdout (markdown); the files
// written are writeResults' (bench/lib/runner.ts): a line in bench/results/datagram-history.jsonl and,
// for a complete run, bench/results/latest-datagram.json (--gso runs: -gso; quick runs: neither).
//
//   npm run bench                   full run (2.5 s per case, 3 repeats)
//   npm run bench -- --quick        smoke run (0.5 s per case, 1 repeat); also BENCH_QUICK=1
//   npm run bench -- --gso          the blaster sends with UDP GSO and saturates every receiver
//   npm run bench -- --help         the other options
import { SEND_SIZE, RECEIVE_SIZES } from './lib/constants.ts'
import { microseconds, packetsPerSecond, percent } from './lib/format.ts'
import { launcher, receiverLabels, senderLabels } from './lib/launch.ts'
import { buildNativeTools } from './lib/native-build.ts'
import { type ReceiverId, parseOptions, receiverIds, senderIds, usage } from './lib/options.ts'
import { type ReceiveRun, runReceive } from './lib/receive-case.ts'
import { type SendRun, runSend } from './lib/send-case.ts'
import { renderMarkdown } from './lib/render.ts'
import { summarize } from './lib/summary.ts'
import { systemInfo } from './lib/system.ts'
import { benchDir, describeFailure, root, runMain, settle, resultsLine, writeResults } from './lib/runner.ts'

/** A pause between runs, so that one run's sockets and softirq work are gone before the next starts. */
const SETTLE_MS = 200

async function main(): Promise<number> {
  const system = systemInfo(root)
  const options = parseOptions(process.argv.slice(2), process.env, system.taskset)
  if (options === 'help') {
    console.log(usage)
    return 0
  }
  const tools = buildNativeTools(benchDir)
  const launch = launcher(root, tools, options.pin, options.segments)
  const milliseconds = Math.round(options.seconds * 1000)
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`)
  }
  log(`bench: ${options.seconds} s per case, ${options.repeats} repeat(s), pinning ${options.pin}, ${options.segments > 1 ? `GSO blaster (${options.segments} per message)` : 'sendmmsg blaster'}; ${system.node}, ${system.cpuModel}, ${tools.compiler}`)

  const notes: string[] = []
  const failures: string[] = []
  const receiveRuns: ReceiveRun[] = []
  const sendRuns: SendRun[] = []
  const skipped = new Set<ReceiverId>()
  if (system.volley.addon === null) notes.push("volley's native addon did not load in a probe process: the volley cases will fail")

  for (let round = 1; round <= options.repeats; round++) {
    if (options.receive) {
      for (const size of RECEIVE_SIZES) {
        for (const receiver of options.receivers) {
          if (skipped.has(receiver)) continue
          try {
            const run = await runReceive(launch, receiver, size, milliseconds, round)
            receiveRuns.push(run)
            log(
              `rx ${String(size).padStart(4)} B  ${receiverLabels[receiver].padEnd(20)} #${round}  ${packetsPerSecond(run.rate).padStart(9)} pkt/s  ` +
                `loss ${percent(run.loss).padStart(7)}  ${microseconds(run.cpuPerPacketUs)} µs/pkt  CPU ${percent(run.cpuShare, 0)}  ` +
                `(blaster ${packetsPerSecond(run.sendRate)})`,
            )
          } catch (error) {
            if (receiver === 'udx-native') {
              // An optional comparison: a library that does not load (or fails) is left out, with a note.
              skipped.add(receiver)
              notes.push(`udx-native skipped: ${describeFailure(error)}`)
              log(`rx ${size} B  udx-native skipped: ${describeFailure(error)}`)
            } else {
              failures.push(`receive ${receiverLabels[receiver]}, ${size} B, run ${round}: ${describeFailure(error)}`)
              log(`rx ${size} B  ${receiverLabels[receiver]} FAILED: ${describeFailure(error)}`)
            }
          }
          await settle(SETTLE_MS)
        }
      }
    }
    if (options.send) {
      for (const sender of senderIds) {
        try {
          const run = await runSend(launch, sender, SEND_SIZE, milliseconds, round)
          sendRuns.push(run)
          log(
            `tx ${String(SEND_SIZE).padStart(4)} B  ${senderLabels[sender].padEnd(20)} #${round}  ${packetsPerSecond(run.rate).padStart(9)} pkt/s  ` +
              `${microseconds(run.cpuPerPacketUs)} µs/pkt  CPU ${percent(run.cpuShare, 0)}  arrived ${percent(run.delivered)}`,
          )
        } catch (error) {
          failures.push(`send ${senderLabels[sender]}, run ${round}: ${describeFailure(error)}`)
          log(`tx ${senderLabels[sender]} FAILED: ${describeFailure(error)}`)
        }
        await settle(SETTLE_MS)
      }
    }
  }

  const summary = summarize(receiveRuns, sendRuns, [...notes, ...failures.map((failure) => `FAILED: ${failure}`)], options.segments > 1)
  console.log(renderMarkdown(summary, system, options))
  const complete = failures.length === 0 && options.receive && options.send && options.receivers.length === receiverIds.length && options.repeats >= 3
  const record = {
    schema: 1,
    benchmark: 'datagram',
    quick: options.quick,
    complete,
    failed: failures.length > 0,
    options: { ...options, host: '127.0.0.1', receiveSizes: RECEIVE_SIZES, sendSize: SEND_SIZE },
    system: { ...system, compiler: tools.compiler },
    summary,
    runs: { receive: receiveRuns, send: sendRuns },
  }
  const written = writeResults('datagram', record, system.date, { ...(options.segments > 1 ? { variant: '-gso' } : {}), quick: options.quick, complete })
  log(resultsLine(written, options.quick))
  return failures.length > 0 ? 1 : 0
}




runMain('bench', main)
