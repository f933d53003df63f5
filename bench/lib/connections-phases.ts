// The three phases of the connections benchmark. Each starts its own processes (the server or receiver
// under test on one CPU, its load on the other), takes marks at the edges of its windows, and kills
// every process it started before it returns, also when it fails.
import type { ConnectionsOptions } from './connections-options.ts'
import { type ConnectionsLauncher, type Mark, type Memory, type Window, at, between, counts, countsBetween, drained, expectMark, sleep, sum, takeMark } from './connections-marks.ts'
import type { BenchChild } from './processes.ts'
import { type CoreTimes, type Disturbance, type UdpCounters, diffCoreTimes, diffUdpCounters, disturbance, readCoreTimes, readUdpCounters } from './system.ts'

/** The payload size of phase 3, both sides. */
export const PAYLOAD_SIZE = 64

/** Phase 3: the payload clients' keep-alive period (well within the tokens' 10 s timeout). */
const PAYLOAD_CLIENT_KEEP_ALIVE_MS = 3000

export interface Context {
  launch: ConnectionsLauncher
  options: ConnectionsOptions
  key: string
  protocolId: string
  log: (line: string) => void
}

/** Counts of the server's drop counters (stats().drops) and denials over a window. */
export type Drops = Record<string, number>

export interface ConnectPhase {
  clients: number
  concurrency: number
  /** The load generator's own account: pool.connect() resolved with these. */
  connected: number
  failed: Record<string, number>
  ms: number
  /** Handshakes completed per second, by the load generator's clock. */
  connectRate: number
  server: Window & {
    /** 'connect' events the server emitted in the window. */
    handshakes: number
    cpuPerHandshakeUs: number
    packetsIn: number
    packetsOut: number
    drops: Drops
    /**
     * CPU per handshake less an estimate of the keep-alive work in the window: (packets in + out − 4
     * per handshake) × the CPU per packet of the idle hold, which is all keep-alives. NaN without a hold.
     */
    cpuPerHandshakeNetUs: number
    /** Context switches of the server process (all threads) per handshake: how often it slept and woke. */
    contextSwitchesPerHandshake: number
  }
  load: Window
  disturbance: Disturbance | null
}

export interface HoldPhase {
  seconds: number
  /** Peers the server holds at the start and the end of the hold. */
  peersStart: number
  peersEnd: number
  /** Connections that ended during the hold: on the clients' side by final state, on the server's by reason. */
  clientsEnded: Record<string, number>
  serverDisconnects: Record<string, number>
  server: Window & { packetsIn: number; packetsOut: number; drops: Drops; cpuPerPacketUs: number }
  load: Window
  /** The load generator's RSS at the end of the hold (no GC), bytes. */
  loadRss: number
  /**
   * The keep-alives each client sent and received a second, on average over the hold (the server's
   * datagrams in and out ÷ peers ÷ seconds): what the hold asked for is 1000 ÷ keepAliveMs each way.
   */
  keepAliveHzIn: number
  keepAliveHzOut: number
  /** The keep-alive period the server and the clients were given. */
  keepAliveMs: number
  memory: {
    /** The server process before it made its Server (no engine, no slots): the baseline. */
    beforeServer: Memory | null
    listen: Memory | null
    connected: Memory | null
    end: Memory | null
    /**
     * (RSS with the clients connected − RSS before the Server was made) ÷ connected peers, bytes, after a
     * full GC each: right after they connected, and at the end of the hold. The server's fixed costs (its
     * engine, the slots it made for maxClients = the clients) count as the peers'.
     */
    rssPerPeerConnected: number
    rssPerPeerEnd: number
    heapUsedPerPeerEnd: number
    externalPerPeerEnd: number
    /** RSS right after listen − RSS before the Server, bytes: the engine and the slots, before any peer. */
    serverFixedRss: number
  }
  /** The server's peers and RSS during the hold (no GC), by seconds into the hold. */
  samples: { seconds: number; peers: number; rss: number; cpuShare: number }[]
  disturbance: Disturbance | null
  cores: CoreTimes[] | null
}

