// The two scenarios of the sessions benchmark. Each starts its own processes (the gateway or server under
// test on one CPU, its controllers or client on the other), takes marks at the edges of its windows
// (bench/lib/connections-child.ts: every figure is measured by the process itself), and kills every process
// it started before it returns, also when it fails.
import { join } from 'node:path'
import { type Mark, type Memory, type Window, at, between, counts, expectMark, sleep, takeMark } from './connections-marks.ts'
import { BenchChild } from './processes.ts'
import type { SessionsOptions } from './sessions-options.ts'
import { median } from './statistics.ts'
import { type CoreTimes, type Disturbance, diffCoreTimes, disturbance, isDisturbed, readCoreTimes } from './system.ts'

export interface SessionsContext {
  root: string
  options: SessionsOptions
  /** The CPUs of the tested process and of its counterpart when pinned. */
  cpus: { tested: number; counterpart: number } | null
  key: string
  protocolId: string
  log: (line: string) => void
}

/** The longest a child may live: the whole run, with room (it exits by itself past it). */
const CHILD_LIFETIME_MS = 3_600_000

function child(context: SessionsContext, name: string, file: string, side: 'tested' | 'counterpart', args: readonly string[], extraFlags: readonly string[] = []): BenchChild {
  const cpu = context.cpus === null ? undefined : context.cpus[side]
  const profileDir = context.options.cpuProfileDir
  const flags = side === 'tested' && profileDir !== undefined ? [...extraFlags, '--cpu-prof', `--cpu-prof-dir=${profileDir}`] : extraFlags
  // `node --import tsx <file>`: one process, no tsx wrapper process to pin or kill.
  return new BenchChild({ name, command: process.execPath, args: [...flags, '--import', 'tsx', join('bench', 'lib', file), ...args], cpu, cwd: context.root })
}

// ---------------------------------------------------------------------------------------------------------
// Scenario A: the fan-out
// ---------------------------------------------------------------------------------------------------------

export interface FanOutResult {
  devices: number
  /** Subscriptions asked for (devices × subscriptions per device) and made. */
  subscriptionsAsked: number
  subscriptionsMade: number
  subscribeFailed: Record<string, number>
  connect: { connected: number; failed: Record<string, number>; ms: number }
  subscribeMs: number
  /** The gateway with the connections up, no subscriptions: idle, then with the changes running. */
  baselines: {
    idle: Window & { cpuPerSecondUs: number }
    /** cpuPerChangeUs: less the idle baseline's CPU for as long (the connections' keep-alives, timers). */
    changes: Window & { cpuPerSecondUs: number; changesPerSecond: number; cpuPerChangeUs: number }
  }
  /** The measured steady window, all subscriptions made. */
  steady: {
    seconds: number
    gateway: Window
    controllers: Window[]
    /** Notifications the gateway sent, and the controllers received, in the window. */
    notificationsSent: number
    notificationsReceived: number
    notificationsPerSecond: number
    /** Values a notification carried, on average (the changes it coalesced that survived). */
    valuesPerNotification: number
    changesPerSecond: number
    /** Gateway CPU (user + system, all threads) over the window ÷ notifications sent in it. */
    cpuPerNotificationUs: number
    /** The same less the changes baseline's CPU for as long: what the subscriptions and notifications add. */
    cpuPerNotificationNetUs: number
    jsThreadPerNotificationUs: number
    otherThreadsPerNotificationUs: number
    /** The most changes due and not yet made at a tick of the gateway's change loop in the window. */
    changeBacklog: number
    /** The most gateway connections waiting for a drain at once in the window (sampled every 100 ms), and the messages they held. */
    backPressure: { mostWaiting: number; mostHeld: number }
    /** The gateway's event loop delay in the window (monitorEventLoopDelay), ms: how long its longest stall was. */
    eventLoopDelay: { meanMs: number; p99Ms: number; maxMs: number }
    /** Changes the loop skipped in the window, having fallen a whole period behind: what the gateway could not do. */
    changesSkipped: number
    /** Changes a second asked for (every attribute at the change rate). */
    changesAskedPerSecond: number
    /** UDP datagrams the controllers' kernels dropped (receive buffers full) in the window. */
    controllersReceiveDrops: number
    /** Other processes' CPU on the cores in the window; disturbed: the gateway's core had more than its share of it. */
    disturbance: Disturbance | null
    disturbed: boolean
  }
  memory: {
    beforeDevices: Memory | null
    afterDevices: Memory | null
    /** After a full GC: the connections up, no subscription; then every subscription made, changes running. */
    unsubscribed: Memory | null
    subscribed: Memory | null
    /** (subscribed − unsubscribed) ÷ subscriptions, bytes: the figure. */
    rssPerSubscription: number
    /** The same difference, by part: the JS heap in use, the heap V8 holds, memory outside it (buffers). */
    perSubscription: { heapUsed: number; heapTotal: number; external: number; outsideHeap: number }
    heapUsedPerSubscription: number
    /** After the changes stopped and the last notifications went (full GC): RSS over unsubscribed, per subscription. */
    quiet: Memory | null
    rssPerSubscriptionQuiet: number
    /** (RSS after building the devices − before) ÷ devices: the model's own cost, not the subscriptions'. */
    rssPerDevice: number
  }
  /** After the changes stopped and the last windows closed: every notification sent, received? */
  delivery: { sent: number; received: number; allArrived: boolean }
  /** What the controllers' links dropped (malformed, unexpected responses, unknown subscriptions …), summed. */
  controllerDrops: Record<string, number>
  gatewayEvents: Record<string, unknown>
  controllerDisconnects: number
}

