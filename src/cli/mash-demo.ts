// The MASH demo (npm run demo:mash): one Volley gateway on loopback hosting simulated energy meters (a
// MashDevice each) behind serveSessions, and as many controllers (a Client and a MashController each), each
// subscribed to the meter its connect token names. The meters' values walk at random several times a
// second; the subscriptions coalesce them (minInterval 1 s); a few reads, writes and invokes go on meanwhile.
// Live counters twice a second, a summary at the end:
//   npm run demo:mash -- --devices 1000 --seconds 5 --rate 5
// Ctrl-C ends it early, with the summary so far (status 130; SIGTERM 143); a second Ctrl-C ends it at once.
import { setMaxListeners } from 'node:events'
import { ClientPool, Server, generateConnectToken, generateKey } from '../index.ts'
import { fallbackReason } from '../engine/choose.ts'
import { nativeInfo } from '../api/native-info.ts'
import { ClientTransport, serveSessions } from '../sessions/index.ts'
import { MashController, MashDevice, sumDeviceStats, type MashDeviceStats, type MashEndpointDefinition, type MashValue } from '../sessions/mash/index.ts'
import { exitOnCommandError, exitWithHelp, interruptedStatus, interruption, maxTimerSeconds, msUntilInterrupted, numberArgument, parseCommandLine, pause, seeHelp, tolerateClosedOutput } from './arguments.ts'

const usage = 'usage: npm run demo:mash -- [--devices 1000] [--seconds 5] [--rate 5]'
const seeUsage = seeHelp('npm run demo:mash -- --help')
const help = `${usage}

A Volley gateway on loopback hosts simulated energy meters (MASH devices); as many controllers connect,
each to the meter its connect token names, and subscribe to its measurements (minInterval 1 s, maxInterval
10 s). The values change several times a second, the subscriptions coalesce them, and the controllers read,
write and invoke now and then; live counters twice a second, and a summary at the end.
  --devices   how many meters, and controllers (1 to 65,536; default 1,000)
  --seconds   how long the values change (default 5)
  --rate      value changes a second on each meter (default 5)
Ctrl-C ends it early, with the summary so far; a second Ctrl-C ends it at once.`