export interface ConnectHoldResult {
  connect: ConnectPhase
  hold: HoldPhase | null
  /** The server's totals when it stopped, and the load generator's. */
  serverFinal: Record<string, unknown> | null
  loadFinal: Record<string, unknown> | null
}

/**
 * Phase 3's receivers: volley's Server; the same on volley's fallback engine (the baseline
 * the native engine beats); a node:dgram socket (plaintext); and the floor, a C receiver that does only what a
 * receiver built like volley's cannot skip (bench/native/floor-receiver.c).
 */
export type PayloadReceiver = 'volley' | 'fallback' | 'dgram' | 'floor'

export interface PayloadRun {
  receiver: PayloadReceiver
  round: number
  rate: number
  clients: number
  /** Payloads the sender handed over (volley: send() returned true; dgram: send() succeeded). */
  sent: number
  /** volley: sends refused (queue full) or skipped (client not connected); dgram: send() errors. */
  notSent: number
  received: number
  loss: number
  senderSeconds: number
  window: Window
  cpuPerMessageUs: number
  userPerMessageUs: number
  systemPerMessageUs: number
  /** volley: the server's CPU share with the clients connected and silent (keep-alives only), before sending. */
  idleCpuShare: number
  /** volley: CPU per payload less the idle share over the window: the server's own keep-alive work (and timers). */
  cpuPerMessageNetUs: number
  /** volley: the server's datagrams in and out in the window (keep-alives out included). */
  packetsIn: number
  packetsOut: number
  drops: Drops
  senderCpuShare: number
  /** Context switches of the receiving process (all threads) per 1000 messages: how often it slept and woke. */
  contextSwitchesPerThousand: number
  kernel: UdpCounters | null
  disturbance: Disturbance | null
  details: Record<string, unknown>
}

/** One round of the handshake phase: every client connects once. */
export interface HandshakeRound {
  /** 'cold': the server's first clients (its memory grows); 'warm': the next clients, after those left. */
  round: 'cold' | 'warm'
  /** Which fresh server of the phase, from 1 (--repeats of them, one after the other); absent before 2026-11-27T18. */
  series?: number
  connected: number
  failed: Record<string, number>
  ms: number
  connectRate: number
  server: Window & {
    handshakes: number
    cpuPerHandshakeUs: number
    packetsIn: number
    packetsOut: number
    contextSwitchesPerHandshake: number
    /**
     * Page faults of the server process per handshake: memory touched for the first time (a fresh server
     * grows its heaps), each a kernel entry and a page cleared, which in a VM that hands freed memory back
     * to its host costs several µs.
     */
    pageFaultsPerHandshake: number
  }
  /** The load generator's process (ClientPool) or the C++ handshake load's, over the round. */
  load: Window
  /** The load generator's CPU share over its connect (the C++ load measures itself). */
  loadCpuShare: number
  /** The server's CPU over the same time (its window also holds the marks' exchanges around it). */
  serverCpuShare: number
  disturbance: Disturbance | null
}

export interface HandshakePhase {
  clients: number
  concurrency: number
  /** 'native': the C++ handshake load; 'pool': volley's ClientPool in a node process. */
  loader: 'native' | 'pool'
  /** The keep-alive period of both sides in this phase: long, so that the window holds handshakes only. */
  keepAliveMs: number
  rounds: HandshakeRound[]
}

/** The keep-alive period and token timeout of the handshake phase. */
const HANDSHAKE_KEEP_ALIVE_MS = 10_000
const HANDSHAKE_TIMEOUT_SECONDS = 30

/**
 * Phase 0: what a handshake costs the server, with nothing else in the window (keep-alives every 10 s):
 * N clients connect to a fresh server (cold), leave, and N new clients connect again (warm); as many times,
 * each on a fresh server, as --repeats says (the summary takes the medians).
 */
export async function runHandshakes(context: Context, nativeLoad: string | undefined): Promise<HandshakePhase> {
  const rounds: HandshakeRound[] = []
  for (let series = 1; series <= context.options.repeats; series++) rounds.push(...(await runHandshakeSeries(context, nativeLoad, series)))
  const { options } = context
  return { clients: options.handshakeClients, concurrency: options.concurrency, loader: nativeLoad === undefined ? 'pool' : 'native', keepAliveMs: HANDSHAKE_KEEP_ALIVE_MS, rounds }
}

