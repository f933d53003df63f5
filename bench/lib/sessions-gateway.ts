// The gateway of the sessions benchmark's fan-out scenario (a child process): one Volley Server on
// 127.0.0.1 hosting --devices MashDevices behind serveSessions, each connection served by the device its
// connect token's user data names. The application's changes run here too: every attribute of every device
// changes --change-rate times a second, the changes spread evenly over the second (not in bursts). Commands
// on stdin (bench/lib/connections-child.ts):
//   mark <label> [gc]   a snapshot: CPU time, memory (after a full GC with "gc"), the devices' counters, the
//                       change loop's largest backlog since the last mark; packets = notifications sent
//                       (heartbeats included), bytes = changes made
//   changes start       starts the changes; `changes stop` stops them
//   stop                closes the server, a last mark, exit
// Run as: node --expose-gc --import tsx bench/lib/sessions-gateway.ts --key <hex> --protocol-id <n>
//         --devices <n> --features <n> --attributes <n> --change-rate <per s> --keep-alive-ms <ms> --max-ms <lifetime>
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { Server } from '../../src/index.ts'
import { type PeerTransport, serveSessions, sessionTimers } from '../../src/sessions/index.ts'
import { MashDevice, sumDeviceStats, type MashDeviceStats } from '../../src/sessions/mash/index.ts'
import { type MarkCounters, emitMark, memoryNow, numberArg, serveCommands } from './connections-child.ts'
import { HOST } from './constants.ts'
import { emit, failStart } from './protocol.ts'
import { readCoreTimes } from './system.ts'
import { ENDPOINT, deviceIndexOf, fanOutModel, volleyOptions } from './sessions-model.ts'

const { values } = parseArgs({
  options: {
    key: { type: 'string' },
    'protocol-id': { type: 'string' },
    devices: { type: 'string' },
    features: { type: 'string' },
    attributes: { type: 'string' },
    'change-rate': { type: 'string' },
    'keep-alive-ms': { type: 'string' },
    'max-ms': { type: 'string' },
  },
  strict: true,
})

/** How often the change loop runs; each run makes the changes due by then, for CHANGE_BUDGET_MS at most. */
const CHANGE_TICK_MS = 2
const CHANGE_BUDGET_MS = 5

const counters: MarkCounters = { packets: 0, bytes: 0 }
// The process before its devices and its server: the baseline of the memory figures.
const beforeDevices = memoryNow(true)