function settings(): { deviceCount: number; seconds: number; rate: number } {
  const { values } = parseCommandLine({
    options: {
      devices: { type: 'string' },
      seconds: { type: 'string' },
      rate: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help === true) exitWithHelp(help)
  return {
    deviceCount: numberArgument('devices', values.devices, 1000, { integer: true, min: 1, max: 65_536 }),
    seconds: numberArgument('seconds', values.seconds, 5, { min: 0.1, max: maxTimerSeconds }),
    rate: numberArgument('rate', values.rate, 5, { max: 10_000 }),
  }
}

let demo: ReturnType<typeof settings>
try {
  demo = settings()
} catch (error) {
  exitOnCommandError('volley demo:mash', seeUsage, error)
}
const { deviceCount, seconds, rate } = demo

// The meter's model: endpoint 0 says which meter it is; endpoint 1, feature 1 measures and takes a limit.
const METER = { endpoint: 1, feature: 1 } as const
const Attribute = { power: 1, energy: 2, voltage: 3, powerLimit: 4 } as const
const Command = { resetEnergy: 1 } as const
const MAX_POWER_W = 11_000
/** Requests a second from each controller: a few, next to the notifications. */
const REQUESTS_PER_DEVICE_SECOND = 0.2
/** A controller with this many requests unanswered is passed over: a slow gateway is not piled onto. */
const MAX_PENDING_PER_CONTROLLER = 4
const SUBSCRIPTION = { minIntervalMs: 1_000, maxIntervalMs: 10_000 } as const
// Pings every 2 s (not MASH's 30 s), for a keep-alive latency to show in a few seconds' run.
const linkOptions = { requestTimeoutMs: 5_000, keepAlive: { intervalMs: 2_000, pongTimeoutMs: 1_500 } } as const
const channels = [{ mode: 'reliable' as const }]
// Volley's own keep-alives and RTT pings once a second rather than 10 times: MASH pings for itself, and a
// thousand connections at 10 Hz each way took the fallback engine's one thread past what it could serve.
const volleyTimers = { keepAliveIntervalMs: 1_000, pingIntervalMs: 1_000 }
const protocolId = 0x766f6c6c6579n // "volley"

/** The meters' live values, by meter index. */
const power = new Float64Array(deviceCount)
const voltage = new Float64Array(deviceCount)
const energy = new Float64Array(deviceCount)
const powerLimit = new Float64Array(deviceCount).fill(MAX_POWER_W)

const totals = {
  /** Values the application changed (the walk, writes, resets): what the subscriptions were told of. */
  changes: 0,
  primings: 0,
  notifications: 0,
  /** Values the notifications carried. */
  valuesNotified: 0,
  subscribed: 0,
  subscribeFailures: new Map<string, number>(),
  requestsOk: { read: 0, write: 0, invoke: 0 },
  requestFailures: new Map<string, number>(),
  latencies: 0,
  latencySumMs: 0,
  controllersLost: 0,
  handlerErrors: 0,
}
const count = (counts: Map<string, number>, error: unknown): void => {
  const code = String((error as { code?: unknown }).code ?? (error as Error).message)
  counts.set(code, (counts.get(code) ?? 0) + 1)
}

function meterModel(index: number): MashEndpointDefinition[] {
  return [
    { id: 0, features: [{ id: 1, attributes: [{ id: 1, type: 'string', value: `meter-${String(index + 1).padStart(5, '0')}` }] }] },
    {
      id: METER.endpoint,
      features: [
        {
          id: METER.feature,
          attributes: [
            { id: Attribute.power, type: 'float', value: power[index] },
            { id: Attribute.energy, type: 'float', value: energy[index] },
            { id: Attribute.voltage, type: 'float', value: voltage[index] },
            { id: Attribute.powerLimit, type: 'float', access: 'readwrite', min: 0, max: MAX_POWER_W, value: MAX_POWER_W },
          ],
          commands: {
            // Resets the energy counter; answers what it read before.
            [Command.resetEnergy]: () => {
              const before = energy[index]!
              energy[index] = 0
              change(index, Attribute.energy, 0)
              return before
            },
          },
        },
      ],
    },
  ]
}

const devices: MashDevice[] = []
for (let index = 0; index < deviceCount; index++) {
  power[index] = 500 + Math.random() * 3_000
  voltage[index] = 228 + Math.random() * 4
  energy[index] = Math.random() * 10_000
  const device = new MashDevice({ endpoints: meterModel(index) })
  device.on('write', (values) => {
    totals.changes += values.size
    const limit = values.get(Attribute.powerLimit)
    if (typeof limit === 'number') powerLimit[index] = limit
  })
  device.on('handlerError', () => totals.handlerErrors++)
  devices.push(device)
}

function change(index: number, attribute: number, value: MashValue): void {
  devices[index]!.set(METER.endpoint, METER.feature, attribute, value)
  totals.changes++
}

/** The device a connection talks to: the meter index in the first 4 bytes of its token's user data. */
function userDataOf(index: number): Uint8Array {
  const userData = new Uint8Array(256)
  new DataView(userData.buffer).setUint32(0, index)
  return userData
}

const privateKey = await generateKey()
const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: deviceCount, engine: 'dedicated', channels, ...volleyTimers })
serveSessions(server, {}, (transport, peer) => {
  const index = new DataView(peer.userData.buffer, peer.userData.byteOffset).getUint32(0)
  const device = devices[index]
  if (device === undefined) transport.close()
  else device.serve(transport)
})
let port: number
try {
  ;({ port } = await server.listen())
} catch (error) {
  exitOnCommandError('volley demo:mash', seeUsage, error)
}
// From here on, Ctrl-C (or SIGTERM) stops the connecting or the changes, and the summary follows.
tolerateClosedOutput()
const interrupted = interruption()
setMaxListeners(deviceCount + 1, interrupted) // each controller's subscribe listens to it
const fallback = fallbackReason()
const plural = (n: number, noun: string): string => `${n.toLocaleString('en-US')} ${noun}${n === 1 ? '' : 's'}`
const thousands = (n: number): string => Math.round(n).toLocaleString('en-US')
console.log(
  `volley demo:mash: a gateway on 127.0.0.1:${port} hosting ${plural(deviceCount, 'energy meter')} (MASH devices), ` +
    `${rate} changes/s each, ${seconds} s; one controller per meter, subscribed (minInterval ${SUBSCRIPTION.minIntervalMs / 1000} s, maxInterval ${SUBSCRIPTION.maxIntervalMs / 1000} s)`,
)
if (fallback === undefined) {
  const info = nativeInfo()
  console.log(`native addon: ${info.path} (libsodium ${info.sodiumVersion})\n`)
} else {
  console.log(`the fallback engine (${fallback})\n`)
}