/** One fresh server and one load generator: the cold round, everyone leaves, the warm round. */
async function runHandshakeSeries(context: Context, nativeLoad: string | undefined, series: number): Promise<HandshakeRound[]> {
  const { launch, options, log } = context
  const clients = options.handshakeClients
  const children: BenchChild[] = []
  const lifetimeMs = 600_000
  try {
    const server = launch.server(context.key, context.protocolId, clients, HANDSHAKE_KEEP_ALIVE_MS, lifetimeMs)
    children.push(server)
    const { port } = await server.expect('ready', 60_000)
    const load = launch.load(port, context.key, context.protocolId, clients, options.concurrency, HANDSHAKE_TIMEOUT_SECONDS, HANDSHAKE_KEEP_ALIVE_MS, lifetimeMs, nativeLoad)
    children.push(load)
    await load.expect('ready', 60_000 + clients * 5)
    const rounds: HandshakeRound[] = []
    for (const round of ['cold', 'warm'] as const) {
      if (round === 'warm') {
        // Everyone leaves (redundant disconnects included), the load makes its next clients' tokens.
        load.tell('leave')
        await expectMark(load, 'left', 120_000 + clients * 5)
        await sleep(1_500)
      }
      const cores0 = readCoreTimes()
      const server0 = await takeMark(server, `${round}-start`)
      const load0 = await takeMark(load, `${round}-start`)
      load.tell('connect')
      const load1 = await expectMark(load, 'connected', 60_000 + Math.ceil(clients / options.concurrency) * (HANDSHAKE_TIMEOUT_SECONDS + 5) * 1000)
      const server1 = await takeMark(server, `${round}-end`)
      const cores = diffCoreTimes(cores0, readCoreTimes())
      const loadWindow = between(load0, load1)
      const outcome = connectOutcome(load1, server0, server1)
      // A round that connected no one measured nothing (a smoke run that passed on it proved nothing).
      if (outcome.connected === 0) throw new Error(`handshakes (${round}): no client of ${clients} connected`)
      const { server: window, ms } = outcome
      const nativeCpuUs = nativeLoad === undefined ? Number.NaN : at(load1, 'connect', 'cpuUs')
      // The C++ load starts in the window (after load0) and reads its tokens first: all of its CPU is the
      // load's when other work on the load's core is looked for.
      const nativeProcessCpuUs = nativeLoad === undefined ? 0 : at(load1, 'connect', 'processCpuUs')
      const result: HandshakeRound = {
        round,
        series,
        ...outcome,
        load: loadWindow,
        loadCpuShare: nativeLoad === undefined ? loadWindow.cpuShare : nativeCpuUs / 1000 / ms,
        serverCpuShare: window.cpuUs / 1000 / ms,
        disturbance: disturbance(cores, launch.cpus, window.cpuUs / 1e6, (loadWindow.cpuUs + nativeProcessCpuUs) / 1e6),
      }
      rounds.push(result)
      const perHandshake = (count: number): string => (count / Math.max(1, window.handshakes)).toFixed(2)
      log(
        `handshakes (${round}, ${series}/${options.repeats}): ${outcome.connected}/${clients} in ${(ms / 1000).toFixed(2)} s (${Math.round(result.connectRate)}/s), server ${window.cpuPerHandshakeUs.toFixed(1)} µs CPU/handshake ` +
          `(${(result.serverCpuShare * 100).toFixed(0)} % of a core), ${perHandshake(window.packetsIn)} datagrams in and ${perHandshake(window.packetsOut)} out per handshake, ` +
          `${window.pageFaultsPerHandshake.toFixed(2)} page faults per handshake, load ${(result.loadCpuShare * 100).toFixed(0)} %`,
      )
    }
    await stop(load)
    await stop(server)
    return rounds
  } finally {
    for (const child of children) child.kill()
  }
}