export async function runFanOut(context: SessionsContext): Promise<FanOutResult> {
  const { options, log } = context
  const started: BenchChild[] = []
  try {
    const gateway = child(
      context,
      'sessions gateway',
      'sessions-gateway.ts',
      'tested',
      [
        '--key',
        context.key,
        '--protocol-id',
        context.protocolId,
        '--devices',
        String(options.devices),
        '--features',
        String(options.subscriptions),
        '--attributes',
        String(options.attributes),
        '--change-rate',
        String(options.changeRate),
        '--keep-alive-ms',
        String(options.keepAliveMs),
        '--max-ms',
        String(CHILD_LIFETIME_MS),
      ],
      ['--expose-gc'],
    )
    started.push(gateway)
    const { port } = await gateway.expect('ready', 300_000)
    log(`fan-out: gateway on 127.0.0.1:${port} with ${options.devices} devices; controllers connecting`)

    const share = Math.ceil(options.devices / options.controllerProcesses)
    const controllers: BenchChild[] = []
    for (let first = 0; first < options.devices; first += share) {
      const controller = child(context, `sessions controllers ${controllers.length + 1}`, 'sessions-controllers.ts', 'counterpart', [
        '--server',
        `127.0.0.1:${port}`,
        '--key',
        context.key,
        '--protocol-id',
        context.protocolId,
        '--first',
        String(first),
        '--count',
        String(Math.min(share, options.devices - first)),
        '--concurrency',
        String(options.concurrency),
        '--features',
        String(options.subscriptions),
        '--min-interval-ms',
        String(options.minIntervalMs),
        '--max-interval-ms',
        String(options.maxIntervalMs),
        '--keep-alive-ms',
        String(options.keepAliveMs),
        '--max-ms',
        String(CHILD_LIFETIME_MS),
      ])
      started.push(controller)
      controllers.push(controller)
    }
    for (const controller of controllers) await controller.expect('ready', 60_000)
    for (const controller of controllers) controller.tell('connect')
    const connected = await Promise.all(controllers.map((controller) => expectMark(controller, 'connected', 600_000)))
    const connect = {
      connected: connected.reduce((total, mark) => total + at(mark, 'connect', 'connected'), 0),
      failed: sumCounts(connected.map((mark) => counts(mark, 'pool', 'failed'))),
      ms: Math.max(...connected.map((mark) => at(mark, 'connect', 'ms'))),
    }
    // Each connection carries a few messages both ways (a read of each feature) before the baselines: what a
    // connection holds once it has been used is the connection's, not its subscriptions'.
    for (const controller of controllers) controller.tell(`warm ${options.concurrency}`)
    const warmed = await Promise.all(controllers.map((controller) => expectMark(controller, 'warmed', 600_000)))
    const warmFailed = sumCounts(warmed.map((mark) => counts(mark, 'warm', 'failed')))
    if (Object.keys(warmFailed).length > 0) throw new Error(`reads before the baselines failed: ${JSON.stringify(warmFailed)}`)
    log(`fan-out: ${connect.connected} controllers connected in ${(connect.ms / 1000).toFixed(1)} s, each read its device; baselines`)
    await sleep(1000)

    // Baselines: the connections up and idle; then the changes running, nothing subscribed.
    const idleStart = await takeMark(gateway, 'idle-start')
    await sleep(options.baselineSeconds * 1000)
    const idleEnd = await takeMark(gateway, 'idle-end')
    gateway.tell('changes start')
    await sleep(1000)
    const changesStart = await takeMark(gateway, 'changes-start')
    await sleep(options.baselineSeconds * 1000)
    const changesEnd = await takeMark(gateway, 'changes-end')
    // The memory without subscriptions, the changes running (as they will be in the window).
    const unsubscribed = await takeMark(gateway, 'unsubscribed', { collect: true, timeoutMs: 120_000 })

    // Subscribing with the changes paused: the time it takes is the subscriptions' own.
    gateway.tell('changes stop')
    log(`fan-out: subscribing ${options.devices * options.subscriptions} subscriptions`)
    for (const controller of controllers) controller.tell(`subscribe ${options.concurrency}`)
    const subscribed = await Promise.all(controllers.map((controller) => expectMark(controller, 'subscribed', 1_200_000)))
    const subscriptionsMade = subscribed.reduce((total, mark) => total + at(mark, 'subscribe', 'ok'), 0)
    const subscribeMs = Math.max(...subscribed.map((mark) => at(mark, 'subscribe', 'ms')))
    gateway.tell('changes start')
    log(`fan-out: ${subscriptionsMade} subscriptions made in ${(subscribeMs / 1000).toFixed(1)} s; settling ${options.settleSeconds} s, then a ${options.windowSeconds} s window`)
    await sleep(options.settleSeconds * 1000)

    // The steady window: marks asked of every process at once, so that their windows line up.
    const all = [gateway, ...controllers]
    for (const running of all) running.tell('mark steady-start')
    const [steadyStart, ...controllersStart] = await Promise.all(all.map((running) => expectMark(running, 'steady-start', 120_000)))
    await sleep(options.windowSeconds * 1000)
    for (const running of all) running.tell('mark steady-end')
    const [steadyEnd, ...controllersEnd] = await Promise.all(all.map((running) => expectMark(running, 'steady-end', 120_000)))
    const cores = diffCoreTimes(coreTimesOf(steadyStart!), coreTimesOf(steadyEnd!))
    const subscribedMemory = await takeMark(gateway, 'subscribed', { collect: true, timeoutMs: 120_000 })

    // The end: the changes stop, the last windows close (minInterval), every notification arrives.
    gateway.tell('changes stop')
    await sleep(options.minIntervalMs + 500)
    const delivery = await settledDelivery(gateway, controllers)
    const quietMemory = await takeMark(gateway, 'quiet-memory', { collect: true, timeoutMs: 120_000 })
    const finals = await Promise.all(controllers.map((controller) => takeFinal(controller)))

    const gatewayWindow = between(steadyStart!, steadyEnd!)
    const controllerWindows = controllersStart.map((start, index) => between(start, controllersEnd[index]!))
    const notificationsSent = gatewayWindow.packets
    const notificationsReceived = controllerWindows.reduce((total, window) => total + window.packets, 0)
    const valuesReceived = controllerWindows.reduce((total, window) => total + window.bytes, 0)
    const steadyDisturbance = disturbance(cores, context.cpus, gatewayWindow.cpuUs / 1e6, controllerWindows.reduce((total, window) => total + window.cpuUs, 0) / 1e6)
    const changesBaseline = between(changesStart, changesEnd)
    const idle = between(idleStart, idleEnd)
    const changesPerSecond = gatewayWindow.bytes / gatewayWindow.seconds
    const baselineCpuUs = (changesBaseline.cpuUs / changesBaseline.seconds) * gatewayWindow.seconds
    const subscriptionsInMemory = at(subscribedMemory, 'devices', 'subscriptions')
    const grown = (to: Mark, part: keyof Memory): number => ((to.memory?.[part] ?? Number.NaN) - (unsubscribed.memory?.[part] ?? Number.NaN)) / subscriptionsInMemory
    const beforeDevices = memoryOf(unsubscribed.details.beforeDevices)
    const afterDevices = memoryOf(unsubscribed.details.afterDevices)
    return {
      devices: options.devices,
      subscriptionsAsked: options.devices * options.subscriptions,
      subscriptionsMade,
      subscribeFailed: sumCounts(subscribed.map((mark) => counts(mark, 'subscribe', 'failed'))),
      connect,
      subscribeMs,
      baselines: {
        idle: { ...idle, cpuPerSecondUs: idle.cpuUs / idle.seconds },
        changes: {
          ...changesBaseline,
          cpuPerSecondUs: changesBaseline.cpuUs / changesBaseline.seconds,
          changesPerSecond: changesBaseline.bytes / changesBaseline.seconds,
          cpuPerChangeUs: (changesBaseline.cpuUs - (idle.cpuUs / idle.seconds) * changesBaseline.seconds) / changesBaseline.bytes,
        },
      },
      steady: {
        seconds: gatewayWindow.seconds,
        gateway: gatewayWindow,
        controllers: controllerWindows,
        notificationsSent,
        notificationsReceived,
        // Over the controllers' own windows (marked at the gateway's moments, give or take a few ms).
        notificationsPerSecond: notificationsReceived / (controllerWindows.reduce((total, window) => total + window.seconds, 0) / controllerWindows.length),
        valuesPerNotification: valuesReceived / notificationsReceived,
        changesPerSecond,
        cpuPerNotificationUs: gatewayWindow.cpuUs / notificationsSent,
        cpuPerNotificationNetUs: (gatewayWindow.cpuUs - baselineCpuUs) / notificationsSent,
        jsThreadPerNotificationUs: gatewayWindow.jsThreadUs / notificationsSent,
        otherThreadsPerNotificationUs: gatewayWindow.otherThreadsUs / notificationsSent,
        changeBacklog: at(steadyEnd!, 'changes', 'largestBacklog'),
        backPressure: { mostWaiting: at(steadyEnd!, 'backPressure', 'mostWaiting'), mostHeld: at(steadyEnd!, 'backPressure', 'mostHeld') },
        eventLoopDelay: { meanMs: at(steadyEnd!, 'eventLoop', 'meanMs'), p99Ms: at(steadyEnd!, 'eventLoop', 'p99Ms'), maxMs: at(steadyEnd!, 'eventLoop', 'maxMs') },
        changesSkipped: at(steadyEnd!, 'changes', 'skipped') - at(steadyStart!, 'changes', 'skipped'),
        changesAskedPerSecond: at(steadyEnd!, 'changes', 'perSecond'),
        controllersReceiveDrops: controllersStart.reduce(
          (total, start, index) => total + at(controllersEnd[index]!, 'pool', 'drops', 'receiveBufferFull') - at(start, 'pool', 'drops', 'receiveBufferFull'),
          0,
        ),
        disturbance: steadyDisturbance,
        // Judged on the gateway's core: the controllers' windows start and end when they answer their marks, the
        // cores' when the gateway answers its own, up to its event loop's delay later, which leaves part of the
        // controllers' own work looking like another process's.
        disturbed: isDisturbed(steadyDisturbance === null ? null : { ...steadyDisturbance, counterpartCpuSeconds: 0 }, gatewayWindow.seconds),
      },
      memory: {
        beforeDevices,
        afterDevices,
        unsubscribed: unsubscribed.memory,
        subscribed: subscribedMemory.memory,
        rssPerSubscription: grown(subscribedMemory, 'rss'),
        perSubscription: {
          heapUsed: grown(subscribedMemory, 'heapUsed'),
          heapTotal: grown(subscribedMemory, 'heapTotal'),
          external: grown(subscribedMemory, 'external'),
          outsideHeap: grown(subscribedMemory, 'rss') - grown(subscribedMemory, 'heapTotal'),
        },
        heapUsedPerSubscription: grown(subscribedMemory, 'heapUsed'),
        quiet: quietMemory.memory,
        rssPerSubscriptionQuiet: grown(quietMemory, 'rss'),
        rssPerDevice: beforeDevices === null || afterDevices === null ? Number.NaN : (afterDevices.rss - beforeDevices.rss) / options.devices,
      },
      delivery,
      controllerDrops: sumCounts(finals.map((mark) => withoutPending(counts(mark, 'links')))),
      gatewayEvents: isRecordLike(steadyEnd!.details.events) ? steadyEnd!.details.events : {},
      controllerDisconnects: finals.reduce((total, mark) => total + at(mark, 'events', 'disconnects'), 0),
    }
  } finally {
    for (const running of started) running.tell('stop')
    await Promise.all(started.map((running) => running.finish(15_000)))
  }
}

