// The connections benchmark's summary (medians of phase 3, targets) and its markdown.
import type { ConnectHoldResult, HandshakePhase, PayloadRun } from './connections-phases.ts'
import type { ConnectionsOptions } from './connections-options.ts'
import { microseconds, percent, table, times } from './format.ts'
import { median, ratio } from './statistics.ts'
import type { SystemInfo } from './system.ts'
import { isDisturbed } from './system.ts'
import { isRecord } from './protocol.ts'

/**
 * The server's RSS per connected idle peer: the larger of its two readings, right after the clients
 * connected and at the end of the hold, each from before the Server was made (see HoldPhase). Runs made
 * before that baseline existed measured from right after listen, at the end of the hold only: `fromListen`.
 */
export function idlePeerRss(memory: { beforeServer?: unknown; rssPerPeerConnected: number; rssPerPeerEnd: number }): { perPeer: number; fromListen: boolean } {
  if (memory.beforeServer === undefined || memory.beforeServer === null) return { perPeer: memory.rssPerPeerEnd, fromListen: true }
  return { perPeer: Math.max(memory.rssPerPeerConnected, memory.rssPerPeerEnd), fromListen: false }
}

export interface PayloadSummary {
  receiver: PayloadRun['receiver']
  runs: number
  rate: number
  /** Medians over the runs. */
  receivedRate: number
  loss: number
  cpuPerMessageUs: number
  userPerMessageUs: number
  systemPerMessageUs: number
  cpuShare: number
  cpuPerMessageNetUs: number
  idleCpuShare: number
  senderCpuShare: number
  contextSwitchesPerThousand: number
  disturbedRuns: number
}

export interface TargetCheck {
  what: string
  value: number
  unit: string
  target: string
  met: boolean | null
}

/** Phase 0's rounds of one kind over its fresh servers: the median server CPU per handshake and each round's. */
export interface HandshakeSummary {
  round: 'cold' | 'warm'
  series: number
  cpuPerHandshakeUs: number
  cpuPerHandshakeUsEach: number[]
  pageFaultsPerHandshake: number
  connectRate: number
  serverCpuShare: number
  loadCpuShare: number
}

export function summarizeHandshakes(handshakes: HandshakePhase | null): HandshakeSummary[] {
  const out: HandshakeSummary[] = []
  for (const round of ['cold', 'warm'] as const) {
    const rounds = (handshakes?.rounds ?? []).filter((each) => each.round === round)
    if (rounds.length === 0) continue
    out.push({
      round,
      series: rounds.length,
      cpuPerHandshakeUs: median(rounds.map((each) => each.server.cpuPerHandshakeUs)),
      cpuPerHandshakeUsEach: rounds.map((each) => each.server.cpuPerHandshakeUs),
      pageFaultsPerHandshake: median(rounds.map((each) => each.server.pageFaultsPerHandshake)),
      connectRate: median(rounds.map((each) => each.connectRate)),
      serverCpuShare: median(rounds.map((each) => each.serverCpuShare)),
      loadCpuShare: median(rounds.map((each) => each.loadCpuShare)),
    })
  }
  return out
}

export interface ConnectionsSummary {
  /** Phase 0: medians over its fresh servers. */
  handshakes: HandshakeSummary[]
  payload: PayloadSummary[]
  /** volley CPU per payload ÷ node:dgram CPU per datagram (medians). */
  payloadRatio: number
  payloadRatioNet: number
  /** The floor receiver's CPU per datagram ÷ node:dgram's: where a receiver built like volley's server cannot go below. */
  floorRatio: number
  /** volley's CPU per payload ÷ the floor's, gross and net of idle keep-alives: what volley adds above the floor. */
  volleyOverFloor: number
  volleyOverFloorNet: number
  /** volley's CPU per payload on its native engine ÷ on its fallback engine (the baseline). */
  nativeOverFallback: number
  targets: TargetCheck[]
  notes: string[]
}