// The controllers' connections: a token each, made as its attempt starts, naming its meter.
const pool = new ClientPool({ channels, ...volleyTimers })
const connectStarted = performance.now()
const connected = await pool.connect(
  {
    count: deviceCount,
    make: (index) =>
      generateConnectToken({ protocolId, privateKey, clientId: BigInt(index + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 60, timeoutSeconds: 10, userData: userDataOf(index) }),
  },
  { concurrency: 100, signal: interrupted },
)
const connectMs = performance.now() - connectStarted
const connectFailures = Object.entries(pool.stats().failed)
  // Ctrl-C ended the attempts: not failures (the summary says it was interrupted).
  .filter(([code]) => !(interrupted.aborted && code === 'ABORT_ERR'))
  .map(([code, n]) => `${n} ${code}`)
  .join(', ')
console.log(
  `  ${plural(connected.connected, 'controller')} connected in ${connectMs.toFixed(0)} ms (${((connected.connected / connectMs) * 1000).toFixed(0)} handshakes/s)` +
    `${connectFailures === '' ? '' : `; failed: ${connectFailures}`}`,
)

const controllers: MashController[] = []
/** Every keep-alive round trip, ms: the summary's median and the worst. */
const latencies: number[] = []
/** The demo's own close has begun: a controller's disconnect is no loss from here on. */
let closing = false
for (const client of [...pool.clients]) {
  if (client.state !== 'connected') continue
  const controller = new MashController(new ClientTransport(client), linkOptions)
  controller.on('notification', (_subscription, changes, priming) => {
    if (priming) {
      totals.primings++
      return
    }
    totals.notifications++
    totals.valuesNotified += changes.size
  })
  controller.on('latency', (latencyMs) => {
    totals.latencies++
    totals.latencySumMs += latencyMs
    latencies.push(latencyMs)
  })
  controller.on('disconnect', () => {
    if (!closing) totals.controllersLost++
  })
  controllers.push(controller)
}

const subscribeStarted = performance.now()
await Promise.all(
  controllers.map(async (controller) => {
    if (interrupted.aborted) return
    try {
      await controller.subscribe(METER.endpoint, METER.feature, { ...SUBSCRIPTION, signal: interrupted })
      totals.subscribed++
    } catch (error) {
      if (!(interrupted.aborted && (error as { code?: unknown }).code === 'ABORT_ERR')) count(totals.subscribeFailures, error)
    }
  }),
)
const subscribeFailures = [...totals.subscribeFailures].map(([code, n]) => `${n} ${code}`).join(', ')
console.log(
  `  ${plural(totals.subscribed, 'subscription')} made and primed in ${(performance.now() - subscribeStarted).toFixed(0)} ms` +
    `${subscribeFailures === '' ? '' : `; refused: ${subscribeFailures}`}\n`,
)

const round = (value: number, digits: number): number => Number(value.toFixed(digits))

/**
 * The meters' random walks: what is due by now at `rate` changes a second on each meter, however late the
 * timer fires, spread over the meters in turn (power, voltage, then energy, which counts the power drawn).
 * For budgetMs at most: a rate beyond reach must not hold up the event loop (and the window's end).
 */
let changesMade = 0
const walkStarted = performance.now()
const walk = (budgetMs = 40): void => {
  const due = Math.floor(((performance.now() - walkStarted) / 1000) * rate * deviceCount)
  const until = performance.now() + budgetMs
  for (; changesMade < due && performance.now() < until; changesMade++) {
    const index = changesMade % deviceCount
    const turn = Math.floor(changesMade / deviceCount) % 3
    if (turn === 0) {
      const next = power[index]! + (Math.random() - 0.5) * 200
      power[index] = Math.min(powerLimit[index]!, Math.max(0, next))
      change(index, Attribute.power, round(power[index]!, 1))
    } else if (turn === 1) {
      voltage[index] = Math.min(253, Math.max(207, voltage[index]! + (Math.random() - 0.5) * 1.5))
      change(index, Attribute.voltage, round(voltage[index]!, 1))
    } else {
      // One turn in three: the power drawn for the 3 / rate seconds since the last, in Wh.
      energy[index] = energy[index]! + (power[index]! * 3) / Math.max(rate, 1e-9) / 3600
      change(index, Attribute.energy, round(energy[index]!, 3))
    }
  }
}

/** A few requests in turn: a read of the measurements, a write of the power limit, an energy reset. */
let requestsMade = 0
const requestsInFlight = new Set<Promise<void>>()
const request = (): void => {
  const due = Math.floor(((performance.now() - walkStarted) / 1000) * REQUESTS_PER_DEVICE_SECOND * controllers.length)
  for (; requestsMade < due; requestsMade++) {
    const controller = controllers[(requestsMade * 7919) % controllers.length]!
    if (!controller.connected || controller.pendingRequests >= MAX_PENDING_PER_CONTROLLER) continue
    const kind = (['read', 'write', 'invoke'] as const)[requestsMade % 3]!
    const sent =
      kind === 'read'
        ? controller.read(METER.endpoint, METER.feature, [Attribute.power, Attribute.energy])
        : kind === 'write'
          ? controller.write(METER.endpoint, METER.feature, new Map([[Attribute.powerLimit, 3_000 + Math.round(Math.random() * 8_000)]]))
          : controller.invoke(METER.endpoint, METER.feature, Command.resetEnergy)
    const settled: Promise<void> = sent.then(
      () => {
        totals.requestsOk[kind]++
      },
      (error: unknown) => count(totals.requestFailures, error),
    )
    requestsInFlight.add(settled)
    void settled.finally(() => requestsInFlight.delete(settled))
  }
}

/** The meters' counters, summed. */
const deviceTotals = (): MashDeviceStats => sumDeviceStats(devices)

const cpuStart = process.cpuUsage()
const started = performance.now()
const walker = setInterval(() => walk(), 20)
const requester = setInterval(request, 100)
let last = { at: started, notifications: 0, coalesced: deviceTotals().changesCoalesced, requests: 0, latencies: 0, latencySumMs: 0 }
const requestsDone = (): number => totals.requestsOk.read + totals.requestsOk.write + totals.requestsOk.invoke + sum(totals.requestFailures)
const ticker = setInterval(() => {
  const now = performance.now()
  const perSecond = (n: number): string => thousands((n * 1000) / (now - last.at)).padStart(6)
  const device = deviceTotals()
  const latencies = totals.latencies - last.latencies
  const latency = latencies === 0 ? '     –' : `${((totals.latencySumMs - last.latencySumMs) / latencies).toFixed(2).padStart(6)} ms`
  console.log(
    `  connections ${String(server.stats().connectedClients).padStart(5)}   subscriptions ${String(device.subscriptions).padStart(5)}   ` +
      `notifications ${perSecond(totals.notifications - last.notifications)}/s   coalesced ${perSecond(device.changesCoalesced - last.coalesced)}/s   ` +
      `requests ${perSecond(requestsDone() - last.requests)}/s   keep-alive ${latency}`,
  )
  last = { at: now, notifications: totals.notifications, coalesced: device.changesCoalesced, requests: requestsDone(), latencies: totals.latencies, latencySumMs: totals.latencySumMs }
}, 500)
if (controllers.length > 0) await pause(seconds * 1000, interrupted)
clearInterval(walker)
clearInterval(requester)
clearInterval(ticker)
if (!interrupted.aborted && controllers.length > 0) walk(250) // the window's last changes: its timer may not have fired at its very end
const elapsed = (performance.now() - started) / 1000
// The last notifications: every coalescing window open now closes within minInterval. The requests in flight
// are answered (or time out) meanwhile. After a Ctrl-C, a second at most.
const settleMs = interrupted.aborted ? 1_000 : SUBSCRIPTION.minIntervalMs + 250
for (let waited = 0; waited < settleMs; waited += 50) {
  if (interrupted.aborted && requestsInFlight.size === 0) break
  await new Promise((resolve) => setTimeout(resolve, 50))
}
await Promise.race([Promise.all(requestsInFlight), new Promise((resolve) => setTimeout(resolve, linkOptions.requestTimeoutMs).unref())])
const cpu = process.cpuUsage(cpuStart)
const device = deviceTotals()
// Late pongs (after the next ping went) are no error: the keep-alive line counts them.
const linkDrops = { malformed: 0, unexpectedResponses: 0, unexpectedKinds: 0, unknownSubscriptions: 0 }
let latePongs = 0
for (const controller of controllers) {
  const dropped = controller.stats()?.dropped
  if (dropped === undefined) continue
  latePongs += dropped.strayPongs
  for (const key of Object.keys(linkDrops) as (keyof typeof linkDrops)[]) linkDrops[key] += dropped[key]
}

// The MASH close (each device echoes it), then the connections and the gateway.
closing = true
await Promise.race([Promise.all(controllers.map((controller) => controller.close())), new Promise((resolve) => setTimeout(resolve, 5_000).unref())])
await pool.close()
await server.close()

const requestsOk = totals.requestsOk.read + totals.requestsOk.write + totals.requestsOk.invoke
const requestsFailed = sum(totals.requestFailures)
const failedText = requestsFailed === 0 ? '' : ` (${[...totals.requestFailures].map(([code, n]) => `${n} ${code}`).join(', ')})`
const coalescing = totals.valuesNotified === 0 ? '–' : `${(totals.changes / totals.valuesNotified).toFixed(2)}`
const dropsTotal = sum(new Map(Object.entries(linkDrops)))
const errors = [
  connectFailures === '' ? '' : `connections failed: ${connectFailures}`,
  subscribeFailures === '' ? '' : `subscriptions refused: ${subscribeFailures}`,
  totals.controllersLost === 0 ? '' : `controllers disconnected: ${totals.controllersLost}`,
  totals.handlerErrors === 0 ? '' : `device handler errors: ${totals.handlerErrors}`,
  dropsTotal === 0 ? '' : `messages dropped by controllers: ${Object.entries(linkDrops).filter(([, n]) => n > 0).map(([what, n]) => `${what} ${n}`).join(', ')}`,
].filter((text) => text !== '')

console.log(interrupted.aborted ? `\nsummary (interrupted after ${(msUntilInterrupted(interrupted, connectStarted) / 1000).toFixed(1)} s)` : '\nsummary')
console.log(`  controllers    ${controllers.length} of ${deviceCount} connected in ${connectMs.toFixed(0)} ms; ${totals.subscribed} subscribed, ${totals.primings} primed`)
console.log(`  changes        ${thousands(totals.changes)} values changed at the meters (${thousands(totals.changes / Math.max(elapsed, 1e-9))}/s)`)
console.log(
  `  notifications  ${thousands(totals.notifications)} received (${thousands(totals.notifications / Math.max(elapsed, 1e-9))}/s) of ${thousands(device.notificationsSent + device.heartbeatsSent)} sent ` +
    `(${thousands(device.heartbeatsSent)} heartbeats), carrying ${thousands(totals.valuesNotified)} values`,
)
console.log(
  `  coalescing     ${coalescing} changes per value notified (${thousands(device.changesCoalesced)} changes replaced by a later one in their window, ` +
    `${thousands(device.bounceBacksSuppressed)} bounce-backs suppressed)`,
)
console.log(`  requests       ${requestsOk} ok (read ${totals.requestsOk.read}, write ${totals.requestsOk.write}, invoke ${totals.requestsOk.invoke}), ${requestsFailed} failed${failedText}`)
console.log(
  `  keep-alive     ${plural(totals.latencies, 'pong')}` +
    (latencies.length === 0 ? '' : `, round trip median ${quantile(latencies, 0.5).toFixed(2)} ms, 99th percentile ${quantile(latencies, 0.99).toFixed(2)} ms, max ${quantile(latencies, 1).toFixed(2)} ms`) +
    (latePongs === 0 ? '' : `; ${plural(latePongs, 'pong')} too late (after ${linkOptions.keepAlive.pongTimeoutMs} ms)`),
)
console.log(`  errors         ${errors.length === 0 ? 'none' : errors.join('; ')}`)
// Over the change window: none when Ctrl-C came while the controllers connected.
if (elapsed >= 0.1 && controllers.length > 0) {
  console.log(
    `  CPU            ${((cpu.user + cpu.system) / 1000 / elapsed / 10).toFixed(0)} % of one core (gateway, meters and controllers${fallback === undefined ? ', and both I/O threads' : ', all on the JavaScript thread'})`,
  )
}
// Cut short by a signal: the status signals give (130 for SIGINT).
if (interrupted.aborted) process.exitCode = interruptedStatus(interrupted)
else if (controllers.length !== deviceCount || totals.subscribed !== controllers.length || requestsFailed > 0 || errors.length > 0) process.exitCode = 1

/** The q-quantile of the values (nearest rank). */
function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN
}

function sum(counts: ReadonlyMap<string, number>): number {
  let total = 0
  for (const n of counts.values()) total += n
  return total
}