/**
 * Polls until the controllers have received every notification the gateway sent (or their count stops
 * moving: then some were lost), for 15 s at most.
 */
async function settledDelivery(gateway: BenchChild, controllers: BenchChild[]): Promise<{ sent: number; received: number; allArrived: boolean }> {
  const deadline = Date.now() + 15_000
  let last = -1
  for (;;) {
    // Heartbeats go on after the changes stop (50,000 subscriptions' are 833 a second): what must have
    // arrived is what the gateway had sent before the controllers were asked, no more.
    const sent = (await takeMark(gateway, 'quiet')).packets
    const received = (await Promise.all(controllers.map((controller) => takeMark(controller, 'quiet')))).reduce((total, mark) => total + mark.packets, 0)
    if (received >= sent || received === last || Date.now() > deadline) return { sent, received, allArrived: received >= sent }
    last = received
    await sleep(500)
  }
}

/** A controller process's last counters, its links' drops included. */
async function takeFinal(controller: BenchChild): Promise<Mark> {
  controller.tell('mark final links')
  return expectMark(controller, 'final', 60_000)
}

/** The core times a gateway mark carries (read by the gateway as it marked). */
function coreTimesOf(mark: Mark): CoreTimes[] | null {
  const cores = mark.details.cores
  return Array.isArray(cores) ? (cores as CoreTimes[]) : null
}