export function summarizeConnections(handshakes: HandshakePhase | null, connectHold: ConnectHoldResult | null, payloadRuns: readonly PayloadRun[], notes: readonly string[]): ConnectionsSummary {
  const payload: PayloadSummary[] = []
  for (const receiver of ['volley', 'fallback', 'dgram', 'floor'] as const) {
    const runs = payloadRuns.filter((run) => run.receiver === receiver)
    if (runs.length === 0) continue
    payload.push({
      receiver,
      runs: runs.length,
      rate: runs[0]?.rate ?? Number.NaN,
      receivedRate: median(runs.map((run) => run.received / run.window.seconds)),
      loss: median(runs.map((run) => run.loss)),
      cpuPerMessageUs: median(runs.map((run) => run.cpuPerMessageUs)),
      userPerMessageUs: median(runs.map((run) => run.userPerMessageUs)),
      systemPerMessageUs: median(runs.map((run) => run.systemPerMessageUs)),
      cpuShare: median(runs.map((run) => run.window.cpuShare)),
      cpuPerMessageNetUs: median(runs.map((run) => run.cpuPerMessageNetUs)),
      idleCpuShare: median(runs.map((run) => run.idleCpuShare)),
      senderCpuShare: median(runs.map((run) => run.senderCpuShare)),
      contextSwitchesPerThousand: median(runs.map((run) => run.contextSwitchesPerThousand)),
      disturbedRuns: runs.filter((run) => isDisturbed(run.disturbance, run.window.seconds)).length,
    })
  }
  const volley = payload.find((entry) => entry.receiver === 'volley')
  const dgram = payload.find((entry) => entry.receiver === 'dgram')
  const payloadRatio = ratio(volley?.cpuPerMessageUs, dgram?.cpuPerMessageUs)
  const payloadRatioNet = ratio(volley?.cpuPerMessageNetUs, dgram?.cpuPerMessageUs)
  const floor = payload.find((entry) => entry.receiver === 'floor')
  const floorRatio = ratio(floor?.cpuPerMessageUs, dgram?.cpuPerMessageUs)
  const volleyOverFloor = ratio(volley?.cpuPerMessageUs, floor?.cpuPerMessageUs)
  const volleyOverFloorNet = ratio(volley?.cpuPerMessageNetUs, floor?.cpuPerMessageUs)
  const fallback = payload.find((entry) => entry.receiver === 'fallback')
  const nativeOverFallback = ratio(volley?.cpuPerMessageUs, fallback?.cpuPerMessageUs)

  const targets: TargetCheck[] = []
  const hold = connectHold?.hold
  const handshakeSummary = summarizeHandshakes(handshakes)
  for (const round of handshakeSummary) {
    const which = round.round === 'cold' ? 'a fresh server\'s first clients' : 'the next clients, after those left'
    const over = round.series > 1 ? `, the median of ${round.series} fresh servers` : ''
    targets.push(check(`server CPU per completed handshake (${which}${over})`, round.cpuPerHandshakeUs, 'µs', '< 20 µs', (value) => value < 20))
  }
  if (hold) {
    targets.push(check('server RSS per connected idle peer (the larger of right after connect and end of hold)', idlePeerRss(hold.memory).perPeer, 'B', '< 2 KiB', (value) => value < 2048))
    const timedOut = (hold.clientsEnded['connection-timed-out'] ?? 0) + (hold.serverDisconnects.timeout ?? 0)
    targets.push(check('connections timed out during the hold (clients + server)', timedOut, '', '0', (value) => value === 0))
  }
  // Judged net of the keep-alives the server sends to clients it sends nothing else (the protocol's idle cost,
  // not a message's); the gross ratio and volley ÷ the floor are reported beside it.
  targets.push(check('payload CPU, net of idle keep-alives: volley per encrypted payload ÷ node:dgram per datagram', payloadRatioNet, '×', '≤ 0.5×', (value) => value <= 0.5))

  return { handshakes: handshakeSummary, payload, payloadRatio, payloadRatioNet, floorRatio, volleyOverFloor, volleyOverFloorNet, nativeOverFallback, targets, notes: [...notes, ...findings(handshakes, connectHold, payloadRuns)] }
}