/** A memory snapshot the child put in its mark's details under `key`, or null. */
function memoryAt(mark: Mark, key: string): Memory | null {
  const rss = at(mark, key, 'rss')
  if (!Number.isFinite(rss)) return null
  return { rss, heapTotal: at(mark, key, 'heapTotal'), heapUsed: at(mark, key, 'heapUsed'), external: at(mark, key, 'external'), arrayBuffers: at(mark, key, 'arrayBuffers') }
}

/** Phases 1 and 2: N clients connect to one server, then stay connected (keep-alives only) for the hold. */
export async function runConnectAndHold(context: Context): Promise<ConnectHoldResult> {
  const { launch, options, log } = context
  const children: BenchChild[] = []
  const lifetimeMs = Math.round((options.holdSeconds + 600) * 1000)
  try {
    const server = launch.server(context.key, context.protocolId, options.clients, options.keepAliveMs, lifetimeMs)
    children.push(server)
    const { port } = await server.expect('ready', 60_000)
    const listen = await takeMark(server, 'listen', { collect: true })
    const load = launch.load(port, context.key, context.protocolId, options.clients, options.concurrency, options.timeoutSeconds, options.keepAliveMs, lifetimeMs)
    children.push(load)
    await load.expect('ready', 60_000 + options.clients * 5) // connect tokens are made first: ~0.3 ms each
    log(`connect: ${options.clients} clients, concurrency ${options.concurrency}, server on port ${port}`)

    const coresConnect0 = readCoreTimes()
    const serverC0 = await takeMark(server, 'connect-start')
    const loadC0 = await takeMark(load, 'connect-start')
    load.tell('connect')
    // Every attempt ends by itself (connected, denied or timed out after the token's timeout): bounded.
    const connectBound = 60_000 + Math.ceil(options.clients / options.concurrency) * (options.timeoutSeconds + 5) * 1000
    const loadC1 = await expectMark(load, 'connected', connectBound)
    const serverC1 = await takeMark(server, 'connect-end')
    const coresConnect = diffCoreTimes(coresConnect0, readCoreTimes())
    const loadConnectWindow = between(loadC0, loadC1)
    const outcome = connectOutcome(loadC1, serverC0, serverC1)
    const { server: connectWindow, connected, ms } = outcome
    const handshakes = connectWindow.handshakes
    const connect: ConnectPhase = {
      clients: options.clients,
      concurrency: options.concurrency,
      ...outcome,
      server: {
        ...outcome.server,
        drops: dropsBetween(serverC0, serverC1),
        cpuPerHandshakeNetUs: Number.NaN,
      },
      load: loadConnectWindow,
      disturbance: disturbance(coresConnect, launch.cpus, connectWindow.cpuUs / 1e6, loadConnectWindow.cpuUs / 1e6),
    }
    log(
      `connect: ${connected}/${options.clients} in ${(ms / 1000).toFixed(2)} s (${Math.round(connect.connectRate)}/s), server ${connect.server.cpuPerHandshakeUs.toFixed(1)} µs CPU/handshake ` +
        `(${(connectWindow.cpuShare * 100).toFixed(0)} % of a core: JS thread ${share(connectWindow.jsThreadUs, connectWindow.seconds)}, other threads ${share(connectWindow.otherThreadsUs, connectWindow.seconds)}), load ${(loadConnectWindow.cpuShare * 100).toFixed(0)} %, failed ${JSON.stringify(connect.failed)}`,
    )

    // Phase 2: the memory with every client connected (after a GC, whose CPU time falls before the
    // hold's window), then the hold itself.
    const connectedMemory = await takeMark(server, 'connected-memory', { collect: true })
    const coresHold0 = readCoreTimes()
    const serverH0 = await takeMark(server, 'hold-start')
    const loadH0 = await takeMark(load, 'hold-start')
    const samples: HoldPhase['samples'] = []
    const sampleEvery = Math.max(1, options.holdSeconds / 6)
    const holdEnd = Date.now() + options.holdSeconds * 1000
    let previous = serverH0
    for (let left = holdEnd - Date.now(); left > 0; left = holdEnd - Date.now()) {
      await sleep(Math.min(left, sampleEvery * 1000))
      if (holdEnd - Date.now() <= 50) break
      const sample = await takeMark(server, 'hold-sample')
      samples.push({ seconds: sample.seconds - serverH0.seconds, peers: at(sample, 'peers'), rss: sample.memory?.rss ?? Number.NaN, cpuShare: between(previous, sample).cpuShare })
      previous = sample
    }
    const serverH1 = await takeMark(server, 'hold-end')
    const loadH1 = await takeMark(load, 'hold-end')
    const coresHold = diffCoreTimes(coresHold0, readCoreTimes())
    samples.push({ seconds: serverH1.seconds - serverH0.seconds, peers: at(serverH1, 'peers'), rss: serverH1.memory?.rss ?? Number.NaN, cpuShare: between(previous, serverH1).cpuShare })
    const endMemory = await takeMark(server, 'hold-memory', { collect: true })
    const holdWindow = between(serverH0, serverH1)
    const loadHoldWindow = between(loadH0, loadH1)
    const holdIn = at(serverH1, 'stats', 'packets', 'in') - at(serverH0, 'stats', 'packets', 'in')
    const holdOut = at(serverH1, 'stats', 'packets', 'out') - at(serverH0, 'stats', 'packets', 'out')
    const beforeServer = memoryAt(listen, 'beforeServer')
    const perPeer = (memory: Mark, field: keyof Memory): number => {
      const peers = at(memory, 'peers')
      return memory.memory !== null && beforeServer !== null && peers > 0 ? (memory.memory[field] - beforeServer[field]) / peers : Number.NaN
    }
    const peerSeconds = at(serverH0, 'peers') * holdWindow.seconds
    const hold: HoldPhase = {
      seconds: holdWindow.seconds,
      peersStart: at(serverH0, 'peers'),
      peersEnd: at(serverH1, 'peers'),
      clientsEnded: countsBetween(counts(loadH0, 'pool', 'ended'), counts(loadH1, 'pool', 'ended')),
      serverDisconnects: countsBetween(counts(serverH0, 'events', 'disconnects'), counts(serverH1, 'events', 'disconnects')),
      server: { ...holdWindow, packetsIn: holdIn, packetsOut: holdOut, drops: dropsBetween(serverH0, serverH1), cpuPerPacketUs: holdWindow.cpuUs / (holdIn + holdOut) },
      load: loadHoldWindow,
      loadRss: loadH1.memory?.rss ?? Number.NaN,
      keepAliveHzIn: holdIn / peerSeconds,
      keepAliveHzOut: holdOut / peerSeconds,
      keepAliveMs: options.keepAliveMs,
      memory: {
        beforeServer,
        listen: listen.memory,
        connected: connectedMemory.memory,
        end: endMemory.memory,
        rssPerPeerConnected: perPeer(connectedMemory, 'rss'),
        rssPerPeerEnd: perPeer(endMemory, 'rss'),
        heapUsedPerPeerEnd: perPeer(endMemory, 'heapUsed'),
        externalPerPeerEnd: perPeer(endMemory, 'external'),
        serverFixedRss: listen.memory !== null && beforeServer !== null ? listen.memory.rss - beforeServer.rss : Number.NaN,
      },
      samples,
      disturbance: disturbance(coresHold, launch.cpus, holdWindow.cpuUs / 1e6, loadHoldWindow.cpuUs / 1e6),
      cores: coresHold,
    }
    // The keep-alive estimate of phase 1 needs the hold's CPU per packet.
    const keepAlivePackets = Math.max(0, connect.server.packetsIn + connect.server.packetsOut - 4 * handshakes)
    connect.server.cpuPerHandshakeNetUs = handshakes > 0 ? (connectWindow.cpuUs - keepAlivePackets * hold.server.cpuPerPacketUs) / handshakes : Number.NaN
    log(
      `hold: ${hold.seconds.toFixed(1)} s, peers ${hold.peersStart} → ${hold.peersEnd}, ended on the clients' side ${JSON.stringify(hold.clientsEnded)}, ` +
        `server disconnects ${JSON.stringify(hold.serverDisconnects)}, server CPU ${(holdWindow.cpuShare * 100).toFixed(1)} % (JS thread ${share(holdWindow.jsThreadUs, holdWindow.seconds)}), load ${(loadHoldWindow.cpuShare * 100).toFixed(0)} %, ` +
        `RSS/peer ${hold.memory.rssPerPeerEnd.toFixed(0)} B (at connect ${hold.memory.rssPerPeerConnected.toFixed(0)} B)`,
    )

    // The clients leave first (each sends its redundant disconnects), then the server stops: stopping
    // both at once would have the server receive the clients' disconnects while it is stopping.
    const loadFinal = await stop(load)
    const serverFinal = await stop(server)
    return { connect, hold, serverFinal, loadFinal }
  } finally {
    for (const child of children) child.kill()
  }
}

