// The raw datagram demo (npm run demo:datagrams): one socket floods another through the engine for a few
// seconds, respecting back-pressure, and prints live counters and a summary. Ctrl-C ends it early, with the
// summary so far (status 130; SIGTERM 143); a second Ctrl-C ends it at once.
import { createDatagramSocket } from '../index.ts'
import { fallbackReason } from '../engine/choose.ts'
import { nativeInfo } from '../api/native-info.ts'
import { exitOnCommandError, exitWithHelp, interruptedStatus, interruption, maxTimerSeconds, msUntilInterrupted, numberArgument, parseCommandLine, pause, seeHelp, tolerateClosedOutput } from './arguments.ts'

const usage = 'usage: npm run demo:datagrams -- [--seconds 3] [--size 64] [--batch 64]'
const seeUsage = seeHelp('npm run demo:datagrams -- --help')
const help = `${usage}

One datagram socket floods another on loopback through the engine, as fast as back-pressure allows;
live counters twice a second, and a summary at the end.
  --seconds   how long it sends (default 3)
  --size      bytes a datagram (1 to 65,507; default 64)
  --batch     datagrams a recvmmsg call reads at most, and a 'messages' event carries (1 to 1,024; default 64)
Ctrl-C ends it early, with the summary so far; a second Ctrl-C ends it at once.`

function settings(): { seconds: number; size: number; batchSize: number } {
  const { values } = parseCommandLine({
    options: { seconds: { type: 'string' }, size: { type: 'string' }, batch: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  })
  if (values.help === true) exitWithHelp(help)
  return {
    seconds: numberArgument('seconds', values.seconds, 3, { min: 0.1, max: maxTimerSeconds }),
    size: numberArgument('size', values.size, 64, { integer: true, min: 1, max: 65_507 }),
    batchSize: numberArgument('batch', values.batch, 64, { integer: true, min: 1, max: 1024 }),
  }
}

let demo: ReturnType<typeof settings>
try {
  demo = settings()
} catch (error) {
  exitOnCommandError('volley demo:datagrams', seeUsage, error)
}
const { seconds, size, batchSize } = demo

// The receiver gets an I/O thread of its own, so reading and writing run on both cores.
const receiver = createDatagramSocket({ batchSize, recvBufferSize: 8 << 20, engine: 'dedicated' })
const sender = createDatagramSocket({ batchSize, sendBufferSize: 4 << 20 })
const { port } = await receiver.bind(0, '127.0.0.1')
await sender.bind(0, '127.0.0.1')

tolerateClosedOutput()
const interrupted = interruption()
const fallback = fallbackReason()
console.log(`volley loopback demo: ${size} B datagrams for ${seconds} s, batches of ${batchSize}`)
if (fallback === undefined) {
  const info = nativeInfo()
  console.log(`native addon: ${info.path} (sources ${info.sourceHash}, libsodium ${info.sodiumVersion})\n`)
} else {
  // One thread for the sender and the receiver: the sender's loop leaves the receiver little of it.
  console.log(`the fallback engine (${fallback}): node:dgram, sender and receiver on the JavaScript thread\n`)
}

let received = 0
let corrupt = 0
receiver.on('messages', (batch) => {
  for (const m of batch) {
    if (m.data.byteLength !== size || m.data[size - 1] !== 0x5a) corrupt++
    received++
  }
})

const payload = Buffer.alloc(size, 0x5a)
let sending = true
let refused = 0
const pump = (): void => {
  // Send until the queue is full, then let 'drain' resume; yield to the event loop every 4096 sends.
  for (let i = 0; i < 4096 && sending; i++) {
    if (!sender.send(payload, port, '127.0.0.1')) {
      refused++
      return
    }
  }
  if (sending) setImmediate(pump)
}
sender.on('drain', pump)

const started = performance.now()
const cpuStart = process.cpuUsage()
let lastReceived = 0
const ticker = setInterval(() => {
  const rate = (received - lastReceived) * 2
  lastReceived = received
  process.stdout.write(`  received ${received.toLocaleString('en-US').padStart(12)}   ${Math.round(rate / 1000).toLocaleString('en-US').padStart(6)} k datagrams/s\n`)
}, 500)
pump()
await pause(seconds * 1000, interrupted)
sending = false
clearInterval(ticker)
// Let the last datagrams land: the sender's queue (up to its 8 MiB) empties into the kernel, and the
// receiver goes quiet with every datagram it read handed to the handler. At most 5 s. The rates count
// every datagram, so they are taken over the time up to the last one (over the window alone, they were
// up to twice the truth).
const settleBy = Date.now() + 5_000
let quietSince = Date.now()
let lastSeen = -1
let lastArrival = performance.now()
while (Date.now() < settleBy) {
  await new Promise((resolve) => setTimeout(resolve, 20))
  const seen = receiver.stats().packetsIn
  if (seen !== lastSeen || sender.stats().queue.depth > 0 || received !== seen) {
    lastSeen = seen
    quietSince = Date.now()
    lastArrival = performance.now()
  } else if (Date.now() - quietSince >= 100) {
    break
  }
}
const elapsed = (lastArrival - started) / 1000
const cpu = process.cpuUsage(cpuStart)

const sent = sender.stats()
const got = receiver.stats()
await Promise.all([sender.close(), receiver.close()])

const perSecond = (n: number): string => `${Math.round(n / elapsed / 1000).toLocaleString('en-US')} k/s`
console.log(interrupted.aborted ? `\nsummary (interrupted after ${(msUntilInterrupted(interrupted, started) / 1000).toFixed(1)} s)` : '\nsummary')
console.log(`  sent        ${sent.packetsOut.toLocaleString('en-US')} datagrams (${perSecond(sent.packetsOut)}) in ${sent.batchesOut.toLocaleString('en-US')} sendmmsg calls`)
console.log(`  received    ${got.packetsIn.toLocaleString('en-US')} datagrams (${perSecond(got.packetsIn)}, ${((got.bytesIn / elapsed) / 1e6).toFixed(1)} MB/s) in ${got.batchesIn.toLocaleString('en-US')} batches (mean ${(got.packetsIn / Math.max(1, got.batchesIn)).toFixed(1)})`)
console.log(
  `  dropped     ${fallback === undefined ? `${got.drops.receiveBufferFull.toLocaleString('en-US')} by the kernel (receive buffer full)` : 'by the kernel: not counted on the fallback engine (sent − received)'}; send queue full ${refused} times`,
)
console.log(`  delivered   ${received.toLocaleString('en-US')} to the handler, ${corrupt} corrupt`)
console.log(`  process CPU ${((cpu.user + cpu.system) / 1000 / elapsed / 10).toFixed(0)} % of one core (sender, receiver${fallback === undefined ? ' and both I/O threads' : ', all on the JavaScript thread'})`)
if (corrupt > 0 || received !== got.packetsIn) process.exitCode = 1
else if (interrupted.aborted) process.exitCode = interruptedStatus(interrupted)