function check(what: string, value: number, unit: string, target: string, test: (value: number) => boolean): TargetCheck {
  return { what, value, unit, target, met: Number.isFinite(value) ? test(value) : null }
}

/** Whatever looks wrong in the runs: failures, drops, lost connections, loss. */
function findings(handshakes: HandshakePhase | null, connectHold: ConnectHoldResult | null, runs: readonly PayloadRun[]): string[] {
  const notes: string[] = []
  for (const round of handshakes?.rounds ?? []) {
    const tag = `handshakes (${round.round}${round.series === undefined ? '' : `, fresh server ${round.series}`})`
    if (round.connected < (handshakes?.clients ?? 0)) notes.push(`${tag}: only ${round.connected} of ${handshakes?.clients} clients connected; failures by code: ${JSON.stringify(round.failed)}`)
    if (round.server.handshakes !== round.connected) {
      notes.push(`${tag}: the server emitted ${round.server.handshakes} 'connect' events in the window, the clients counted ${round.connected} connections`)
    }
    if (isDisturbed(round.disturbance, round.server.seconds)) notes.push(`${tag}: disturbed by other processes: ${JSON.stringify(round.disturbance)}`)
    if (round.loadCpuShare > 0.9) notes.push(`${tag}: the load generator used ${(round.loadCpuShare * 100).toFixed(0)} % of its core: the connect rate is its limit (the server used ${(round.serverCpuShare * 100).toFixed(0)} %)`)
  }
  const connect = connectHold?.connect
  if (connect) {
    if (connect.connected < connect.clients) notes.push(`connect: only ${connect.connected} of ${connect.clients} clients connected; failures by code: ${JSON.stringify(connect.failed)}`)
    if (connect.server.handshakes !== connect.connected) {
      notes.push(`connect: the server emitted ${connect.server.handshakes} 'connect' events in the window, the clients counted ${connect.connected} connections`)
    }
    if (Object.keys(connect.server.drops).length > 0) notes.push(`connect: server drops/denials in the window: ${JSON.stringify(connect.server.drops)}`)
    if (isDisturbed(connect.disturbance, connect.server.seconds)) notes.push(`connect: disturbed by other processes: ${JSON.stringify(connect.disturbance)}`)
    if (connect.load.cpuShare > 0.9) {
      notes.push(
        `connect: the load generator used ${(connect.load.cpuShare * 100).toFixed(0)} % of its core: the connect rate is its limit, not the server's ` +
          `(the server used ${(connect.server.cpuShare * 100).toFixed(0)} %), and the server's CPU per handshake is measured at that rate`,
      )
    }
  }
  const hold = connectHold?.hold
  if (hold) {
    if (Object.keys(hold.clientsEnded).length > 0) notes.push(`hold: client connections ended: ${JSON.stringify(hold.clientsEnded)}`)
    if (Object.keys(hold.serverDisconnects).length > 0) notes.push(`hold: server disconnects: ${JSON.stringify(hold.serverDisconnects)}`)
    if (hold.peersEnd !== hold.peersStart) notes.push(`hold: the server held ${hold.peersStart} peers at the start and ${hold.peersEnd} at the end`)
    if (Object.keys(hold.server.drops).length > 0) notes.push(`hold: server drops in the window: ${JSON.stringify(hold.server.drops)}`)
    if (isDisturbed(hold.disturbance, hold.seconds)) notes.push(`hold: disturbed by other processes: ${JSON.stringify(hold.disturbance)}`)
    if (hold.load.cpuShare > 0.9) notes.push(`hold: the load generator used ${(hold.load.cpuShare * 100).toFixed(0)} % of its core just to keep ${hold.peersEnd} clients alive`)
    const askedHz = 1000 / hold.keepAliveMs
    if (hold.keepAliveHzIn < 0.95 * askedHz) {
      notes.push(
        `hold: the clients sent the server ${hold.keepAliveHzIn.toFixed(1)} keep-alives a second each, not the ${askedHz.toFixed(0)} asked ` +
          `(the load generator used ${(hold.load.cpuShare * 100).toFixed(0)} % of its core): the hold ran at that load`,
      )
    }
  }
  for (const source of [connectHold?.serverFinal, connectHold?.loadFinal]) if (source === null) notes.push('a phase 1/2 process did not stop cleanly within 15 s (killed)')
  const finalStats = connectHold?.serverFinal?.stats
  const finalDrops = isRecord(finalStats) && isRecord(finalStats.drops) ? Object.entries(finalStats.drops).filter(([, count]) => typeof count === 'number' && count > 0) : []
  if (finalDrops.length > 0) {
    notes.push(
      `phases 1/2: the server's drop counters over its whole life (up to its close, after the clients had closed) are ${JSON.stringify(Object.fromEntries(finalDrops))}` +
        (connect && hold && Object.keys(connect.server.drops).length === 0 && Object.keys(hold.server.drops).length === 0 ? ', none of them in the measured windows' : ''),
    )
  }
  for (const run of runs) {
    const tag = `payload ${run.receiver} #${run.round}`
    if (run.loss > 0.001) notes.push(`${tag}: lost ${(run.loss * 100).toFixed(2)} % (sent ${run.sent}, received ${run.received}; kernel RcvbufErrors ${run.kernel?.RcvbufErrors ?? '?'})`)
    if (run.notSent > 0) notes.push(`${tag}: ${run.notSent} payloads not sent (volley: send() refused or client not connected; dgram: send() errors)`)
    if (Object.keys(run.drops).length > 0) notes.push(`${tag}: server drops in the window: ${JSON.stringify(run.drops)}`)
    if (isDisturbed(run.disturbance, run.window.seconds)) notes.push(`${tag}: disturbed by other processes: ${JSON.stringify(run.disturbance)}`)
    const openFailures = run.details.openFailures
    if (run.receiver === 'floor' && openFailures !== 0) notes.push(`${tag}: the floor receiver's AEAD opens failed ${String(openFailures)} times (it opens a message it sealed itself: this must be 0)`)
  }
  return notes
}