/**
 * Phase 3, volley: payloadClients clients send 64 B payloads at the given total rate to a server that counts
 * them; with nativeLoad, the C++ load's clients, which send in the bursts of node:dgram's C sender. engine
 * 'fallback': the server on the fallback engine (its clients stay on the native one).
 */
export async function runVolleyPayload(context: Context, round: number, nativeLoad: string | undefined, engine: 'native' | 'fallback' = 'native'): Promise<PayloadRun> {
  const { launch, options, log } = context
  const children: BenchChild[] = []
  const lifetimeMs = Math.round((options.baselineSeconds + options.payloadSeconds + 600) * 1000)
  try {
    const server = launch.server(context.key, context.protocolId, options.payloadClients, options.keepAliveMs, lifetimeMs, engine)
    children.push(server)
    const { port } = await server.expect('ready', 60_000)
    const receiver: PayloadReceiver = engine === 'fallback' ? 'fallback' : 'volley'
    // The clients' own keep-alives are never due while they send (each sends 100 payloads a second), so
    // their period changes nothing in the payload window; a long one keeps them out of the idle window
    // too, which then holds the server's own keep-alives only: what "net of idle" takes away.
    const load = launch.load(port, context.key, context.protocolId, options.payloadClients, options.concurrency, options.timeoutSeconds, PAYLOAD_CLIENT_KEEP_ALIVE_MS, lifetimeMs, nativeLoad)
    children.push(load)
    await load.expect('ready', 60_000 + options.payloadClients * 5)
    load.tell('connect')
    const connected = await expectMark(load, 'connected', 60_000 + Math.ceil(options.payloadClients / options.concurrency) * (options.timeoutSeconds + 5) * 1000)
    const clients = at(connected, 'connect', 'connected')
    if (clients < options.payloadClients) log(`payload ${receiver} #${round}: only ${clients} of ${options.payloadClients} clients connected`)
    await sleep(300) // the last handshakes' packets are gone

    const idle0 = await takeMark(server, 'idle-start')
    await sleep(options.baselineSeconds * 1000)
    const idle1 = await takeMark(server, 'idle-end')
    const idle = between(idle0, idle1)

    const kernel0 = readUdpCounters()
    const cores0 = readCoreTimes()
    await takeMark(load, 'send-start')
    const serverA = await takeMark(server, 'payload-start')
    const milliseconds = options.payloadSeconds * 1000
    load.tell(`send ${options.rate} ${Math.round(milliseconds)} ${options.tickUs}`)
    const loadB = await expectMark(load, 'sent', milliseconds + 60_000)
    const serverB = await drained(server)
    const kernel = diffUdpCounters(kernel0, readUdpCounters())
    const cores = diffCoreTimes(cores0, readCoreTimes())
    const window = between(serverA, serverB)
    const sent = at(loadB, 'window', 'sent')
    const received = window.packets
    if (!(received > 0)) throw new Error(`payload (${receiver}, round ${round}): nothing received of ${sent} sent`)
    // The sender's CPU over its sending (the ClientPool's process, or the C++ load's).
    const senderCpuUs = at(loadB, 'window', 'cpuUs')
    const run: PayloadRun = {
      receiver,
      round,
      rate: options.rate,
      clients,
      sent,
      notSent: at(loadB, 'window', 'refused') + at(loadB, 'window', 'notConnected'),
      received,
      loss: sent > 0 ? 1 - received / sent : Number.NaN,
      senderSeconds: at(loadB, 'window', 'seconds'),
      window: window,
      cpuPerMessageUs: received > 0 ? window.cpuUs / received : Number.NaN,
      userPerMessageUs: received > 0 ? (serverB.userUs - serverA.userUs) / received : Number.NaN,
      systemPerMessageUs: received > 0 ? (serverB.systemUs - serverA.systemUs) / received : Number.NaN,
      idleCpuShare: idle.cpuShare,
      cpuPerMessageNetUs: received > 0 ? (window.cpuUs - idle.cpuShare * window.seconds * 1e6) / received : Number.NaN,
      packetsIn: at(serverB, 'stats', 'packets', 'in') - at(serverA, 'stats', 'packets', 'in'),
      packetsOut: at(serverB, 'stats', 'packets', 'out') - at(serverA, 'stats', 'packets', 'out'),
      drops: dropsBetween(serverA, serverB),
      senderCpuShare: at(loadB, 'window', 'seconds') > 0 ? senderCpuUs / 1e6 / at(loadB, 'window', 'seconds') : Number.NaN,
      contextSwitchesPerThousand: received > 0 ? (contextSwitches(serverA, serverB) / received) * 1000 : Number.NaN,
      kernel,
      disturbance: disturbance(cores, launch.cpus, window.cpuUs / 1e6, senderCpuUs / 1e6),
      details: { load: loadB.details.window, idle, serverPeers: at(serverB, 'peers'), serverEvents: serverB.details.events },
    }
    logPayload(log, run)
    await stop(load)
    await stop(server)
    return run
  } finally {
    for (const child of children) child.kill()
  }
}