try {
  const deviceCount = numberArg('--devices', values.devices, 1, 1 << 20)
  const features = numberArg('--features', values.features, 1, 50)
  const attributes = numberArg('--attributes', values.attributes, 1, 100)
  const changeRate = numberArg('--change-rate', values['change-rate'], 0.001, 1000)
  const keepAliveMs = numberArg('--keep-alive-ms', values['keep-alive-ms'], 1, 60_000)
  const devices: MashDevice[] = []
  for (let index = 0; index < deviceCount; index++) devices.push(new MashDevice({ endpoints: fanOutModel(features, attributes) }))
  const afterDevices = memoryNow(true)

  const server = new Server({
    protocolId: BigInt(values['protocol-id'] ?? '0x1234'),
    privateKey: Uint8Array.from(Buffer.from(values.key ?? '', 'hex')),
    address: `${HOST}:0`,
    maxClients: deviceCount,
    engine: 'dedicated',
    ...volleyOptions(1, keepAliveMs),
  })
  const events = { connects: 0, disconnects: {} as Record<string, number>, errors: 0, lastError: '', unknownDevices: 0 }
  server.on('connect', () => events.connects++)
  server.on('disconnect', (_peer, reason) => {
    events.disconnects[reason] = (events.disconnects[reason] ?? 0) + 1
  })
  server.on('error', (error) => {
    events.errors++
    events.lastError = error.message
  })
  serveSessions(server, {}, (transport, peer) => {
    const device = devices[deviceIndexOf(peer.userData)]
    if (device !== undefined) {
      device.serve(transport)
      return
    }
    events.unknownDevices++
    transport.close()
  })
  const { port } = await server.listen()

  // The changes: change k of each second goes to device k mod D, then to the device's features in turn, so
  // that each attribute changes once a period, at its own moment, and a subscription's 10 attributes change
  // at moments spread over the period (a window that opens at the first sees all 10 before it closes).
  const slots = deviceCount * features * attributes
  const perSecond = slots * changeRate
  /** Changes the schedule has reached: made, or skipped when the loop fell a whole period behind. */
  let scheduled = 0
  let changesMade = 0
  let changesSkipped = 0
  let changesFrom = 0
  let changeTimer: NodeJS.Timeout | undefined
  /** The most changes that were due and not yet made when a tick began, since the last mark: whether the loop kept up. */
  let largestBacklog = 0
  const change = (): void => {
    const due = Math.floor(((performance.now() - changesFrom) / 1000) * perSecond)
    largestBacklog = Math.max(largestBacklog, due - scheduled)
    // A loop a whole period behind skips to one period behind (a meter read late is read once, not twice),
    // and a tick runs CHANGE_BUDGET_MS at most: a saturated gateway still serves its connections between
    // ticks, and what it could not change shows as skipped changes rather than as a blocked event loop.
    if (due - scheduled > slots) {
      changesSkipped += due - scheduled - slots
      scheduled = due - slots
    }
    const until = performance.now() + CHANGE_BUDGET_MS
    for (; scheduled < due; scheduled++, changesMade++) {
      if ((scheduled & 255) === 0 && performance.now() > until) break
      const slot = scheduled % slots
      const device = devices[slot % deviceCount]!
      const rest = Math.floor(slot / deviceCount)
      const feature = (rest % features) + 1
      const attribute = Math.floor(rest / features) + 1
      // A new value every period (no bounce-back to suppress), a float as a measurement is.
      device.set(ENDPOINT, feature, attribute, Math.floor(scheduled / slots) + 0.5)
    }
    counters.bytes = changesMade
  }

  const deviceTotals = (): MashDeviceStats => {
    const sum = sumDeviceStats(devices)
    counters.packets = sum.notificationsSent + sum.heartbeatsSent
    return sum
  }
  // Back-pressure: every 100 ms, the connections whose transport holds messages (its send was refused: the
  // notifications of its subscriptions wait for a drain), the most at once since the last mark.
  const backPressure = { mostWaiting: 0, mostHeld: 0 }
  setInterval(() => {
    let waiting = 0
    let held = 0
    for (const device of devices) {
      for (const session of device.sessions) {
        const transport = session.transport as PeerTransport
        if (transport.writable) continue
        waiting++
        held += transport.heldMessages
      }
    }
    backPressure.mostWaiting = Math.max(backPressure.mostWaiting, waiting)
    backPressure.mostHeld = Math.max(backPressure.mostHeld, held)
  }, 100).unref()
  // How late the event loop ran since the last mark: a stall holds up the changes and the notifications alike.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  const snapshot = (): Record<string, unknown> => {
    const stats = server.stats()
    const eventLoop = { meanMs: loopDelay.mean / 1e6, p99Ms: loopDelay.percentile(99) / 1e6, maxMs: loopDelay.max / 1e6 }
    loopDelay.reset()
    const waiting = { ...backPressure }
    backPressure.mostWaiting = 0
    backPressure.mostHeld = 0
    return {
      eventLoop,
      backPressure: waiting,
      devices: deviceTotals(),
      changes: { made: changesMade, skipped: changesSkipped, perSecond, largestBacklog },
      timers: sessionTimers().size,
      server: { connectedClients: stats.connectedClients, packets: stats.packets, drops: stats.drops, link: stats.link },
      events: { ...events, disconnects: { ...events.disconnects } },
      beforeDevices,
      afterDevices,
    }
  }
  serveCommands(
    {
      mark: ([label = 'mark', collect]) => {
        // The counters first (their sums are what the mark's packets and bytes say), then the CPU and memory.
        // The cores' times at the mark itself: a runner's reading around a mark that comes late (a stalled event
        // loop) would count the gateway's own work before it as other processes'.
        const extra = { ...snapshot(), cores: readCoreTimes() }
        largestBacklog = 0
        emitMark(label, counters, extra, collect === 'gc')
      },
      changes: ([what]) => {
        if (what === 'start' && changeTimer === undefined) {
          changesFrom = performance.now() - (scheduled / perSecond) * 1000 // a restart carries on the schedule
          changeTimer = setInterval(change, CHANGE_TICK_MS)
        } else if (what === 'stop' && changeTimer !== undefined) {
          clearInterval(changeTimer)
          changeTimer = undefined
        }
      },
      stop: async () => {
        if (changeTimer !== undefined) clearInterval(changeTimer)
        const deadline = new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref())
        await Promise.race([server.close(), deadline])
        emitMark('stopped', counters, snapshot())
        process.exit(0)
      },
    },
    numberArg('--max-ms', values['max-ms'], 1_000, 3_600_000),
  )
  emit({ type: 'ready', port, recvBufferSize: 0 })
} catch (error) {
  failStart(error)
}