const integer = (value: number): string => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–')
const bytes = (value: number): string => (Number.isFinite(value) ? `${Math.round(value).toLocaleString('en-US')} B` : '–')
const mebibytes = (value: number | undefined): string => (value !== undefined && Number.isFinite(value) ? `${(value / 2 ** 20).toFixed(1)} MiB` : '–')
const counts = (value: Record<string, number>): string => (Object.keys(value).length === 0 ? '0' : Object.entries(value).map(([key, count]) => `${key} ${count}`).join(', '))

export function renderConnections(summary: ConnectionsSummary, handshakes: HandshakePhase | null, connectHold: ConnectHoldResult | null, options: ConnectionsOptions, system: SystemInfo): string {
  const out: string[] = []
  const pinning = options.pin === 'split' ? 'server/receiver on CPU 1, load generator on CPU 0 (taskset)' : 'none'
  out.push(`## volley connections benchmark, ${system.date.slice(0, 16).replace('T', ' ')} UTC${options.quick ? ' (quick)' : ''}`)
  out.push('')
  out.push(`node ${system.node} · ${system.cpuModel}, ${system.cpus} CPUs · Linux ${system.kernel} · loopback · pinning: ${pinning} · server and load generator in separate processes`)
  out.push('')
  const connect = connectHold?.connect
  const hold = connectHold?.hold
  out.push(
    table(
      ['phase', 'measure', 'value'],
      [
        ...summary.handshakes.flatMap((round) => {
          const which = round.round === 'cold' ? 'fresh server' : 'again, after those left'
          const each = round.series > 1 ? ` (median of ${round.cpuPerHandshakeUsEach.map((value) => microseconds(value)).join(', ')})` : ''
          return [
            [`0. handshakes`, `${which}: clients connected`, `${integer(handshakes?.clients ?? Number.NaN)} × ${round.series} at ${integer(round.connectRate)} handshakes/s (median)`],
            [`0. handshakes`, `${which}: server CPU per handshake`, `${microseconds(round.cpuPerHandshakeUs)} µs${each} (${percent(round.serverCpuShare, 0)} of a core; load generator ${percent(round.loadCpuShare, 0)})`],
            [`0. handshakes`, `${which}: server page faults per handshake`, Number.isFinite(round.pageFaultsPerHandshake) ? round.pageFaultsPerHandshake.toFixed(2) : '–'],
          ]
        }),
        ...(connect
          ? [
              ['1. connect', `clients connected (concurrency ${connect.concurrency})`, `${integer(connect.connected)} / ${integer(connect.clients)}`],
              ['1. connect', 'failed connects', counts(connect.failed)],
              ['1. connect', 'connect rate', `${integer(connect.connectRate)} handshakes/s (${(connect.ms / 1000).toFixed(2)} s)`],
              ['1. connect', 'server CPU per handshake (keep-alives included)', `${microseconds(connect.server.cpuPerHandshakeUs)} µs`],
              ['1. connect', 'the same, keep-alive work estimated and removed', `≈ ${microseconds(connect.server.cpuPerHandshakeNetUs)} µs`],
              ['1. connect', 'server / load generator CPU over the connect', `${percent(connect.server.cpuShare, 0)} / ${percent(connect.load.cpuShare, 0)}`],
              ['1. connect', 'server context switches per handshake', Number.isFinite(connect.server.contextSwitchesPerHandshake) ? connect.server.contextSwitchesPerHandshake.toFixed(1) : '–'],
            ]
          : []),
        ...(hold
          ? [
              ['2. idle hold', 'seconds held, peers at start → end', `${hold.seconds.toFixed(1)} s, ${integer(hold.peersStart)} → ${integer(hold.peersEnd)}`],
              ['2. idle hold', 'connections timed out (clients / server)', `${hold.clientsEnded['connection-timed-out'] ?? 0} / ${hold.serverDisconnects.timeout ?? 0}`],
              ['2. idle hold', 'server CPU while holding (1 core = 100 %)', percent(hold.server.cpuShare, 1)],
              ['2. idle hold', 'server datagrams in / out per second', `${integer(hold.server.packetsIn / hold.seconds)} / ${integer(hold.server.packetsOut / hold.seconds)}`],
              ['2. idle hold', 'server CPU per keep-alive datagram (in or out)', `${microseconds(hold.server.cpuPerPacketUs)} µs`],
              ['2. idle hold', 'server keep-alives a second per client, in / out', `${hold.keepAliveHzIn.toFixed(1)} / ${hold.keepAliveHzOut.toFixed(1)}`],
              ['2. idle hold', 'server RSS before the Server → after listen → connected → end of hold', `${mebibytes(hold.memory.beforeServer?.rss)} → ${mebibytes(hold.memory.listen?.rss)} → ${mebibytes(hold.memory.connected?.rss)} → ${mebibytes(hold.memory.end?.rss)}`],
              ['2. idle hold', 'server RSS per idle peer, right after connect / end of hold', `${bytes(hold.memory.rssPerPeerConnected)} / ${bytes(hold.memory.rssPerPeerEnd)} (of which the engine and slots before any peer: ${bytes(hold.memory.serverFixedRss / hold.peersEnd)})`],
              ['2. idle hold', 'of which JS heap used / external per peer', `${bytes(hold.memory.heapUsedPerPeerEnd)} / ${bytes(hold.memory.externalPerPeerEnd)}`],
              ['2. idle hold', 'load generator CPU / RSS while holding', `${percent(hold.load.cpuShare, 1)} / ${mebibytes(hold.loadRss)} (${bytes(hold.loadRss / hold.peersEnd)} per client, process baseline included)`],
            ]
          : []),
        ...summary.payload.map((entry) => [
          '3. payload',
          `${PAYLOAD_SHORT_NAMES[entry.receiver]}: CPU per message (median of ${entry.runs})`,
          `${microseconds(entry.cpuPerMessageUs)} µs (loss ${percent(entry.loss, 2)}, CPU ${percent(entry.cpuShare, 0)})`,
        ]),
        ...(Number.isFinite(summary.payloadRatio) ? [['3. payload', 'volley ÷ node:dgram CPU per message', `${times(summary.payloadRatio)} (net of the idle share ${times(summary.payloadRatioNet)})`]] : []),
        ...(Number.isFinite(summary.floorRatio) ? [['3. payload', 'floor ÷ node:dgram CPU per message', times(summary.floorRatio)]] : []),
        ...(Number.isFinite(summary.volleyOverFloor) ? [['3. payload', 'volley ÷ floor CPU per message', `${times(summary.volleyOverFloor)} (net of the idle share ${times(summary.volleyOverFloorNet)})`]] : []),
        ...(Number.isFinite(summary.nativeOverFallback) ? [['3. payload', 'volley on its native engine ÷ on its fallback engine, CPU per message', times(summary.nativeOverFallback)]] : []),
      ],
      'llr',
    ),
  )
  if (summary.payload.length > 0) {
    out.push('')
    out.push(
      `### 3. Payload receive: ${PAYLOAD_LABEL} at ${integer(summary.payload[0]?.rate ?? Number.NaN)} messages/s in total from ${integer(options.payloadClients)} ` +
        `source addresses (one per client; 64 datagrams per sendmmsg), bursts every ${options.tickUs / 1000} ms, ${options.payloadSeconds} s per run`,
    )
    out.push('')
    out.push(
      table(
        ['receiver', 'received msg/s', 'loss', 'CPU µs/msg', 'user µs/msg', 'system µs/msg', 'CPU (1 core = 100 %)', 'idle CPU (keep-alives)', 'µs/msg net of idle', 'context switches / 1000 msg', 'sender CPU', 'disturbed'],
        summary.payload.map((entry) => [
          PAYLOAD_NAMES[entry.receiver],
          integer(entry.receivedRate),
          percent(entry.loss, 2),
          microseconds(entry.cpuPerMessageUs),
          microseconds(entry.userPerMessageUs),
          microseconds(entry.systemPerMessageUs),
          percent(entry.cpuShare, 0),
          Number.isFinite(entry.idleCpuShare) ? percent(entry.idleCpuShare, 1) : '–',
          microseconds(entry.cpuPerMessageNetUs),
          Number.isFinite(entry.contextSwitchesPerThousand) ? entry.contextSwitchesPerThousand.toFixed(0) : '–',
          percent(entry.senderCpuShare, 0),
          `${entry.disturbedRuns}/${entry.runs}`,
        ]),
        'lrrrrrrrrrrr',
      ),
    )
  }
  out.push('')
  out.push('### Targets')
  out.push('')
  for (const entry of summary.targets) {
    const value = !Number.isFinite(entry.value)
      ? '–'
      : entry.unit === '×'
        ? times(entry.value)
        : entry.unit === ''
          ? integer(entry.value)
          : `${entry.unit === 'µs' ? microseconds(entry.value) : integer(entry.value)} ${entry.unit}`
    out.push(`- ${entry.what}: ${value} (target ${entry.target}): ${entry.met === null ? 'not measured (see notes)' : entry.met ? 'met' : 'NOT met'}`)
  }
  out.push('')
  out.push(
    'CPU: user + system time of the whole process (all threads, the engine\'s I/O thread included), measured by the process itself (getrusage) at marks the runner asks for. ' +
      'Handshakes: server CPU from just before the load generator starts connecting to just after its last attempt ended, ÷ the handshakes the server completed, ' +
      `with keep-alives every ${(handshakes?.keepAliveMs ?? 10_000) / 1000} s on both sides so that the window holds handshakes only; ` +
      (handshakes?.loader === 'pool'
        ? 'the clients are a ClientPool in a node process; '
        : "the clients are the C++ handshake load (bench/native/handshake-load.cc: volley's netcode client core, each client at an address of its own in 127.0.0.0/8, all on one socket with batched system calls), which connects faster than the server accepts, so the server sets the rate; ") +
      'first on a fresh server (its memory grows: V8 heap, maps), then again with new clients after the first ones left (the steady state of a gateway whose clients come and go). ' +
      'Page faults per handshake count the server\'s first touches of memory (minor faults); each costs microseconds on this VM (bench/native/first-touch.c: 1.4–2.4 µs per 4 KiB page, 7.7–8.4 µs for memory the host had taken back). ' +
      'Connect: server CPU from just before the load generator starts connecting to just after its last attempt ended, ÷ the handshakes the server completed; ' +
      'it includes the keep-alives (10 Hz each way) of the clients already connected, which the second figure estimates from the hold\'s CPU per datagram and removes. ' +
      'RSS per peer: (server RSS with the clients connected − server RSS before the Server was made) ÷ peers, each read after a full GC, right after the clients connected and at the end of the hold; the target checks the larger; ' +
      'the server is made with maxClients = the client count. ' +
      'Payload: the server\'s \'message\' handler and the dgram socket\'s handler only count messages and bytes; the volley server also sends its keep-alives ' +
      '(10 Hz per client, as no payload goes back) in the window, which the "net of idle" column removes (using the idle share measured before sending, ' +
      'in which the clients, whose keep-alives are never due while they send payloads, send theirs every 3 s only: the idle share is the server\'s own keep-alive work and timers, ' +
      'and each of its wake-ups, which under load are shared with payloads: what it removes is an upper bound on the keep-alives\' part, and the net figure a lower bound). ' +
      'The fallback row is the same Server on volley\'s fallback engine (VOLLEY_ENGINE=fallback: node:dgram, with the protocol cores and libsodium as WebAssembly on the JavaScript thread), the baseline the native engine beats; where it cannot keep up, its loss shows it. ' +
      'Both senders follow the same schedule from as many sources: for volley the C++ load\'s netcode clients (the ClientPool in node with --handshake-load=pool), for node:dgram and the floor the C paced sender. ' +
      'The floor (bench/native/floor-receiver.c) is the least a receiver built like volley\'s server can spend on this machine: an I/O thread reads recvmmsg batches of 64 and waits between them as the engine does, ' +
      'opens one 64 B ChaCha20-Poly1305 message per datagram with libsodium\'s AEAD call, as the engine does (netcode\'s 22 B of associated data), and hands each batch to a second thread with one eventfd wake-up; ' +
      'no protocol (peer lookup, replay window, timers, keep-alives) and no JavaScript. ' +
      'Loss: 1 − received ÷ sent. Disturbed: runs during which other processes used more than 10 % of a pinned core.',
  )
  if (summary.notes.length > 0) {
    out.push('')
    out.push('Notes:')
    for (const note of summary.notes) out.push(`- ${note}`)
  }
  return out.join('\n')
}

const PAYLOAD_LABEL = '64 B payloads'

const PAYLOAD_SHORT_NAMES: Record<PayloadRun['receiver'], string> = {
  volley: 'volley Server, encrypted',
  fallback: 'volley Server on its fallback engine',
  dgram: 'node:dgram, plaintext',
  floor: 'floor (C: recvmmsg, AEAD, hand-off)',
}

const PAYLOAD_NAMES: Record<PayloadRun['receiver'], string> = {
  volley: 'volley Server (encrypted, JS message event)',
  fallback: 'volley Server on the fallback engine (node:dgram, cores as WebAssembly)',
  dgram: 'node:dgram (plaintext, message event)',
  floor: 'floor (C: recvmmsg batches, the engine\'s AEAD per datagram, one hand-off per batch)',
}