/**
 * Phase 3, node:dgram or the floor: the C paced sender sends 64 B plaintext datagrams at the same rate, from
 * as many sockets.
 */
export async function runPlaintextPayload(context: Context, round: number, kind: 'dgram' | 'floor'): Promise<PayloadRun> {
  const { launch, options, log } = context
  const children: BenchChild[] = []
  const lifetimeMs = Math.round((options.payloadSeconds + 600) * 1000)
  try {
    const receiver = kind === 'dgram' ? launch.dgramReceiver(lifetimeMs) : launch.floorReceiver(lifetimeMs)
    children.push(receiver)
    const { port } = await receiver.expect('ready', 60_000)
    const kernel0 = readUdpCounters()
    const cores0 = readCoreTimes()
    const receiverA = await takeMark(receiver, 'payload-start')
    const milliseconds = options.payloadSeconds * 1000
    const sender = launch.pacedSender(port, PAYLOAD_SIZE, options.rate, milliseconds, options.payloadClients, options.tickUs)
    children.push(sender)
    const result = await sender.expect('result', milliseconds + 60_000)
    await sender.finish(5_000)
    const receiverB = await drained(receiver)
    const kernel = diffUdpCounters(kernel0, readUdpCounters())
    const cores = diffCoreTimes(cores0, readCoreTimes())
    const window = between(receiverA, receiverB)
    const received = window.packets
    const senderCpuUs = result.cpuUserUs + result.cpuSystemUs
    const run: PayloadRun = {
      receiver: kind,
      round,
      rate: options.rate,
      clients: options.payloadClients,
      sent: result.packets,
      notSent: typeof result.details.errors === 'number' ? result.details.errors : Number.NaN,
      received,
      loss: result.packets > 0 ? 1 - received / result.packets : Number.NaN,
      senderSeconds: result.seconds,
      window: window,
      cpuPerMessageUs: received > 0 ? window.cpuUs / received : Number.NaN,
      userPerMessageUs: received > 0 ? (receiverB.userUs - receiverA.userUs) / received : Number.NaN,
      systemPerMessageUs: received > 0 ? (receiverB.systemUs - receiverA.systemUs) / received : Number.NaN,
      idleCpuShare: Number.NaN,
      cpuPerMessageNetUs: Number.NaN,
      packetsIn: received,
      packetsOut: 0,
      drops: {},
      senderCpuShare: result.seconds > 0 ? senderCpuUs / 1e6 / result.seconds : Number.NaN,
      contextSwitchesPerThousand: received > 0 ? (contextSwitches(receiverA, receiverB) / received) * 1000 : Number.NaN,
      kernel,
      disturbance: disturbance(cores, launch.cpus, window.cpuUs / 1e6, senderCpuUs / 1e6),
      details: { sender: result.details, ...(kind === 'floor' ? { openFailures: at(receiverB, 'openFailures') } : {}) },
    }
    logPayload(log, run)
    await stop(receiver)
    return run
  } finally {
    for (const child of children) child.kill()
  }
}