function withoutPending(values: Record<string, number>): Record<string, number> {
  const { pendingRequests: _pending, ...rest } = values
  return rest
}

function sumCounts(records: readonly Record<string, number>[]): Record<string, number> {
  const total: Record<string, number> = {}
  for (const record of records) for (const [key, n] of Object.entries(record)) total[key] = (total[key] ?? 0) + n
  return total
}

function isRecordLike(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function memoryOf(value: unknown): Memory | null {
  if (!isRecordLike(value)) return null
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = value
  if (typeof rss !== 'number' || typeof heapTotal !== 'number' || typeof heapUsed !== 'number' || typeof external !== 'number' || typeof arrayBuffers !== 'number') return null
  return { rss, heapTotal, heapUsed, external, arrayBuffers }
}

// ---------------------------------------------------------------------------------------------------------
// Scenario B: request/response pairs
// ---------------------------------------------------------------------------------------------------------

export type PairKind = 'mash' | 'echo'

export interface PairRun {
  kind: PairKind
  round: number
  pairs: number
  seconds: number
  /** Pairs a second. */
  rate: number
  /** CPU (user + system, all threads) of each process over the run, µs; the server's is null in memory. */
  serverCpuUs: number | null
  clientCpuUs: number
  /** Both processes' CPU ÷ pairs (over Volley); the one process's (in memory). */
  cpuPerPairUs: number
  serverPerPairUs: number | null
  clientPerPairUs: number
  /** CPU time other processes took on the pinned cores during the run (null unpinned). */
  disturbance: Disturbance | null
  disturbed: boolean
}

export interface PairsResult {
  window: number
  seconds: number
  /** Over Volley: a client process and a server process, MASH on channel 0, the echo on channel 1. */
  volley: PairRun[]
  /** In memory: a MashController and a MashDevice on a MemoryTransport pair, one process. */
  memory: PairRun[]
  /** Medians over the rounds neither of whose runs was disturbed (over all of them when every round was). */
  summary: { volley: PairsSummary; memory: PairsSummary }
}

export interface PairsSummary {
  mash: PairSummary
  echo: PairSummary
  /** The median of each round's MASH run less its echo run; and each round's. */
  differenceUs: number
  differences: number[]
  /** Rounds counted, and rounds left out because other processes took the cores meanwhile. */
  rounds: number
  disturbedRounds: number
}

export interface PairSummary {
  /** Medians over the rounds. */
  cpuPerPairUs: number
  serverPerPairUs: number
  clientPerPairUs: number
  rate: number
}

export async function runPairs(context: SessionsContext): Promise<PairsResult> {
  const { options, log } = context
  const started: BenchChild[] = []
  const common = ['--key', context.key, '--protocol-id', context.protocolId, '--max-ms', String(CHILD_LIFETIME_MS)]
  const runMs = Math.round(options.pairSeconds * 1000)
  try {
    const server = child(context, 'pairs server', 'sessions-pairs.ts', 'tested', ['--role', 'server', ...common])
    started.push(server)
    const { port } = await server.expect('ready', 60_000)
    const client = child(context, 'pairs client', 'sessions-pairs.ts', 'counterpart', ['--role', 'client', '--port', String(port), ...common])
    started.push(client)
    await client.expect('ready', 60_000)
    const memory = child(context, 'pairs in memory', 'sessions-pairs.ts', 'tested', ['--role', 'memory', ...common])
    started.push(memory)
    await memory.expect('ready', 60_000)

    const runOver = async (kind: PairKind, round: number, runner: BenchChild, serverSide: BenchChild | null): Promise<PairRun> => {
      const cores0 = readCoreTimes()
      const serverStart = serverSide === null ? null : await takeMark(serverSide, `${kind}-start`)
      runner.tell(`run ${kind} ${runMs} ${options.pairWindow}`)
      const start = await expectMark(runner, 'run-start', 30_000)
      const end = await expectMark(runner, 'run-end', runMs + 60_000)
      const serverEnd = serverSide === null ? null : await takeMark(serverSide, `${kind}-end`)
      const run = pairRun(kind, round, start, end, serverStart, serverEnd)
      // Over Volley the server is on the tested core and the client on the other; in memory, one process on the tested core.
      const [testedUs, counterpartUs] = serverSide === null ? [run.clientCpuUs, 0] : [run.serverCpuUs ?? 0, run.clientCpuUs]
      run.disturbance = disturbance(diffCoreTimes(cores0, readCoreTimes()), context.cpus, testedUs / 1e6, counterpartUs / 1e6)
      // In memory, only the tested core matters: nothing of the run is on the other.
      const judged = serverSide === null && run.disturbance !== null ? { ...run.disturbance, counterpartCpuSeconds: 0 } : run.disturbance
      run.disturbed = isDisturbed(judged, run.seconds)
      return run
    }
    // Warm-up: a run of each kind on each side, not counted (V8 compiles both sides' code meanwhile).
    log(`pairs: warming up; then ${options.rounds} rounds of ${options.pairSeconds} s runs, ${options.pairWindow} requests outstanding`)
    for (const kind of ['mash', 'echo'] as const) {
      await runOver(kind, 0, client, server)
      await runOver(kind, 0, memory, null)
    }
    const volley: PairRun[] = []
    const inMemory: PairRun[] = []
    for (let round = 1; round <= options.rounds; round++) {
      // Alternating which goes first, so that neither always runs on a machine warmed (or disturbed) by the other.
      const order: PairKind[] = round % 2 === 1 ? ['mash', 'echo'] : ['echo', 'mash']
      for (const kind of order) volley.push(await runOver(kind, round, client, server))
      for (const kind of order) inMemory.push(await runOver(kind, round, memory, null))
      const last = (runs: PairRun[], kind: PairKind): PairRun => runs.filter((run) => run.kind === kind).at(-1)!
      log(
        `pairs round ${round}: volley MASH ${last(volley, 'mash').cpuPerPairUs.toFixed(2)} µs, echo ${last(volley, 'echo').cpuPerPairUs.toFixed(2)} µs; ` +
          `in memory MASH ${last(inMemory, 'mash').cpuPerPairUs.toFixed(2)} µs, echo ${last(inMemory, 'echo').cpuPerPairUs.toFixed(2)} µs`,
      )
    }
    return {
      window: options.pairWindow,
      seconds: options.pairSeconds,
      volley,
      memory: inMemory,
      summary: { volley: summarizePairs(volley), memory: summarizePairs(inMemory) },
    }
  } finally {
    for (const running of started) running.tell('stop')
    await Promise.all(started.map((running) => running.finish(15_000)))
  }
}

function pairRun(kind: PairKind, round: number, start: Mark, end: Mark, serverStart: Mark | null, serverEnd: Mark | null): PairRun {
  const pairs = end.packets - start.packets
  const seconds = end.seconds - start.seconds
  const clientCpuUs = end.cpuUs - start.cpuUs
  const serverCpuUs = serverStart === null || serverEnd === null ? null : serverEnd.cpuUs - serverStart.cpuUs
  return {
    kind,
    round,
    pairs,
    seconds,
    rate: pairs / seconds,
    serverCpuUs,
    clientCpuUs,
    cpuPerPairUs: (clientCpuUs + (serverCpuUs ?? 0)) / pairs,
    serverPerPairUs: serverCpuUs === null ? null : serverCpuUs / pairs,
    clientPerPairUs: clientCpuUs / pairs,
    disturbance: null,
    disturbed: false,
  }
}

function summarizePairs(runs: readonly PairRun[]): PairsSummary {
  const rounds = [...new Set(runs.map((run) => run.round))]
  const disturbedRounds = new Set(runs.filter((run) => run.disturbed).map((run) => run.round))
  // A round whose MASH run or echo run was disturbed is left out, unless every round was.
  const counted = disturbedRounds.size < rounds.length ? runs.filter((run) => !disturbedRounds.has(run.round)) : runs
  const of = (kind: PairKind): PairSummary => {
    const mine = counted.filter((run) => run.kind === kind)
    return {
      cpuPerPairUs: median(mine.map((run) => run.cpuPerPairUs)),
      serverPerPairUs: median(mine.map((run) => run.serverPerPairUs ?? Number.NaN)),
      clientPerPairUs: median(mine.map((run) => run.clientPerPairUs)),
      rate: median(mine.map((run) => run.rate)),
    }
  }
  // Each round's MASH run less its echo run: the two ran back to back, on the same connection.
  const differences = [...new Set(counted.map((run) => run.round))].map((round) => {
    const mash = counted.find((run) => run.round === round && run.kind === 'mash')
    const echo = counted.find((run) => run.round === round && run.kind === 'echo')
    return mash === undefined || echo === undefined ? Number.NaN : mash.cpuPerPairUs - echo.cpuPerPairUs
  })
  return {
    mash: of('mash'),
    echo: of('echo'),
    differenceUs: median(differences),
    differences,
    rounds: differences.length,
    disturbedRounds: disturbedRounds.size,
  }
}