function logPayload(log: (line: string) => void, run: PayloadRun): void {
  log(
    `payload ${run.receiver.padEnd(6)} #${run.round}: sent ${run.sent} (not sent ${run.notSent}), received ${run.received}, loss ${(run.loss * 100).toFixed(2)} %, ` +
      `${run.cpuPerMessageUs.toFixed(2)} µs CPU/msg, CPU ${(run.window.cpuShare * 100).toFixed(0)} %` +
      (run.receiver === 'volley' || run.receiver === 'fallback' ? ` (idle ${(run.idleCpuShare * 100).toFixed(1)} %, net ${run.cpuPerMessageNetUs.toFixed(2)} µs/msg)` : '') +
      ` (${run.receiver === 'floor' ? 'hand-off thread' : 'JS thread'} ${share(run.window.jsThreadUs, run.window.seconds)}), sender CPU ${(run.senderCpuShare * 100).toFixed(0)} %`,
  )
}

function share(microseconds: number, seconds: number): string {
  return Number.isFinite(microseconds) && seconds > 0 ? `${((microseconds / 1e6 / seconds) * 100).toFixed(0)} %` : '?'
}

/** Asks a child to stop and returns its last mark's details (null when it does not answer in time). */
async function stop(child: BenchChild): Promise<Record<string, unknown> | null> {
  child.tell('stop')
  try {
    const mark = await expectMark(child, 'stopped', 15_000)
    await child.finish(5_000)
    return mark.details
  } catch {
    child.kill()
    return null
  }
}

function dropsBetween(a: Mark, b: Mark): Drops {
  const drops = countsBetween(counts(a, 'stats', 'drops'), counts(b, 'stats', 'drops'))
  const denied = at(b, 'stats', 'denied') - at(a, 'stats', 'denied')
  if (denied !== 0) drops.denied = denied
  return drops
}

/** What a connect window gives, from the load generator's 'connected' mark and the server's marks around it. */
function connectOutcome(loadEnd: Mark, server0: Mark, server1: Mark) {
  const window = between(server0, server1)
  const handshakes = at(server1, 'events', 'connects') - at(server0, 'events', 'connects')
  const connected = at(loadEnd, 'connect', 'connected')
  const ms = at(loadEnd, 'connect', 'ms')
  return {
    connected,
    failed: counts(loadEnd, 'pool', 'failed'),
    ms,
    connectRate: ms > 0 ? (connected / ms) * 1000 : Number.NaN,
    server: {
      ...window,
      handshakes,
      cpuPerHandshakeUs: handshakes > 0 ? window.cpuUs / handshakes : Number.NaN,
      packetsIn: at(server1, 'stats', 'packets', 'in') - at(server0, 'stats', 'packets', 'in'),
      packetsOut: at(server1, 'stats', 'packets', 'out') - at(server0, 'stats', 'packets', 'out'),
      contextSwitchesPerHandshake: handshakes > 0 ? contextSwitches(server0, server1) / handshakes : Number.NaN,
      pageFaultsPerHandshake: handshakes > 0 ? sum(countsBetween(counts(server0, 'pageFaults'), counts(server1, 'pageFaults'))) / handshakes : Number.NaN,
    },
  }
}

function contextSwitches(a: Mark, b: Mark): number {
  return sum(countsBetween(counts(a, 'contextSwitches'), counts(b, 'contextSwitches')))
}
